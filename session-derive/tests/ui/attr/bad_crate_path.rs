use sessionkit::SessionData;

#[derive(SessionData)]
#[session(crate = "not a path")]
struct Prefs {
    theme: String,
}

fn main() {}
