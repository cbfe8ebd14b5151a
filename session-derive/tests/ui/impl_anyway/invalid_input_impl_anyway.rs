use sessionkit::{Session, SessionData};

// The struct is rejected, but the trait is still implemented: the only error is the
// derive's own, not "SessionData is not implemented" at every use below.
#[derive(SessionData)]
struct Prefs {
    #[session(unknown)]
    theme: String,
}

fn load_any<T: SessionData>(session: &Session) -> sessionkit::Result<T> {
    T::load(session)
}

fn main() {
    let session = Session::new();
    let _ = load_any::<Prefs>(&session);
    let _ = Prefs::load(&session);
    let _ = Prefs::KEYS;
}
