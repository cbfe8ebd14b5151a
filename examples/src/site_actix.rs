//! The example site on actix-web: the routes, HTML, JSON and settings of [`crate::site`]
//! (its docs list them), with only the framework glue here; what each route does is in
//! [`crate::pages`].

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::http::header::LOCATION;
use actix_web::{App, FromRequest, HttpRequest, HttpResponse, HttpServer, ResponseError, web};
use sessionkit::Session;
use sessionkit::proxy::TrustedProxies;
use sessionkit::web::Typed;
use sessionkit::web::actix::SessionMiddleware;

use crate::pages::{self, CartForm, FlashForm, LoginForm, Manager, Visitor};
use crate::tier;

/// A handler error: logged, answered with a 500 carrying no detail.
#[derive(Debug)]
struct Failure(sessionkit::Error);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("internal error")
    }
}

impl From<sessionkit::Error> for Failure {
    fn from(e: sessionkit::Error) -> Self {
        Failure(e)
    }
}

impl ResponseError for Failure {
    fn status_code(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    fn error_response(&self) -> HttpResponse {
        tracing::error!(error = %self.0, "request failed");
        HttpResponse::InternalServerError().body("internal error")
    }
}

/// `303 See Other` to `/`, as axum's `Redirect::to` answers.
fn to_home() -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((LOCATION, "/"))
        .finish()
}

/// `GET /`: the session is extracted inside [`tier::observe`], to tell which store tier
/// answered.
async fn home(manager: web::Data<Manager>, req: HttpRequest) -> Result<HttpResponse, Failure> {
    let (loaded, tier) = tier::observe(Session::extract(&req)).await;
    let session = match loaded {
        Ok(session) => session,
        Err(rejection) => return Ok(rejection.error_response()),
    };
    let page = pages::home(&manager, &session, tier)?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(page))
}

async fn login(session: Session, form: web::Form<LoginForm>) -> Result<HttpResponse, Failure> {
    pages::login(&session, &form)?;
    Ok(to_home())
}

async fn logout(session: Session) -> HttpResponse {
    pages::logout(&session);
    to_home()
}

async fn logout_everywhere(
    manager: web::Data<Manager>,
    session: Session,
) -> Result<HttpResponse, Failure> {
    pages::logout_everywhere(&manager, &session).await?;
    Ok(to_home())
}

async fn add_to_cart(session: Session, form: web::Form<CartForm>) -> Result<HttpResponse, Failure> {
    pages::add_to_cart(&session, &form)?;
    Ok(to_home())
}

async fn set_flash(session: Session, form: web::Form<FlashForm>) -> Result<HttpResponse, Failure> {
    pages::set_flash(&session, &form)?;
    Ok(to_home())
}

async fn api_session(visitor: Typed<Visitor>) -> Result<HttpResponse, Failure> {
    Ok(HttpResponse::Ok().json(pages::api_session(visitor.session())?))
}

/// `GET /metrics`: the Prometheus text, or `404` when `SESSIONKIT_METRICS` is off.
async fn metrics() -> HttpResponse {
    match crate::metrics::render() {
        Some(text) => HttpResponse::Ok()
            .content_type(crate::metrics::CONTENT_TYPE)
            .body(text),
        None => HttpResponse::NotFound().finish(),
    }
}

/// Starts the site on `listener` with `workers` worker threads, believing forwarding headers
/// only from `proxies`. Await the returned server to run it; stop it with its handle.
///
/// # Errors
/// When the listener cannot be used.
pub fn server(
    listener: std::net::TcpListener,
    manager: Manager,
    proxies: TrustedProxies,
    workers: usize,
) -> std::io::Result<(actix_web::dev::Server, ServerHandle)> {
    let middleware = SessionMiddleware::new(manager.clone()).with_trusted_proxies(proxies);
    let data = web::Data::new(manager);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .wrap(middleware.clone())
            .route("/", web::get().to(home))
            .route("/login", web::post().to(login))
            .route("/logout", web::post().to(logout))
            .route("/logout-everywhere", web::post().to(logout_everywhere))
            .route("/cart", web::post().to(add_to_cart))
            .route("/flash", web::post().to(set_flash))
            .route("/api/session", web::get().to(api_session))
            .route("/metrics", web::get().to(metrics))
    })
    .workers(workers)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    let handle = server.handle();
    Ok((server, handle))
}
