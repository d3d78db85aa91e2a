//! `status` and `preflight`: what each host, Kubernetes and each listener say now, changing
//! nothing.

use std::time::Duration;

use acura_ha_api::tables::{self, LISTENERS, Protocol};
use serde::Serialize;

use crate::bootstrap::preflight::{self, HostReport, Pool};
use crate::bootstrap::ssh::{Session, Target};
use crate::bootstrap::{self, facts, lbhost, postcheck};
use crate::config::LoadedConfig;
use crate::error::Error;
use crate::state::StateStore;

/// `preflight`: log in to every host and check it, changing nothing. Returns the reports.
pub async fn preflight(
    cfg: &LoadedConfig,
    store: &StateStore,
    become_password: bool,
    quiet: bool,
) -> Result<Vec<HostReport>, Error> {
    let spec = &cfg.spec;
    let inv = super::known_inventory(cfg, store)?;
    let hosts = bootstrap::ssh_hosts(&inv);
    let opts = bootstrap::ssh_options(cfg, &store.cluster_dir());
    let pool = preflight::login(spec, &hosts, &opts, quiet).await?;
    Ok(preflight::check_all(&pool, spec, &hosts, become_password, quiet).await)
}

/// One host's status.
#[derive(Debug, Serialize)]
pub struct HostStatus {
    pub host: String,
    pub address: String,
    pub role: &'static str,
    pub ssh: String,
    pub preflight: String,
}

#[derive(Debug, Serialize)]
pub struct ListenerStatus {
    pub listener: String,
    pub address: String,
    pub state: String,
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub cluster: String,
    pub provider: &'static str,
    pub state_serial: Option<u64>,
    pub hosts: Vec<HostStatus>,
    pub kubernetes: Option<postcheck::ClusterHealth>,
    pub listeners: Vec<ListenerStatus>,
    pub healthy: bool,
}

pub async fn status(cfg: &LoadedConfig, store: &StateStore) -> Result<Status, Error> {
    let spec = &cfg.spec;
    let state = store.load()?;
    let inv = super::known_inventory(cfg, store)?;
    let mut opts = bootstrap::ssh_options(cfg, &store.cluster_dir());
    opts.connect_timeout = Duration::from_secs(5);
    let hosts = bootstrap::ssh_hosts(&inv);
    let mut hosts_out = Vec::new();
    let mut pool = Pool::default();
    let mut set = tokio::task::JoinSet::new();
    // Status reports sudo as it finds it: a password is not a failure here.
    for (h, role, want) in preflight::expectations(spec, &hosts, true) {
        let target = Target {
            name: h.name.clone(),
            address: h.address.clone(),
            port: tables::SSH_PORT,
            user: spec.access.ssh_user.clone(),
        };
        let opts = opts.clone();
        set.spawn(async move {
            match Session::connect(&target, &opts).await {
                Ok(s) => {
                    let cmd = format!(
                        "sh -c {}",
                        bootstrap::ssh::shell_quote(&facts::script(&want.dns_name))
                    );
                    let pre = match s.run(&cmd, Duration::from_secs(30)).await {
                        Ok(out) => {
                            let f = facts::Facts::parse(&out.stdout_text());
                            let findings = facts::check(&f, &want);
                            let fatal: Vec<_> = findings
                                .iter()
                                .filter(|f| f.fatal)
                                .map(|f| format!("{}: {}", f.check, f.message))
                                .collect();
                            if fatal.is_empty() {
                                "ok".to_string()
                            } else {
                                fatal.join("; ")
                            }
                        }
                        Err(e) => e.to_string(),
                    };
                    (h, role, "ok".to_string(), pre, Some(s))
                }
                Err(e) => (h, role, e.to_string(), "-".into(), None),
            }
        });
    }
    while let Some(Ok((h, role, ssh, pre, session))) = set.join_next().await {
        if let Some(s) = session {
            pool.insert(s);
        }
        hosts_out.push(HostStatus {
            host: h.name,
            address: h.address,
            role,
            ssh,
            preflight: pre,
        });
    }
    hosts_out.sort_by_key(|s| hosts.iter().position(|(h, _)| h.name == s.host));
    let mut kubernetes = None;
    for n in &inv.nodes {
        if let Some(s) = pool.get(&n.name) {
            kubernetes = postcheck::health(&s).await.ok();
            break;
        }
    }
    let mut listeners = Vec::new();
    let inside = inv.nodes.iter().find_map(|n| pool.get(&n.name));
    for l in LISTENERS {
        let addr = format!("{}:{}", inv.lb.address, l.port);
        let state = match l.protocol {
            // Not open to the public by the guide's security group: ask from a node.
            Protocol::Tcp if !lbhost::public(l) => match &inside {
                Some(s) => match lbhost::remote_probe(s, l, &inv.lb.address, 1).await {
                    Ok(r) if r.first().is_some_and(|x| x.is_ok()) => "accepting".to_string(),
                    Ok(r) => format!(
                        "not accepting from {}: {}",
                        s.target.name,
                        r.first().and_then(|x| x.clone().err()).unwrap_or_default()
                    ),
                    Err(e) => format!("not checked: {e}"),
                },
                None => "not checked (no node reachable to ask from)".to_string(),
            },
            Protocol::Tcp => {
                let a = tokio::net::lookup_host(&addr)
                    .await
                    .ok()
                    .and_then(|mut i| i.next());
                match a {
                    Some(a) => match tokio::time::timeout(
                        Duration::from_secs(3),
                        tokio::net::TcpStream::connect(a),
                    )
                    .await
                    {
                        Ok(Ok(_)) => "accepting".to_string(),
                        Ok(Err(e)) => format!("not accepting: {e}"),
                        Err(_) => "no answer within 3 s".to_string(),
                    },
                    None => "cannot resolve".to_string(),
                }
            }
            // UDP has no handshake: only the bootstrap's proof (or traffic) can show it works.
            Protocol::Udp => "not checked (UDP)".to_string(),
        };
        listeners.push(ListenerStatus {
            listener: format!("{} {}/{}", l.name, l.protocol, l.port),
            address: addr,
            state,
        });
    }
    let expected: Vec<String> = inv.nodes.iter().map(|h| h.name.clone()).collect();
    let healthy = hosts_out
        .iter()
        .all(|h| h.ssh == "ok" && h.preflight == "ok")
        && kubernetes.as_ref().is_some_and(|k| k.ready(&expected))
        && listeners
            .iter()
            .all(|l| l.state == "accepting" || l.state == "not checked (UDP)");
    Ok(Status {
        cluster: spec.cluster.name.clone(),
        provider: spec.provider_kind().as_str(),
        state_serial: state.as_ref().map(|s| s.serial),
        hosts: hosts_out,
        kubernetes,
        listeners,
        healthy,
    })
}
