use sessionkit::SessionData;

#[derive(SessionData)]
#[session(prefix = "__sk")]
struct Spoof {
    created: u64,
    owner: String,
}

fn main() {}
