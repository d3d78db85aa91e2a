//! Nova: flavor check, key pair, server group, servers booted from new volumes (batched waits),
//! their floating IPs, teardown, discovery and the janitor's listing.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use acura_ha_api::desired::cloud_name;
use acura_ha_api::inventory::OUTPUT_ADDRESS;
use acura_ha_api::model::{Kind, Recorded, Resource, Status};
use acura_ha_api::provider::ProviderError;
use acura_ha_api::spec::{ClusterSpec, LbKind, TAG_CLUSTER, TAG_MANAGED_BY, TAG_ROLE};
use base64::Engine;
use serde_json::{Value, json};

use crate::client::{ApiError, Service, Session, q};
use crate::image::Image;
use crate::network::Net;
use crate::{Ctx, Seen, cluster_tag, desired_one, js, tag_strings};

pub(crate) struct Flavor {
    pub id: String,
    pub name: String,
    pub vcpus: u32,
    pub ram_mb: u64,
}

/// What is looked up before anything is created.
pub(crate) struct Lookups {
    pub flavor: Flavor,
    pub lb_flavor: Option<Flavor>,
    pub image: Image,
    pub net: Net,
    /// The external network of floating IPs.
    pub fip_net: Option<String>,
    /// The project's floating IPs (with `floating_ip_network` only), read once: each branch
    /// finds its own there (a server's by its port, the load balancer's by its VIP port).
    pub fips: Vec<Value>,
    /// The project's load balancers (Octavia and `load_balancer.kind = "cloud"` only): the
    /// quota's use and the cluster's own, from one list call.
    pub lbs: Option<Vec<Value>>,
}

/// Servers asked for (or adopted): name → ID, and when the creates were sent.
pub(crate) struct Created {
    pub ids: BTreeMap<String, String>,
    pub started: std::time::Instant,
    /// Whether any was created (not only adopted) by this run.
    pub built: bool,
}

/// The flavor by ID or name from the flavors of `GET /flavors/detail` (every page).
pub(crate) fn pick_flavor(list: &[Value], want: &str) -> Option<Flavor> {
    let f = list
        .iter()
        .find(|f| js(f, "id") == want)
        .or_else(|| list.iter().find(|f| js(f, "name") == want))?;
    Some(Flavor {
        id: js(f, "id"),
        name: js(f, "name"),
        vcpus: f["vcpus"].as_u64().unwrap_or(0) as u32,
        ram_mb: f["ram"].as_u64().unwrap_or(0),
    })
}

/// The guide's minimums (or the file's relaxed ones) against a flavor.
pub(crate) fn check_flavor(spec: &ClusterSpec, f: &Flavor) -> Result<(), ProviderError> {
    let min = spec.minimums();
    if f.vcpus < min.vcpus || f.ram_mb < u64::from(min.ram_gb) * 1024 {
        return Err(ProviderError::Cloud {
            resource: format!("openstack.flavor = {}", f.name),
            message: format!(
                "{} vCPU and {:.1} GiB: the guide asks for at least {} vCPU and {} GiB; choose a larger flavor (`openstack flavor list`)",
                f.vcpus,
                f.ram_mb as f64 / 1024.0,
                min.vcpus,
                min.ram_gb
            ),
            request_id: None,
        });
    }
    Ok(())
}

pub(crate) async fn lookups(cx: &Ctx<'_>) -> Result<Lookups, ProviderError> {
    let os = cx.spec.openstack.as_ref().expect("openstack section");
    let s = cx.s;
    let flavors = async {
        s.list(Service::Compute, "/flavors/detail", "flavors")
            .await
            .map_err(|e| e.into_provider("flavors"))
    };
    // The nodes' network and the floating IPs' network: one list call for both names.
    let networks = async {
        let mut names = vec![os.network.as_str()];
        names.extend(os.floating_ip_network.as_deref());
        let listed = crate::network::named_networks(s, &names).await?;
        let net = crate::network::network(s, cx.spec, &listed).await?;
        let fip_net = match &os.floating_ip_network {
            Some(n) => Some(js(
                &crate::network::pick_network(s, &listed, n, "openstack.floating_ip_network")
                    .await?,
                "id",
            )),
            None => None,
        };
        Ok::<_, ProviderError>((net, fip_net))
    };
    let lbs = async {
        if cx.spec.load_balancer.kind == LbKind::Cloud && s.has(Service::LoadBalancer) {
            let v = s
                .list(
                    Service::LoadBalancer,
                    "/lbaas/loadbalancers",
                    "loadbalancers",
                )
                .await
                .map_err(|e| e.into_provider("load balancers"))?;
            Ok::<_, ProviderError>(Some(v))
        } else {
            Ok(None)
        }
    };
    // The project's floating IPs, to adopt those of ours (none can be with a new lineage).
    let fips = async {
        match &os.floating_ip_network {
            Some(_) if !cx.spec.lineage_new => crate::network::floating_ips(s).await,
            _ => Ok(Vec::new()),
        }
    };
    let (flavors, image, (net, fip_net), lbs, fips) = tokio::try_join!(
        flavors,
        crate::image::image(s, &os.image),
        networks,
        lbs,
        fips
    )?;
    let flavor = pick_flavor(&flavors, &os.flavor).ok_or_else(|| ProviderError::Cloud {
        resource: format!("openstack.flavor = {}", os.flavor),
        message: "no such flavor (see `openstack flavor list`)".into(),
        request_id: None,
    })?;
    check_flavor(cx.spec, &flavor)?;
    let lb_flavor = match (&os.lb_flavor, cx.spec.load_balancer.kind) {
        (Some(name), LbKind::Nginx) => {
            Some(
                pick_flavor(&flavors, name).ok_or_else(|| ProviderError::Cloud {
                    resource: format!("openstack.lb_flavor = {name}"),
                    message: "no such flavor (see `openstack flavor list`)".into(),
                    request_id: None,
                })?,
            )
        }
        _ => None,
    };
    if image.min_disk_gb > u64::from(cx.spec.nodes.volume_size_gb) {
        return Err(ProviderError::Cloud {
            resource: format!("openstack.image = {}", image.name),
            message: format!(
                "needs a {} GB disk, more than nodes.volume_size_gb = {}",
                image.min_disk_gb, cx.spec.nodes.volume_size_gb
            ),
            request_id: None,
        });
    }
    Ok(Lookups {
        flavor,
        lb_flavor,
        image,
        net,
        fip_net,
        fips,
        lbs,
    })
}

