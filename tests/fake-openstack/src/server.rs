//! The HTTP side: the router, the middleware every request passes (request id, auth, stats,
//! faults, lost responses), the connection loop, and the `/__fake/` admin routes.
//!
//! Connections are served one by one with hyper (not `axum::serve`) so that a "lost
//! response" fault can drop the TCP connection after the handler has run: the middleware
//! signals the connection's `Notify`, and the connection task drops the hyper connection
//! (closing the socket) instead of writing a response.

use crate::faults::{FaultAction, FaultRule};
use crate::state::Inner;
use crate::util::{self, Query, Svc, svc_of};
use crate::{cinder, glance, keystone, neutron, nova, octavia};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{MethodRouter, get, post, put};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

pub struct Shared {
    pub base: String,
    pub inner: Mutex<Inner>,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking handler must not wedge the whole fake.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub type App = Arc<Shared>;

/// Everything a service handler gets about its request.
pub struct Ctx {
    pub method: Method,
    pub path: String,
    pub params: HashMap<String, String>,
    pub q: Query,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub base: String,
}

impl Ctx {
    pub fn p(&self, name: &str) -> &str {
        self.params
            .get(name)
            .map(String::as_str)
            .unwrap_or_default()
    }
    /// Set by the middleware when a `boot_fails` fault matched this request.
    pub fn boot_fails(&self) -> bool {
        self.headers.contains_key(BOOT_FAILS)
    }
}

const BOOT_FAILS: &str = "x-fake-boot-fails";

pub type H = fn(&mut Inner, &Ctx) -> Response;

#[allow(clippy::too_many_arguments)]
fn call(
    app: App,
    f: H,
    p: Result<Path<HashMap<String, String>>, PathRejection>,
    q: Result<axum::extract::Query<Query>, QueryRejection>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ctx = Ctx {
        method,
        path: uri.path().to_string(),
        params: p.map(|Path(m)| m).unwrap_or_default(),
        q: q.map(|axum::extract::Query(v)| v).unwrap_or_default(),
        headers,
        body,
        base: app.base.clone(),
    };
    let mut inner = app.lock();
    inner.gc();
    f(&mut inner, &ctx)
}

/// Wrap a synchronous service function as an axum handler.
macro_rules! h {
    ($f:expr) => {
        move |State(app): State<App>,
              p: Result<Path<HashMap<String, String>>, PathRejection>,
              q: Result<axum::extract::Query<Query>, QueryRejection>,
              method: Method,
              uri: axum::http::Uri,
              headers: HeaderMap,
              body: Bytes| async move { call(app, $f, p, q, method, uri, headers, body) }
    };
}

pub fn g(f: H) -> MethodRouter<App> {
    get(h!(f))
}
pub fn po(f: H) -> MethodRouter<App> {
    post(h!(f))
}
/// Add another method to a route.
pub trait More {
    fn po(self, f: H) -> Self;
    fn pu(self, f: H) -> Self;
    fn de(self, f: H) -> Self;
}
impl More for MethodRouter<App> {
    fn po(self, f: H) -> Self {
        self.post(h!(f))
    }
    fn pu(self, f: H) -> Self {
        self.put(h!(f))
    }
    fn de(self, f: H) -> Self {
        self.delete(h!(f))
    }
}

/// Paths answered without a token: the token request itself and version discovery.
fn is_public(method: &Method, path: &str) -> bool {
    if path == "/identity/v3/auth/tokens" && method == Method::POST {
        return true;
    }
    method == Method::GET && crate::versions::is_version_doc(path)
}

pub fn router(app: App) -> Router {
    let mut r: Router<App> = Router::new();
    r = keystone::routes(r);
    r = nova::routes(r);
    r = neutron::routes(r);
    r = cinder::routes(r);
    r = glance::routes(r);
    r = octavia::routes(r);
    r = crate::swift::routes(r);
    r = crate::versions::routes(r);
    r = admin_routes(r);
    r.fallback(unhandled)
        .method_not_allowed_fallback(unhandled)
        .layer(middleware::from_fn_with_state(app.clone(), mw))
        .with_state(app)
}

async fn unhandled(State(app): State<App>, method: Method, uri: axum::http::Uri) -> Response {
    let what = format!("{method} {uri}");
    app.lock().unhandled.push(what.clone());
    util::json_resp(
        501,
        &json!({"error": {"code": 501, "title": "Not Implemented",
            "message": format!("fake-openstack does not handle {what}")}}),
    )
}

/// Per-connection control: notified to drop the connection without answering.
#[derive(Clone)]
struct ConnCtl(Arc<Notify>);

async fn mw(State(app): State<App>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if path.starts_with("/__fake") {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| path.clone());
    let request_id = format!("req-{}", util::uuid());
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 64 << 20)
        .await
        .unwrap_or_default();
    let mut req = Request::from_parts(parts, Body::from(bytes.clone()));
    let svc = svc_of(&path);
    let is_token = path == "/identity/v3/auth/tokens" && method == Method::POST;
    let mutating = matches!(
        method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );

