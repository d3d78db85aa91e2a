//! The servers' Neutron ports, made before the servers (issue 12): a port has its fixed
//! address the moment it exists, so the load balancer's members are known before any server
//! is built and Octavia's fully populated create starts beside the servers' builds.
//!
//! A port is named after its server, described `acura-ha <cluster> <server>` (as the server's
//! floating IP) and in the cluster's security group. It is recorded in its server's record
//! (`outputs.port_id`, written before the server is asked for), looked up by name and
//! description before it is made, and deleted after its server: Nova detaches a port it did not
//! make, it does not delete it.

use std::collections::BTreeMap;

use acura_ha_api::model::{Kind, Resource, Status};
use acura_ha_api::provider::ProviderError;
use acura_ha_api::spec::ClusterSpec;
use acura_ha_api::targets::openstack::fip_description;
use serde_json::{Value, json};

use crate::capabilities;
use crate::client::{ApiError, Service, Session, q};
use crate::network::Net;
use crate::{Ctx, js, tag_strings};

/// The output of a server's record that names its port.
pub(crate) const OUTPUT_PORT: &str = "port_id";

/// A server's port and its fixed address.
#[derive(Clone, Debug)]
pub(crate) struct Port {
    pub id: String,
    pub ip: String,
}

/// The ports named `names` (one call: Neutron takes a filter more than once).
async fn list_named(s: &Session, names: &[String]) -> Result<Vec<Value>, ApiError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let query: Vec<String> = names.iter().map(|n| format!("name={}", q(n))).collect();
    s.list(
        Service::Network,
        &format!("/ports?{}", query.join("&")),
        "ports",
    )
    .await
}

/// One of ours: its server's name and the cluster's description.
fn ours(spec: &ClusterSpec, p: &Value, name: &str) -> bool {
    js(p, "name") == name && js(p, "description") == fip_description(spec, name)
}

/// The port's address on `subnet` (else its first).
fn ip_of(p: &Value, subnet: &str) -> String {
    let ips = p["fixed_ips"].as_array().cloned().unwrap_or_default();
    ips.iter()
        .find(|x| js(x, "subnet_id") == subnet)
        .or(ips.first())
        .map(|x| js(x, "ip_address"))
        .unwrap_or_default()
}

fn outputs(p: &Port) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    out.insert(OUTPUT_PORT.to_string(), p.id.clone());
    out.insert("fixed_ip".to_string(), p.ip.clone());
    out
}

/// The server record's outputs for its port (empty without one).
pub(crate) fn server_outputs(port: Option<&Port>) -> BTreeMap<String, String> {
    port.map(outputs).unwrap_or_default()
}

/// A port for every server to be made (not for those `existing`), adopted or created: name →
/// port. Each server's record is written before its port is asked for, and again with the
/// port's ID.
pub(crate) async fn ensure(
    cx: &Ctx<'_>,
    desired: &[Resource],
    net: &Net,
    existing: &BTreeMap<String, Value>,
    sg_id: &str,
) -> Result<BTreeMap<String, Port>, ProviderError> {
    let s = cx.s;
    let wanted: Vec<&Resource> = desired
        .iter()
        .filter(|r| matches!(r.kind, Kind::Instance | Kind::LbInstance))
        .filter(|r| !existing.contains_key(&r.name))
        .collect();
    if wanted.is_empty() {
        return Ok(BTreeMap::new());
    }
    let names: Vec<String> = wanted.iter().map(|r| r.name.clone()).collect();
    // Free ports of ours to use again; none can exist for a lineage made by this run.
    let listed = if cx.spec.lineage_new {
        Vec::new()
    } else {
        list_named(s, &names)
            .await
            .map_err(|e| e.into_provider("ports of the servers"))?
    };
    let listed = &listed;
    let made = wanted.iter().map(|r| async move {
        // A free port of ours (a run that stopped before its server was made) is used again.
        let found = listed
            .iter()
            .find(|p| ours(cx.spec, p, &r.name) && js(p, "device_id").is_empty());
        let port = match found {
            Some(p) => p.clone(),
            None => {
                cx.record(r, Status::Creating, None, BTreeMap::new())
                    .await?;
                let role = if r.kind == Kind::LbInstance {
                    "lb"
                } else {
                    "node"
                };
                let body = json!({"port": {
                    "name": r.name,
                    "description": fip_description(cx.spec, &r.name),
                    "network_id": net.id,
                    "fixed_ips": [{"subnet_id": net.subnet_id}],
                    "security_groups": [sg_id],
                }});
                cx.progress(&format!(
                    "create port {} on {} (security group {sg_id})",
                    r.name, net.name
                ));
                let name = r.name.clone();
                // Tags in the body where Neutron takes them; a port is known by its name and
                // description otherwise (never tagged afterwards).
                let (v, _) = capabilities::create_tagged(
                    s,
                    "/ports",
                    body,
                    "port",
                    &tag_strings(cx.spec, role),
                    || {
                        let name = name.clone();
                        async move {
                            Ok(list_named(s, std::slice::from_ref(&name))
                                .await?
                                .into_iter()
                                .find(|p| ours(cx.spec, p, &name) && js(p, "device_id").is_empty())
                                .map(|p| json!({ "port": p })))
                        }
                    },
                )
                .await
                .map_err(|e| e.into_provider(&format!("port of {}", r.address)))?;
                v.get("port").cloned().unwrap_or(v)
            }
        };
        let p = Port {
            id: js(&port, "id"),
            ip: ip_of(&port, &net.subnet_id),
        };
        cx.record(r, Status::Creating, None, outputs(&p)).await?;
        Ok::<_, ProviderError>((r.name.clone(), p))
    });
    Ok(futures::future::try_join_all(made)
        .await?
        .into_iter()
        .collect())
}

/// Deletes the ports of ours named for `names` (after their servers are gone: a port still
/// bound to a server is left to it). NotFound is done.
pub(crate) async fn delete(cx: &Ctx<'_>, names: &[String]) -> Result<(), ProviderError> {
    let s = cx.s;
    let listed = list_named(s, names)
        .await
        .map_err(|e| e.into_provider("ports of the servers"))?;
    let victims: Vec<&Value> = listed
        .iter()
        .filter(|p| names.iter().any(|n| ours(cx.spec, p, n)))
        .collect();
    let deletes = victims.iter().map(|p| async move {
        let id = js(p, "id");
        cx.progress(&format!("delete port {} ({id})", js(p, "name")));
        match s.delete(Service::Network, &format!("/ports/{id}")).await {
            Err(e) if !e.not_found() => Err(e.into_provider(&format!("port {id}"))),
            _ => Ok(()),
        }
    });
    futures::future::try_join_all(deletes).await?;
    Ok(())
}
