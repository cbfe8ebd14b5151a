//! Starts the example site in-process on a free loopback port, on either framework (the
//! axum `web` site or the actix-web `web-actix` site, see [`Framework`]) and any store setup,
//! with a manual clock, and drives it with an HTTP client that keeps its cookie by hand (so tests
//! can replay, forge and drop cookies at will).

use std::net::SocketAddr;
use std::sync::Arc;

use sessionkit::proxy::TrustedProxies;
use sessionkit::store::Store;
use sessionkit::{SessionConfig, SessionManager, manager::ManualClock};
use sessionkit_examples::site::{SessionJson, StoreKind, open_store, router_behind_proxies};
use sessionkit_examples::site_actix;

use crate::postgres_server::PostgresServer;
use crate::probe::Probe;
use crate::redis_server::RedisServer;

/// The store stack under the site: a probe (counting, failing on command) over the real store.
pub type SiteStore = Probe<Arc<dyn Store>>;

/// Which example site: the same contract on two frameworks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framework {
    /// The `web` example: axum and the tower layer.
    Axum,
    /// The `web-actix` example: actix-web and its middleware.
    Actix,
}

impl Framework {
    /// Both, for tests that run on each.
    pub const ALL: [Framework; 2] = [Framework::Axum, Framework::Actix];

    /// This framework's site on `store`.
    pub const fn on(self, store: StoreKind) -> SiteKind {
        SiteKind {
            framework: self,
            store,
        }
    }
}

/// A site to start: framework and store setup. A bare [`StoreKind`] means the axum site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiteKind {
    /// The example binary's framework.
    pub framework: Framework,
    /// The store setup.
    pub store: StoreKind,
}

impl From<StoreKind> for SiteKind {
    fn from(store: StoreKind) -> Self {
        Framework::Axum.on(store)
    }
}

/// The running server, stopped when the site is dropped.
enum Server {
    Axum(tokio::task::JoinHandle<()>),
    Actix(actix_web::dev::ServerHandle, tokio::task::JoinHandle<()>),
}

/// A running example site.
pub struct Site {
    /// `http://127.0.0.1:port`.
    pub base: String,
    /// The manager's clock.
    pub clock: ManualClock,
    /// The store, to count calls and to fail on command.
    pub store: Arc<SiteStore>,
    /// The manager the site runs.
    pub manager: SessionManager<Arc<dyn Store>>,
    server: Server,
    _dir: tempfile::TempDir,
    _redis: Option<RedisServer>,
    _postgres: Option<PostgresServer>,
}

impl Drop for Site {
    fn drop(&mut self) {
        match &self.server {
            Server::Axum(task) => task.abort(),
            Server::Actix(handle, task) => {
                // Stops the worker threads (without waiting for open connections), then the
                // server's own task.
                let stop = handle.stop(false);
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(stop);
                }
                task.abort();
            }
        }
    }
}

impl Site {
    /// Starts the site on `kind`, with the site's defaults adjusted by `tweak`.
    pub async fn start(
        kind: impl Into<SiteKind>,
        tweak: impl FnOnce(SessionConfig) -> SessionConfig,
    ) -> Site {
        Self::start_behind_proxies(kind, TrustedProxies::new(), tweak).await
    }

    /// As [`Site::start`], serving `GET /metrics` as the site does with `SESSIONKIT_METRICS=1`:
    /// the example's Prometheus recorder is installed for this process first (once; a process
    /// has one recorder, so every site in the process is then measured).
    pub async fn start_with_metrics(
        kind: impl Into<SiteKind>,
        tweak: impl FnOnce(SessionConfig) -> SessionConfig,
    ) -> Site {
        sessionkit_examples::metrics::install().expect("the metrics recorder installs");
        Self::start(kind, tweak).await
    }

    /// As [`Site::start`], believing forwarding headers on connections from `proxies` (the
    /// test client connects from 127.0.0.1, so trusting it makes the client a proxy).
    pub async fn start_behind_proxies(
        kind: impl Into<SiteKind>,
        proxies: TrustedProxies,
        tweak: impl FnOnce(SessionConfig) -> SessionConfig,
    ) -> Site {
        Self::start_with(kind.into(), proxies, None, tweak).await
    }

    /// As [`Site::start`], on a Redis the caller started and may share with other sites (two
    /// app servers over one Redis).
    pub async fn start_on_redis(
        kind: impl Into<SiteKind>,
        redis_url: &str,
        tweak: impl FnOnce(SessionConfig) -> SessionConfig,
    ) -> Site {
        Self::start_with(
            kind.into(),
            TrustedProxies::new(),
            Some(redis_url.to_owned()),
            tweak,
        )
        .await
    }

