use sessionkit::SessionData;

#[derive(SessionData)]
struct Prefs {
    #[session(prefix = "prefs")]
    theme: String,
}

fn main() {}
