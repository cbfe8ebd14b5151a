//! A small site that shows every part of sessionkit: a visit counter, login with id
//! regeneration, logout, logout everywhere, a cart, and flash messages.
//!
//! Its interface is the contract the acceptance tests drive:
//!
//! | route | what it does |
//! |---|---|
//! | `GET /` | HTML: visit count (+1 each time), user, cart, a pending flash shown once, forms |
//! | `POST /login` (`username`) | regenerates the id, sets the user and the session's owner |
//! | `POST /logout` | destroys the session |
//! | `POST /logout-everywhere` | ends every session of the current user |
//! | `POST /cart` (`item`) | appends to the cart (the first 100 items are kept) |
//! | `POST /flash` (`message`) | sets a flash message |
//! | `GET /api/session` | JSON `{"visits", "user", "cart"}`, read-only |
//! | `GET /metrics` | with `SESSIONKIT_METRICS=1`: sessionkit's metrics, Prometheus text format ([`crate::metrics`]); `404` otherwise |
//!
//! This module holds the settings and the store selection both sites share, and the axum
//! glue; what each route does is in [`crate::pages`], and the actix-web glue in
//! [`crate::site_actix`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use sessionkit::proxy::{ForwardedHeader, TrustedProxies};
use sessionkit::store::{MemoryStore, Metered, Store, TieredStore};
use sessionkit::web::{SessionLayer, Typed};
use sessionkit::{Session, SessionConfig, SessionManager};
use sessionkit_backends::postgres::PostgresStore;
use sessionkit_backends::{FileStore, RedisStore, SqliteStore};

use crate::pages::{self, CartForm, FlashForm, LoginForm};
pub use crate::pages::{CART_LIMIT, SessionJson, Visitor};
use crate::tier::{self, Witness};

/// Which store the site runs on (`SESSIONKIT_STORE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// `memory`
    Memory,
    /// `file`
    File,
    /// `redis`
    Redis,
    /// `memory+file`, the default
    MemoryFile,
    /// `memory+redis`: a memory tier per process, coherent through Redis's invalidations
    MemoryRedis,
    /// `redis+file`
    RedisFile,
    /// `sqlite`: `$SESSIONKIT_DIR/sessions.sqlite3`
    Sqlite,
    /// `memory+sqlite`: a memory tier over `$SESSIONKIT_DIR/sessions.sqlite3`
    MemorySqlite,
    /// `postgres`
    Postgres,
    /// `memory+postgres`: a memory tier per process, coherent through PostgreSQL's
    /// LISTEN/NOTIFY
    MemoryPostgres,
    /// `redis+postgres`: Redis as the shared cache in front of PostgreSQL
    RedisPostgres,
}

impl StoreKind {
    /// Parses the `SESSIONKIT_STORE` spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "memory" => StoreKind::Memory,
            "file" => StoreKind::File,
            "redis" => StoreKind::Redis,
            "memory+file" => StoreKind::MemoryFile,
            "memory+redis" => StoreKind::MemoryRedis,
            "redis+file" => StoreKind::RedisFile,
            "sqlite" => StoreKind::Sqlite,
            "memory+sqlite" => StoreKind::MemorySqlite,
            "postgres" => StoreKind::Postgres,
            "memory+postgres" => StoreKind::MemoryPostgres,
            "redis+postgres" => StoreKind::RedisPostgres,
            _ => return None,
        })
    }
}

/// The site's settings, from the environment.
#[derive(Debug, Clone)]
pub struct SiteConfig {
    /// `PORT` (default 3000).
    pub port: u16,
    /// `SESSIONKIT_STORE` (default `memory+file`).
    pub store: StoreKind,
    /// `SESSIONKIT_DIR` (default `./web-data`).
    pub dir: PathBuf,
    /// `REDIS_URL` (default `redis://127.0.0.1:6379`).
    pub redis_url: String,
    /// `DATABASE_URL`, the PostgreSQL database (default
    /// `postgres://postgres@127.0.0.1:5432/postgres`).
    pub database_url: String,
    /// `SESSIONKIT_IDLE_SECS`, `SESSIONKIT_ABSOLUTE_SECS`, `SESSIONKIT_ROTATE_SECS`,
    /// `SESSIONKIT_GRACE_SECS`, `SESSIONKIT_CHECK_IP`, `SESSIONKIT_CHECK_UA`, `SESSIONKIT_SECURE`
    /// (the site serves plain http, so `Secure` defaults to off here; the library's default is on).
    pub session: SessionConfig,
    /// `SESSIONKIT_TRUSTED_PROXIES`: the reverse proxies in front of the site, addresses and
    /// CIDR ranges separated by commas (`10.0.0.0/8,::1`); default none, so forwarding
    /// headers are ignored. `SESSIONKIT_FORWARDED_HEADER` picks the header they write:
    /// `x-forwarded-for` (default) or `forwarded` (RFC 7239).
    pub trusted_proxies: TrustedProxies,
    /// `SESSIONKIT_METRICS`: `1` serves `GET /metrics` (default off; see [`crate::metrics`]).
    pub metrics: bool,
}

