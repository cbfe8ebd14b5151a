use sessionkit::SessionData;

#[derive(SessionData)]
#[session(prefix = "prefs.")]
struct Prefs {
    theme: String,
}

fn main() {}
