use sessionkit::SessionData;

#[derive(SessionData)]
struct Prefs {
    theme: &'static str,
}

fn main() {}