fn env_secs(name: &str) -> Result<Option<Duration>, String> {
    match std::env::var(name) {
        Ok(v) => v
            .parse::<u64>()
            .map(|s| Some(Duration::from_secs(s)))
            .map_err(|_| format!("{name} must be a whole number of seconds")),
        Err(_) => Ok(None),
    }
}

fn env_flag(name: &str) -> Result<Option<bool>, String> {
    match std::env::var(name).as_deref() {
        Ok("1") => Ok(Some(true)),
        Ok("0") => Ok(Some(false)),
        Ok(_) => Err(format!("{name} must be 0 or 1")),
        Err(_) => Ok(None),
    }
}

impl SiteConfig {
    /// Reads the environment.
    ///
    /// # Errors
    /// A message naming the variable that does not parse.
    pub fn from_env() -> Result<Self, String> {
        let port = match std::env::var("PORT") {
            Ok(p) => p
                .parse()
                .map_err(|_| "PORT must be a port number".to_owned())?,
            Err(_) => 3000,
        };
        let store = match std::env::var("SESSIONKIT_STORE") {
            Ok(s) => StoreKind::parse(&s).ok_or_else(|| {
                "SESSIONKIT_STORE must be memory, file, redis, memory+file, memory+redis, \
                 redis+file, sqlite, memory+sqlite, postgres, memory+postgres or redis+postgres"
                    .to_owned()
            })?,
            Err(_) => StoreKind::MemoryFile,
        };
        let mut session = SessionConfig::default().with_secure(false);
        if let Some(d) = env_secs("SESSIONKIT_IDLE_SECS")? {
            session = session.with_idle_timeout(d);
        }
        if let Some(d) = env_secs("SESSIONKIT_ABSOLUTE_SECS")? {
            session = session.with_absolute_timeout(Some(d));
        }
        if let Some(d) = env_secs("SESSIONKIT_ROTATE_SECS")? {
            session = session.with_rotate_after(Some(d));
        }
        if let Some(d) = env_secs("SESSIONKIT_GRACE_SECS")? {
            session = session.with_rotation_grace(d);
        }
        if let Some(on) = env_flag("SESSIONKIT_CHECK_IP")? {
            session = session.with_check_ip(on);
        }
        if let Some(on) = env_flag("SESSIONKIT_CHECK_UA")? {
            session = session.with_check_user_agent(on);
        }
        if let Some(on) = env_flag("SESSIONKIT_SECURE")? {
            session = session.with_secure(on);
        }
        let mut trusted_proxies = match std::env::var("SESSIONKIT_TRUSTED_PROXIES") {
            Ok(list) => TrustedProxies::parse(&list)
                .map_err(|e| format!("SESSIONKIT_TRUSTED_PROXIES: {e}"))?,
            Err(_) => TrustedProxies::new(),
        };
        match std::env::var("SESSIONKIT_FORWARDED_HEADER").as_deref() {
            Ok(h) if h.eq_ignore_ascii_case("x-forwarded-for") => {}
            Ok(h) if h.eq_ignore_ascii_case("forwarded") => {
                trusted_proxies = trusted_proxies.with_header(ForwardedHeader::Forwarded);
            }
            Ok(_) => {
                return Err(
                    "SESSIONKIT_FORWARDED_HEADER must be x-forwarded-for or forwarded".to_owned(),
                );
            }
            Err(_) => {}
        }
        let metrics = env_flag("SESSIONKIT_METRICS")?.unwrap_or(false);
        Ok(SiteConfig {
            metrics,
            trusted_proxies,
            port,
            store,
            dir: std::env::var_os("SESSIONKIT_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("web-data")),
            redis_url: std::env::var("REDIS_URL")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned()),
            database_url: std::env::var("DATABASE_URL")
                .unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned()),
            session,
        })
    }
}

