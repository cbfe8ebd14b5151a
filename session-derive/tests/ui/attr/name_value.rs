use sessionkit::SessionData;

#[derive(SessionData)]
#[session = "shop"]
struct Prefs {
    theme: String,
}

fn main() {}
