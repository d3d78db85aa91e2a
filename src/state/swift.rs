//! `[state] backend = "swift"`: the state's objects in a Swift container, with the OpenStack
//! provider's credentials (`clouds.yaml`/`OS_*`, resolved by `acura_ha_openstack::config`) and
//! its HTTP client and catalog lookup; the object-store endpoint comes from the token's catalog.
//!
//! Writes carry `If-None-Match: *` (create only) or `If-Match: <etag>`. Swift documents
//! `If-None-Match: *` on PUT; `If-Match` on PUT and DELETE is not honoured by every Swift, so the
//! version is also compared just before each conditional write and delete (the cluster's lock
//! makes the window between the two a run's own). The token lives in memory only.

use std::sync::Mutex;

use acura_ha_openstack::client::{auth_body, http_client, pick_endpoint};
use acura_ha_openstack::config::{Overrides, ProcessEnv, resolve};
use reqwest::StatusCode;

use super::backend::{BackendError, Object, Precondition, StateBackend, Version};
use super::rt::block;

/// Where the state lives and how to reach it.
#[derive(Debug, Clone)]
pub struct SwiftSettings {
    pub cloud: Overrides,
    pub container: String,
    pub prefix: String,
}

/// A token and the container's URL.
#[derive(Clone)]
struct Conn {
    http: reqwest::Client,
    token: String,
    container_url: String,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("token", &"***")
            .field("container_url", &self.container_url)
            .finish()
    }
}

/// The container, connected on first use.
#[derive(Debug)]
pub struct SwiftBackend {
    settings: SwiftSettings,
    conn: Mutex<Option<Conn>>,
}

fn remote(what: String) -> BackendError {
    BackendError::Remote(what)
}

fn token_url(auth_url: &str) -> String {
    let base = auth_url.trim_end_matches('/');
    if base.ends_with("/v3") {
        format!("{base}/auth/tokens")
    } else {
        format!("{base}/v3/auth/tokens")
    }
}

impl SwiftBackend {
    pub fn new(settings: SwiftSettings) -> Self {
        SwiftBackend {
            settings,
            conn: Mutex::new(None),
        }
    }

    fn conn(&self, fresh: bool) -> Result<Conn, BackendError> {
        let mut slot = self.conn.lock().expect("not poisoned");
        if !fresh && let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = self.connect()?;
        *slot = Some(c.clone());
        Ok(c)
    }

    /// A token, the object-store endpoint, and the container (created if missing, refused if
    /// anyone may read it).
    fn connect(&self) -> Result<Conn, BackendError> {
        let cfg = resolve(&self.settings.cloud, &ProcessEnv)
            .map_err(|e| remote(format!("OpenStack credentials for the Swift state: {e}")))?;
        let http = http_client(&cfg).map_err(|e| remote(e.to_string()))?;
        let container = self.settings.container.clone();
        block(async move {
            let url = token_url(&cfg.auth_url);
            let body = serde_json::to_vec(&auth_body(&cfg.credentials)).expect("serialises");
            let resp = http
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body)
                .send()
                .await
                .map_err(|e| remote(format!("Keystone at {url}: {e}")))?;
            let status = resp.status();
            if !status.is_success() {
                return Err(remote(format!(
                    "Keystone at {url} refused a token ({status}) for the credentials from {}",
                    cfg.source
                )));
            }
            let token = resp
                .headers()
                .get("x-subject-token")
                .and_then(|v| v.to_str().ok())
                .map(String::from)
                .ok_or_else(|| remote(format!("Keystone at {url} sent no X-Subject-Token")))?;
            let v: serde_json::Value = resp
                .json()
                .await
                .map_err(|e| remote(format!("Keystone at {url}: {e}")))?;
            let endpoint = pick_endpoint(
                &v["token"]["catalog"],
                &["object-store"],
                cfg.region.as_deref(),
                &cfg.interface,
            )
            .ok_or_else(|| {
                remote(format!(
                    "the catalog of {} has no object-store (Swift) endpoint for this region and interface `{}`",
                    cfg.source, cfg.interface
                ))
            })?;
            let container_url = format!("{endpoint}/{container}");
            let made = http
                .put(&container_url)
                .header("x-auth-token", &token)
                .send()
                .await
                .map_err(|e| remote(format!("PUT {container_url}: {e}")))?;
            if !made.status().is_success() {
                return Err(remote(format!(
                    "creating the container {container_url}: {}",
                    made.status()
                )));
            }
            // Swift names a container's ACLs on GET/HEAD, never on the PUT's answer.
            let shown = http
                .get(format!("{container_url}?limit=0"))
                .header("x-auth-token", &token)
                .send()
                .await
                .map_err(|e| remote(format!("GET {container_url}: {e}")))?;
            if !shown.status().is_success() {
                return Err(remote(format!(
                    "reading the container {container_url}: {}",
                    shown.status()
                )));
            }
            let read_acl = shown
                .headers()
                .get("x-container-read")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            if read_acl.split(',').any(|g| g.trim().starts_with(".r:")) {
                return Err(BackendError::Public(format!(
                    "the container {container_url} is readable by anyone (X-Container-Read: {read_acl}): the state would be public"
                )));
            }
            Ok(Conn {
                http,
                token,
                container_url,
            })
        })
    }

    fn object_url(&self, c: &Conn, name: &str) -> String {
        format!("{}/{}{name}", c.container_url, self.settings.prefix)
    }

    /// Sends a request built by `make`, once more with a new token after a 401.
    fn send(
        &self,
        make: impl Fn(&Conn) -> reqwest::RequestBuilder + Send + Sync + 'static,
        what: String,
    ) -> Result<(StatusCode, Option<String>, Vec<u8>), BackendError> {
        let mut conn = self.conn(false)?;
        for attempt in 0..2 {
            let req = make(&conn).header("x-auth-token", &conn.token);
            let what2 = what.clone();
            let out = block(async move {
                let resp = req
                    .send()
                    .await
                    .map_err(|e| remote(format!("{what2}: {e}")))?;
                let status = resp.status();
                let etag = resp
                    .headers()
                    .get(reqwest::header::ETAG)
                    .and_then(|v| v.to_str().ok())
                    .map(|e| e.trim_matches('"').to_string());
                let body = resp
                    .bytes()
                    .await
                    .map_err(|e| remote(format!("{what2}: {e}")))?;
                Ok::<_, BackendError>((status, etag, body.to_vec()))
            })?;
            if out.0 == StatusCode::UNAUTHORIZED && attempt == 0 {
                conn = self.conn(true)?;
                continue;
            }
            return Ok(out);
        }
        unreachable!("the loop returns")
    }
}

