//! Quota preflight, before anything is created: what the cluster needs against the account's
//! Service Quotas — On-Demand standard-family vCPUs (minus what already runs), security groups
//! per region, rules per security group, Network Load Balancers per region — naming the one that
//! is short. A quota the account cannot read (a region or emulator without it, no permission) is
//! reported as not checked, visibly, and does not stop `up`.

use acura_ha_api::model::{Kind, Resource};
use acura_ha_api::provider::ProviderError;
use acura_ha_api::spec::{ClusterSpec, LbKind};
use aws_sdk_ec2::types::{Filter, InstanceType};

use crate::error;
use crate::{Clients, progress};

struct Quota {
    service: &'static str,
    code: &'static str,
    what: &'static str,
}

const VCPU: Quota = Quota {
    service: "ec2",
    code: "L-1216C47A",
    what: "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances (vCPUs)",
};
const GROUPS: Quota = Quota {
    service: "vpc",
    code: "L-E79EC296",
    what: "VPC security groups per Region",
};
const RULES: Quota = Quota {
    service: "vpc",
    code: "L-0EA8095F",
    what: "Inbound or outbound rules per security group",
};
const NLBS: Quota = Quota {
    service: "elasticloadbalancing",
    code: "L-69A177A2",
    what: "Network Load Balancers per Region",
};

/// The quota's value, or why it could not be read.
async fn value(c: &Clients, q: &Quota) -> Result<f64, String> {
    match c
        .quotas
        .get_service_quota()
        .service_code(q.service)
        .quota_code(q.code)
        .send()
        .await
    {
        Ok(out) => out
            .quota()
            .and_then(|x| x.value())
            .ok_or_else(|| "no value".to_string()),
        Err(e) => {
            use aws_sdk_servicequotas::error::ProvideErrorMetadata;
            let e: aws_sdk_servicequotas::Error = e.into();
            Err(format!(
                "{}: {}",
                e.code().unwrap_or("error"),
                e.message().unwrap_or("unreadable")
            ))
        }
    }
}

/// vCPUs of the NGINX VM's instance type (DescribeInstanceTypes).
async fn vcpus(c: &Clients, t: &str) -> Result<u32, ProviderError> {
    let out = c
        .ec2
        .describe_instance_types()
        .instance_types(InstanceType::from(t))
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| error::ec2(e).into_provider(&format!("instance type {t}")))?;
    Ok(out
        .first()
        .and_then(|i| i.v_cpu_info())
        .and_then(|v| v.default_v_cpus())
        .unwrap_or(0) as u32)
}

/// vCPUs of the account's running and pending instances, apart from this cluster's.
async fn vcpus_in_use(c: &Clients, spec: &ClusterSpec) -> Result<u32, ProviderError> {
    let out = c
        .ec2
        .describe_instances()
        .filters(
            Filter::builder()
                .name("instance-state-name")
                .values("pending")
                .values("running")
                .build(),
        )
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(|e| error::ec2(e).into_provider("running instances"))?;
    Ok(out
        .iter()
        .flat_map(|r| r.instances())
        .filter(|i| {
            !i.tags().iter().any(|t| {
                t.key() == Some(acura_ha_api::spec::TAG_CLUSTER)
                    && t.value() == Some(spec.cluster.name.as_str())
            })
        })
        .map(|i| {
            i.cpu_options()
                .map(|o| o.core_count().unwrap_or(1) * o.threads_per_core().unwrap_or(1))
                .unwrap_or(1) as u32
        })
        .sum())
}

fn short(q: &Quota, need: f64, quota: f64, in_use: Option<f64>) -> ProviderError {
    let use_text = in_use
        .map(|u| format!(", {u} already in use"))
        .unwrap_or_default();
    ProviderError::Cloud {
        resource: format!("quota {} ({} {})", q.what, q.service, q.code),
        message: format!(
            "the cluster needs {need}, the quota is {quota}{use_text}: request an increase in the Service Quotas console, or make the cluster smaller"
        ),
        request_id: None,
    }
}

/// Checks every quota; fails on the first one that is short.
pub(crate) async fn preflight(
    c: &Clients,
    spec: &ClusterSpec,
    desired: &[Resource],
    quiet: bool,
) -> Result<(), ProviderError> {
    let aws = spec.aws.as_ref().expect("aws section");
    let not_checked = |q: &Quota, why: String| {
        progress(
            quiet,
            &format!("quota {} ({}) not checked: {why}", q.what, q.code),
        )
    };
    // vCPUs: the nodes (and the NGINX VM), next to what already runs.
    let (node_vcpus, vq, gq, rq, lq) = tokio::join!(
        crate::ec2::check_instance_types(c, spec),
        value(c, &VCPU),
        value(c, &GROUPS),
        value(c, &RULES),
        value(c, &NLBS)
    );
    let node_vcpus = node_vcpus?;
    match vq {
        Ok(quota) => {
            let mut need = spec.node_names().len() as u32 * node_vcpus;
            if spec.load_balancer.kind == LbKind::Nginx {
                need += vcpus(c, &aws.lb_instance_type).await?;
            }
            let used = vcpus_in_use(c, spec).await?;
            if f64::from(need + used) > quota {
                return Err(short(&VCPU, f64::from(need), quota, Some(f64::from(used))));
            }
        }
        Err(why) => not_checked(&VCPU, why),
    }
    let groups_needed = desired
        .iter()
        .filter(|r| r.kind == Kind::SecurityGroup)
        .count() as f64;
    match gq {
        Ok(quota) if quota < groups_needed => {
            return Err(short(&GROUPS, groups_needed, quota, None));
        }
        Ok(_) => {}
        Err(why) => not_checked(&GROUPS, why),
    }
    // The quota is per group: the larger of the nodes' group and the NLB's.
    let rules_of = |nlb: bool| {
        desired
            .iter()
            .filter(|r| r.kind == Kind::SecurityGroupRule)
            .filter(|r| {
                r.depends_on.first().map(String::as_str)
                    == Some(if nlb {
                        acura_ha_api::targets::aws::nlb::NLB_GROUP_ADDRESS
                    } else {
                        "security_group"
                    })
            })
            .count()
    };
    let rules = rules_of(false).max(rules_of(true)) as f64;
    match rq {
        Ok(quota) if rules > quota => return Err(short(&RULES, rules, quota, None)),
        Ok(_) => {}
        Err(why) => not_checked(&RULES, why),
    }
    if spec.load_balancer.kind == LbKind::Cloud {
        match lq {
            Ok(quota) if quota < 1.0 => return Err(short(&NLBS, 1.0, quota, None)),
            Ok(_) => {}
            Err(why) => not_checked(&NLBS, why),
        }
    }
    Ok(())
}
