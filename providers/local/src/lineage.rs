//! Ownership of the lab's network objects (#9.4). The bridge, veth and namespace names derive
//! from the cluster name only ([`crate::names`]), so two states with the same cluster name (two
//! cluster directories) on one machine name the same objects. A cloud resource carries the
//! state's lineage as the tag `acura-ha/lineage`; a Linux interface has no tags, but it has an
//! alias (`ip link set dev X alias …`, up to 255 bytes, kept by the kernel until the interface
//! goes): every lab interface (the bridge, the root side of each veth and each namespace's
//! `eth0`) carries `acura-ha:<cluster>:<lineage>` there. A namespace has no alias of its own:
//! its `eth0` speaks for it.
//!
//! `provision` refuses, before it makes anything, when any of them carries another lineage;
//! `destroy` leaves those alone. An interface without our alias (made before lineages, or by
//! hand) is adopted as before and labelled; without a lineage (a state-less teardown) nothing
//! is compared, as before.

use acura_ha_api::provider::ProviderError;
use serde::Deserialize;

use crate::cmd;
use crate::names::link_exists;
use crate::names::{HostNames, LabNames};
use crate::preflight::IP;

// The label itself is a name of the lab's (`crate::names`), where `LabNames` computes it.
pub use crate::names::{ALIAS_PREFIX, alias};

/// The lineage an alias names; `None` for an alias that is not a lab's (a user's own text).
/// The lineage is after the last `:` (a lineage is a UUID; a cluster name has no `:` either,
/// but it is not relied on).
pub fn lineage_of(alias: &str) -> Option<&str> {
    alias
        .strip_prefix(ALIAS_PREFIX)?
        .rsplit_once(':')
        .map(|(_, l)| l)
        .filter(|l| !l.is_empty())
}

/// A lab interface that another state made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{resource}: {object} carries the lineage {theirs} (its alias {alias:?}), but this state's \
     lineage is {ours}: another state (another cluster directory) owns a lab named {cluster:?} \
     on this machine. Nothing was created or changed. Use another cluster.name, or run from the \
     directory of the state that made it ({how} prints the lineage of that cluster file's state)",
    how = acura_ha_api::hint::program_command("state show -c FILE")
)]
pub struct OtherLineage {
    /// The resource whose step found it (`lab_network`, `lab_host[<name>]`).
    pub resource: String,
    /// What it is: `bridge ah1a2b3c4d`, `veth ah1a2b3c4dv11`, `namespace ah-x-y (its eth0)`.
    pub object: String,
    pub alias: String,
    pub theirs: String,
    pub ours: String,
    pub cluster: String,
}

/// A conflict, like the subnet overlap: refused, nothing made (AH303).
impl From<OtherLineage> for ProviderError {
    fn from(e: OtherLineage) -> Self {
        ProviderError::Unsupported(e.to_string())
    }
}

/// One interface of `ip -j link show`.
#[derive(Debug, Deserialize)]
struct Link {
    #[serde(default)]
    ifalias: Option<String>,
}

/// The alias of `dev` (in `namespace`, or this one): `None` when it has none or does not exist.
pub async fn read(
    resource: &str,
    namespace: Option<&str>,
    dev: &str,
) -> Result<Option<String>, ProviderError> {
    let mut args: Vec<&str> = Vec::new();
    if let Some(ns) = namespace {
        args.extend(["-n", ns]);
    }
    args.extend(["-j", "link", "show", "dev", dev]);
    let out = cmd::probe(resource, IP, &args, cmd::DEFAULT_TIMEOUT).await?;
    if !out.success() {
        // Gone (or the namespace is): nothing to compare.
        return Ok(None);
    }
    let links: Vec<Link> = serde_json::from_str(out.stdout.trim())
        .map_err(|e| cmd::cloud(resource, format!("cannot read `{}`: {e}", out.line)))?;
    Ok(links
        .into_iter()
        .next()
        .and_then(|l| l.ifalias)
        .filter(|a| !a.is_empty()))
}

/// Gives `dev` (in `namespace`, or this one) the lab's alias, unless it already has it.
pub async fn write(
    resource: &str,
    namespace: Option<&str>,
    dev: &str,
    want: &str,
) -> Result<(), ProviderError> {
    if read(resource, namespace, dev).await?.as_deref() == Some(want) {
        return Ok(());
    }
    let mut args: Vec<&str> = Vec::new();
    if let Some(ns) = namespace {
        args.extend(["-n", ns]);
    }
    args.extend(["link", "set", "dev", dev, "alias", want]);
    cmd::run(resource, IP, &args).await.map(|_| ())
}

