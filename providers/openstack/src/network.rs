//! Neutron: the network and subnet, the security group with the guide's rules (one bulk POST;
//! a rule that exists counts as created; then the group's ingress rules no longer wanted are
//! deleted by ID), and floating IPs.

use std::collections::BTreeMap;
use std::time::Duration;

use acura_ha_api::desired::{RuleSource, cloud_name, ingress_rules};
use acura_ha_api::model::{Kind, Recorded, Resource, Status};
use acura_ha_api::provider::ProviderError;
use acura_ha_api::spec::ClusterSpec;
use reqwest::Method;
use serde_json::{Value, json};

use crate::capabilities::{self, Tagging};
use crate::client::{ApiError, Service, Session, q};
use crate::{Ctx, cluster_tag, desired_one, js, tag_strings};

pub(crate) struct Net {
    pub id: String,
    pub name: String,
    pub subnet_id: String,
}

/// A network by name, else by ID.
pub(crate) async fn find_network(
    s: &Session,
    name_or_id: &str,
    what: &str,
) -> Result<Value, ProviderError> {
    let resource = format!("{what} = {name_or_id}");
    for filter in ["name", "id"] {
        let v = s
            .list(
                Service::Network,
                &format!("/networks?{filter}={}", q(name_or_id)),
                "networks",
            )
            .await
            .map_err(|e| e.into_provider(&resource))?;
        if let Some(n) = v.into_iter().next() {
            return Ok(n);
        }
    }
    Err(ProviderError::Cloud {
        resource,
        message: "no such network (see `openstack network list`)".into(),
        request_id: None,
    })
}

/// The networks named `names`, in one call (Neutron takes a filter more than once): the nodes'
/// network and the floating IPs' are looked up together. A name not found here may be an ID
/// ([`find_network`] then).
pub(crate) async fn named_networks(
    s: &Session,
    names: &[&str],
) -> Result<Vec<Value>, ProviderError> {
    let query: Vec<String> = names.iter().map(|n| format!("name={}", q(n))).collect();
    s.list(
        Service::Network,
        &format!("/networks?{}", query.join("&")),
        "networks",
    )
    .await
    .map_err(|e| e.into_provider(&format!("networks {}", names.join(", "))))
}

/// A network from `listed` by name, else by name or ID from the cloud.
pub(crate) async fn pick_network(
    s: &Session,
    listed: &[Value],
    name_or_id: &str,
    what: &str,
) -> Result<Value, ProviderError> {
    match listed.iter().find(|n| js(n, "name") == name_or_id) {
        Some(n) => Ok(n.clone()),
        None => find_network(s, name_or_id, what).await,
    }
}

