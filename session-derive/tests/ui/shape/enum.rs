use sessionkit::SessionData;

#[derive(SessionData)]
enum Role {
    Guest,
    Member { id: u64 },
}

fn main() {}
