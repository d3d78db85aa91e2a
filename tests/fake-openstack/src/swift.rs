//! Swift (object storage), as much as acura-ha's shared state uses: containers and objects
//! under `/object/v1/<account>/`, `ETag` = the MD5 of the content (as Swift computes it), and
//! the conditional requests the state backend relies on: `If-None-Match: *` on PUT (412 when
//! the object exists) and `If-Match` on PUT and DELETE (412 when the ETag differs).
//!
//! Objects are kept per fake (keyed by its base URL) beside `Inner`, under its lock: every
//! handler runs with `Inner` locked, so a check and the write after it are one step, as a
//! conditional request is in Swift.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

use crate::server::{App, Ctx, More, g};
use crate::state::Inner;
use crate::util::empty;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

pub fn routes(r: Router<App>) -> Router<App> {
    r.route(
        "/object/v1/{account}/{container}",
        g(list_container).pu(put_container),
    )
    .route(
        "/object/v1/{account}/{container}/{*object}",
        g(get_object).pu(put_object).de(delete_object),
    )
}

struct Store {
    containers: BTreeSet<String>,
    /// Container name → its `X-Container-Read` ACL, as Swift returns it on GET/HEAD (never on
    /// the PUT's answer).
    read_acls: BTreeMap<String, String>,
    /// `<base>/<account>/<container>/<object>` → (content, etag).
    objects: BTreeMap<String, (Vec<u8>, String)>,
}

fn store() -> MutexGuard<'static, Store> {
    static STORE: Mutex<Store> = Mutex::new(Store {
        containers: BTreeSet::new(),
        read_acls: BTreeMap::new(),
        objects: BTreeMap::new(),
    });
    STORE.lock().unwrap_or_else(|e| e.into_inner())
}

fn container_key(c: &Ctx) -> String {
    format!("{}/{}/{}", c.base, c.p("account"), c.p("container"))
}

fn object_key(c: &Ctx) -> String {
    format!("{}/{}", container_key(c), c.p("object"))
}

fn header<'a>(c: &'a Ctx, name: &str) -> Option<&'a str> {
    c.headers.get(name).and_then(|v| v.to_str().ok())
}

fn unquote(s: &str) -> &str {
    s.trim().trim_matches('"')
}

fn with_etag(status: u16, etag: &str, body: Vec<u8>) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    if let Ok(v) = HeaderValue::from_str(etag) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

fn put_container(_: &mut Inner, c: &Ctx) -> Response {
    let mut s = store();
    if let Some(acl) = header(c, "x-container-read") {
        s.read_acls
            .insert(c.p("container").to_string(), acl.to_string());
    }
    let created = s.containers.insert(container_key(c));
    empty(if created { 201 } else { 202 })
}

/// Sets (or with `None` clears) a container's read ACL, as `swift post -r` would.
pub fn set_read_acl(container: &str, acl: Option<&str>) {
    let mut s = store();
    match acl {
        Some(a) => s.read_acls.insert(container.to_string(), a.to_string()),
        None => s.read_acls.remove(container),
    };
}

fn list_container(_: &mut Inner, c: &Ctx) -> Response {
    let s = store();
    let key = container_key(c);
    if !s.containers.contains(&key) {
        return empty(404);
    }
    let prefix = format!("{key}/");
    let names: Vec<&str> = s
        .objects
        .keys()
        .filter_map(|k| k.strip_prefix(&prefix))
        .collect();
    let mut r = Response::new(Body::from(names.join("\n")));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Some(acl) = s.read_acls.get(c.p("container"))
        && let Ok(v) = HeaderValue::from_str(acl)
    {
        r.headers_mut().insert("x-container-read", v);
    }
    r
}

fn get_object(_: &mut Inner, c: &Ctx) -> Response {
    match store().objects.get(&object_key(c)) {
        Some((bytes, etag)) => with_etag(200, etag, bytes.clone()),
        None => empty(404),
    }
}

fn put_object(_: &mut Inner, c: &Ctx) -> Response {
    let mut s = store();
    if !s.containers.contains(&container_key(c)) {
        return empty(404);
    }
    let key = object_key(c);
    let existing = s.objects.get(&key).map(|(_, e)| e.clone());
    if header(c, "if-none-match").map(str::trim) == Some("*") && existing.is_some() {
        return empty(412);
    }
    if let Some(want) = header(c, "if-match")
        && existing.as_deref() != Some(unquote(want))
    {
        return empty(412);
    }
    let etag = md5_hex(&c.body);
    s.objects.insert(key, (c.body.to_vec(), etag.clone()));
    with_etag(201, &etag, Vec::new())
}

fn delete_object(_: &mut Inner, c: &Ctx) -> Response {
    let mut s = store();
    let key = object_key(c);
    let Some((_, etag)) = s.objects.get(&key) else {
        return empty(404);
    };
    if let Some(want) = header(c, "if-match")
        && etag != unquote(want)
    {
        return empty(412);
    }
    s.objects.remove(&key);
    empty(204)
}

/// RFC 1321 MD5, hex (the fake has no MD5 crate; Swift's ETag is this digest).
fn md5_hex(data: &[u8]) -> String {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    let k: Vec<u32> = (0..64)
        .map(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32)
        .collect();
    let mut msg = data.to_vec();
    let bits = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bits.to_le_bytes());
    let (mut a0, mut b0, mut c0, mut d0) =
        (0x67452301u32, 0xefcdab89u32, 0x98badcfeu32, 0x10325476u32);
    for chunk in msg.chunks(64) {
        let m: Vec<u32> = chunk
            .chunks(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        let (mut a, mut b, mut c, mut d) = (a0, b0, c0, d0);
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        a0 = a0.wrapping_add(a);
        b0 = b0.wrapping_add(b);
        c0 = c0.wrapping_add(c);
        d0 = d0.wrapping_add(d);
    }
    [a0, b0, c0, d0]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn md5_matches_rfc_1321() {
        assert_eq!(super::md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(
            super::md5_hex(b"The quick brown fox jumps over the lazy dog"),
            "9e107d9d372bb6826bd81d3542a419d6"
        );
    }
}
