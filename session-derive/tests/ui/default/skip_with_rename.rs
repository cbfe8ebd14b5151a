use sessionkit::SessionData;

#[derive(SessionData)]
struct Prefs {
    #[session(skip, rename = "scratch_pad")]
    scratch: Vec<u8>,
}

fn main() {}
