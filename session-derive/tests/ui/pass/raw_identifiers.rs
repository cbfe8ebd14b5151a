// A raw identifier field: the key and the accessor names drop the `r#`.
use sessionkit::{Session, SessionData};

#[derive(SessionData)]
struct Request {
    r#type: String,
    r#ref: Option<u32>,
}

fn main() {
    let session = Session::new();
    let view = Request::view(&session);
    view.set_type("post".into()).unwrap();
    view.set_ref(Some(3)).unwrap();
    assert_eq!(view.r#type().unwrap(), "post");
    assert!(view.remove_ref());
    assert_eq!(Request::TYPE_KEY, "type");
    assert_eq!(session.get::<String>("type").unwrap().as_deref(), Some("post"));
}
