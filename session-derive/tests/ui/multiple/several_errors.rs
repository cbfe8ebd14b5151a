use sessionkit::SessionData;

// Every problem is reported in one compile, each at its own token.
#[derive(SessionData)]
#[session(prefix = "prefs", colour = "blue")]
struct Prefs {
    #[session(default)]
    theme: Option<String>,
    #[session(rename = "theme")]
    colour: String,
    #[session(skip, rename = "x")]
    scratch: Vec<u8>,
    #[session(defualt)]
    font: String,
    name: &'static str,
}

fn main() {}
