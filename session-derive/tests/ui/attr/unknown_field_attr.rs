use sessionkit::SessionData;

#[derive(SessionData)]
struct Prefs {
    #[session(defualt)]
    theme: String,
}

fn main() {}
