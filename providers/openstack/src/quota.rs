//! Quota preflight, before anything is created: compute (cores, RAM, instances), network
//! (security groups, rules, ports, floating IPs), block storage (volumes, gigabytes) and
//! load balancers, naming the one that is short. A quota that cannot be read is reported as
//! "not checked" and does not stop `up`.

use std::collections::BTreeMap;

use acura_ha_api::model::{Kind, Resource};
use acura_ha_api::provider::ProviderError;
use acura_ha_api::spec::LbKind;
use serde_json::Value;

use crate::Ctx;
use crate::client::Service;
use crate::compute::Lookups;

/// One quota: what is needed next to its limit and use (`None`: unlimited).
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub what: String,
    pub need: u64,
    pub limit: Option<u64>,
    pub in_use: u64,
}

impl Check {
    pub fn short(&self) -> bool {
        self.limit
            .is_some_and(|l| self.need > l.saturating_sub(self.in_use))
    }
    pub fn error(&self) -> ProviderError {
        let limit = self.limit.unwrap_or(0);
        ProviderError::Cloud {
            resource: format!("quota {}", self.what),
            message: format!(
                "the cluster needs {} more, the limit is {limit} with {} in use ({} free): ask the cloud's administrators for more, or make the cluster smaller",
                self.need,
                self.in_use,
                limit.saturating_sub(self.in_use)
            ),
            request_id: None,
        }
    }
}

fn limit(v: &Value) -> Option<u64> {
    match v.as_i64() {
        Some(n) if n >= 0 => Some(n as u64),
        _ => None,
    }
}

/// Compute limits from `GET /limits`.
pub fn compute_checks(limits: &Value, cores: u64, ram_mb: u64, instances: u64) -> Vec<Check> {
    let a = &limits["limits"]["absolute"];
    let used = |k: &str| a[k].as_u64().unwrap_or(0);
    vec![
        Check {
            what: "compute cores".into(),
            need: cores,
            limit: limit(&a["maxTotalCores"]),
            in_use: used("totalCoresUsed"),
        },
        Check {
            what: "compute RAM (MB)".into(),
            need: ram_mb,
            limit: limit(&a["maxTotalRAMSize"]),
            in_use: used("totalRAMUsed"),
        },
        Check {
            what: "compute instances".into(),
            need: instances,
            limit: limit(&a["maxTotalInstances"]),
            in_use: used("totalInstancesUsed"),
        },
    ]
}

/// Network quotas from `GET /v2.0/quotas/{project}/details`.
pub fn network_checks(details: &Value, need: &BTreeMap<&str, u64>) -> Vec<Check> {
    let qv = &details["quota"];
    need.iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| Check {
            what: format!("network {k}"),
            need: *n,
            limit: limit(&qv[*k]["limit"]),
            in_use: qv[*k]["used"].as_u64().unwrap_or(0) + qv[*k]["reserved"].as_u64().unwrap_or(0),
        })
        .collect()
}

/// Volume quotas from `GET /os-quota-sets/{project}?usage=true`.
pub fn volume_checks(set: &Value, volumes: u64, gigabytes: u64) -> Vec<Check> {
    let qs = &set["quota_set"];
    [("volumes", volumes), ("gigabytes", gigabytes)]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| Check {
            what: format!("block-storage {k}"),
            need: n,
            limit: limit(&qs[k]["limit"]),
            in_use: qs[k]["in_use"].as_u64().unwrap_or(0) + qs[k]["reserved"].as_u64().unwrap_or(0),
        })
        .collect()
}

