//! What the example site does, framework-free: both the axum site ([`crate::site`]) and the
//! actix-web site ([`crate::site_actix`]) call these, adding only the framework glue (routes,
//! extractors, responses). Every action answers with a redirect to `/`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sessionkit::manager::SessionLife;
use sessionkit::store::Store;
use sessionkit::{Session, SessionData, SessionManager};

use crate::tier::Tier;

/// The manager both sites run.
pub type Manager = SessionManager<Arc<dyn Store>>;

/// The typed part of the site's session.
#[derive(SessionData, Debug, Default)]
#[session(prefix = "site")]
pub struct Visitor {
    /// `GET /` count.
    #[session(default)]
    pub visits: u64,
    /// The logged-in user.
    pub user: Option<String>,
    /// Items added with `POST /cart`.
    #[session(default)]
    pub cart: Vec<String>,
}

/// The JSON of `GET /api/session`.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionJson {
    /// Visits so far.
    pub visits: u64,
    /// The logged-in user.
    pub user: Option<String>,
    /// The cart.
    pub cart: Vec<String>,
}

/// The most items a cart keeps; later ones are ignored.
pub const CART_LIMIT: usize = 100;

/// `POST /login`'s form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    /// The user name.
    pub username: String,
}

/// `POST /cart`'s form.
#[derive(Debug, Deserialize)]
pub struct CartForm {
    /// The item to add.
    pub item: String,
}

