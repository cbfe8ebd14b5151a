use sessionkit::SessionData;

#[derive(SessionData)]
struct Pair(u64, String);

fn main() {}
