use sessionkit::SessionData;

struct Connection;

#[derive(SessionData)]
struct Prefs {
    theme: String,
    #[session(skip)]
    connection: Connection,
}

fn main() {}
