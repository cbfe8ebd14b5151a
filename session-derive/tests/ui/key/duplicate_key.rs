use sessionkit::SessionData;

#[derive(SessionData)]
#[session(prefix = "shop")]
struct Shopper {
    items: Vec<String>,
    #[session(rename = "items")]
    cart: Vec<String>,
}

fn main() {}
