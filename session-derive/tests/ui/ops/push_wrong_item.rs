use sessionkit::{Session, SessionData};

#[derive(SessionData)]
struct Cart {
    #[session(default)]
    items: Vec<String>,
}

fn main() {
    let session = Session::new();
    Cart::view(&session).push_items(42u32).unwrap();
}
