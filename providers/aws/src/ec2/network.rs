//! The VPC and subnets the cluster lands in: the file's, or the region's defaults.

use acura_ha_api::provider::ProviderError;
use acura_ha_api::spec::ClusterSpec;

use super::filter;
use crate::Clients;
use crate::error;

pub(crate) struct Net {
    pub vpc_id: String,
    /// (subnet, availability zone), in the order nodes are spread over them.
    pub subnets: Vec<(String, String)>,
}

/// The VPC: the file's or the region's default.
pub(crate) async fn vpc(c: &Clients, spec: &ClusterSpec) -> Result<String, ProviderError> {
    let aws = spec.aws.as_ref().expect("aws section");
    let mut req = c.ec2.describe_vpcs();
    req = match &aws.vpc_id {
        Some(id) => req.vpc_ids(id),
        None => req.filters(filter("is-default", "true")),
    };
    let what = aws
        .vpc_id
        .clone()
        .unwrap_or_else(|| "the default VPC".into());
    let vpcs = req
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| error::ec2(e).into_provider(&what))?;
    let vpc = vpcs.first().ok_or_else(|| ProviderError::Cloud {
        resource: what.clone(),
        message: "not found: set aws.vpc_id (this region has no default VPC)".into(),
        request_id: None,
    })?;
    Ok(vpc.vpc_id().unwrap_or_default().to_string())
}

/// The subnets of `vpc_id` the nodes are spread over: the file's, or the default ones. Apart
/// from [`vpc`] so that what needs only the VPC (the groups' lookups) starts beside it.
pub(crate) async fn subnets(
    c: &Clients,
    spec: &ClusterSpec,
    vpc_id: String,
) -> Result<Net, ProviderError> {
    let aws = spec.aws.as_ref().expect("aws section");
    let mut req = c.ec2.describe_subnets();
    req = if aws.subnet_ids.is_empty() {
        req.filters(filter("vpc-id", &vpc_id))
            .filters(filter("default-for-az", "true"))
    } else {
        aws.subnet_ids.iter().fold(req, |r, s| r.subnet_ids(s))
    };
    let out = req
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| error::ec2(e).into_provider("subnets"))?;
    let mut subnets: Vec<(String, String)> = out
        .iter()
        .map(|s| {
            (
                s.subnet_id().unwrap_or_default().to_string(),
                s.availability_zone().unwrap_or_default().to_string(),
            )
        })
        .collect();
    if aws.subnet_ids.is_empty() {
        subnets.sort_by(|a, b| a.1.cmp(&b.1));
    } else {
        // The file's order.
        subnets.sort_by_key(|(id, _)| aws.subnet_ids.iter().position(|s| s == id));
    }
    if subnets.is_empty() {
        return Err(ProviderError::Cloud {
            resource: vpc_id,
            message: "no subnet to place the nodes in: set aws.subnet_ids".into(),
            request_id: None,
        });
    }
    Ok(Net { vpc_id, subnets })
}
