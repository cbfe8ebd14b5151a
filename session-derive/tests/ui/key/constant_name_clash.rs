use sessionkit::SessionData;

#[derive(SessionData)]
#[allow(non_snake_case)]
struct Prefs {
    user_id: u64,
    USER_ID: u64,
}

fn main() {}
