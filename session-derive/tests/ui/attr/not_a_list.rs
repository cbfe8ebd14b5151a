use sessionkit::SessionData;

#[derive(SessionData)]
struct Prefs {
    #[session]
    theme: String,
}

fn main() {}
