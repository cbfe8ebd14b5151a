use sessionkit::SessionData;

#[derive(SessionData)]
struct Nothing;

fn main() {}