/// Compares one interface's alias with the state's lineage.
async fn check(
    lab: &LabNames,
    resource: &str,
    namespace: Option<&str>,
    dev: &str,
    object: String,
) -> Result<Option<OtherLineage>, ProviderError> {
    let Some(ours) = &lab.lineage else {
        return Ok(None);
    };
    let Some(found) = read(resource, namespace, dev).await? else {
        return Ok(None);
    };
    Ok(match lineage_of(&found) {
        Some(theirs) if theirs != ours => Some(OtherLineage {
            resource: resource.to_string(),
            object,
            theirs: theirs.to_string(),
            ours: ours.clone(),
            cluster: lab.cluster.clone(),
            alias: found,
        }),
        _ => None,
    })
}

/// The lab's bridge when another state made it.
pub async fn foreign_bridge(
    lab: &LabNames,
    resource: &str,
) -> Result<Option<OtherLineage>, ProviderError> {
    if lab.lineage.is_none() || !link_exists(&lab.bridge) {
        return Ok(None);
    }
    let object = format!("bridge {}", lab.bridge);
    check(lab, resource, None, &lab.bridge, object).await
}

/// A host's veth (root side) or namespace when another state made it.
pub async fn foreign_host(
    lab: &LabNames,
    h: &HostNames,
) -> Result<Option<OtherLineage>, ProviderError> {
    if lab.lineage.is_none() {
        return Ok(None);
    }
    let r = h.resource.as_str();
    if link_exists(&h.veth) {
        let object = format!("veth {}", h.veth);
        if let Some(found) = check(lab, r, None, &h.veth, object).await? {
            return Ok(Some(found));
        }
    }
    if std::path::Path::new("/run/netns")
        .join(&h.namespace)
        .exists()
    {
        let object = format!("namespace {} (its eth0)", h.namespace);
        return check(lab, r, Some(&h.namespace), "eth0", object).await;
    }
    Ok(None)
}

/// Before `provision` makes anything: no interface of the lab (the bridge, then each host's veth
/// and namespace) carries another state's lineage.
pub async fn require_owned(lab: &LabNames) -> Result<(), ProviderError> {
    if let Some(found) = foreign_bridge(lab, "lab_network").await? {
        return Err(found.into());
    }
    for h in &lab.hosts {
        if let Some(found) = foreign_host(lab, h).await? {
            return Err(found.into());
        }
    }
    Ok(())
}

/// What `destroy` leaves alone, said on stderr (the provider has no other channel to the user).
pub fn say_left_alone(found: &OtherLineage) {
    eprintln!(
        "[local ] {}: {} belongs to another state (lineage {}, this state's is {}): left alone",
        found.resource, found.object, found.theirs, found.ours
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alias_names_its_lineage() {
        let a = alias("acura-lab", "0b7c5f5e-1111-4222-8333-944445555666");
        assert_eq!(a, "acura-ha:acura-lab:0b7c5f5e-1111-4222-8333-944445555666");
        assert_eq!(lineage_of(&a), Some("0b7c5f5e-1111-4222-8333-944445555666"));
        // Not a lab's alias: a user's own text is no lineage.
        assert_eq!(lineage_of("uplink to the lab"), None);
        assert_eq!(lineage_of("acura-ha:acura-lab:"), None);
        assert_eq!(lineage_of("acura-ha:"), None);
        // Within the kernel's limit (IFALIASZ 256, with its NUL) for the longest cluster name.
        let long = alias(&"x".repeat(20), &"f".repeat(36));
        assert!(long.len() < 256);
    }

    #[test]
    fn the_refusal_names_the_object_both_lineages_and_what_to_do() {
        let e = OtherLineage {
            resource: "lab_network".into(),
            object: "bridge ah1a2b3c4d".into(),
            alias: "acura-ha:lab:L2".into(),
            theirs: "L2".into(),
            ours: "L1".into(),
            cluster: "lab".into(),
        };
        let p: ProviderError = e.into();
        assert!(matches!(p, ProviderError::Unsupported(_)));
        let msg = p.to_string();
        for part in ["lab_network: bridge ah1a2b3c4d", "L2", "L1", "cluster.name"] {
            assert!(msg.contains(part), "{part}: {msg}");
        }
    }
}