    let (decision, authorized) = {
        let mut inner = app.lock();
        inner.stats.total += 1;
        if is_token {
            inner.stats.token_requests += 1;
        } else if mutating {
            inner.stats.mutating += 1;
        }
        *inner
            .stats
            .per_route
            .entry(format!("{method} {template}"))
            .or_default() += 1;
        let token = req
            .headers()
            .get("x-auth-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let now = std::time::Instant::now();
        let authorized =
            is_public(&method, &path) || inner.tokens.get(token).is_some_and(|exp| now < *exp);
        let body_str = String::from_utf8_lossy(&bytes);
        let decision = inner.faults.decide(method.as_str(), &path, &body_str);
        if authorized && decision.action == Some(FaultAction::TokenRevoked) && !is_token {
            // Revoked (or expired early): this request and every later one with it get 401.
            inner.tokens.remove(token);
        }
        let authorized = authorized
            && (is_public(&method, &path) || inner.tokens.get(token).is_some_and(|exp| now < *exp));
        if !authorized && req.extensions().get::<MatchedPath>().is_some() {
            inner.stats.unauthorized += 1;
        }
        (decision, authorized)
    };

    let nova_v = (svc == Svc::Nova).then(|| nova::microversion(req.headers()));
    let finish = |mut resp: Response| -> Response {
        let h = resp.headers_mut();
        let rid = HeaderValue::from_str(&request_id).unwrap();
        h.insert("x-openstack-request-id", rid.clone());
        if let Some(v) = &nova_v {
            h.insert("x-compute-request-id", rid);
            h.insert(
                "x-openstack-nova-api-version",
                HeaderValue::from_str(&v.to_string()).unwrap(),
            );
            // The new-style header is only answered from 2.27 on, as Nova does.
            if v.0 > 2 || v.1 >= 27 {
                h.insert(
                    "openstack-api-version",
                    HeaderValue::from_str(&format!("compute {v}")).unwrap(),
                );
            }
            h.insert(
                "vary",
                HeaderValue::from_static("OpenStack-API-Version, X-OpenStack-Nova-API-Version"),
            );
        }
        resp
    };

    if decision.delay_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(decision.delay_ms)).await;
    }
    if !authorized && req.extensions().get::<MatchedPath>().is_some() {
        let mut r = util::keystone_err(401, "The request you have made requires authentication.");
        r.headers_mut().insert(
            "www-authenticate",
            HeaderValue::from_str(&format!("Keystone uri=\"{}/identity\"", app.base)).unwrap(),
        );
        return finish(r);
    }
    let refused = crate::versions::refuse_unsupported(&app.lock(), &path, req.headers());
    if let Some(r) = refused {
        return finish(r);
    }
    match decision.action {
        None => {}
        Some(FaultAction::Status {
            status,
            retry_after,
            body,
        }) => {
            let mut r = match body {
                Some(b) => util::json_resp(status, &b),
                None => util::service_err(&path, status, "Injected fault from fake-openstack"),
            };
            if let Some(after) = retry_after {
                r.headers_mut().insert(
                    "retry-after",
                    HeaderValue::from_str(&after.header_value()).unwrap(),
                );
            }
            return finish(r);
        }
        Some(FaultAction::OctaviaImmutable) => {
            let lb = lb_for_fault(&app.lock(), &path, &bytes);
            return finish(util::octavia_err(
                409,
                &format!("Load Balancer {lb} is immutable and cannot be updated."),
            ));
        }
        Some(FaultAction::QuotaExceeded) => return finish(crate::quota::injected(&path)),
        Some(FaultAction::BootFails) => {
            req.headers_mut()
                .insert(BOOT_FAILS, HeaderValue::from_static("1"));
        }
        Some(FaultAction::LostResponse) => {
            let ctl = req.extensions().get::<ConnCtl>().cloned();
            let resp = next.run(req).await;
            drop(resp);
            if let Some(ConnCtl(n)) = ctl {
                n.notify_one();
            }
            // Never answer: the connection task drops the connection.
            return std::future::pending().await;
        }
        Some(FaultAction::Delay { .. }) | Some(FaultAction::TokenRevoked) => {}
    }
    finish(next.run(req).await)
}

/// The LB an injected "immutable" 409 names: `loadbalancer_id` in the body, an LB id in
/// the path, the LB owning a child named in the path, or else the first LB.
fn lb_for_fault(inner: &Inner, path: &str, body: &[u8]) -> String {
    let body: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let from_body = body
        .as_object()
        .and_then(|o| o.values().next())
        .and_then(|v| v.get("loadbalancer_id"))
        .and_then(|v| v.as_str())
        .map(String::from);
    let segs: Vec<&str> = path.split('/').collect();
    let from_lb = inner
        .lbs
        .iter()
        .find(|l| segs.contains(&l.id.as_str()))
        .map(|l| l.id.clone());
    let from_child = [
        &inner.listeners,
        &inner.lb_pools,
        &inner.members,
        &inner.monitors,
    ]
    .into_iter()
    .flatten()
    .find(|c| segs.contains(&c.id.as_str()))
    .map(|c| c.lb_id.clone());
    from_body
        .or(from_lb)
        .or(from_child)
        .or_else(|| inner.lbs.first().map(|l| l.id.clone()))
        .unwrap_or_default()
}

