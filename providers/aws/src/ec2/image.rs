//! The image the instances boot: the file's AMI, or the newest Canonical Ubuntu image.

use acura_ha_api::provider::ProviderError;
use acura_ha_api::spec::ClusterSpec;

use super::filter;
use crate::Clients;
use crate::error;

/// Canonical's account, the owner of the official Ubuntu images.
const CANONICAL: &str = "099720109477";

pub(crate) struct Image {
    pub id: String,
    pub root_device: String,
}

/// The file's AMI, or the newest Canonical image of the configured Ubuntu release.
pub(crate) async fn image(c: &Clients, spec: &ClusterSpec) -> Result<Image, ProviderError> {
    let aws = spec.aws.as_ref().expect("aws section");
    let release = spec.nodes.os_version.release();
    let pattern = format!(
        "ubuntu/images/*ubuntu-{}-{}-amd64-server-*",
        release.codename(),
        release.version()
    );
    let req = match &aws.ami {
        Some(ami) => c.ec2.describe_images().image_ids(ami),
        None => c
            .ec2
            .describe_images()
            .owners(CANONICAL)
            .filters(filter("name", &pattern))
            .filters(filter("state", "available"))
            .filters(filter("architecture", "x86_64")),
    };
    let what = aws
        .ami
        .clone()
        .unwrap_or_else(|| format!("image {pattern} (owner {CANONICAL})"));
    let images = req
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| error::ec2(e).into_provider(&what))?;
    let newest = images
        .iter()
        .filter(|i| aws.ami.is_some() || i.owner_id() == Some(CANONICAL))
        .max_by(|a, b| a.creation_date().cmp(&b.creation_date()))
        .ok_or_else(|| ProviderError::Cloud {
            resource: what.clone(),
            message: "no such image in this region: set aws.ami".into(),
            request_id: None,
        })?;
    Ok(Image {
        id: newest.image_id().unwrap_or_default().to_string(),
        root_device: newest.root_device_name().unwrap_or("/dev/sda1").to_string(),
    })
}
