// A struct with no stored fields: nothing to load or store, and no warnings.
use sessionkit::{Session, SessionData};

#[derive(SessionData, Default)]
struct Nothing {}

#[derive(SessionData)]
struct OnlySkipped {
    #[session(skip)]
    cache: Vec<u8>,
}

fn main() {
    let session = Session::new();
    Nothing {}.store(&session).unwrap();
    let _ = Nothing::load(&session).unwrap();
    OnlySkipped { cache: vec![1] }.store(&session).unwrap();
    assert!(OnlySkipped::load(&session).unwrap().cache.is_empty());
    assert!(session.is_empty());
    assert!(Nothing::KEYS.is_empty() && OnlySkipped::KEYS.is_empty());
}
