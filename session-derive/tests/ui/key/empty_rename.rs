use sessionkit::SessionData;

#[derive(SessionData)]
struct Prefs {
    #[session(rename = "")]
    theme: String,
}

fn main() {}
