//! Lifecycle intents (regenerate, destroy, owner, persistence) and flash messages: recorded
//! on the session here, carried out by the manager when the request finishes.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Session;
use super::state::Intent;
use crate::codec::{decode_value, encode_value};
use crate::error::{Error, Result};
use crate::limits::Footprint;
use crate::reserved;

impl Session {
    /// Moves the session to a fresh id when the request finishes, and ends the old id at
    /// once, with no grace window. Call it on login and on every privilege change, so an id
    /// an attacker planted before the login (session fixation) is worth nothing after it.
    ///
    /// The data, flash messages included, moves with the session. If the move fails the
    /// request's save fails and the session stays whole under its old id. On a session that
    /// was never saved it changes nothing: a new session gets a new id anyway.
    ///
    /// ```
    /// # let session = sessionkit::Session::new();
    /// session.insert("user_id", 42)?;
    /// session.regenerate();
    /// assert!(session.is_regenerating());
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
    pub fn regenerate(&self) {
        self.state.lock().intent.regenerate = true;
    }

    /// Whether [`regenerate`](Self::regenerate) was called during this request.
    ///
    /// ```
    /// # let session = sessionkit::Session::new();
    /// assert!(!session.is_regenerating());
    /// session.regenerate();
    /// assert!(session.is_regenerating());
    /// ```
    pub fn is_regenerating(&self) -> bool {
        self.state.lock().intent.regenerate
    }

    /// Ends the session (logout): when the request finishes it is deleted from every store
    /// tier and the response clears the cookie. Its data, flash messages and owner tag are
    /// dropped from this handle at once.
    ///
    /// Whatever the request stores after this call starts a new session with a new id (so a
    /// "You have been logged out" flash survives the logout); if it stores nothing, no
    /// session remains.
    ///
    /// ```
    /// # let session = sessionkit::Session::new();
    /// session.insert("user_id", 42)?;
    /// session.destroy();
    /// assert!(session.is_empty() && session.is_destroyed());
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
    pub fn destroy(&self) {
        let mut state = self.state.lock();
        state.intent = Intent {
            destroy: true,
            ..Intent::default()
        };
        state.owner = None;
        state.fields.clear();
        state.size = Footprint::default();
        state.dirty.clear();
        state.ops.clear();
        state.cleared = false;
        state.fresh_flash.clear();
    }

    /// Whether [`destroy`](Self::destroy) was called during this request.
    ///
    /// ```
    /// # let session = sessionkit::Session::new();
    /// assert!(!session.is_destroyed());
    /// session.destroy();
    /// assert!(session.is_destroyed());
    /// ```
    pub fn is_destroyed(&self) -> bool {
        self.state.lock().intent.destroy
    }

    /// Tags the session with an owner (typically the user id), or removes the tag with
    /// `None`. The manager can then list and end every session of an owner ("log out
    /// everywhere"). The tag is saved when the request finishes.
    ///
    /// ```
    /// # let session = sessionkit::Session::new();
    /// session.set_owner(Some("user-42".to_owned()));
    /// assert_eq!(session.owner().as_deref(), Some("user-42"));
    /// ```
    pub fn set_owner(&self, owner: Option<String>) {
        let mut state = self.state.lock();
        state.intent.owner = if state.owner == owner {
            None
        } else {
            Some(owner)
        };
    }

    /// The owner tag, including a change made during this request.
    ///
    /// ```
    /// # let session = sessionkit::Session::new();
    /// assert_eq!(session.owner(), None);
    /// session.set_owner(Some("user-42".to_owned()));
    /// assert_eq!(session.owner().as_deref(), Some("user-42"));
    /// ```
    pub fn owner(&self) -> Option<String> {
        let state = self.state.lock();
        match &state.intent.owner {
            Some(changed) => changed.clone(),
            None => state.owner.clone(),
        }
    }

    /// Chooses a persistent cookie ("remember me": it survives a browser restart and expires
    /// with the session) or a browser-session cookie for this session, overriding the
    /// manager's default. The choice is stored with the session.
    ///
    /// ```
    /// # let session = sessionkit::Session::new();
    /// session.set_persistent(true); // "remember me" was ticked
    /// assert_eq!(session.persistent(), Some(true));
    /// // Stored under a reserved key: not one of the session's entries.
    /// assert!(session.is_empty());
    /// ```
    pub fn set_persistent(&self, persistent: bool) {
        // Writing a bool cannot fail to encode; ignoring the impossible error keeps this
        // setter infallible.
        let _ = self.insert_unchecked(reserved::PERSIST.to_owned(), &persistent);
    }

    /// This session's own cookie persistence choice; `None` when it follows the manager's
    /// default.
    ///
    /// ```
    /// # let session = sessionkit::Session::new();
    /// assert_eq!(session.persistent(), None); // follows the manager's default
    /// session.set_persistent(false);
    /// assert_eq!(session.persistent(), Some(false));
    /// ```
    pub fn persistent(&self) -> Option<bool> {
        self.get_unchecked::<bool>(reserved::PERSIST).ok().flatten()
    }

    /// Leaves a flash message: a value readable once, by [`take_flash`](Self::take_flash), on
    /// a later request of this session, then gone. Any `Serialize` type works; setting the same
    /// name again replaces the message. Flash messages survive [`regenerate`](Self::regenerate),
    /// so "Welcome back" set during a login is shown after it.
    ///
    /// ```
    /// # let session = sessionkit::Session::new();
    /// session.flash("notice", "Saved.")?;
    /// // Not readable during the request that set it:
    /// assert_eq!(session.take_flash::<String>("notice")?, None);
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Encode`] when the value cannot be serialized; [`Error::FlashDisabled`] when
    /// the manager was configured without flash support (`integrate_flash = false`).
    pub fn flash<T: Serialize>(&self, name: &str, value: T) -> Result<()> {
        if self.state.lock().flash_disabled {
            return Err(Error::FlashDisabled);
        }
        let key = reserved::flash_key(name);
        let bytes = encode_value(&key, &value)?;
        let mut state = self.state.lock();
        state.set(key, bytes)?;
        state.fresh_flash.insert(name.to_owned());
        Ok(())
    }

    /// Takes the flash message `name` left by an earlier request: returns it and removes it,
    /// so it is shown once. Messages set during this request are not visible yet.
    ///
    /// ```
    /// # use std::collections::BTreeMap;
    /// # use sessionkit::Session;
    /// # // A session loaded by a later request, holding the flash an earlier one left.
    /// # let fields = BTreeMap::from([("__sk.flash.notice".to_owned(), bytes::Bytes::from_static(b"\xa6Saved."))]);
    /// # let session = Session::from_fields(fields);
    /// assert_eq!(session.take_flash::<String>("notice")?.as_deref(), Some("Saved."));
    /// assert_eq!(session.take_flash::<String>("notice")?, None); // shown once
    /// # Ok::<(), sessionkit::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Decode`] when the message is not a `T` (it is then kept);
    /// [`Error::FlashDisabled`] when flash support is off.
    pub fn take_flash<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        let mut state = self.state.lock();
        if state.flash_disabled {
            return Err(Error::FlashDisabled);
        }
        if state.fresh_flash.contains(name) {
            return Ok(None);
        }
        let key = reserved::flash_key(name);
        let Some(bytes) = state.fields.get(&key) else {
            return Ok(None);
        };
        let value = decode_value(&key, bytes)?;
        state.remove(&key);
        Ok(Some(value))
    }
}
