use sessionkit::SessionData;

#[derive(SessionData)]
struct Prefs {
    #[session(rename = colour)]
    theme: String,
}

fn main() {}
