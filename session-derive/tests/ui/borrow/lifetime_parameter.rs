use sessionkit::SessionData;

#[derive(SessionData)]
struct Prefs<'a> {
    theme: std::borrow::Cow<'a, str>,
}

fn main() {}
