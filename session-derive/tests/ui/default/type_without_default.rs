use serde::{Deserialize, Serialize};
use sessionkit::SessionData;

#[derive(Serialize, Deserialize)]
struct Theme {
    name: String,
}

#[derive(SessionData)]
struct Prefs {
    #[session(default)]
    theme: Theme,
}

fn main() {}