/// The nodes' network and subnet: `subnet` by name or ID, else the first IPv4 subnet. `listed`:
/// what [`named_networks`] answered.
pub(crate) async fn network(
    s: &Session,
    spec: &ClusterSpec,
    listed: &[Value],
) -> Result<Net, ProviderError> {
    let os = spec.openstack.as_ref().expect("openstack section");
    let n = pick_network(s, listed, &os.network, "openstack.network").await?;
    let id = js(&n, "id");
    // The network names its subnets: one (or the one asked for by ID) needs no lookup.
    let listed: Vec<String> = n["subnets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(String::from))
        .collect();
    let known = match &os.subnet {
        Some(want) => listed.iter().find(|x| *x == want).cloned(),
        None if listed.len() == 1 => listed.first().cloned(),
        None => None,
    };
    if let Some(subnet_id) = known {
        return Ok(Net {
            id,
            name: js(&n, "name"),
            subnet_id,
        });
    }
    let list = s
        .list(
            Service::Network,
            &format!("/subnets?network_id={}", q(&id)),
            "subnets",
        )
        .await
        .map_err(|e| e.into_provider(&format!("subnets of network {}", os.network)))?;
    let chosen = match &os.subnet {
        Some(want) => list
            .iter()
            .find(|sn| js(sn, "id") == *want || js(sn, "name") == *want),
        None => list
            .iter()
            .find(|sn| sn["ip_version"].as_u64() == Some(4))
            .or(list.first()),
    };
    let Some(sn) = chosen else {
        return Err(ProviderError::Cloud {
            resource: format!("openstack.network = {}", os.network),
            message: match &os.subnet {
                Some(w) => format!("no subnet {w:?} on this network"),
                None => "the network has no subnet".into(),
            },
            request_id: None,
        });
    };
    Ok(Net {
        id,
        name: js(&n, "name"),
        subnet_id: js(sn, "id"),
    })
}

/// The ingress rule bodies of the guide's table (no security_group_id yet), keyed as the plan.
pub(crate) fn wanted_rules(spec: &ClusterSpec, group_id: &str) -> Vec<(String, Value)> {
    ingress_rules(spec)
        .into_iter()
        .map(|r| {
            let mut body = json!({
                "security_group_id": group_id,
                "direction": "ingress",
                "protocol": r.rule.protocol.as_str(),
                "port_range_min": r.rule.from_port,
                "port_range_max": r.rule.to_port,
                "description": r.rule.description,
            });
            match r.source {
                RuleSource::SelfGroup => {
                    body["ethertype"] = json!("IPv4");
                    body["remote_group_id"] = json!(group_id);
                }
                RuleSource::Cidr(net) => {
                    body["ethertype"] = json!(if net.addr().is_ipv4() { "IPv4" } else { "IPv6" });
                    body["remote_ip_prefix"] = json!(net.to_string());
                }
            }
            (format!("security_group_rule[{}]", r.key()), body)
        })
        .collect()
}

fn norm_prefix(p: &str) -> String {
    match p {
        "0.0.0.0/0" | "::/0" => String::new(),
        other => other.to_string(),
    }
}

/// Neutron's duplicate test (`_rule_to_key`), less the description.
pub(crate) fn same_rule(a: &Value, b: &Value) -> bool {
    let s = |v: &Value, k: &str| {
        v.get(k)
            .and_then(|x| x.as_str())
            .unwrap_or("")
            .to_lowercase()
    };
    let n = |v: &Value, k: &str| {
        v.get(k).and_then(|x| {
            x.as_u64()
                .or_else(|| x.as_str().and_then(|t| t.parse().ok()))
        })
    };
    s(a, "direction") == s(b, "direction")
        && s(a, "ethertype") == s(b, "ethertype")
        && s(a, "protocol") == s(b, "protocol")
        && n(a, "port_range_min") == n(b, "port_range_min")
        && n(a, "port_range_max") == n(b, "port_range_max")
        && norm_prefix(&s(a, "remote_ip_prefix")) == norm_prefix(&s(b, "remote_ip_prefix"))
        && s(a, "remote_group_id") == s(b, "remote_group_id")
}

pub(crate) async fn find_group(s: &Session, spec: &ClusterSpec) -> Result<Option<Value>, ApiError> {
    let name = cloud_name(spec);
    let v = s
        .list(
            Service::Network,
            &format!("/security-groups?name={}", q(&name)),
            "security_groups",
        )
        .await?;
    let tag = cluster_tag(spec);
    Ok(v.into_iter().find(|g| {
        js(g, "name") == name
            && g["tags"]
                .as_array()
                .is_none_or(|t| t.is_empty() || t.iter().any(|x| x == &json!(tag)))
    }))
}

/// The group (adopted by name and tag, or created) and its rules. Returns (id, name).
/// `found`: what [`find_group`] answered before (the ownership check reads it first; one list
/// call a run).
pub(crate) async fn security_group(
    cx: &Ctx<'_>,
    desired: &[Resource],
    found: Option<Value>,
) -> Result<(String, String), ProviderError> {
    let r = desired_one(desired, "security_group").expect("planned");
    let s = cx.s;
    let group = match found {
        Some(g) => g,
        None => {
            cx.record(r, Status::Creating, None, BTreeMap::new())
                .await?;
            cx.progress(&format!("create security group {}", r.name));
            let tags = tag_strings(cx.spec, "security-group");
            let body = json!({"security_group": {
                "name": r.name,
                "description": r.attrs.get("description").cloned().unwrap_or_default(),
            }});
            // Only a Neutron with `tag-creation` takes tags in the body; one without answers
            // 400 "Unrecognized attribute(s) 'tags'" (then they are put afterwards).
            let (v, tagging) = capabilities::create_tagged(
                s,
                "/security-groups",
                body,
                "security_group",
                &tags,
                || async { find_group(s, cx.spec).await },
            )
            .await
            .map_err(|e| e.into_provider(&r.address))?;
            let mut g = v.get("security_group").cloned().unwrap_or(v);
            tag_afterwards(cx, &mut g, tagging, tags).await?;
            g
        }
    };
    let id = js(&group, "id");
    cx.record(r, Status::Ready, Some(id.clone()), BTreeMap::new())
        .await?;
    // Neutron answers a group with its rules (a list call, a create and a show alike).
    let listed = group["security_group_rules"].as_array().cloned();
    rules(cx, desired, &id, listed).await?;
    Ok((id, r.name.clone()))
}

/// Tags a group created without them: `PUT /security-groups/{id}/tags` where Neutron has
/// `standard-attr-tag`; where it has no tags at all the group is known by its name (which
/// `find_group` and `discover` match on), and the run says so.
async fn tag_afterwards(
    cx: &Ctx<'_>,
    group: &mut Value,
    tagging: Tagging,
    tags: Vec<String>,
) -> Result<(), ProviderError> {
    let id = js(group, "id");
    let name = js(group, "name");
    match tagging {
        Tagging::AtCreate => {}
        Tagging::Afterwards => {
            cx.progress(&format!(
                "tag security group {name} after its create (this Neutron has no tag-creation extension)"
            ));
            cx.s.send(
                reqwest::Method::PUT,
                Service::Network,
                &format!("/security-groups/{id}/tags"),
                &json!({ "tags": tags }),
            )
            .await
            .map_err(|e| e.into_provider(&format!("tags of security group {id}")))?;
            group["tags"] = json!(tags);
        }
        Tagging::None => cx.progress(&format!(
            "this Neutron has no tag extension (standard-attr-tag): security group {name} is untagged and known by its name"
        )),
    }
    Ok(())
}

async fn list_rules(s: &Session, group_id: &str) -> Result<Vec<Value>, ApiError> {
    s.list(
        Service::Network,
        &format!("/security-group-rules?security_group_id={}", q(group_id)),
        "security_group_rules",
    )
    .await
}

async fn rules(
    cx: &Ctx<'_>,
    desired: &[Resource],
    group_id: &str,
    listed: Option<Vec<Value>>,
) -> Result<(), ProviderError> {
    let s = cx.s;
    let what = format!("rules of security group {group_id}");
    let wanted = wanted_rules(cx.spec, group_id);
    let mut have = match listed {
        Some(l) => l,
        None => list_rules(s, group_id)
            .await
            .map_err(|e| e.into_provider(&what))?,
    };
    let missing: Vec<&(String, Value)> = wanted
        .iter()
        .filter(|(_, w)| !have.iter().any(|h| same_rule(h, w)))
        .collect();
    if !missing.is_empty() {
        cx.progress(&format!(
            "add {} rules to security group {group_id}",
            missing.len()
        ));
        let body = json!({"security_group_rules": missing.iter().map(|(_, b)| b.clone()).collect::<Vec<_>>()});
        match s
            .send(
                Method::POST,
                Service::Network,
                "/security-group-rules",
                &body,
            )
            .await
        {
            Ok(v) => have.extend(
                v["security_group_rules"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            ),
            Err(e) if e.conflict() || e.outcome_unknown() => {
                // Some exist already (a race, or a bulk POST whose answer was lost): one by one,
                // a rule that exists counting as created.
                have = list_rules(s, group_id)
                    .await
                    .map_err(|e| e.into_provider(&what))?;
                for (address, b) in &missing {
                    if have.iter().any(|h| same_rule(h, b)) {
                        continue;
                    }
                    let one = json!({ "security_group_rule": b });
                    let res = s
                        .create(Service::Network, "/security-group-rules", &one, || async {
                            Ok(list_rules(s, group_id)
                                .await?
                                .into_iter()
                                .find(|h| same_rule(h, b)))
                        })
                        .await;
                    match res {
                        Ok(v) => have.push(v.get("security_group_rule").cloned().unwrap_or(v)),
                        Err(e) if e.is("SecurityGroupRuleExists") => {}
                        Err(e) => return Err(e.into_provider(address)),
                    }
                }
                have = list_rules(s, group_id)
                    .await
                    .map_err(|e| e.into_provider(&what))?;
            }
            Err(e) => return Err(e.into_provider(&what)),
        }
    }
    for (address, w) in &wanted {
        let Some(r) = desired_one(desired, address) else {
            continue;
        };
        let id = have.iter().find(|h| same_rule(h, w)).map(|h| js(h, "id"));
        cx.record(r, Status::Ready, id, BTreeMap::new()).await?;
    }
    revoke_unwanted(cx, desired, group_id, &wanted, &have).await
}

/// Converge (DESIGN §4): once every wanted rule exists (so access is never briefly lost),
/// deletes by ID each ingress rule of this group that is not wanted (an old `admin_cidrs` or
/// `public_cidrs` source, a rule added by hand) and forgets every `security_group_rule[...]`
/// record that is not desired. Egress rules (Neutron's defaults) and other groups' rules stay.
async fn revoke_unwanted(
    cx: &Ctx<'_>,
    desired: &[Resource],
    group_id: &str,
    wanted: &[(String, Value)],
    have: &[Value],
) -> Result<(), ProviderError> {
    let unwanted: Vec<&Value> = have
        .iter()
        .filter(|h| {
            js(h, "direction").eq_ignore_ascii_case("ingress")
                && js(h, "security_group_id") == group_id
                && !js(h, "id").is_empty()
                && !wanted.iter().any(|(_, w)| same_rule(h, w))
        })
        .collect();
    if !unwanted.is_empty() {
        cx.progress(&format!(
            "remove {} rules no longer wanted from security group {group_id}",
            unwanted.len()
        ));
    }
    for h in unwanted {
        let id = js(h, "id");
        // NotFound is done (`Session::delete`).
        cx.s.delete(Service::Network, &format!("/security-group-rules/{id}"))
            .await
            .map_err(|e| {
                e.into_provider(&format!("security group rule {id} ({})", rule_label(h)))
            })?;
    }
    for r in cx.all().await {
        if r.kind == Kind::SecurityGroupRule && desired_one(desired, &r.address).is_none() {
            cx.forget(&r.address).await?;
        }
    }
    Ok(())
}

/// Where a Neutron rule lets traffic in from: its prefix, `group <id>`, or `any`.
pub(crate) fn rule_source(h: &Value) -> String {
    match h["remote_ip_prefix"].as_str() {
        Some(p) => p.to_string(),
        None => match h["remote_group_id"].as_str() {
            Some(g) => format!("group {g}"),
            None => "any".into(),
        },
    }
}

/// A Neutron rule as people read it: `tcp 30080-30082 from 0.0.0.0/0`, `any all from any`.
pub(crate) fn rule_label(h: &Value) -> String {
    let proto = match js(h, "protocol") {
        p if p.is_empty() => "any".to_string(),
        p => p,
    };
    let ports = match (h["port_range_min"].as_u64(), h["port_range_max"].as_u64()) {
        (Some(a), Some(b)) if a == b => a.to_string(),
        (Some(a), Some(b)) => format!("{a}-{b}"),
        _ => "all".into(),
    };
    format!("{proto} {ports} from {}", rule_source(h))
}

/// Floating IPs of the project (one call).
pub(crate) async fn floating_ips(s: &Session) -> Result<Vec<Value>, ProviderError> {
    s.list(Service::Network, "/floatingips", "floatingips")
        .await
        .map_err(|e| e.into_provider("floating IPs"))
}

/// A floating IP from `network_id` on `port_id`: the one it has, else a new one.
pub(crate) async fn ensure_floating_ip(
    cx: &Ctx<'_>,
    network_id: &str,
    port_id: &str,
    host: &str,
    known: &[Value],
) -> Result<Value, ProviderError> {
    let s = cx.s;
    if let Some(f) = known.iter().find(|f| js(f, "port_id") == port_id) {
        return Ok(f.clone());
    }
    let description = acura_ha_api::targets::openstack::fip_description(cx.spec, host);
    // Free, ours, for this host: a create whose association was lost (never one another state
    // tagged with its lineage, though it has the same description).
    if let Some(f) = known.iter().find(|f| {
        js(f, "description") == description
            && f["port_id"].is_null()
            && !crate::another_lineage(cx.spec, f)
    }) {
        let id = js(f, "id");
        let v = s
            .send(
                Method::PUT,
                Service::Network,
                &format!("/floatingips/{id}"),
                &json!({"floatingip": {"port_id": port_id}}),
            )
            .await
            .map_err(|e| e.into_provider(&format!("floating IP {id}")))?;
        return Ok(v.get("floatingip").cloned().unwrap_or(v));
    }
    cx.progress(&format!("allocate a floating IP for {host}"));
    let body = json!({"floatingip": {
        "floating_network_id": network_id,
        "port_id": port_id,
        "description": description,
    }});
    // The cluster's tags and the state's lineage (#9.4), so that another state's cluster of
    // the same name (whose floating IPs have the same descriptions) is told apart.
    let tags = tag_strings(cx.spec, "floating-ip");
    let (v, tagging) =
        capabilities::create_tagged(s, "/floatingips", body, "floatingip", &tags, || async {
            let v = s
                .list(
                    Service::Network,
                    &format!("/floatingips?port_id={}", q(port_id)),
                    "floatingips",
                )
                .await?;
            Ok(v.into_iter().next())
        })
        .await
        .map_err(|e| e.into_provider(&format!("floating IP for {host}")))?;
    let mut f = v.get("floatingip").cloned().unwrap_or(v);
    if tagging == Tagging::Afterwards {
        let id = js(&f, "id");
        s.send(
            Method::PUT,
            Service::Network,
            &format!("/floatingips/{id}/tags"),
            &json!({ "tags": tags }),
        )
        .await
        .map_err(|e| e.into_provider(&format!("tags of floating IP {id} for {host}")))?;
        f["tags"] = json!(tags);
    }
    Ok(f)
}

/// Whether floating IP `f` carries the state's own lineage: positively ours, even where another
/// state's cluster of the same name is in the project (#9.4).
pub(crate) fn fip_of_our_lineage(spec: &ClusterSpec, f: &Value) -> bool {
    spec.lineage.is_some() && crate::lineage_of(f) == spec.lineage
}

/// The ports of these servers (one call).
pub(crate) async fn ports_of(
    s: &Session,
    device_ids: &[String],
) -> Result<Vec<Value>, ProviderError> {
    if device_ids.is_empty() {
        return Ok(Vec::new());
    }
    let query: Vec<String> = device_ids
        .iter()
        .map(|d| format!("device_id={}", q(d)))
        .collect();
    s.list(
        Service::Network,
        &format!("/ports?{}", query.join("&")),
        "ports",
    )
    .await
    .map_err(|e| e.into_provider("ports of the servers"))
}

/// Deletes those of the floating IPs `all` that are named for `hosts` (or on `ports`).
/// NotFound is done. Returns their IDs.
pub(crate) async fn delete_floating_ips(
    cx: &Ctx<'_>,
    all: &[Value],
    hosts: &[String],
    ports: &[String],
) -> Result<Vec<String>, ProviderError> {
    let mut done = Vec::new();
    let descs: Vec<String> = hosts
        .iter()
        .map(|h| acura_ha_api::targets::openstack::fip_description(cx.spec, h))
        .collect();
    // Another state's floating IP (its lineage tag) has the same description: never ours.
    for f in all.iter().filter(|f| {
        (descs.contains(&js(f, "description")) || ports.contains(&js(f, "port_id")))
            && !crate::another_lineage(cx.spec, f)
    }) {
        let id = js(f, "id");
        cx.progress(&format!(
            "release floating IP {}",
            js(f, "floating_ip_address")
        ));
        cx.s.delete(Service::Network, &format!("/floatingips/{id}"))
            .await
            .map_err(|e| e.into_provider(&format!("floating IP {id}")))?;
        done.push(id);
    }
    Ok(done)
}

/// Deletes the group, retrying `SecurityGroupInUse` while ports are released.
pub(crate) async fn delete_group(cx: &Ctx<'_>, id: &str) -> Result<(), ProviderError> {
    cx.progress(&format!("delete security group {id}"));
    let started = std::time::Instant::now();
    // The waits' schedule: soon, then backing off (crate::wait).
    let mut delays = cx.pace.delays(started);
    loop {
        match cx
            .s
            .delete(Service::Network, &format!("/security-groups/{id}"))
            .await
        {
            Ok(()) => return Ok(()),
            Err(e) if e.conflict() && started.elapsed() < Duration::from_secs(300) => {
                tokio::time::sleep(delays.next().unwrap_or(cx.pace.max)).await;
            }
            Err(e) => return Err(e.into_provider(&format!("security group {id}"))),
        }
    }
}

/// The group and the floating IPs of the cluster; and the project's floating IPs.
pub(crate) async fn discover(
    s: &Session,
    spec: &ClusterSpec,
) -> Result<(Vec<Recorded>, Vec<Value>, bool), ProviderError> {
    let mut out = Vec::new();
    let name = cloud_name(spec);
    let groups = async {
        s.list(
            Service::Network,
            &format!("/security-groups?name={}", q(&name)),
            "security_groups",
        )
        .await
        .map_err(|e| e.into_provider("security groups of the cluster"))
    };
    let (v, fips) = tokio::try_join!(groups, floating_ips(s))?;
    let foreign = v
        .iter()
        .any(|g| js(g, "name") == name && crate::another_lineage(spec, g));
    for g in &v {
        if js(g, "name") == name && !crate::another_lineage(spec, g) {
            out.push(Recorded::found(
                "security_group".into(),
                Kind::SecurityGroup,
                name.clone(),
                js(g, "id"),
                BTreeMap::new(),
            ));
        }
    }
    let prefix = format!("acura-ha {} ", spec.cluster.name);
    // Another state's floating IPs (by their lineage tag) are not found, nor deleted.
    let fips: Vec<Value> = fips
        .into_iter()
        .filter(|f| !crate::another_lineage(spec, f))
        .collect();
    for f in &fips {
        let d = js(f, "description");
        if let Some(host) = d.strip_prefix(&prefix) {
            let key = if host == "load-balancer" {
                "lb".to_string()
            } else {
                host.to_string()
            };
            out.push(Recorded::found(
                format!("floating_ip[{key}]"),
                Kind::FloatingIp,
                d.clone(),
                js(f, "id"),
                BTreeMap::new(),
            ));
        }
    }
    Ok((out, fips, foreign))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_is_labelled_proto_ports_from_source() {
        let one = json!({"protocol": "tcp", "port_range_min": 22, "port_range_max": 22,
                         "remote_ip_prefix": "0.0.0.0/0"});
        assert_eq!(rule_label(&one), "tcp 22 from 0.0.0.0/0");
        let range = json!({"protocol": "tcp", "port_range_min": 30080, "port_range_max": 30082,
                           "remote_group_id": "g1"});
        assert_eq!(rule_label(&range), "tcp 30080-30082 from group g1");
        assert_eq!(rule_source(&range), "group g1");
        let any = json!({"protocol": null, "port_range_min": null, "port_range_max": null});
        assert_eq!(rule_label(&any), "any all from any");
    }
}