fn is_ours(spec: &ClusterSpec, v: &Value) -> bool {
    let tag = cluster_tag(spec);
    v["metadata"][TAG_CLUSTER] == json!(spec.cluster.name)
        || v["tags"]
            .as_array()
            .is_some_and(|t| t.iter().any(|x| x == &json!(tag)))
}

async fn list_servers(s: &Session, spec: &ClusterSpec) -> Result<Vec<Value>, ApiError> {
    let v = s
        .list(
            Service::Compute,
            &format!("/servers/detail?tags={}", q(&cluster_tag(spec))),
            "servers",
        )
        .await?;
    Ok(v.into_iter()
        .filter(|sv| is_ours(spec, sv) && js(sv, "status") != "DELETED")
        .collect())
}

/// The cluster's servers by name (one call).
pub(crate) async fn cluster_servers(
    cx: &Ctx<'_>,
) -> Result<BTreeMap<String, Value>, ProviderError> {
    Ok(list_servers(cx.s, cx.spec)
        .await
        .map_err(|e| e.into_provider("servers of the cluster"))?
        .into_iter()
        .map(|sv| (js(&sv, "name"), sv))
        .collect())
}

/// The key pair of that name (`{"keypair": …}`), or none.
async fn find_key_pair(s: &Session, name: &str) -> Result<Option<Value>, ApiError> {
    match s
        .get(Service::Compute, &format!("/os-keypairs/{}", q(name)))
        .await
    {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// The cluster file's `openstack.public_key_file`: its path and its key (trimmed).
fn public_key(cx: &Ctx<'_>) -> Result<(PathBuf, String), ProviderError> {
    let os = cx.spec.openstack.as_ref().expect("openstack section");
    let file = os.public_key_file.as_deref().unwrap_or_default();
    let path = acura_ha_api::paths::resolve(cx.base_dir, file);
    let key = std::fs::read_to_string(&path).map_err(|e| ProviderError::Cloud {
        resource: format!("openstack.public_key_file = {}", path.display()),
        message: e.to_string(),
        request_id: None,
    })?;
    Ok((path, key.trim().to_string()))
}

/// The key pair the servers use: the file's existing one, or the imported public key.
pub(crate) async fn key_pair(cx: &Ctx<'_>, desired: &[Resource]) -> Result<String, ProviderError> {
    let os = cx.spec.openstack.as_ref().expect("openstack section");
    let r = desired_one(desired, "key_pair").expect("planned");
    let s = cx.s;
    let get = |name: String| async move { find_key_pair(s, &name).await };
    if let Some(name) = &os.key_name {
        return match get(name.clone())
            .await
            .map_err(|e| e.into_provider(&r.address))?
        {
            Some(_) => Ok(name.clone()),
            None => Err(ProviderError::Cloud {
                resource: format!("openstack.key_name = {name}"),
                message: "no such key pair in this project (see `openstack keypair list`)".into(),
                request_id: None,
            }),
        };
    }
    let (path, public_key) = public_key(cx)?;
    let name = r.name.clone();
    let mut outputs = BTreeMap::new();
    outputs.insert("imported".to_string(), "true".to_string());
    // An existing key pair of that name must hold the same public key.
    let check_same = |existing: &Value| {
        let have = js(&existing["keypair"], "public_key");
        if !have.is_empty() && !same_public_key(&have, &public_key) {
            return Err(ProviderError::Cloud {
                resource: format!("key pair {name}"),
                message: format!(
                    "exists with another public key than {}: delete it or set openstack.key_name",
                    path.display()
                ),
                request_id: None,
            });
        }
        Ok(())
    };
    // Recorded: read it back. Not recorded: import it at once (one request instead of a read
    // first, issue 12); Nova answers 409 when the name is taken, and that one is then read.
    let existing = if cx.recorded(&r.address).await.is_some() {
        get(name.clone())
            .await
            .map_err(|e| e.into_provider(&r.address))?
    } else {
        None
    };
    match existing {
        Some(existing) => check_same(&existing)?,
        None => {
            cx.record(r, Status::Creating, None, outputs.clone())
                .await?;
            cx.progress(&format!("import key pair {name}"));
            let body = json!({"keypair": {"name": name, "public_key": public_key, "type": "ssh"}});
            match s
                .create(
                    Service::Compute,
                    "/os-keypairs",
                    &body,
                    || get(name.clone()),
                )
                .await
            {
                // What the answer holds (or, after a lost answer, what was found by the name)
                // must be our key: a key pair of somebody's found after a 5xx is not ours.
                Ok(v) => {
                    if let Err(other) = check_same(&v) {
                        cx.forget(&r.address).await?;
                        return Err(other);
                    }
                }
                Err(e) if e.conflict() => {
                    let existing = match get(name.clone()).await {
                        Ok(Some(existing)) => existing,
                        Ok(None) => {
                            cx.forget(&r.address).await?;
                            return Err(e.into_provider(&r.address));
                        }
                        Err(read) => {
                            cx.forget(&r.address).await?;
                            return Err(read.into_provider(&r.address));
                        }
                    };
                    if let Err(other) = check_same(&existing) {
                        // Somebody's own key pair: not ours to record (nor to delete).
                        cx.forget(&r.address).await?;
                        return Err(other);
                    }
                }
                Err(e) => return Err(e.into_provider(&r.address)),
            }
        }
    }
    cx.record(r, Status::Ready, Some(name.clone()), outputs)
        .await?;
    Ok(name)
}

async fn find_group(s: &Session, name: &str) -> Result<Option<Value>, ApiError> {
    // Nova filters server groups by nothing but the project: every page, then the name.
    let v = s
        .list_by_offset(Service::Compute, "/os-server-groups", "server_groups")
        .await?;
    Ok(v.into_iter().find(|g| js(g, "name") == name))
}

/// The anti-affinity server group (adopted by name, or created). Returns its ID.
pub(crate) async fn server_group(
    cx: &Ctx<'_>,
    desired: &[Resource],
) -> Result<String, ProviderError> {
    let r = desired_one(desired, "server_group").expect("planned");
    let s = cx.s;
    // Adopted by name, except by a run whose lineage is new: nothing of it can exist yet.
    let found = if cx.spec.lineage_new {
        None
    } else {
        find_group(s, &r.name)
            .await
            .map_err(|e| e.into_provider(&r.address))?
    };
    let g = match found {
        Some(g) => g,
        None => {
            cx.record(r, Status::Creating, None, BTreeMap::new())
                .await?;
            cx.progress(&format!("create server group {}", r.name));
            let policy = r.attrs.get("policy").cloned().unwrap_or_default();
            let body = json!({"server_group": {"name": r.name, "policy": policy}});
            let v = s
                .create(Service::Compute, "/os-server-groups", &body, || {
                    find_group(s, &r.name)
                })
                .await
                .map_err(|e| e.into_provider(&r.address))?;
            v.get("server_group").cloned().unwrap_or(v)
        }
    };
    let id = js(&g, "id");
    cx.record(r, Status::Ready, Some(id.clone()), BTreeMap::new())
        .await?;
    Ok(id)
}

fn user_data(hostname: &str) -> String {
    // The guide wants short hostnames (no dots) that the inventory can name.
    let cloud_config = format!(
        "#cloud-config\nhostname: {hostname}\nfqdn: {hostname}\nprefer_fqdn_over_hostname: false\nmanage_etc_hosts: true\n"
    );
    base64::engine::general_purpose::STANDARD.encode(cloud_config)
}

/// The fixed IPv4 address of a server on `net` (any network if that one is not listed).
pub(crate) fn fixed_ip(server: &Value, net: &str) -> Option<String> {
    let addrs = server["addresses"].as_object()?;
    let pick = |list: &Value| {
        list.as_array()?
            .iter()
            .filter(|a| a["OS-EXT-IPS:type"].as_str().is_none_or(|t| t == "fixed"))
            .find(|a| a["version"].as_u64() != Some(6))
            .map(|a| js(a, "addr"))
    };
    addrs
        .get(net)
        .and_then(pick)
        .or_else(|| addrs.values().find_map(pick))
}

/// Servers: nodes and the NGINX VM, adopted by name and tag, else recorded and created. An
/// adopted server the listing shows SHUTOFF (stopped outside the tool) is started (same ID, its
/// records kept). [`finish_servers`] waits for them.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn create_servers(
    cx: &Ctx<'_>,
    desired: &[Resource],
    look: &Lookups,
    existing: &BTreeMap<String, Value>,
    key_name: &str,
    sg: &(String, String),
    group: &str,
    ports: &BTreeMap<String, crate::ports::Port>,
) -> Result<Created, ProviderError> {
    let s = cx.s;
    let spec = cx.spec;
    let wanted: Vec<&Resource> = desired
        .iter()
        .filter(|r| matches!(r.kind, Kind::Instance | Kind::LbInstance))
        .collect();
    let started = std::time::Instant::now();
    let built = wanted.iter().any(|r| !existing.contains_key(&r.name));
    let creates = wanted.iter().map(|r| async move {
        if let Some(sv) = existing.get(&r.name) {
            let id = js(sv, "id");
            if js(sv, "status") == "SHUTOFF" {
                start_server(cx, &r.name, &id)
                    .await
                    .map_err(|e| e.into_provider(&r.address))?;
            }
            return Ok::<_, ProviderError>((r.name.clone(), id));
        }
        let port = ports.get(&r.name);
        let outputs = crate::ports::server_outputs(port);
        cx.record(r, Status::Creating, None, outputs.clone())
            .await?;
        let (flavor, size, role) = match r.kind {
            Kind::LbInstance => (look.lb_flavor.as_ref().unwrap_or(&look.flavor), 20, "lb"),
            _ => (&look.flavor, spec.nodes.volume_size_gb, "node"),
        };
        let metadata: serde_json::Map<String, Value> = spec
            .cloud_tags(role)
            .into_iter()
            .map(|(k, v)| (k, json!(v)))
            .collect();
        let mut body = json!({
            "server": {
                "name": r.name,
                "flavorRef": flavor.id,
                "key_name": key_name,
                "security_groups": [{"name": sg.1}],
                "networks": [{"uuid": look.net.id}],
                "user_data": user_data(&r.name),
                "metadata": metadata,
                "tags": tag_strings(spec, role),
                "block_device_mapping_v2": [{
                    "uuid": look.image.id,
                    "source_type": "image",
                    "destination_type": "volume",
                    "boot_index": 0,
                    "volume_size": size,
                    "delete_on_termination": true
                }]
            },
            "OS-SCH-HNT:scheduler_hints": {"group": group}
        });
        // On its own port the server is in the port's group (Nova applies `security_groups`
        // only to ports it makes itself).
        if let Some(p) = port {
            body["server"]["networks"] = json!([{ "port": p.id }]);
            if let Some(o) = body["server"].as_object_mut() {
                o.remove("security_groups");
            }
        }
        cx.progress(&format!(
            "create server {} ({}, {size} GB volume from {})",
            r.name, flavor.name, look.image.name
        ));
        let name = r.name.clone();
        let v = s
            .create(Service::Compute, "/servers", &body, || {
                let name = name.clone();
                async move {
                    Ok(list_servers(s, spec)
                        .await?
                        .into_iter()
                        .find(|sv| js(sv, "name") == name)
                        .map(|sv| json!({ "server": sv })))
                }
            })
            .await
            .map_err(|e| e.into_provider(&r.address))?;
        let id = js(&v["server"], "id");
        cx.record(r, Status::Creating, Some(id.clone()), outputs)
            .await?;
        Ok((r.name.clone(), id))
    });
    let ids: BTreeMap<String, String> = futures::future::try_join_all(creates)
        .await?
        .into_iter()
        .collect();
    Ok(Created {
        ids,
        started,
        built,
    })
}

/// Starts a server stopped outside the tool (Nova's `os-start`); [`wait_active`] then waits for
/// it like the others. A 409 (it is no longer SHUTOFF: started meanwhile, or busy) is looked at
/// once: ACTIVE is done, anything else the caller's error.
async fn start_server(cx: &Ctx<'_>, name: &str, id: &str) -> Result<(), ApiError> {
    cx.progress(&format!("start server {name} (stopped outside acura-ha)"));
    let path = format!("/servers/{}/action", q(id));
    match cx
        .s
        .send(
            reqwest::Method::POST,
            Service::Compute,
            &path,
            &json!({ "os-start": null }),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.status == Some(409) => {
            let now =
                cx.s.get(Service::Compute, &format!("/servers/{}", q(id)))
                    .await?;
            if js(&now["server"], "status") == "ACTIVE" {
                Ok(())
            } else {
                Err(e)
            }
        }
        Err(e) => Err(e),
    }
}

/// One list call per poll until every server is ACTIVE; then floating IPs; then the records.
/// Returns the nodes' name → fixed IP.
pub(crate) async fn finish_servers(
    cx: &Ctx<'_>,
    desired: &[Resource],
    look: &Lookups,
    created: &Created,
) -> Result<BTreeMap<String, String>, ProviderError> {
    let s = cx.s;
    let spec = cx.spec;
    let ids = &created.ids;
    let wanted: Vec<&Resource> = desired
        .iter()
        .filter(|r| matches!(r.kind, Kind::Instance | Kind::LbInstance))
        .collect();
    let active = wait_active(cx, created).await?;
    // Floating IPs: the project's floating IPs as the lookups read them (one list call a
    // run), and each server's port from its record (made by `ports::ensure`); one port list
    // for the servers without one (the NGINX VM, servers adopted from before ports).
    let mut fips: BTreeMap<String, String> = BTreeMap::new();
    if let Some(ext) = &look.fip_net {
        let mut port_of: BTreeMap<String, String> = BTreeMap::new();
        for name in ids.keys() {
            let address = wanted
                .iter()
                .find(|r| r.name == *name)
                .map(|r| r.address.clone())
                .unwrap_or_default();
            if let Some(p) = cx
                .recorded(&address)
                .await
                .and_then(|x| x.outputs.get(crate::ports::OUTPUT_PORT).cloned())
            {
                port_of.insert(name.clone(), p);
            }
        }
        let unknown: Vec<String> = ids
            .iter()
            .filter(|(name, _)| !port_of.contains_key(*name))
            .map(|(_, id)| id.clone())
            .collect();
        for p in crate::network::ports_of(s, &unknown).await? {
            if let Some((name, _)) = ids.iter().find(|(_, id)| **id == js(&p, "device_id")) {
                port_of.insert(name.clone(), js(&p, "id"));
            }
        }
        let known = &look.fips;
        for (name, port) in &port_of {
            let key = format!("floating_ip[{name}]");
            let fr = acura_ha_api::targets::openstack::floating_ip(spec, name);
            if !known.iter().any(|f| js(f, "port_id") == *port) {
                cx.record(&fr, Status::Creating, None, BTreeMap::new())
                    .await?;
            }
            let f = crate::network::ensure_floating_ip(cx, ext, port, name, known).await?;
            let mut out = BTreeMap::new();
            out.insert(OUTPUT_ADDRESS.to_string(), js(&f, "floating_ip_address"));
            cx.record(&fr, Status::Ready, Some(js(&f, "id")), out)
                .await?;
            debug_assert_eq!(fr.address, key);
            fips.insert(name.clone(), js(&f, "floating_ip_address"));
        }
    }
    let mut fixed = BTreeMap::new();
    for r in &wanted {
        let id = &ids[&r.name];
        let sv = &active[id];
        let ip = fixed_ip(sv, &look.net.name).unwrap_or_default();
        let mut outputs = BTreeMap::new();
        outputs.insert("fixed_ip".to_string(), ip.clone());
        let address = fips.get(&r.name).cloned().unwrap_or_else(|| ip.clone());
        if let Some(f) = fips.get(&r.name) {
            outputs.insert("floating_ip".to_string(), f.clone());
        }
        outputs.insert(OUTPUT_ADDRESS.to_string(), address);
        let volumes: Vec<String> = sv["os-extended-volumes:volumes_attached"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| js(v, "id"))
            .collect();
        if !volumes.is_empty() {
            outputs.insert("volumes".to_string(), volumes.join(","));
        }
        let port = cx
            .recorded(&r.address)
            .await
            .and_then(|x| x.outputs.get(crate::ports::OUTPUT_PORT).cloned());
        if let Some(port) = port {
            outputs.insert(crate::ports::OUTPUT_PORT.to_string(), port);
        }
        cx.record(r, Status::Ready, Some(id.clone()), outputs)
            .await?;
        if r.kind == Kind::Instance {
            fixed.insert(r.name.clone(), ip);
        }
    }
    Ok(fixed)
}

/// One list call per poll until every server is ACTIVE; ERROR fails with the server's fault.
async fn wait_active(
    cx: &Ctx<'_>,
    created: &Created,
) -> Result<BTreeMap<String, Value>, ProviderError> {
    let s = cx.s;
    let ids = &created.ids;
    // A build is remembered (a start of stopped servers alone is another transition).
    let learn = created
        .built
        .then(|| cx.learn(Service::Compute, "servers ACTIVE after create"))
        .flatten();
    crate::wait::transition(
        "servers ACTIVE",
        Duration::from_secs(1200),
        cx.pace,
        cx.quiet,
        created.started,
        learn,
        || async {
            let list = list_servers(s, cx.spec)
                .await
                .map_err(|e| e.into_provider("servers of the cluster"))?;
            let by_id: BTreeMap<String, Value> =
                list.into_iter().map(|sv| (js(&sv, "id"), sv)).collect();
            let mut waiting = Vec::new();
            for (name, id) in ids {
                match by_id.get(id).map(|sv| js(sv, "status")).as_deref() {
                    Some("ACTIVE") => {}
                    Some("ERROR") => {
                        let sv = &by_id[id];
                        return Err(ProviderError::Cloud {
                            resource: format!("instance[{name}] ({id})"),
                            message: format!(
                                "went to ERROR: {}",
                                sv["fault"]["message"]
                                    .as_str()
                                    .unwrap_or("no fault message")
                            ),
                            request_id: None,
                        });
                    }
                    Some(other) => waiting.push(format!("{name} {other}")),
                    None => waiting.push(format!("{name} not listed yet")),
                }
            }
            Ok(if waiting.is_empty() {
                Ok(by_id)
            } else {
                Err(waiting.join(", "))
            })
        },
    )
    .await
}

/// Deletes servers by ID and waits until none is listed; then their leftover volumes.
async fn delete_servers(
    cx: &Ctx<'_>,
    victims: &[(String, String, Vec<String>)],
) -> Result<(), ProviderError> {
    let s = cx.s;
    if victims.is_empty() {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let deletes = victims.iter().map(|(name, id, _)| async move {
        cx.progress(&format!("delete server {name}"));
        s.delete(Service::Compute, &format!("/servers/{id}"))
            .await
            .map_err(|e| e.into_provider(&format!("server {name} ({id})")))
    });
    futures::future::try_join_all(deletes).await?;
    let ids: Vec<String> = victims.iter().map(|v| v.1.clone()).collect();
    crate::wait::transition(
        "servers deleted",
        Duration::from_secs(900),
        cx.pace,
        cx.quiet,
        started,
        cx.learn(Service::Compute, "servers deleted"),
        || async {
            let list = list_servers(s, cx.spec)
                .await
                .map_err(|e| e.into_provider("servers of the cluster"))?;
            let left: Vec<String> = list
                .iter()
                .filter(|sv| ids.contains(&js(sv, "id")))
                .map(|sv| js(sv, "name"))
                .collect();
            Ok(if left.is_empty() {
                Ok(())
            } else {
                Err(left.join(", "))
            })
        },
    )
    .await?;
    // Volumes attached with delete_on_termination went with their servers.
    let volumes: Vec<String> = victims
        .iter()
        .flat_map(|v| v.2.clone())
        .filter(|v| !v.ends_with(DELETED_WITH_SERVER))
        .collect();
    crate::volume::delete_leftovers(s, &volumes, cx.quiet).await
}

/// Marks a volume ID (in [`volumes_of`]) that Nova deletes with its server.
const DELETED_WITH_SERVER: &str = "+dot";

fn volumes_of(server: Option<&Value>, rec: &Recorded) -> Vec<String> {
    let mut out: Vec<String> = rec
        .outputs
        .get("volumes")
        .map(|v| {
            v.split(',')
                .filter(|x| !x.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    if let Some(sv) = server {
        for v in sv["os-extended-volumes:volumes_attached"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let id = js(v, "id");
            out.retain(|x| *x != id);
            if v["delete_on_termination"] == json!(true) {
                out.push(format!("{id}{DELETED_WITH_SERVER}"));
            } else {
                out.push(id);
            }
        }
    }
    out
}

/// Day 2: the named nodes' floating IPs and servers (volumes go with them), forgotten as done.
pub(crate) async fn remove_servers(cx: &Ctx<'_>, names: &[String]) -> Result<(), ProviderError> {
    let live = cluster_servers(cx).await?;
    let all = cx.all().await;
    let mut victims = Vec::new();
    for name in names {
        let address = format!("instance[{name}]");
        let rec = all.iter().find(|r| r.address == address);
        let sv = live.get(name);
        let id = sv
            .map(|v| js(v, "id"))
            .or_else(|| rec.and_then(|r| r.id.clone()));
        if let Some(id) = id {
            let vols = rec.map(|r| volumes_of(sv, r)).unwrap_or_else(|| {
                volumes_of(
                    sv,
                    &Recorded::found(
                        String::new(),
                        Kind::Instance,
                        String::new(),
                        String::new(),
                        BTreeMap::new(),
                    ),
                )
            });
            victims.push((name.clone(), id, vols));
        }
    }
    let ports = crate::network::ports_of(
        cx.s,
        &victims.iter().map(|v| v.1.clone()).collect::<Vec<_>>(),
    )
    .await?;
    let port_ids: Vec<String> = ports.iter().map(|p| js(p, "id")).collect();
    let fips = crate::network::floating_ips(cx.s).await?;
    crate::network::delete_floating_ips(cx, &fips, names, &port_ids).await?;
    for name in names {
        cx.forget(&format!("floating_ip[{name}]")).await?;
    }
    delete_servers(cx, &victims).await?;
    crate::ports::delete(cx, names).await?;
    for name in names {
        cx.forget(&format!("instance[{name}]")).await?;
    }
    Ok(())
}

/// Floating IPs and servers (waited for, leftover volumes after them), from the lists `seen`
/// read: the first half of destroying, beside the load balancer's. NotFound is done.
pub(crate) async fn destroy_servers(cx: &Ctx<'_>, seen: &Seen) -> Result<(), ProviderError> {
    let all = cx.all().await;
    let live = &seen.servers;
    let servers: Vec<&Recorded> = all
        .iter()
        .filter(|r| matches!(r.kind, Kind::Instance | Kind::LbInstance))
        .collect();
    let mut victims = Vec::new();
    for r in &servers {
        let sv = live.get(&r.name);
        let id = r.id.clone().or_else(|| sv.map(|v| js(v, "id")));
        if let Some(id) = id {
            victims.push((r.name.clone(), id, volumes_of(sv, r)));
        }
    }
    // Servers the state does not name but the tags do.
    for (name, sv) in live {
        let id = js(sv, "id");
        if !victims.iter().any(|v| v.1 == id) {
            let empty = Recorded::found(
                String::new(),
                Kind::Instance,
                String::new(),
                String::new(),
                BTreeMap::new(),
            );
            victims.push((name.clone(), id, volumes_of(Some(sv), &empty)));
        }
    }
    let hosts: Vec<String> = victims.iter().map(|v| v.0.clone()).collect();
    // Ours carry the cluster's description; others on our servers' ports are found by port
    // (only looked up when some floating IP is on a port and not named for a host of ours).
    let descs: Vec<String> = hosts
        .iter()
        .map(|h| acura_ha_api::targets::openstack::fip_description(cx.spec, h))
        .chain([acura_ha_api::targets::openstack::fip_description(
            cx.spec,
            "load-balancer",
        )])
        .collect();
    let foreign = seen
        .fips
        .iter()
        .any(|f| !f["port_id"].is_null() && !descs.contains(&js(f, "description")));
    let port_ids: Vec<String> = if foreign {
        crate::network::ports_of(
            cx.s,
            &victims.iter().map(|v| v.1.clone()).collect::<Vec<_>>(),
        )
        .await?
        .iter()
        .map(|p| js(p, "id"))
        .collect()
    } else {
        Vec::new()
    };
    let released = crate::network::delete_floating_ips(cx, &seen.fips, &hosts, &port_ids).await?;
    for r in all.iter().filter(|r| r.kind == Kind::FloatingIp) {
        if r.address == "floating_ip[lb]" {
            // The load balancer's: released with it (found by discovery); only forgotten here.
            cx.forget(&r.address).await?;
            continue;
        }
        if let Some(id) = &r.id
            && !released.contains(id)
        {
            cx.s.delete(Service::Network, &format!("/floatingips/{id}"))
                .await
                .map_err(|e| e.into_provider(&r.address))?;
        }
        cx.forget(&r.address).await?;
    }
    delete_servers(cx, &victims).await?;
    // Their ports, and a port made for a server that never was (a run stopped in between) —
    // unless another state's cluster of the same name is here: its servers' ports carry the
    // same names (#9.4).
    let mut names = hosts.clone();
    if !seen.foreign {
        names.extend(cx.spec.node_names());
        if cx.spec.load_balancer.kind == LbKind::Nginx {
            names.push(cx.spec.lb_host_name());
        }
    }
    names.sort();
    names.dedup();
    crate::ports::delete(cx, &names).await?;
    for r in &servers {
        cx.forget(&r.address).await?;
    }
    Ok(())
}

/// Server group, security group, key pair: the second half of destroying. NotFound is done.
/// `foreign`: another state's cluster of the same name is in the project, so the imported key
/// pair (known only by its name, which both share) is left to it.
pub(crate) async fn destroy_rest(cx: &Ctx<'_>, foreign: bool) -> Result<(), ProviderError> {
    let all = cx.all().await;
    for r in all.iter().filter(|r| r.kind == Kind::ServerGroup) {
        let id = match &r.id {
            Some(id) => Some(id.clone()),
            None => find_group(cx.s, &r.name)
                .await
                .map_err(|e| e.into_provider(&r.address))?
                .map(|g| js(&g, "id")),
        };
        if let Some(id) = id {
            cx.progress(&format!("delete server group {}", r.name));
            cx.s.delete(Service::Compute, &format!("/os-server-groups/{id}"))
                .await
                .map_err(|e| e.into_provider(&r.address))?;
        }
        cx.forget(&r.address).await?;
    }
    for r in all.iter().filter(|r| r.kind == Kind::SecurityGroupRule) {
        cx.forget(&r.address).await?;
    }
    for r in all.iter().filter(|r| r.kind == Kind::SecurityGroup) {
        let ids: Vec<String> = match &r.id {
            Some(id) => vec![id.clone()],
            None => crate::network::discover(cx.s, cx.spec)
                .await?
                .0
                .into_iter()
                .filter(|d| d.kind == Kind::SecurityGroup)
                .filter_map(|d| d.id)
                .collect(),
        };
        for id in ids {
            crate::network::delete_group(cx, &id).await?;
        }
        cx.forget(&r.address).await?;
    }
    // The imported key pair has the cluster's name: deleted by name (NotFound is done) when
    // recorded Ready, or (a create not finished, a lost state) when it holds the cluster file's
    // public key (one with another key was refused by `up`, never recorded: somebody's). One
    // named by `openstack.key_name` is the user's.
    let os = cx.spec.openstack.as_ref().expect("openstack section");
    let recorded: Vec<&Recorded> = all.iter().filter(|r| r.kind == Kind::KeyPair).collect();
    let ready = !recorded.is_empty() && recorded.iter().all(|r| r.status == Status::Ready);
    if os.key_name.is_none() && !foreign && (ready || holds_our_key(cx).await) {
        let name = cloud_name(cx.spec);
        cx.progress(&format!("delete key pair {name}"));
        cx.s.delete(Service::Compute, &format!("/os-keypairs/{}", q(&name)))
            .await
            .map_err(|e| e.into_provider("key_pair"))?;
    }
    for r in recorded {
        cx.forget(&r.address).await?;
    }
    Ok(())
}

/// Whether the key pair under the cluster's name holds the cluster file's public key (false
/// when either cannot be read: then it is left alone).
async fn holds_our_key(cx: &Ctx<'_>) -> bool {
    let os = cx.spec.openstack.as_ref().expect("openstack section");
    if os.public_key_file.is_none() {
        return false;
    }
    let Ok((_, ours)) = public_key(cx) else {
        return false;
    };
    match find_key_pair(cx.s, &cloud_name(cx.spec)).await {
        Ok(Some(v)) => same_public_key(&js(&v["keypair"], "public_key"), &ours),
        // None there: the DELETE's NotFound says so.
        Ok(None) => true,
        Err(_) => false,
    }
}

/// Two OpenSSH public keys are the same key when their type and base64 body are.
fn same_public_key(a: &str, b: &str) -> bool {
    a.split_whitespace()
        .take(2)
        .eq(b.split_whitespace().take(2))
}

/// The cluster's servers, server group and (with `key_pair`) imported key pair; and the
/// servers by name.
pub(crate) async fn discover(
    s: &Session,
    spec: &ClusterSpec,
    key_pair: bool,
) -> Result<(Vec<Recorded>, BTreeMap<String, Value>, bool), ProviderError> {
    let mut out = Vec::new();
    let group = format!("{}-nodes", cloud_name(spec));
    let (list, g) = tokio::try_join!(
        async {
            list_servers(s, spec)
                .await
                .map_err(|e| e.into_provider("servers of the cluster"))
        },
        async {
            find_group(s, &group)
                .await
                .map_err(|e| e.into_provider("server groups"))
        }
    )?;
    // Another state's cluster of the same name is not ours to find (#9.4), but says that
    // what is known only by name cannot be told apart.
    let foreign = list.iter().any(|sv| crate::another_lineage(spec, sv));
    let list: Vec<Value> = list
        .into_iter()
        .filter(|sv| !crate::another_lineage(spec, sv))
        .collect();
    for sv in &list {
        let name = js(sv, "name");
        let lb = sv["metadata"][TAG_ROLE] == json!("lb");
        let (kind, prefix) = if lb {
            (Kind::LbInstance, "lb_instance")
        } else {
            (Kind::Instance, "instance")
        };
        let mut outputs = BTreeMap::new();
        let vols: Vec<String> = sv["os-extended-volumes:volumes_attached"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| js(v, "id"))
            .collect();
        if !vols.is_empty() {
            outputs.insert("volumes".to_string(), vols.join(","));
        }
        out.push(Recorded::found(
            format!("{prefix}[{name}]"),
            kind,
            name,
            js(sv, "id"),
            outputs,
        ));
    }
    if let Some(g) = g {
        out.push(Recorded::found(
            "server_group".into(),
            Kind::ServerGroup,
            group,
            js(&g, "id"),
            BTreeMap::new(),
        ));
    }
    let os = spec.openstack.as_ref().expect("openstack section");
    if key_pair && os.key_name.is_none() {
        let name = cloud_name(spec);
        match find_key_pair(s, &name).await {
            Ok(Some(_)) => {
                let mut o = BTreeMap::new();
                o.insert("imported".to_string(), "true".to_string());
                out.push(Recorded::found(
                    "key_pair".into(),
                    Kind::KeyPair,
                    name.clone(),
                    name,
                    o,
                ));
            }
            Ok(None) => {}
            Err(e) => return Err(e.into_provider("key pair")),
        }
    }
    let by_name = list.into_iter().map(|sv| (js(&sv, "name"), sv)).collect();
    Ok((out, by_name, foreign))
}

/// Every cluster this tool made in the project (servers and load balancers carrying
/// `acura-ha/managed-by`), with its oldest creation time.
pub(crate) async fn clusters(
    s: &Session,
    tags: &[(String, String)],
) -> Result<Vec<(String, u64)>, ProviderError> {
    let managed = format!("{}=acura-ha", TAG_MANAGED_BY.replace('/', "-"));
    let servers = s
        .list(
            Service::Compute,
            &format!("/servers/detail?tags={}", q(&managed)),
            "servers",
        )
        .await
        .map_err(|e| e.into_provider("servers"))?;
    let mut oldest: BTreeMap<String, u64> = BTreeMap::new();
    let mut note = |name: String, created: &str| {
        let secs = humantime::parse_rfc3339_weak(created.trim_end_matches('Z'))
            .or_else(|_| humantime::parse_rfc3339(created))
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let e = oldest.entry(name).or_insert(secs);
        *e = (*e).min(secs);
    };
    for sv in &servers {
        let md = &sv["metadata"];
        if md[TAG_MANAGED_BY] != json!("acura-ha") {
            continue;
        }
        if !tags.iter().all(|(k, val)| md[k.as_str()] == json!(val)) {
            continue;
        }
        if let Some(name) = md[TAG_CLUSTER].as_str() {
            note(name.to_string(), &js(sv, "created"));
        }
    }
    if s.has(Service::LoadBalancer) {
        let lbs = s
            .list(
                Service::LoadBalancer,
                &format!("/lbaas/loadbalancers?tags={}", q(&managed)),
                "loadbalancers",
            )
            .await
            .map_err(|e| e.into_provider("load balancers"))?;
        for lb in &lbs {
            let t: Vec<String> = lb["tags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x.as_str().map(String::from))
                .collect();
            if !t.contains(&managed) {
                continue;
            }
            let has = |k: &str, val: &str| t.contains(&format!("{}={val}", k.replace('/', "-")));
            if !tags.iter().all(|(k, val)| has(k, val)) {
                continue;
            }
            let prefix = format!("{}=", TAG_CLUSTER.replace('/', "-"));
            if let Some(name) = t.iter().find_map(|x| x.strip_prefix(&prefix)) {
                note(name.to_string(), &js(lb, "created_at"));
            }
        }
    }
    Ok(oldest.into_iter().collect())
}

/// How many lines of console log to ask for: a first boot logs a few hundred before cloud-init
/// prints the host keys, and Nova keeps at most the last 100 KiB anyway.
const CONSOLE_LINES: u32 = 5000;

/// The server's console log (Nova's `os-getConsoleOutput` action), where cloud-init prints the
/// SSH host key fingerprints. `None` when the cloud has none to give: 404 (no console log),
/// 409 (the server is not ready), 501 (the hypervisor cannot), 403 (a policy forbids it). It
/// only reads, so an unanswered or 5xx call is sent again, a few times.
pub(crate) async fn console_output(s: &Session, id: &str) -> Result<Option<String>, ApiError> {
    let body = json!({ "os-getConsoleOutput": { "length": CONSOLE_LINES } });
    let path = format!("/servers/{id}/action");
    let mut attempt = 0;
    loop {
        match s
            .once(reqwest::Method::POST, Service::Compute, &path, Some(&body))
            .await
        {
            Ok(v) => return Ok(v.get("output").and_then(Value::as_str).map(String::from)),
            Err(e) if matches!(e.status, Some(403 | 404 | 409 | 501)) => return Ok(None),
            Err(e) if e.transient() && attempt < 3 => {
                attempt += 1;
                tokio::time::sleep(e.retry_after.unwrap_or(Duration::from_secs(1))).await;
            }
            Err(e) => return Err(e),
        }
    }
}