/// What both example binaries start from: logging, the settings, the store and the manager.
pub struct Prepared {
    /// The settings read from the environment.
    pub config: SiteConfig,
    /// The manager over the store `config.store` names.
    pub manager: SessionManager<Arc<dyn Store>>,
    /// Where to listen: `127.0.0.1:$PORT`.
    pub addr: SocketAddr,
}

/// The start-up both example binaries share: logs through `tracing` (`RUST_LOG`, default
/// `info`), reads the settings, installs the metrics recorder when `SESSIONKIT_METRICS=1`,
/// opens the store and builds the manager.
///
/// # Errors
/// When a setting does not parse, the recorder cannot be installed, the store cannot be opened
/// or the session settings are invalid.
pub async fn prepare() -> Result<Prepared, Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = SiteConfig::from_env()?;
    if config.metrics {
        crate::metrics::install()?;
    }
    let store = open_store(
        config.store,
        &config.dir,
        &config.redis_url,
        &config.database_url,
    )
    .await?;
    let manager = SessionManager::new(store, config.session.clone())?;
    let addr = SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, config.port));
    Ok(Prepared {
        config,
        manager,
        addr,
    })
}

/// The default `DATABASE_URL`.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Connects to PostgreSQL and creates the sessions table if it is missing.
async fn postgres(database_url: &str) -> sessionkit::Result<PostgresStore> {
    let store = PostgresStore::open(database_url).await?;
    store.migrate().await?;
    Ok(store)
}

/// Opens the store `kind` names (creating the PostgreSQL table when it uses PostgreSQL).
///
/// Every store and tier is [`Metered`] under its backend's name (`memory`, `file`, `redis`,
/// `sqlite`, `postgres`), and a tiered setup as a whole under `tiered`: nothing is recorded
/// unless a `metrics` recorder is installed (`SESSIONKIT_METRICS=1`).
///
/// # Errors
/// When the directory cannot be opened or Redis or PostgreSQL cannot be reached.
pub async fn open_store(
    kind: StoreKind,
    dir: &std::path::Path,
    redis_url: &str,
    database_url: &str,
) -> sessionkit::Result<Arc<dyn Store>> {
    // The cache tier notes its hits, for the page's "loaded from".
    let cache = || Witness::new(Metered::new("memory", MemoryStore::bounded(100_000)));
    let file =
        || async { Ok::<_, sessionkit::Error>(Metered::new("file", FileStore::open(dir).await?)) };
    let redis = || async {
        Ok::<_, sessionkit::Error>(Metered::new("redis", RedisStore::open(redis_url).await?))
    };
    let sqlite =
        || async { Ok::<_, sessionkit::Error>(Metered::new("sqlite", open_sqlite(dir).await?)) };
    let pg = || async {
        Ok::<_, sessionkit::Error>(Metered::new("postgres", postgres(database_url).await?))
    };
    Ok(match kind {
        StoreKind::Memory => Arc::new(Metered::new("memory", MemoryStore::new())),
        StoreKind::File => Arc::new(file().await?),
        StoreKind::Redis => Arc::new(redis().await?),
        StoreKind::MemoryFile => Arc::new(Metered::new(
            "tiered",
            TieredStore::new(cache(), file().await?),
        )),
        // Every app server keeps its own memory tier: it follows Redis's invalidations, so
        // it never serves a session another server changed or ended.
        StoreKind::MemoryRedis => Arc::new(Metered::new(
            "tiered",
            TieredStore::coherent(cache(), redis().await?)?,
        )),
        StoreKind::RedisFile => Arc::new(Metered::new(
            "tiered",
            TieredStore::new(Witness::new(redis().await?), file().await?),
        )),
        StoreKind::Sqlite => Arc::new(sqlite().await?),
        // SQLite has no invalidation channel: the bounded-staleness form, as over files.
        StoreKind::MemorySqlite => Arc::new(Metered::new(
            "tiered",
            TieredStore::new(cache(), sqlite().await?),
        )),
        StoreKind::Postgres => Arc::new(pg().await?),
        // As with Redis: each process's memory tier follows PostgreSQL's notifications.
        StoreKind::MemoryPostgres => Arc::new(Metered::new(
            "tiered",
            TieredStore::coherent(cache(), pg().await?)?,
        )),
        StoreKind::RedisPostgres => Arc::new(Metered::new(
            "tiered",
            TieredStore::new(Witness::new(redis().await?), pg().await?),
        )),
    })
}

