//! Keystone v3: `POST /identity/v3/auth/tokens` (password and application credential).

use crate::server::{App, Ctx, g, po};
use crate::state::Inner;
use crate::util::{self, json_resp, keystone_err};
use axum::Router;
use axum::http::HeaderValue;
use axum::response::Response;
use serde_json::{Value, json};

pub fn routes(r: Router<App>) -> Router<App> {
    r.route("/identity/v3/auth/tokens", po(issue_token))
        .route("/identity/v3/auth/catalog", g(catalog_get))
}

/// The catalog: every service on this server, public and internal interfaces.
pub fn catalog(inner: &Inner, base: &str) -> Value {
    let region = &inner.cfg.region;
    let project = &inner.cfg.project_id;
    let services = [
        ("identity", "keystone", format!("{base}/identity")),
        ("compute", "nova", format!("{base}/compute/v2.1")),
        ("network", "neutron", format!("{base}/network")),
        (
            "volumev3",
            "cinderv3",
            format!("{base}/volume/v3/{project}"),
        ),
        (
            "block-storage",
            "cinder",
            format!("{base}/volume/v3/{project}"),
        ),
        ("image", "glance", format!("{base}/image")),
        ("load-balancer", "octavia", format!("{base}/load-balancer")),
        (
            "object-store",
            "swift",
            format!("{base}/object/v1/AUTH_{project}"),
        ),
    ];
    let entries: Vec<Value> = services
        .iter()
        .map(|(kind, name, url)| {
            let eps: Vec<Value> = ["public", "internal"]
                .iter()
                .map(|iface| {
                    json!({"id": util::hex_id(), "interface": iface, "region": region,
                           "region_id": region, "url": url})
                })
                .collect();
            json!({"endpoints": eps, "type": kind, "id": util::hex_id(), "name": name})
        })
        .collect();
    Value::Array(entries)
}

fn catalog_get(inner: &mut Inner, c: &Ctx) -> Response {
    json_resp(
        200,
        &json!({"catalog": catalog(inner, &c.base), "links": {"self": format!("{}/identity/v3/auth/catalog", c.base), "previous": null, "next": null}}),
    )
}

fn unauthorized(base: &str) -> Response {
    let mut r = keystone_err(401, "The request you have made requires authentication.");
    r.headers_mut().insert(
        "www-authenticate",
        HeaderValue::from_str(&format!("Keystone uri=\"{base}/identity\"")).unwrap(),
    );
    r
}

fn domain_ok(inner: &Inner, d: Option<&Value>) -> bool {
    match d {
        None => true,
        Some(d) => {
            d.get("id")
                .and_then(Value::as_str)
                .is_some_and(|i| i == inner.cfg.domain_id)
                || d.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n == inner.cfg.domain_name)
        }
    }
}

fn issue_token(inner: &mut Inner, c: &Ctx) -> Response {
    let body = match util::parse_body(&c.body) {
        Ok(b) => b,
        Err(e) => return keystone_err(400, &e),
    };
    let ident = &body["auth"]["identity"];
    let methods = util::str_list(ident.get("methods"));
    let cfg = inner.cfg.clone();
    // (user id, app cred) on success.
    let mut app_cred = None;
    let user = if methods.iter().any(|m| m == "password") {
        let u = &ident["password"]["user"];
        let pw = u["password"].as_str().unwrap_or_default();
        cfg.users.iter().find(|x| {
            let who = u["id"].as_str().is_some_and(|id| id == x.id)
                || (u["name"].as_str().is_some_and(|n| n == x.name)
                    && domain_ok(inner, u.get("domain")));
            who && x.password == pw
        })
    } else if methods.iter().any(|m| m == "application_credential") {
        let a = &ident["application_credential"];
        let secret = a["secret"].as_str().unwrap_or_default();
        let found = cfg.application_credentials.iter().find(|x| {
            let by_id = a["id"].as_str().is_some_and(|id| id == x.id);
            let by_name = a["name"].as_str().is_some_and(|n| n == x.name) && {
                let u = &a["user"];
                let owner = cfg.users.iter().find(|us| us.id == x.user_id);
                u["id"].as_str().is_some_and(|id| id == x.user_id)
                    || (u["name"]
                        .as_str()
                        .is_some_and(|n| owner.is_some_and(|o| o.name == n))
                        && domain_ok(inner, u.get("domain")))
            };
            (by_id || by_name) && x.secret == secret
        });
        app_cred = found.cloned();
        found.and_then(|x| cfg.users.iter().find(|u| u.id == x.user_id))
    } else {
        None
    };
    let Some(user) = user else {
        return unauthorized(&c.base);
    };
    // Scope: application credentials are bound to the project; password auth needs a
    // project scope (by id, or name + domain) for a catalog.
    let scoped = if app_cred.is_some() {
        true
    } else {
        match body["auth"].get("scope").and_then(|s| s.get("project")) {
            None => false,
            Some(p) => {
                let ok = p["id"].as_str().is_some_and(|id| id == cfg.project_id)
                    || (p["name"].as_str().is_some_and(|n| n == cfg.project_name)
                        && domain_ok(inner, p.get("domain")));
                if !ok {
                    return unauthorized(&c.base);
                }
                true
            }
        }
    };
    let token_id = format!("gAAAAA{}", util::hex_id());
    let lifetime = std::time::Duration::from_millis(cfg.token_lifetime_ms);
    let issued = std::time::SystemTime::now();
    inner
        .tokens
        .insert(token_id.clone(), std::time::Instant::now() + lifetime);
    let domain = json!({"id": cfg.domain_id, "name": cfg.domain_name});
    let mut token = json!({
        "audit_ids": [util::hex_id()[..22].to_string()],
        "expires_at": util::keystone_time(issued + lifetime),
        "issued_at": util::keystone_time(issued),
        "is_domain": false,
        "methods": methods,
        "user": {"domain": domain, "id": user.id, "name": user.name, "password_expires_at": null},
    });
    if scoped {
        token["project"] =
            json!({"domain": domain, "id": cfg.project_id, "name": cfg.project_name});
        token["roles"] = json!([{"id": "51cc68287d524c759f47c811e6463340", "name": "member"},
                                {"id": "df8b7e3bf6fb49e9ba19122da2bae916", "name": "reader"}]);
        if !c.q.iter().any(|(k, _)| k == "nocatalog") {
            token["catalog"] = catalog(inner, &c.base);
        }
    }
    if let Some(a) = app_cred {
        token["application_credential"] = json!({"id": a.id, "name": a.name, "restricted": true});
    }
    let mut r = json_resp(201, &json!({ "token": token }));
    r.headers_mut()
        .insert("x-subject-token", HeaderValue::from_str(&token_id).unwrap());
    r.headers_mut()
        .insert("vary", HeaderValue::from_static("X-Auth-Token"));
    r
}
