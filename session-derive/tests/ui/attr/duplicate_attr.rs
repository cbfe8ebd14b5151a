use sessionkit::SessionData;

#[derive(SessionData)]
struct Prefs {
    #[session(rename = "color", rename = "colour")]
    theme: String,
}

fn main() {}