    async fn start_with(
        site: SiteKind,
        proxies: TrustedProxies,
        shared_redis: Option<String>,
        tweak: impl FnOnce(SessionConfig) -> SessionConfig,
    ) -> Site {
        let kind = site.store;
        let dir = tempfile::tempdir().expect("temp dir");
        let needs_redis = matches!(
            kind,
            StoreKind::Redis
                | StoreKind::MemoryRedis
                | StoreKind::RedisFile
                | StoreKind::RedisPostgres
        );
        let needs_postgres = matches!(
            kind,
            StoreKind::Postgres | StoreKind::MemoryPostgres | StoreKind::RedisPostgres
        );
        // The site's DATABASE_URL names a PostgreSQL of the test's own.
        let postgres = needs_postgres.then(PostgresServer::start);
        let database_url = postgres
            .as_ref()
            .map(PostgresServer::url)
            .unwrap_or_default();
        let redis = (needs_redis && shared_redis.is_none()).then(RedisServer::start);
        let url = shared_redis
            .or_else(|| redis.as_ref().map(RedisServer::url))
            .unwrap_or_default();
        let inner = open_store(kind, dir.path(), &url, &database_url)
            .await
            .expect("store opens");
        Self::serve(site.framework, inner, proxies, dir, redis, postgres, tweak)
    }

    /// As [`Site::start`] (the axum site), on a store the caller built: a combinator no
    /// [`StoreKind`] names (a `MigratingStore`, say), or a store the test shares with other
    /// sites and tools. The site's temp directory ([`Site::dir`]) is its own and unused.
    pub async fn start_on_store(
        store: Arc<dyn Store>,
        tweak: impl FnOnce(SessionConfig) -> SessionConfig,
    ) -> Site {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::serve(
            Framework::Axum,
            store,
            TrustedProxies::new(),
            dir,
            None,
            None,
            tweak,
        )
    }

    fn serve(
        framework: Framework,
        inner: Arc<dyn Store>,
        proxies: TrustedProxies,
        dir: tempfile::TempDir,
        redis: Option<RedisServer>,
        postgres: Option<PostgresServer>,
        tweak: impl FnOnce(SessionConfig) -> SessionConfig,
    ) -> Site {
        let store = Arc::new(Probe::new(inner));
        let clock = ManualClock::new();
        let config = tweak(
            SessionConfig::default()
                .with_secure(false)
                .with_cleanup_probability(0.0)
                .with_clock(clock.clone()),
        );
        let dyn_store: Arc<dyn Store> = store.clone();
        let manager = SessionManager::new(dyn_store, config).expect("valid config");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = match framework {
            Framework::Axum => {
                listener
                    .set_nonblocking(true)
                    .expect("non-blocking listener");
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let app = router_behind_proxies(manager.clone(), proxies)
                    .into_make_service_with_connect_info::<SocketAddr>();
                Server::Axum(tokio::spawn(async move {
                    let _ = axum::serve(listener, app).await;
                }))
            }
            Framework::Actix => {
                // Two workers: concurrent requests really overlap, as on the axum site.
                let (server, handle) = site_actix::server(listener, manager.clone(), proxies, 2)
                    .expect("actix server");
                Server::Actix(
                    handle,
                    tokio::spawn(async move {
                        let _ = server.await;
                    }),
                )
            }
        };
        Site {
            base: format!("http://{addr}"),
            clock,
            store,
            manager,
            server,
            _dir: dir,
            _redis: redis,
            _postgres: postgres,
        }
    }

    /// The temp directory the site's file tier (if any) lives in.
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// The site's own redis-server, when its store uses Redis.
    pub fn redis(&self) -> Option<&RedisServer> {
        self._redis.as_ref()
    }

    /// A new visitor with no cookie.
    pub fn client(&self) -> Client {
        Client {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            base: self.base.clone(),
            cookie: None,
            headers: Vec::new(),
        }
    }
}

/// One response, with what the tests look at.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// Every `Set-Cookie` header.
    pub set_cookies: Vec<String>,
    /// `Cache-Control`, if any.
    pub cache_control: Option<String>,
    /// The body.
    pub body: String,
}

/// A visitor: sends its cookie (if any) and keeps what the site sets.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    /// The `id` cookie's value, as the browser would hold it.
    pub cookie: Option<String>,
    /// Extra headers sent with every request (User-Agent, X-Forwarded-For, raw Cookie).
    pub headers: Vec<(String, String)>,
}

