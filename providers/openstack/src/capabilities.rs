//! What the cloud can do, read before anything is created: Octavia's API version against what
//! this provider needs (issue 13 item 5; Nova's and Cinder's ride on their microversion header,
//! `crate::microversion`), and Neutron's extensions, which decide how objects get their tags
//! (item 4).

use std::collections::BTreeSet;

use acura_ha_api::provider::ProviderError;
use serde_json::Value;

use crate::client::{Service, Session};

/// A service's API version this provider needs, and why (named when a cloud is too old).
#[derive(Debug, Clone, Copy)]
pub struct Needed {
    pub service: Service,
    pub major: u32,
    pub minor: u32,
    pub why: &'static str,
}

/// Octavia takes no microversion header; its root document lists the `v2.x` it serves. 2.5
/// added `tags` (sent in every create) and 2.1 UDP listeners (the guide's 12201/udp).
pub const OCTAVIA: Needed = Needed {
    service: Service::LoadBalancer,
    major: 2,
    minor: 5,
    why: "tags on load balancers, listeners and pools (v2.5) and UDP listeners (v2.1)",
};

/// `2.64`, `v2.30`, `3.71` → (major, minor).
pub fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.trim().trim_start_matches('v').split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// The newest version a service's version document offers for `major`: Nova's and Cinder's
/// `version` (their maximum microversion) of the entry with that major; Octavia's highest
/// `v2.x` id. Nova answers `{"version": {...}}` on its versioned root, the others a
/// `{"versions": [...]}` list (Cinder's entry is `v3.0` with `version: "3.71"`).
pub fn newest(doc: &Value, major: u32) -> Option<(u32, u32)> {
    let entries: Vec<&Value> = match (&doc["version"], &doc["versions"]) {
        (v @ Value::Object(_), _) => vec![v],
        (_, Value::Array(a)) => a.iter().collect(),
        // Keystone's shape: {"versions": {"values": [...]}}.
        (_, Value::Object(o)) => o
            .get("values")
            .and_then(|x| x.as_array())
            .map(|a| a.iter().collect())
            .unwrap_or_default(),
        _ => vec![],
    };
    entries
        .iter()
        .filter_map(|e| {
            let id = parse_version(e["id"].as_str().unwrap_or_default())?;
            if id.0 != major {
                return None;
            }
            // A microversioned API names its maximum in `version` (empty when it has none).
            let micro = e["version"]
                .as_str()
                .filter(|v| !v.is_empty())
                .and_then(parse_version);
            Some(micro.unwrap_or(id))
        })
        .max()
}

/// The URL of a service's version document, from its catalog endpoint: Nova's and Cinder's
/// versioned root (a trailing project ID dropped), Octavia's unversioned root.
fn document_url(s: &Session, service: Service) -> Option<String> {
    let base = s.endpoint(service).ok()?;
    let base = base
        .strip_suffix(&format!("/{}", s.project_id))
        .filter(|_| !s.project_id.is_empty())
        .unwrap_or(base);
    Some(format!("{base}/"))
}

/// Checks every needed version the cloud's services offer, before anything is created: a
/// too-old service is named with its newest version and what needs more. A document that
/// cannot be read is not a failure (some clouds hide them behind their proxies): the calls
/// themselves then say what they refuse.
/// What the service offered is remembered for a day (`memory`): the runs after it do not read
/// the document again.
pub async fn check_versions(
    s: &Session,
    needed: &[Needed],
    quiet: bool,
    memory: &crate::memory::Memory,
) -> Result<(), ProviderError> {
    for n in needed {
        if !s.has(n.service) {
            continue;
        }
        let Some(url) = document_url(s, n.service) else {
            continue;
        };
        let fact = format!("{url} offers {}.{}", n.major, n.minor);
        if memory.knows(&fact) {
            continue;
        }
        let Some(doc) = s.version_document(&url).await else {
            crate::progress(
                quiet,
                &format!(
                    "the {} version document at {url} could not be read: its API version is not checked",
                    n.service.name()
                ),
            );
            continue;
        };
        let has = newest(&doc, n.major);
        if has.is_some_and(|h| h >= (n.major, n.minor)) {
            memory.remember(&fact);
            continue;
        }
        let offers = match has {
            Some((a, b)) => format!("offers at most {a}.{b}"),
            None => format!("offers no {}.x API", n.major),
        };
        return Err(ProviderError::Cloud {
            resource: format!("{} at {url}", n.service.name()),
            message: format!(
                "the cloud is too old: it {offers}, and acura-ha needs {}.{} for {}; nothing was created (use a newer cloud or region, or ask its operators to upgrade)",
                n.major, n.minor, n.why
            ),
            request_id: None,
        });
    }
    Ok(())
}

