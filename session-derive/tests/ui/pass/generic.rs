// Type parameters (with a default and a where clause), a const parameter, PhantomData.
use std::marker::PhantomData;

use sessionkit::{Session, SessionData};

#[derive(SessionData)]
struct Paged<T, M = (), const N: usize = 10>
where
    T: Clone,
{
    current: Option<T>,
    #[session(default)]
    seen: Vec<T>,
    #[session(default)]
    page: u32,
    #[session(skip)]
    marker: PhantomData<M>,
}

fn roundtrip<T: SessionData>(value: &T, session: &Session) -> T {
    value.store(session).unwrap();
    T::load(session).unwrap()
}

fn main() {
    let session = Session::new();
    let value: Paged<String> = Paged {
        current: Some("a".into()),
        seen: vec!["a".into()],
        page: 2,
        marker: PhantomData,
    };
    let back = roundtrip(&value, &session);
    assert_eq!(back.seen, value.seen);
    let view = Paged::<String, (), 5>::view(&session);
    assert_eq!(view.page().unwrap(), 2);
    assert_eq!(<Paged<u8>>::PAGE_KEY, "page");
}
