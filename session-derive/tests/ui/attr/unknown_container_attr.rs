use sessionkit::SessionData;

#[derive(SessionData)]
#[session(namespace = "prefs")]
struct Prefs {
    theme: String,
}

fn main() {}