/// Accept connections until `shutdown` flips.
pub async fn serve(listener: TcpListener, app: App, mut shutdown: watch::Receiver<bool>) {
    use hyper_util::rt::TokioIo;
    use tower::ServiceExt;
    let router = router(app);
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
            _ = shutdown.changed() => break,
        };
        let router = router.clone();
        let mut sd = shutdown.clone();
        tokio::spawn(async move {
            let ctl = Arc::new(Notify::new());
            let ctl2 = ctl.clone();
            let svc = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnCtl(ctl2.clone()));
                router.clone().oneshot(req)
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                _ = ctl.notified() => {}
                _ = sd.changed() => {}
            }
        });
    }
}

// ---- admin routes ------------------------------------------------------------------------

fn admin_routes(r: Router<App>) -> Router<App> {
    r.route(
        "/__fake/faults",
        post(add_faults).delete(|State(app): State<App>| async move {
            app.lock().faults.clear();
            util::empty(204)
        }),
    )
    .route(
        "/__fake/stats",
        get(|State(app): State<App>| async move {
            util::json_resp(200, &json!(app.lock().stats_snapshot()))
        }),
    )
    .route(
        "/__fake/stats/reset",
        post(|State(app): State<App>| async move {
            app.lock().stats = Default::default();
            util::empty(204)
        }),
    )
    .route(
        "/__fake/inventory",
        get(|State(app): State<App>| async move {
            let mut inner = app.lock();
            inner.gc();
            util::json_resp(200, &json!(inner.inventory()))
        }),
    )
    .route(
        "/__fake/unhandled",
        get(|State(app): State<App>| async move {
            util::json_resp(200, &json!(app.lock().unhandled))
        }),
    )
    .route("/__fake/age", post(age_tagged))
    .route("/__fake/delays", put(set_delays))
    .route("/__fake/page_size", put(set_page_size))
    .route("/__fake/token_lifetime", put(set_token_lifetime))
    .route(
        "/__fake/tokens/revoke",
        post(|State(app): State<App>| async move {
            app.lock().tokens.clear();
            util::empty(204)
        }),
    )
}

/// `{"page_size": 2}` (or `null`: unlimited).
async fn set_page_size(State(app): State<App>, body: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    struct B {
        page_size: Option<usize>,
    }
    set(&body, |b: B| app.lock().cfg.page_size = b.page_size)
}

/// `{"ms": 3000}`: tokens issued from now on live that long.
async fn set_token_lifetime(State(app): State<App>, body: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    struct B {
        ms: u64,
    }
    set(&body, |b: B| app.lock().cfg.token_lifetime_ms = b.ms)
}

/// `{"tag": "acura-ha-cluster=x", "seconds": 86400}`: whatever carries the tag is made that
/// much older; answers `{"aged": N}`.
async fn age_tagged(State(app): State<App>, body: Bytes) -> Response {
    #[derive(serde::Deserialize)]
    struct B {
        tag: String,
        seconds: u64,
    }
    match serde_json::from_slice::<B>(&body) {
        Ok(b) => {
            let n = app
                .lock()
                .age_tagged(&b.tag, std::time::Duration::from_secs(b.seconds));
            util::json_resp(200, &json!({ "aged": n }))
        }
        Err(e) => util::json_resp(400, &json!({"error": e.to_string()})),
    }
}

/// Applies a JSON body to the state: 204, or 400 naming what is wrong with it.
fn set<T: serde::de::DeserializeOwned>(body: &[u8], apply: impl FnOnce(T)) -> Response {
    match serde_json::from_slice(body) {
        Ok(b) => {
            apply(b);
            util::empty(204)
        }
        Err(e) => util::json_resp(400, &json!({"error": e.to_string()})),
    }
}

async fn add_faults(State(app): State<App>, body: Bytes) -> Response {
    let rules: Vec<FaultRule> = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(v) if v.is_array() => match serde_json::from_value(v) {
            Ok(r) => r,
            Err(e) => return util::json_resp(400, &json!({"error": e.to_string()})),
        },
        Ok(v) => match serde_json::from_value(v) {
            Ok(r) => vec![r],
            Err(e) => return util::json_resp(400, &json!({"error": e.to_string()})),
        },
        Err(e) => return util::json_resp(400, &json!({"error": e.to_string()})),
    };
    let mut inner = app.lock();
    for r in rules {
        if let Err(e) = inner.faults.add(r) {
            return util::json_resp(400, &json!({"error": e}));
        }
    }
    util::empty(204)
}

async fn set_delays(State(app): State<App>, body: Bytes) -> Response {
    match serde_json::from_slice(&body) {
        Ok(d) => {
            app.lock().delays = d;
            util::empty(204)
        }
        Err(e) => util::json_resp(400, &json!({"error": e.to_string()})),
    }
}