/// The file of the `sqlite` stores inside the site's directory.
pub const SQLITE_FILE: &str = "sessions.sqlite3";

/// Opens `dir/sessions.sqlite3`, creating `dir` (mode `0700` on Unix) and the table if missing.
async fn open_sqlite(dir: &std::path::Path) -> sessionkit::Result<SqliteStore> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| {
        sessionkit::Error::storage(
            format!("cannot create the site's directory {}", dir.display()),
            e,
        )
    })?;
    SqliteStore::open(dir.join(SQLITE_FILE)).await
}

/// The site's router around `manager`. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()` so IP binding sees the client.
pub fn router(manager: SessionManager<Arc<dyn Store>>) -> Router {
    router_behind_proxies(manager, TrustedProxies::new())
}

/// [`router`] for a site behind reverse proxies: their forwarding header is believed on
/// connections from `proxies`.
pub fn router_behind_proxies(
    manager: SessionManager<Arc<dyn Store>>,
    proxies: TrustedProxies,
) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/logout-everywhere", post(logout_everywhere))
        .route("/cart", post(add_to_cart))
        .route("/flash", post(set_flash))
        .route("/api/session", get(api_session))
        .route("/metrics", get(metrics))
        .layer(SessionLayer::new(manager.clone()).with_trusted_proxies(proxies))
        .with_state(manager)
}

/// Serves the site on `listener` until the process ends, believing forwarding headers only
/// from `proxies`.
///
/// # Errors
/// When the server fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    manager: SessionManager<Arc<dyn Store>>,
    proxies: TrustedProxies,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router_behind_proxies(manager, proxies).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}

type AppState = State<SessionManager<Arc<dyn Store>>>;

/// A handler error: logged, answered with a 500 carrying no detail.
struct Failure(sessionkit::Error);

impl From<sessionkit::Error> for Failure {
    fn from(e: sessionkit::Error) -> Self {
        Failure(e)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        tracing::error!(error = %self.0, "request failed");
        (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "internal error",
        )
            .into_response()
    }
}

/// `GET /`: the session is loaded through the request's extensions (as any tower framework
/// would) inside [`tier::observe`], to tell which store tier answered.
async fn home(State(manager): AppState, req: Request) -> Result<Response, Failure> {
    let (loaded, tier) = tier::observe(Session::from_extensions(req.extensions())).await;
    let session = match loaded {
        Ok(session) => session,
        Err(rejection) => return Ok(rejection.into_response()),
    };
    Ok(Html(pages::home(&manager, &session, tier)?).into_response())
}

async fn login(session: Session, Form(form): Form<LoginForm>) -> Result<Redirect, Failure> {
    pages::login(&session, &form)?;
    Ok(Redirect::to("/"))
}

async fn logout(session: Session) -> Redirect {
    pages::logout(&session);
    Redirect::to("/")
}

async fn logout_everywhere(
    State(manager): AppState,
    session: Session,
) -> Result<Redirect, Failure> {
    pages::logout_everywhere(&manager, &session).await?;
    Ok(Redirect::to("/"))
}

async fn add_to_cart(session: Session, Form(form): Form<CartForm>) -> Result<Redirect, Failure> {
    pages::add_to_cart(&session, &form)?;
    Ok(Redirect::to("/"))
}

async fn set_flash(session: Session, Form(form): Form<FlashForm>) -> Result<Redirect, Failure> {
    pages::set_flash(&session, &form)?;
    Ok(Redirect::to("/"))
}

async fn api_session(visitor: Typed<Visitor>) -> Result<Json<SessionJson>, Failure> {
    Ok(Json(pages::api_session(visitor.session())?))
}

/// `GET /metrics`: the Prometheus text, or `404` when `SESSIONKIT_METRICS` is off.
async fn metrics() -> Response {
    match crate::metrics::render() {
        Some(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                crate::metrics::CONTENT_TYPE,
            )],
            text,
        )
            .into_response(),
        None => axum::http::StatusCode::NOT_FOUND.into_response(),
    }
}
