// The view and its methods take the struct's visibility; private views work within their
// module, public ones from outside it.
mod account {
    use sessionkit::SessionData;

    #[derive(SessionData)]
    pub struct Login {
        pub user: Option<String>,
    }

    #[derive(SessionData)]
    pub(crate) struct Audit {
        pub(crate) events: Vec<String>,
    }

    #[derive(SessionData)]
    struct Secret {
        #[session(default)]
        tries: u8,
    }

    pub fn bump(session: &sessionkit::Session) -> u8 {
        let view = Secret::view(session);
        let tries = view.tries().unwrap() + 1;
        view.set_tries(tries).unwrap();
        tries
    }
}

use account::{Audit, AuditView, Login, LoginView};
use sessionkit::Session;

fn user(view: LoginView<'_>) -> Option<String> {
    view.user().unwrap()
}

fn main() {
    let session = Session::new();
    Login::view(&session).set_user(Some("ann".into())).unwrap();
    assert_eq!(user(Login::view(&session)).as_deref(), Some("ann"));
    let audit: AuditView<'_> = Audit::view(&session);
    audit.set_events(vec!["login".into()]).unwrap();
    assert_eq!(account::bump(&session), 1);
    assert_eq!(account::bump(&session), 2);
}
