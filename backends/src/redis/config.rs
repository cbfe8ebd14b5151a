//! How to reach Redis: [`RedisConfig`].

use sessionkit::setters;
use std::fmt;
use std::time::Duration;

use sessionkit::{Error, Result};

/// The key prefix used when none is configured.
pub const DEFAULT_PREFIX: &str = "sessionkit:";
/// The longest prefix [`RedisConfig::with_prefix`] accepts, in bytes.
pub const MAX_PREFIX_LEN: usize = 64;
/// How long connecting may take by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long Redis may take to answer one command by default.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Mode {
    Standalone(String),
    Cluster(Vec<String>),
}

/// Where [`RedisStore`](super::RedisStore) connects and how it names its keys.
///
/// Built with [`RedisConfig::new`] for one server (`redis://` or, over TLS, `rediss://`) or
/// [`RedisConfig::cluster`] for Redis Cluster, then tuned with the `with_*` methods.
///
/// ```
/// use std::time::Duration;
/// use sessionkit_backends::RedisConfig;
///
/// let config = RedisConfig::new("redis://127.0.0.1:6380/0")
///     .with_prefix("myapp:sess:")
///     .with_connect_timeout(Duration::from_millis(500))
///     .with_response_timeout(Duration::from_secs(1));
/// assert_eq!(config.prefix(), "myapp:sess:");
/// ```
#[derive(Clone)]
pub struct RedisConfig {
    pub(crate) mode: Mode,
    pub(crate) prefix: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) response_timeout: Duration,
    pub(crate) lazy: bool,
    pub(crate) root_cert: Option<Vec<u8>>,
}

impl RedisConfig {
    /// One Redis server at `url`: `redis://[user:password@]host[:port][/db]`, or `rediss://`
    /// for TLS (rustls, with the system's root certificates).
    pub fn new(url: impl Into<String>) -> Self {
        Self::with_mode(Mode::Standalone(url.into()))
    }

    /// A Redis Cluster reached through any of `nodes` (URLs as in [`RedisConfig::new`]); the
    /// rest of the cluster is discovered from them.
    pub fn cluster<I, S>(nodes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::with_mode(Mode::Cluster(nodes.into_iter().map(Into::into).collect()))
    }

    fn with_mode(mode: Mode) -> Self {
        RedisConfig {
            mode,
            prefix: DEFAULT_PREFIX.to_owned(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            lazy: false,
            root_cert: None,
        }
    }

    setters! {
        /// Puts every key under `prefix` (default [`DEFAULT_PREFIX`]), so several applications
        /// can share one database. It must be 1 to [`MAX_PREFIX_LEN`] bytes of printable ASCII
        /// without spaces or braces (braces would change the cluster hash tag); this is checked
        /// when the store connects.
        fn with_prefix(prefix: impl Into<String>) => prefix = prefix.into();

        /// Bounds each attempt to open a connection (default [`DEFAULT_CONNECT_TIMEOUT`]).
        fn with_connect_timeout(timeout: Duration) => connect_timeout = timeout;

        /// Bounds how long one command may wait for its answer (default
        /// [`DEFAULT_RESPONSE_TIMEOUT`]).
        ///
        /// Every store operation as a whole gives up after twice the connect timeout plus the
        /// response timeout (room for a reconnection and a retry), with [`Error::Unavailable`].
        fn with_response_timeout(timeout: Duration) => response_timeout = timeout;

        /// When `true`, [`RedisStore::connect`](super::RedisStore::connect) returns at once and
        /// the first operation connects, so an application can start while Redis is down (with
        /// Redis as a cache tier, say); until Redis answers, operations fail with
        /// [`Error::Unavailable`]. Default `false`: `connect` checks that Redis answers.
        fn with_lazy_connect(lazy: bool) => lazy = lazy;

        /// For `rediss://` URLs: trust the certificate authority in `pem` (PEM text) instead of the
        /// system's root certificates, as for a Redis behind a private CA.
        fn with_tls_root_cert(pem: impl Into<Vec<u8>>) => root_cert = Some(pem.into());
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether this configuration is for Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.mode, Mode::Cluster(_))
    }