impl Client {
    /// Sends one request and updates the cookie from `Set-Cookie`.
    pub async fn send(&mut self, method: &str, path: &str, form: &[(&str, &str)]) -> Reply {
        let url = format!("{}{}", self.base, path);
        let mut req = match method {
            "POST" => self.http.post(url).form(form),
            _ => self.http.get(url),
        };
        if let Some(c) = &self.cookie {
            req = req.header("cookie", format!("id={c}"));
        }
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let set_cookies: Vec<String> = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        let cache_control = res
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        for sc in &set_cookies {
            let first = sc.split(';').next().unwrap_or_default();
            if let Some(value) = first.strip_prefix("id=") {
                let removal = value.is_empty() || sc.to_ascii_lowercase().contains("max-age=0");
                self.cookie = if removal {
                    None
                } else {
                    Some(value.to_owned())
                };
            }
        }
        let body = res.text().await.unwrap_or_default();
        Reply {
            status,
            set_cookies,
            cache_control,
            body,
        }
    }

    /// `GET path`.
    pub async fn get(&mut self, path: &str) -> Reply {
        self.send("GET", path, &[]).await
    }

    /// `POST path` with a form.
    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Reply {
        self.send("POST", path, form).await
    }

    /// `GET /api/session`, parsed.
    pub async fn state(&mut self) -> SessionJson {
        let reply = self.get("/api/session").await;
        assert_eq!(reply.status, 200, "{reply:?}");
        serde_json::from_str(&reply.body).expect("json")
    }
}

/// Calls `$mac!` once with the site setups the HTTP tests run on, as `module => SiteKind`
/// entries (`axum_memory_file => Framework::Axum.on(StoreKind::MemoryFile)`): both frameworks
/// on every store setup of the example site, each test module named by framework and store.
/// `for_each_site!(mac; except redis_postgres)` leaves out the two `redis+postgres` setups
/// (Redis as the shared cache in front of PostgreSQL).
#[macro_export]
macro_rules! for_each_site {
    ($mac:ident) => {
        $crate::for_each_site!(@sites $mac;
            axum_redis_postgres => $crate::site::Framework::Axum.on(::sessionkit_examples::site::StoreKind::RedisPostgres),
            actix_redis_postgres => $crate::site::Framework::Actix.on(::sessionkit_examples::site::StoreKind::RedisPostgres),
        );
    };
    ($mac:ident; except redis_postgres) => {
        $crate::for_each_site!(@sites $mac;);
    };
    (@sites $mac:ident; $($extra:tt)*) => {
        $mac! {
            axum_memory => $crate::site::Framework::Axum.on(::sessionkit_examples::site::StoreKind::Memory),
            axum_file => $crate::site::Framework::Axum.on(::sessionkit_examples::site::StoreKind::File),
            axum_redis => $crate::site::Framework::Axum.on(::sessionkit_examples::site::StoreKind::Redis),
            axum_memory_file => $crate::site::Framework::Axum.on(::sessionkit_examples::site::StoreKind::MemoryFile),
            axum_memory_redis => $crate::site::Framework::Axum.on(::sessionkit_examples::site::StoreKind::MemoryRedis),
            axum_redis_file => $crate::site::Framework::Axum.on(::sessionkit_examples::site::StoreKind::RedisFile),
            axum_sqlite => $crate::site::Framework::Axum.on(::sessionkit_examples::site::StoreKind::Sqlite),
            axum_memory_sqlite => $crate::site::Framework::Axum.on(::sessionkit_examples::site::StoreKind::MemorySqlite),
            axum_postgres => $crate::site::Framework::Axum.on(::sessionkit_examples::site::StoreKind::Postgres),
            axum_memory_postgres => $crate::site::Framework::Axum.on(::sessionkit_examples::site::StoreKind::MemoryPostgres),
            actix_memory => $crate::site::Framework::Actix.on(::sessionkit_examples::site::StoreKind::Memory),
            actix_file => $crate::site::Framework::Actix.on(::sessionkit_examples::site::StoreKind::File),
            actix_redis => $crate::site::Framework::Actix.on(::sessionkit_examples::site::StoreKind::Redis),
            actix_memory_file => $crate::site::Framework::Actix.on(::sessionkit_examples::site::StoreKind::MemoryFile),
            actix_memory_redis => $crate::site::Framework::Actix.on(::sessionkit_examples::site::StoreKind::MemoryRedis),
            actix_redis_file => $crate::site::Framework::Actix.on(::sessionkit_examples::site::StoreKind::RedisFile),
            actix_sqlite => $crate::site::Framework::Actix.on(::sessionkit_examples::site::StoreKind::Sqlite),
            actix_memory_sqlite => $crate::site::Framework::Actix.on(::sessionkit_examples::site::StoreKind::MemorySqlite),
            actix_postgres => $crate::site::Framework::Actix.on(::sessionkit_examples::site::StoreKind::Postgres),
            actix_memory_postgres => $crate::site::Framework::Actix.on(::sessionkit_examples::site::StoreKind::MemoryPostgres),
            $($extra)*
        }
    };
}