/// Neutron's extension aliases (`GET /v2.0/extensions`), read once per session. A list that
/// cannot be read counts as empty: tags are then left to names and metadata, the safe side.
pub async fn neutron_extensions(s: &Session) -> &BTreeSet<String> {
    s.extensions
        .get_or_init(|| async {
            match s.get(Service::Network, "/extensions").await {
                Ok(v) => v["extensions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e["alias"].as_str().map(String::from))
                    .collect(),
                Err(_) => BTreeSet::new(),
            }
        })
        .await
}

/// How a Neutron object gets the cluster's tags on this cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tagging {
    /// `tag-creation`: in the create body.
    AtCreate,
    /// `standard-attr-tag` only: `PUT .../{id}/tags` right after the create.
    Afterwards,
    /// Neither: the object is known by its deterministic name (and the description).
    None,
}

/// Creates a Neutron object (`object`: `port`, `security_group`, `floatingip`) with the
/// cluster's tags in its body, unless this session already knows its Neutron lacks
/// `tag-creation`. Modern Neutron has it, so the extension list is not read before the first
/// create (issue 12: one read less before anything is made); one without it refuses the body
/// with 400 "Unrecognized attribute(s) 'tags'", and then the list is read (once per session)
/// and the create sent again without them. Returns the answer and how the object got its tags
/// (`Afterwards`: the caller tags it now).
pub(crate) async fn create_tagged<F, Fut>(
    s: &Session,
    path: &str,
    mut body: Value,
    object: &str,
    tags: &[String],
    find: F,
) -> Result<(Value, Tagging), crate::client::ApiError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Option<Value>, crate::client::ApiError>>,
{
    let known = s.extensions.initialized();
    let tagging = if known {
        neutron_tagging(s).await
    } else {
        Tagging::AtCreate
    };
    if tagging == Tagging::AtCreate {
        body[object]["tags"] = serde_json::json!(tags);
    }
    match s.create(Service::Network, path, &body, &find).await {
        Err(e) if !known && tags_refused(&e) => {
            let tagging = neutron_tagging(s).await;
            if tagging == Tagging::AtCreate {
                // It lists the extension and still refuses: not ours to work around.
                return Err(e);
            }
            if let Some(o) = body[object].as_object_mut() {
                o.remove("tags");
            }
            let v = s.create(Service::Network, path, &body, &find).await?;
            Ok((v, tagging))
        }
        other => other.map(|v| (v, tagging)),
    }
}

/// Neutron's answer to `tags` in a create body without `tag-creation`.
fn tags_refused(e: &crate::client::ApiError) -> bool {
    e.status == Some(400)
        && e.message.contains("Unrecognized attribute")
        && e.message.contains("tags")
}

pub async fn neutron_tagging(s: &Session) -> Tagging {
    let ext = neutron_extensions(s).await;
    if ext.contains("tag-creation") {
        Tagging::AtCreate
    } else if ext.contains("standard-attr-tag") {
        Tagging::Afterwards
    } else {
        Tagging::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// An upstream sample kept in tests/fixtures (copied from /work/shared/openstack-api).
    fn sample(file: &str) -> Value {
        let path = format!("{}/tests/fixtures/{file}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).unwrap()
    }

    #[test]
    fn newest_reads_each_services_document() {
        // Nova's versioned root and its root list.
        assert_eq!(
            newest(&sample("version-v2.1-show-resp.json"), 2),
            newest(&sample("versions-list-resp.json"), 2)
        );
        assert!(newest(&sample("versions-list-resp.json"), 2).unwrap() >= (2, 64));
        // Cinder lists v2.0 (no microversions) and v3.0 up to 3.71.
        assert_eq!(
            newest(&sample("cinder-versions-list-resp.json"), 3),
            Some((3, 71))
        );
        // Octavia: the highest v2.x.
        let lb = json!({"versions": [{"id": "v2.0", "status": "SUPPORTED"},
                                      {"id": "v2.4", "status": "CURRENT"}]});
        assert_eq!(newest(&lb, 2), Some((2, 4)));
        assert_eq!(newest(&json!({"versions": []}), 2), None);
    }
}
