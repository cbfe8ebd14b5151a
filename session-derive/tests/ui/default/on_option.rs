use sessionkit::SessionData;

#[derive(SessionData)]
struct Prefs {
    #[session(default)]
    theme: Option<String>,
}

fn main() {}
