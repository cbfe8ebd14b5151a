//! The one error type of sessionkit, shared by the session, every store and the manager.

use std::error::Error as StdError;

/// A boxed error source, kept so callers can walk the chain.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// `Result` with sessionkit's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in sessionkit.
///
/// Callers branch on the variant; [`Error::is_transient`] says, in one place, whether
/// retrying the same operation can help.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store could not be reached or did not answer in time (network, server down, pool
    /// exhausted, timeout). Retrying may help.
    #[error("session store unavailable: {message}")]
    Unavailable {
        /// What failed, for humans.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// The store answered but failed for a reason retrying will not fix at once: permission
    /// denied, disk full, a read-only file system, a server-side script error.
    #[error("session store failed: {message}")]
    Storage {
        /// What failed, for humans.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// A stored record could not be decoded. Readers treat the session as absent.
    #[error("corrupt session record: {message}")]
    Corrupt {
        /// What was wrong with it.
        message: String,
        /// The underlying decode error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// [`Store::create`](crate::Store::create) found a live record under the key already.
    #[error("a session with this key already exists")]
    AlreadyExists,
    /// The session is not in the store (never was, deleted, or expired); changes to it were
    /// not applied, so a concurrent logout is never undone.
    #[error("the session is gone (deleted or expired)")]
    Gone,
    /// The durable tier **committed** the operation, but a cache tier in front of it could
    /// not drop its copy ([`TieredStore`](crate::TieredStore) with strict invalidation).
    ///
    /// Unlike every other variant, this one means the write happened: a caller must act as
    /// if the operation succeeded (the session was saved, moved or deleted) and must not
    /// undo or repeat it; only the cache may be stale. See [`Error::committed`].
    #[error("the change was committed, but a cache tier could not drop its copy: {source}")]
    CacheNotInvalidated {
        /// The cache tier's error.
        #[source]
        source: Box<Error>,
        /// For a [`delete`](crate::Store::delete): what the durable tier removed, so a caller
        /// ending a session can still follow an alias.
        removed: Option<crate::record::Removed>,
    },
    /// The key is reserved for sessionkit's own bookkeeping (it starts with
    /// [`RESERVED_PREFIX`](crate::reserved::RESERVED_PREFIX)).
    #[error("the key {key:?} is reserved for sessionkit")]
    ReservedKey {
        /// The refused key.
        key: String,
    },
    /// A value could not be serialized.
    #[error("could not encode the value of {key:?}")]
    Encode {
        /// The field map key the value was meant for.
        key: String,
        /// The serializer's error.
        #[source]
        source: BoxError,
    },
    /// A stored value could not be decoded as the requested type. The other keys are
    /// unaffected and the session still saves.
    #[error("could not decode the value of {key:?} as {expected}")]
    Decode {
        /// The field map key.
        key: String,
        /// The Rust type that was asked for.
        expected: &'static str,
        /// The deserializer's error.
        #[source]
        source: BoxError,
    },
    /// An [`Op`](crate::store::Op) met a value of the wrong type: an increment on something
    /// that is not an integer, an array operation on something that is not an array. The
    /// save that carried it wrote nothing, and the stored value is unchanged.
    #[error("the value of {key:?} is not {expected}")]
    WrongType {
        /// The field map key.
        key: String,
        /// What the operation needs, for humans ("an integer", "an array").
        expected: &'static str,
    },
    /// An increment would leave the range of `i64` (or of the typed field it went through).
    /// The save that carried it wrote nothing, and the stored value is unchanged.
    #[error("incrementing {key:?} would overflow")]
    Overflow {
        /// The field map key.
        key: String,
    },
    /// A typed field that has no default was read while absent.
    #[error("the session has no value for {key:?}")]
    Missing {
        /// The field map key.
        key: String,
    },
    /// A session, a value or a store would grow past a configured bound (see
    /// [`Limits`](crate::Limits) and
    /// [`MemoryStore::with_max_entries`](crate::MemoryStore::with_max_entries)). Nothing
    /// was written: the session (or the store) is as it was before the call or the save.
    /// Retrying the same change cannot help.
    #[error("session limit {limit} exceeded{}: {size} > {max}", for_key(.key))]
    LimitExceeded {
        /// Which bound.
        limit: crate::Limit,
        /// The key whose value was too large ([`Limit::ValueBytes`](crate::Limit::ValueBytes)).
        key: Option<String>,
        /// The size (bytes, fields or entries) the change would have reached.
        size: usize,
        /// The bound.
        max: usize,
    },
    /// A configuration was refused (for example a `__Host-` cookie with a `Domain`).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// IP binding is on ([`SessionConfig::check_ip`](crate::SessionConfig::check_ip)), but
    /// the request carries no client address ([`RequestInfo::client_ip`](crate::RequestInfo)
    /// is `None`): the server does not pass the connection's address to the layer (with axum,
    /// serve with `into_make_service_with_connect_info::<SocketAddr>()`). A configuration
    /// error: the session is not loaded, rather than every client sharing one binding.
    #[error(
        "IP binding is on, but the request has no client address (serve with connection info, or turn IP binding off)"
    )]
    NoClientIp,
    /// A flash message was set or taken on a session whose manager runs without flash
    /// support ([`SessionConfig::integrate_flash`](crate::SessionConfig::integrate_flash) is
    /// off). A programming error, found at run time: retrying cannot help.
    #[error("flash messages are disabled (integrate_flash is off)")]
    FlashDisabled,
    /// The operating system could not provide random bytes for a new id. There is no
    /// fallback to a weaker generator.
    #[error("the OS random number generator failed")]
    Rng(#[source] BoxError),
}

fn for_key(key: &Option<String>) -> String {
    key.as_ref()
        .map(|k| format!(" for {k:?}"))
        .unwrap_or_default()
}

impl Error {
    /// Whether the operation that returned this error was carried out nonetheless: the
    /// durable store holds its result and only a cache tier may lag
    /// ([`Error::CacheNotInvalidated`]). Every other error means "not written", or, for a
    /// transient one, "not known to be written".
    ///
    /// ```
    /// use sessionkit::Error;
    /// let err = Error::CacheNotInvalidated {
    ///     source: Box::new(Error::unavailable("cache down")),
    ///     removed: None,
    /// };
    /// assert!(err.committed());
    /// assert!(!Error::Gone.committed());
    /// ```
    pub fn committed(&self) -> bool {
        matches!(self, Error::CacheNotInvalidated { .. })
    }

    /// A stable snake_case name for the variant (`unavailable`, `gone`, `limit_exceeded`…),
    /// for metrics labels and log fields. It names the kind only: never a key, a message or
    /// anything else the error carries.
    ///
    /// ```
    /// use sessionkit::Error;
    /// assert_eq!(Error::unavailable("connection refused").kind(), "unavailable");
    /// assert_eq!(Error::Gone.kind(), "gone");
    /// ```
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Unavailable { .. } => "unavailable",
            Error::Storage { .. } => "storage",
            Error::Corrupt { .. } => "corrupt",
            Error::AlreadyExists => "already_exists",
            Error::Gone => "gone",
            Error::CacheNotInvalidated { .. } => "cache_not_invalidated",
            Error::ReservedKey { .. } => "reserved_key",
            Error::Encode { .. } => "encode",
            Error::Decode { .. } => "decode",
            Error::WrongType { .. } => "wrong_type",
            Error::Overflow { .. } => "overflow",
            Error::Missing { .. } => "missing",
            Error::LimitExceeded { .. } => "limit_exceeded",
            Error::Config(_) => "config",
            Error::NoClientIp => "no_client_ip",
            Error::FlashDisabled => "flash_disabled",
            Error::Rng(_) => "rng",
        }
    }

    /// Whether retrying the same operation later can succeed.
    ///
    /// For applications and stores deciding whether to retry an operation (or to answer
    /// "try again later" rather than "failed"). sessionkit itself does not retry: the manager
    /// and [`TieredStore`](crate::TieredStore) branch on the variant.
    ///
    /// ```
    /// use sessionkit::Error;
    /// assert!(Error::unavailable("connection refused").is_transient());
    /// assert!(!Error::Gone.is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unavailable { .. } | Error::Rng(_) => true,
            Error::Storage { .. }
            | Error::Corrupt { .. }
            | Error::AlreadyExists
            | Error::Gone
            | Error::CacheNotInvalidated { .. }
            | Error::ReservedKey { .. }
            | Error::Encode { .. }
            | Error::Decode { .. }
            | Error::WrongType { .. }
            | Error::Overflow { .. }
            | Error::Missing { .. }
            | Error::LimitExceeded { .. }
            | Error::Config(_)
            | Error::NoClientIp
            | Error::FlashDisabled => false,
        }
    }

    /// An [`Error::Unavailable`] with a message and no source.
    ///
    /// Each of [`Error::Unavailable`], [`Error::Storage`] and [`Error::Corrupt`] has a
    /// constructor with a source ([`unavailable_from`](Self::unavailable_from),
    /// [`storage`](Self::storage), [`corrupt`](Self::corrupt)) and one without
    /// ([`unavailable`](Self::unavailable), [`storage_message`](Self::storage_message),
    /// [`corrupt_message`](Self::corrupt_message)).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Error::Unavailable {
            message: message.into(),
            source: None,
        }
    }

    /// An [`Error::Unavailable`] wrapping a source error.
    pub fn unavailable_from(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Unavailable {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// An [`Error::Storage`] wrapping a source error.
    pub fn storage(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Storage {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// An [`Error::Corrupt`] wrapping a source error.
    pub fn corrupt(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Corrupt {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// An [`Error::Storage`] with a message and no source.
    ///
    /// ```
    /// use sessionkit::Error;
    /// let err = Error::storage_message("the session directory is read-only");
    /// assert!(matches!(err, Error::Storage { source: None, .. }));
    /// assert!(!err.is_transient());
    /// ```
    pub fn storage_message(message: impl Into<String>) -> Self {
        Error::Storage {
            message: message.into(),
            source: None,
        }
    }

    /// An [`Error::Corrupt`] with a message and no source.
    ///
    /// ```
    /// use sessionkit::Error;
    /// let err = Error::corrupt_message("unknown record version 9");
    /// assert!(matches!(err, Error::Corrupt { source: None, .. }));
    /// ```
    pub fn corrupt_message(message: impl Into<String>) -> Self {
        Error::Corrupt {
            message: message.into(),
            source: None,
        }
    }
}
