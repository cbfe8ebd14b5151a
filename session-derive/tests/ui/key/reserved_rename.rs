use sessionkit::SessionData;

#[derive(SessionData)]
struct Spoof {
    #[session(rename = "__sk.flash")]
    flash: Vec<String>,
}

fn main() {}