    /// The longest one store operation may take before it fails with
    /// [`Error::Unavailable`]: two connection attempts plus one answer.
    pub(crate) fn operation_timeout(&self) -> Duration {
        self.connect_timeout
            .saturating_add(self.response_timeout)
            .saturating_add(self.connect_timeout)
    }

    pub(crate) fn urls(&self) -> Vec<&str> {
        match &self.mode {
            Mode::Standalone(url) => vec![url.as_str()],
            Mode::Cluster(nodes) => nodes.iter().map(String::as_str).collect(),
        }
    }

    /// Checks everything that can be checked without a server.
    pub(crate) fn validate(&self) -> Result<()> {
        validate_prefix(&self.prefix)?;
        if let Mode::Cluster(nodes) = &self.mode
            && nodes.is_empty()
        {
            return Err(Error::Config(
                "a Redis Cluster configuration needs at least one node".into(),
            ));
        }
        if self.root_cert.is_some() && !self.urls().iter().all(|u| u.starts_with("rediss://")) {
            return Err(Error::Config(
                "a TLS root certificate needs rediss:// URLs".into(),
            ));
        }
        if self.connect_timeout.is_zero() || self.response_timeout.is_zero() {
            return Err(Error::Config(
                "Redis timeouts must be greater than zero".into(),
            ));
        }
        Ok(())
    }
}

/// A prefix is 1 to [`MAX_PREFIX_LEN`] bytes of printable ASCII with no space and no brace:
/// keys stay readable in `redis-cli`, and the `{…}` hash tag is always the session key's.
fn validate_prefix(prefix: &str) -> Result<()> {
    if prefix.is_empty() || prefix.len() > MAX_PREFIX_LEN {
        return Err(Error::Config(format!(
            "the Redis key prefix must be 1 to {MAX_PREFIX_LEN} bytes long"
        )));
    }
    if let Some(bad) = prefix
        .chars()
        .find(|c| !c.is_ascii_graphic() || matches!(c, '{' | '}'))
    {
        return Err(Error::Config(format!(
            "the Redis key prefix may not contain {bad:?}: use printable ASCII without spaces or braces"
        )));
    }
    Ok(())
}

/// Hides passwords in URLs (`redis://user:secret@host` shows as `redis://user:***@host`).
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or("", |(u, _)| u);
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let urls: Vec<String> = self.urls().into_iter().map(redact).collect();
        f.debug_struct("RedisConfig")
            .field("cluster", &self.is_cluster())
            .field("urls", &urls)
            .field("prefix", &self.prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("lazy", &self.lazy)
            .field("tls_root_cert", &self.root_cert.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_checked() {
        for good in ["sessionkit:", "a", "app/sess:", &"x".repeat(MAX_PREFIX_LEN)] {
            assert!(validate_prefix(good).is_ok(), "{good:?}");
        }
        for bad in [
            "",
            "has space",
            "tab\t",
            "nl\n",
            "brace{",
            "brace}",
            "caf\u{e9}",
            "\u{7f}",
            &"x".repeat(MAX_PREFIX_LEN + 1),
        ] {
            assert!(
                matches!(validate_prefix(bad), Err(Error::Config(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn debug_hides_passwords() {
        let config = RedisConfig::new("redis://app:hunter2@db.internal:6379/2");
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("app:***@db.internal:6379/2"), "{shown}");
        assert_eq!(redact("redis://:pw@h"), "redis://:***@h");
        assert_eq!(redact("redis://h:1"), "redis://h:1");
    }

    #[test]
    fn empty_cluster_and_zero_timeouts_are_refused() {
        let none: [&str; 0] = [];
        assert!(matches!(
            RedisConfig::cluster(none).validate(),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            RedisConfig::new("redis://h")
                .with_connect_timeout(Duration::ZERO)
                .validate(),
            Err(Error::Config(_))
        ));
        assert!(RedisConfig::new("redis://h").validate().is_ok());
    }
}