/// `POST /flash`'s form.
#[derive(Debug, Deserialize)]
pub struct FlashForm {
    /// The message to show once.
    pub message: String,
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Keeps form input to a sane, printable size.
fn clean(input: &str, max: usize) -> Option<String> {
    let trimmed = input.trim();
    if trimmed.is_empty() || trimmed.chars().count() > max || trimmed.chars().any(char::is_control)
    {
        None
    } else {
        Some(trimmed.to_owned())
    }
}

/// A span of time as people read it: `42 s`, `5 min 3 s`, `2 h 5 min`, `3 d 4 h`.
fn span(d: Duration) -> String {
    // To the nearest second: stored times keep milliseconds.
    let s = d.saturating_add(Duration::from_millis(500)).as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        3600..86_400 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        _ => format!("{} d {} h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// `t` relative to `now`: "12 s ago" or "in 5 min 0 s".
fn relative(t: SystemTime, now: SystemTime) -> String {
    match t.duration_since(now) {
        Ok(ahead) if !ahead.is_zero() => format!("in {}", span(ahead)),
        _ => format!("{} ago", span(now.duration_since(t).unwrap_or_default())),
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#222}\
h1{font-size:1.6rem}h2{font-size:1.1rem;margin-top:1.8rem;border-bottom:1px solid #ddd}\
#flash{background:#eef7ee;border:1px solid #9c9;padding:.5rem 1rem;border-radius:4px}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dt{font-weight:600}dd{margin:0}\
form{margin:.6rem 0}label{display:inline-block;min-width:7rem}input{padding:.25rem}button{margin-left:.4rem;padding:.25rem .8rem}";

/// `GET /`: counts the visit (an increment the store applies, so two tabs loading the page
/// at once both count), takes the pending flash and renders the page, with the session's
/// life (never its id) and which store `tier` answered its load.
///
/// # Errors
/// A session value that does not decode or encode.
pub fn home(manager: &Manager, session: &Session, tier: Tier) -> sessionkit::Result<String> {
    let view = Visitor::view(session);
    let visits = view.incr_visits(1)?;
    let user = view.user()?;
    let cart = view.cart()?;
    let flash: Option<String> = session.take_flash("message")?;
    let life = manager.life(session);
    let now = manager.config().clock.now();
    Ok(render(
        visits,
        user.as_deref(),
        &cart,
        flash.as_deref(),
        life,
        tier,
        now,
    ))
}

fn render(
    visits: u64,
    user: Option<&str>,
    cart: &[String],
    flash: Option<&str>,
    life: Option<SessionLife>,
    tier: Tier,
    now: SystemTime,
) -> String {
    let mut page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>sessionkit demo</title>\
         <style>{STYLE}</style></head><body>\n<h1>sessionkit demo</h1>\n"
    );
    // `write!` into a String cannot fail.
    if let Some(message) = flash {
        let _ = writeln!(page, "<p id=\"flash\">{}</p>", escape(message));
    }
    let _ = writeln!(page, "<p>Visits: <span id=\"visits\">{visits}</span></p>");
    page.push_str("<h2>Account</h2>\n");
    match user {
        Some(name) => {
            let _ = writeln!(
                page,
                "<p>Logged in as <span id=\"user\">{}</span></p>\n\
                 <form method=\"post\" action=\"/logout\"><button id=\"logout\">Log out</button></form>\n\
                 <form method=\"post\" action=\"/logout-everywhere\"><button id=\"logout-everywhere\">Log out everywhere</button></form>",
                escape(name)
            );
        }
        None => page.push_str(
            "<p>Not logged in</p>\n<form method=\"post\" action=\"/login\">\
             <label for=\"username\">User name</label><input id=\"username\" name=\"username\" autocomplete=\"username\">\
             <button id=\"login\">Log in</button></form>\n",
        ),
    }
    page.push_str("<h2>Cart</h2>\n<ul id=\"cart\">");
    for item in cart {
        let _ = write!(page, "<li>{}</li>", escape(item));
    }
    page.push_str(
        "</ul>\n<form method=\"post\" action=\"/cart\"><label for=\"item\">Item</label>\
         <input id=\"item\" name=\"item\"><button id=\"add\">Add to cart</button></form>\n\
         <h2>Flash message</h2>\n<form method=\"post\" action=\"/flash\"><label for=\"message\">Message</label>\
         <input id=\"message\" name=\"message\"><button id=\"flash-set\">Flash</button></form>\n",
    );
    page.push_str("<h2>This session's life</h2>\n<dl id=\"life\">\n");
    match life {
        Some(life) => {
            let row = |page: &mut String, id: &str, label: &str, value: String| {
                let _ = writeln!(page, "<dt>{label}</dt><dd id=\"{id}\">{value}</dd>");
            };
            row(&mut page, "created", "Created", relative(life.created, now));
            row(&mut page, "last-seen", "Last seen", relative(life.last_seen, now));
            row(
                &mut page,
                "idle-deadline",
                "Idle deadline",
                format!("{} unless you come back", relative(life.idle_deadline, now)),
            );
            row(
                &mut page,
                "absolute-deadline",
                "Absolute deadline",
                life.absolute_deadline
                    .map_or_else(|| "none".to_owned(), |t| relative(t, now)),
            );
            row(
                &mut page,
                "next-rotation",
                "Next id rotation",
                life.next_rotation.map_or_else(
                    || "never (rotation off)".to_owned(),
                    |t| format!("{} (on the first request after)", relative(t, now)),
                ),
            );
            row(
                &mut page,
                "tier",
                "Loaded from",
                match tier {
                    Tier::Cache => "the cache tier".to_owned(),
                    Tier::Durable => "the durable store".to_owned(),
                },
            );
        }
        None => page.push_str(
            "<dt>Created</dt><dd id=\"created\">just now: this request starts the session, saved when it ends</dd>\n",
        ),
    }
    page.push_str(
        "</dl>\n<p><small>The session id lives only in your cookie; this page never shows it.</small></p>\n</body></html>\n",
    );
    page
}

/// `POST /login`: regenerates the id, sets the user and the session's owner, and a welcome
/// flash; a blank or over-long name only sets a flash asking again.
///
/// # Errors
/// A session value that does not encode.
pub fn login(session: &Session, form: &LoginForm) -> sessionkit::Result<()> {
    let Some(name) = clean(&form.username, 64) else {
        session.flash("message", "Please enter a user name (up to 64 characters).")?;
        return Ok(());
    };
    session.regenerate();
    Visitor::view(session).set_user(Some(name.clone()))?;
    session.set_owner(Some(name.clone()));
    session.flash("message", format!("Welcome, {name}!"))?;
    Ok(())
}

/// `POST /logout`: destroys the session.
pub fn logout(session: &Session) {
    session.destroy();
}

/// `POST /logout-everywhere`: ends every session of the current user, then this one.
///
/// # Errors
/// The store failed, or the user does not decode.
pub async fn logout_everywhere(manager: &Manager, session: &Session) -> sessionkit::Result<()> {
    if let Some(user) = Visitor::view(session).user()? {
        let ended = manager.revoke_owner(&user).await?;
        tracing::info!(ended, "logged out everywhere");
    }
    session.destroy();
    Ok(())
}

/// `POST /cart`: appends the item; the store keeps the first [`CART_LIMIT`] items, so
/// concurrent posts from several tabs all land.
///
/// # Errors
/// A session value that does not encode.
pub fn add_to_cart(session: &Session, form: &CartForm) -> sessionkit::Result<()> {
    if let Some(item) = clean(&form.item, 100) {
        Visitor::view(session).push_cart_bounded(item, CART_LIMIT)?;
    }
    Ok(())
}

/// `POST /flash`: sets the flash message shown once by the next page.
///
/// # Errors
/// A session value that does not encode.
pub fn set_flash(session: &Session, form: &FlashForm) -> sessionkit::Result<()> {
    if let Some(message) = clean(&form.message, 200) {
        session.flash("message", message)?;
    }
    Ok(())
}

/// `GET /api/session`, read-only.
///
/// # Errors
/// A session value that does not decode.
pub fn api_session(session: &Session) -> sessionkit::Result<SessionJson> {
    let view = Visitor::view(session);
    Ok(SessionJson {
        visits: view.visits()?,
        user: view.user()?,
        cart: view.cart()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_as_people_say_them() {
        assert_eq!(span(Duration::from_secs(42)), "42 s");
        assert_eq!(span(Duration::from_secs(303)), "5 min 3 s");
        assert_eq!(span(Duration::from_secs(7500)), "2 h 5 min");
        assert_eq!(span(Duration::from_millis(59_999)), "1 min 0 s");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        assert_eq!(relative(now + Duration::from_secs(60), now), "in 1 min 0 s");
        assert_eq!(relative(now - Duration::from_secs(5), now), "5 s ago");
    }
}
