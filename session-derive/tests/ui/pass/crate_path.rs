// `crate = "..."` for a framework that re-exports sessionkit under another path.
mod framework {
    pub use sessionkit as sessions;
}

use framework::sessions::{Session, SessionData};

#[derive(SessionData)]
#[session(crate = "framework::sessions")]
struct Prefs {
    theme: Option<String>,
}

fn main() {
    let session = Session::new();
    Prefs::view(&session).set_theme(Some("dark".into())).unwrap();
    assert_eq!(Prefs::load(&session).unwrap().theme.as_deref(), Some("dark"));
}