impl StateBackend for SwiftBackend {
    fn kind(&self) -> &'static str {
        "swift"
    }

    fn location(&self, name: &str) -> String {
        format!(
            "swift://{}/{}{name}",
            self.settings.container, self.settings.prefix
        )
    }

    fn get(&self, name: &str) -> Result<Option<Object>, BackendError> {
        let c = self.conn(false)?;
        let url = self.object_url(&c, name);
        let u = url.clone();
        let (status, etag, bytes) = self.send(move |c| c.http.get(&u), format!("GET {url}"))?;
        match status {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(Some(Object {
                version: Version(etag.unwrap_or_else(|| super::backend::digest(&bytes).0)),
                bytes,
            })),
            s => Err(remote(format!("GET {}: {s}", self.location(name)))),
        }
    }

    fn put(&self, name: &str, bytes: &[u8], when: Precondition) -> Result<Version, BackendError> {
        if let Precondition::IfMatch(v) = &when {
            // Not every Swift honours If-Match on PUT: compare first as well.
            match self.get(name)? {
                Some(o) if o.version == *v => {}
                _ => {
                    return Err(BackendError::Changed {
                        location: self.location(name),
                    });
                }
            }
        }
        let c = self.conn(false)?;
        let url = self.object_url(&c, name);
        let u = url.clone();
        let body = bytes.to_vec();
        let (status, etag, _) = self.send(
            move |c| {
                let r = c
                    .http
                    .put(&u)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone());
                match &when {
                    Precondition::None => r,
                    Precondition::CreateOnly => r.header(reqwest::header::IF_NONE_MATCH, "*"),
                    Precondition::IfMatch(v) => r.header(reqwest::header::IF_MATCH, &v.0),
                }
            },
            format!("PUT {url}"),
        )?;
        match status {
            StatusCode::PRECONDITION_FAILED => Err(BackendError::Changed {
                location: self.location(name),
            }),
            s if s.is_success() => Ok(Version(
                etag.unwrap_or_else(|| super::backend::digest(bytes).0),
            )),
            s => Err(remote(format!("PUT {}: {s}", self.location(name)))),
        }
    }

    fn delete(&self, name: &str, version: Option<&Version>) -> Result<(), BackendError> {
        if let Some(v) = version {
            match self.get(name)? {
                None => return Ok(()),
                Some(o) if o.version != *v => {
                    return Err(BackendError::Changed {
                        location: self.location(name),
                    });
                }
                Some(_) => {}
            }
        }
        let c = self.conn(false)?;
        let url = self.object_url(&c, name);
        let u = url.clone();
        let etag = version.map(|v| v.0.clone());
        let (status, _, _) = self.send(
            move |c| {
                let r = c.http.delete(&u);
                match &etag {
                    Some(e) => r.header(reqwest::header::IF_MATCH, e),
                    None => r,
                }
            },
            format!("DELETE {url}"),
        )?;
        match status {
            StatusCode::NOT_FOUND => Ok(()),
            StatusCode::PRECONDITION_FAILED => Err(BackendError::Changed {
                location: self.location(name),
            }),
            s if s.is_success() => Ok(()),
            s => Err(remote(format!("DELETE {}: {s}", self.location(name)))),
        }
    }
}
