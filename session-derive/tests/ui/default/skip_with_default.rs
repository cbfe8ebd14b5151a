use sessionkit::SessionData;

#[derive(SessionData)]
struct Prefs {
    #[session(skip, default)]
    scratch: Vec<u8>,
}

fn main() {}
