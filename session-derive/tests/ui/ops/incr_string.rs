use sessionkit::{Session, SessionData};

#[derive(SessionData)]
struct Prefs {
    #[session(default)]
    theme: String,
    #[session(default)]
    visits: u32,
}

fn main() {
    let session = Session::new();
    let prefs = Prefs::view(&session);
    prefs.incr_visits(1).unwrap();
    prefs.incr_theme(1).unwrap();
}
