use sessionkit::SessionData;

#[derive(SessionData)]
#[session(prefix = "")]
struct Prefs {
    theme: String,
}

fn main() {}
