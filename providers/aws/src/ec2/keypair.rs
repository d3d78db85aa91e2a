//! The key pair: an existing one by name, or the user's public key imported.

use std::collections::BTreeMap;
use std::path::Path;

use acura_ha_api::model::{Resource, Status};
use acura_ha_api::provider::ProviderError;
use acura_ha_api::spec::ClusterSpec;
use aws_sdk_ec2::primitives::Blob;
use aws_sdk_ec2::types::ResourceType;

use super::{desired_one, tags};
use crate::error;
use crate::{Clients, SharedJournal, record};

/// The key pair of the cluster's name, if it exists: its ID (the name when EC2 gives none),
/// refused when it is managed and its lineage is another state's. Only reads.
pub(crate) async fn find_key_pair(
    c: &Clients,
    spec: &ClusterSpec,
    desired: &[Resource],
) -> Result<Option<String>, ProviderError> {
    let r = desired_one(desired, "key_pair").expect("a key pair is planned");
    let name = &r.name;
    match c.ec2.describe_key_pairs().key_names(name).send().await {
        Ok(out) if !out.key_pairs().is_empty() => {
            if r.managed {
                super::check_lineage(
                    spec,
                    &format!("key_pair ({name})"),
                    out.key_pairs()[0].tags(),
                )?;
            }
            Ok(Some(
                out.key_pairs()[0].key_pair_id().unwrap_or(name).to_string(),
            ))
        }
        Ok(_) => Ok(None),
        Err(e) => {
            let e = error::ec2(e);
            if !e.not_found() {
                return Err(e.into_provider(&format!("key pair {name}")));
            }
            Ok(None)
        }
    }
}

/// The key pair: an existing one by name, or the user's public key imported (or adopted when a
/// key pair of the cluster's name already exists).
/// `found` is [`find_key_pair`]'s answer, looked up beside the other lookups.
pub(crate) async fn key_pair(
    c: &Clients,
    spec: &ClusterSpec,
    desired: &[Resource],
    base_dir: &Path,
    found: Option<String>,
    journal: &SharedJournal<'_>,
) -> Result<String, ProviderError> {
    let aws = spec.aws.as_ref().expect("aws section");
    let r = desired_one(desired, "key_pair").expect("a key pair is planned");
    let name = r.name.clone();
    if let Some(id) = found {
        if r.managed {
            record(journal, r, Status::Ready, Some(id), BTreeMap::new()).await?;
        }
        return Ok(name);
    }
    if !r.managed {
        return Err(ProviderError::Cloud {
            resource: format!("aws.key_name = {name}"),
            message: "no such key pair in this region: create it, or set aws.public_key_file to import one".into(),
            request_id: None,
        });
    }
    let file = aws.public_key_file.as_deref().unwrap_or_default();
    let path = acura_ha_api::paths::resolve(base_dir, file);
    let material = std::fs::read(&path).map_err(|e| ProviderError::Cloud {
        resource: format!("aws.public_key_file = {}", path.display()),
        message: e.to_string(),
        request_id: None,
    })?;
    record(journal, r, Status::Creating, None, BTreeMap::new()).await?;
    let out = c
        .ec2
        .import_key_pair()
        .key_name(&name)
        .public_key_material(Blob::new(material))
        .tag_specifications(tags(spec, "key-pair", &name, ResourceType::KeyPair))
        .send()
        .await;
    let id = match out {
        Ok(o) => o.key_pair_id().unwrap_or(&name).to_string(),
        Err(e) => {
            let e = error::ec2(e);
            if !e.is("InvalidKeyPair.Duplicate") {
                return Err(e.into_provider(&format!("key pair {name}")));
            }
            name.clone()
        }
    };
    record(journal, r, Status::Ready, Some(id), BTreeMap::new()).await?;
    Ok(name)
}
