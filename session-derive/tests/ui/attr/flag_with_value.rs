use sessionkit::SessionData;

#[derive(SessionData)]
struct Prefs {
    #[session(default = "dark")]
    theme: String,
}

fn main() {}