pub(crate) async fn preflight(
    cx: &Ctx<'_>,
    desired: &[Resource],
    look: &Lookups,
    existing: &BTreeMap<String, Value>,
) -> Result<(), ProviderError> {
    let s = cx.s;
    let spec = cx.spec;
    let pid = s.project_id.clone();
    // What does not exist yet.
    let new_nodes = desired
        .iter()
        .filter(|r| r.kind == Kind::Instance && !existing.contains_key(&r.name))
        .count() as u64;
    let new_lb_vm = desired
        .iter()
        .filter(|r| r.kind == Kind::LbInstance && !existing.contains_key(&r.name))
        .count() as u64;
    let lbf = look.lb_flavor.as_ref().unwrap_or(&look.flavor);
    let cores = new_nodes * u64::from(look.flavor.vcpus) + new_lb_vm * u64::from(lbf.vcpus);
    let ram = new_nodes * look.flavor.ram_mb + new_lb_vm * lbf.ram_mb;
    let servers = new_nodes + new_lb_vm;
    let cloud_lb = spec.load_balancer.kind == LbKind::Cloud;
    let fresh = existing.is_empty();
    let rules = desired
        .iter()
        .filter(|r| r.kind == Kind::SecurityGroupRule)
        .count() as u64;
    let mut net_need = BTreeMap::new();
    net_need.insert("security_group", u64::from(fresh));
    net_need.insert("security_group_rule", if fresh { rules + 2 } else { 0 });
    net_need.insert("port", servers + u64::from(fresh && cloud_lb));
    let fips = spec
        .openstack
        .as_ref()
        .and_then(|o| o.floating_ip_network.as_ref())
        .is_some();
    net_need.insert(
        "floatingip",
        if fips {
            servers + u64::from(fresh && cloud_lb)
        } else {
            0
        },
    );
    let gb = new_nodes * u64::from(spec.nodes.volume_size_gb) + new_lb_vm * 20;

    let compute = s.get(Service::Compute, "/limits");
    let net_path = format!("/quotas/{pid}/details");
    let network = s.get(Service::Network, &net_path);
    let volume = async {
        if s.has(Service::Volume) {
            s.get(Service::Volume, &format!("/os-quota-sets/{pid}?usage=true"))
                .await
        } else {
            Ok(Value::Null)
        }
    };
    let lbq = async {
        if cloud_lb && fresh {
            let q = s
                .get(Service::LoadBalancer, &format!("/lbaas/quotas/{pid}"))
                .await?;
            // The project's load balancers were listed with the lookups.
            let l = serde_json::json!({"loadbalancers": look.lbs.clone().unwrap_or_default()});
            Ok::<_, crate::client::ApiError>(Some((q, l)))
        } else {
            Ok(None)
        }
    };
    let (c, n, v, l) = tokio::join!(compute, network, volume, lbq);
    // A 406 is the service refusing our microversion (too old, `crate::microversion`): for
    // Cinder the quota read is the first call, so it is the version check, never skipped.
    for (r, what) in [
        (&c, "compute (Nova) limits"),
        (&v, "block-storage (Cinder) quotas"),
    ] {
        if let Err(e) = r
            && e.status == Some(406)
        {
            return Err(e.clone().into_provider(what));
        }
    }
    let mut checks = Vec::new();
    let not_checked = |what: &str, why: String| {
        cx.progress(&format!("quota {what} not checked: {why}"));
    };
    match c {
        Ok(v) if v["limits"]["absolute"].is_object() => {
            checks.extend(compute_checks(&v, cores, ram, servers))
        }
        Ok(_) => not_checked("compute", "no absolute limits in the answer".into()),
        Err(e) => not_checked("compute", e.message),
    }
    match n {
        Ok(v) if v["quota"].is_object() => checks.extend(network_checks(&v, &net_need)),
        Ok(_) => not_checked("network", "no quota in the answer".into()),
        Err(e) => not_checked("network", e.message),
    }
    match v {
        Ok(Value::Null) => {}
        Ok(v) if v["quota_set"].is_object() => checks.extend(volume_checks(&v, servers, gb)),
        Ok(_) => not_checked("block-storage", "no quota_set in the answer".into()),
        Err(e) => not_checked("block-storage", e.message),
    }
    match l {
        Ok(None) => {}
        Ok(Some((q, list))) => {
            let in_use = list["loadbalancers"]
                .as_array()
                .map(|a| a.len())
                .unwrap_or(0) as u64;
            let qv = &q["quota"];
            let lim = qv.get("load_balancer").or_else(|| qv.get("loadbalancer"));
            match lim {
                Some(lim) => checks.push(Check {
                    what: "load balancers".into(),
                    need: 1,
                    limit: limit(lim),
                    in_use,
                }),
                None => not_checked("load balancers", "no quota in the answer".into()),
            }
        }
        Err(e) => not_checked("load balancers", e.message),
    }
    if let Some(c) = checks.iter().find(|c| c.short()) {
        return Err(c.error());
    }
    Ok(())
}
