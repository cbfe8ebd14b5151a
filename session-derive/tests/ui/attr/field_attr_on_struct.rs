use sessionkit::SessionData;

#[derive(SessionData)]
#[session(default)]
struct Prefs {
    theme: String,
}

fn main() {}
