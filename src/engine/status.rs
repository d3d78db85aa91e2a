//! `status` and `preflight`: what each host, Kubernetes and each listener say now, changing
//! nothing.

use std::time::Duration;

use acura_ha_api::model::{LbHealth, Recorded};
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

const UDP_NOT_CHECKED: &str = "not checked (UDP)";
const UDP_BY_LB: &str = "checked by the load balancer";
/// A UDP listener of an NGINX host: its socket is bound there (the TCP rows likewise show the
/// load balancer's side, "accepting").
const UDP_LISTENING: &str = "listening";

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

/// The cloud load balancer's own view of its targets (Octavia's status tree, ELBv2's target
/// health), for providers whose load balancer is the cloud's.
#[derive(Debug, Serialize)]
pub struct CloudLb {
    /// What the provider answered; `None` when asking failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<LbHealth>,
    /// Why the provider could not say (credentials, the cloud's answer...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Every listener has targets and every target is healthy.
    pub healthy: bool,
}

impl CloudLb {
    fn new(asked: Result<Option<LbHealth>, String>) -> Option<CloudLb> {
        match asked {
            Ok(None) => None,
            Ok(Some(h)) => Some(CloudLb {
                healthy: h.healthy(),
                health: Some(h),
                error: None,
            }),
            Err(e) => Some(CloudLb {
                health: None,
                error: Some(e),
                healthy: false,
            }),
        }
    }

    /// The targets of one of the guide's listeners.
    pub fn listener(
        &self,
        protocol: Protocol,
        port: u16,
    ) -> Option<&acura_ha_api::model::ListenerHealth> {
        self.health
            .as_ref()?
            .listeners
            .iter()
            .find(|l| l.port == port && l.protocol.eq_ignore_ascii_case(protocol.as_str()))
    }
}

/// Asks the cluster's provider for its load balancer's view; `None` when the load balancer is
/// not the cloud's (NGINX, external, static, local) or none is recorded.
async fn cloud_lb(
    cfg: &LoadedConfig,
    store: &StateStore,
    recorded: Vec<Recorded>,
) -> Option<CloudLb> {
    let provider = match crate::targets::provider(cfg, store) {
        Ok(p) => p,
        Err(e) => return CloudLb::new(Err(format!("not checked: {e}"))),
    };
    let asked = tokio::time::timeout(
        Duration::from_secs(60),
        provider.lb_health(&cfg.spec, &recorded),
    )
    .await;
    CloudLb::new(match asked {
        Ok(Ok(h)) => Ok(h),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the cloud did not answer within 60 s".into()),
    })
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub cluster: String,
    pub provider: &'static str,
    pub state_serial: Option<u64>,
    pub hosts: Vec<HostStatus>,
    pub kubernetes: Option<postcheck::ClusterHealth>,
    pub listeners: Vec<ListenerStatus>,
    /// The cloud load balancer's view of its targets (absent for NGINX, static and local).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cloud_lb: Option<CloudLb>,
    pub healthy: bool,
}

pub async fn status(cfg: &LoadedConfig, store: &StateStore) -> Result<Status, Error> {
    let spec = &cfg.spec;
    let state = store.load()?;
    let inv = super::known_inventory(cfg, store)?;
    let mut opts = bootstrap::ssh_options(cfg, &store.cluster_dir());
    opts.connect_timeout = Duration::from_secs(5);
    let hosts = bootstrap::ssh_hosts(&inv);
    let recorded = state
        .as_ref()
        .map(|s| s.resources.clone())
        .unwrap_or_default();
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
    let cloud_lb = cloud_lb(cfg, store, recorded).await;
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
            // UDP has no handshake: a cloud load balancer's health monitor (UDP-CONNECT) checks
            // the targets; otherwise only the bootstrap's proof (or traffic) can show it works.
            Protocol::Udp => match cloud_lb
                .as_ref()
                .and_then(|c| c.listener(l.protocol, l.port))
            {
                Some(h) => format!(
                    "{UDP_BY_LB}: {} of {} targets healthy",
                    h.targets.iter().filter(|t| t.healthy()).count(),
                    h.targets.len()
                ),
                None => match inv.lb.nginx_host.as_ref() {
                    Some(h) => match pool.get(&h.name) {
                        Some(s) => udp_bound(&s, l.port).await,
                        None => format!("not checked: no login to {}", h.name),
                    },
                    None => UDP_NOT_CHECKED.to_string(),
                },
            },
        };
        listeners.push(ListenerStatus {
            listener: format!("{} {}/{}", l.name, l.protocol, l.port),
            address: addr,
            state,
        });
    }
    let expected: Vec<String> = inv.nodes.iter().map(|h| h.name.clone()).collect();
    let healthy = verdict(
        &hosts_out,
        kubernetes.as_ref(),
        &expected,
        &listeners,
        cloud_lb.as_ref(),
    );
    Ok(Status {
        cluster: spec.cluster.name.clone(),
        provider: spec.provider_kind().as_str(),
        state_serial: state.as_ref().map(|s| s.serial),
        hosts: hosts_out,
        kubernetes,
        listeners,
        cloud_lb,
        healthy,
    })
}

/// Whether a UDP socket is bound to `port` on the NGINX host behind `s` (`ss`, no sudo needed).
/// A live cluster's UDP upstream (Acura's GELF input) answers nothing, so the datagram proof
/// `up` runs against its own responders cannot be repeated here; a bound socket on the load
/// balancer is what can be seen, as for TCP.
async fn udp_bound(s: &Session, port: u16) -> String {
    let cmd = format!("ss -Hlun 'sport = :{port}'");
    match s.run(&cmd, Duration::from_secs(10)).await {
        Ok(out) if out.status == 0 && !out.stdout_text().trim().is_empty() => {
            format!("{UDP_LISTENING} (NGINX on {})", s.target.name)
        }
        Ok(out) if out.status == 0 => format!("not listening on {}", s.target.name),
        Ok(out) => format!(
            "not checked: `ss` exited {} on {}",
            out.status, s.target.name
        ),
        Err(e) => format!("not checked: {e}"),
    }
}

/// Healthy: every host logged in to and passed its checks, Kubernetes has every node ready,
/// every listener accepts (UDP: not checked, or left to the cloud load balancer), and the cloud
/// load balancer — when there is one — finds every target healthy.
fn verdict(
    hosts: &[HostStatus],
    kubernetes: Option<&postcheck::ClusterHealth>,
    expected: &[String],
    listeners: &[ListenerStatus],
    cloud_lb: Option<&CloudLb>,
) -> bool {
    hosts.iter().all(|h| h.ssh == "ok" && h.preflight == "ok")
        && kubernetes.is_some_and(|k| k.ready(expected))
        && listeners.iter().all(|l| {
            l.state == "accepting"
                || l.state == UDP_NOT_CHECKED
                || l.state.starts_with(UDP_BY_LB)
                || l.state.starts_with(UDP_LISTENING)
        })
        // A target the cloud load balancer finds unhealthy (or a load balancer that cannot be
        // asked) makes the cluster degraded.
        && cloud_lb.is_none_or(|c| c.healthy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use acura_ha_api::model::{ListenerHealth, TargetHealth};

    fn lb(states: &[&str]) -> LbHealth {
        LbHealth {
            state: "active/online".into(),
            listeners: vec![ListenerHealth {
                port: 443,
                protocol: "TCP".into(),
                targets: states
                    .iter()
                    .enumerate()
                    .map(|(i, s)| TargetHealth {
                        target: format!("acura-{}", i + 1),
                        state: s.to_string(),
                        reason: None,
                    })
                    .collect(),
            }],
        }
    }

    fn fine() -> (
        Vec<HostStatus>,
        postcheck::ClusterHealth,
        Vec<String>,
        Vec<ListenerStatus>,
    ) {
        let hosts = vec![HostStatus {
            host: "acura-1".into(),
            address: "127.0.0.10".into(),
            role: "node",
            ssh: "ok".into(),
            preflight: "ok".into(),
        }];
        let k8s = postcheck::ClusterHealth {
            nodes_ready: vec!["acura-1".into()],
            nodes_not_ready: vec![],
            pods_running: 3,
            pods_not_running: vec![],
            error: None,
        };
        let listeners = vec![
            ListenerStatus {
                listener: "HTTPS tcp/443".into(),
                address: "127.0.0.9:443".into(),
                state: "accepting".into(),
            },
            ListenerStatus {
                listener: "Logs udp/12201".into(),
                address: "127.0.0.9:12201".into(),
                state: format!("{UDP_BY_LB}: 1 of 1 targets healthy"),
            },
        ];
        (hosts, k8s, vec!["acura-1".into()], listeners)
    }

    #[test]
    fn an_unhealthy_cloud_target_degrades_the_cluster() {
        let (hosts, k8s, expected, listeners) = fine();
        let ok = |c: Option<&CloudLb>| verdict(&hosts, Some(&k8s), &expected, &listeners, c);
        assert!(ok(None), "no cloud load balancer: as before");
        let healthy = CloudLb::new(Ok(Some(lb(&["healthy", "healthy"])))).unwrap();
        assert!(ok(Some(&healthy)));
        let sick = CloudLb::new(Ok(Some(lb(&["healthy", "unhealthy"])))).unwrap();
        assert!(!sick.healthy);
        assert!(!ok(Some(&sick)));
        let empty = CloudLb::new(Ok(Some(lb(&[])))).unwrap();
        assert!(
            !ok(Some(&empty)),
            "a listener without targets serves nothing"
        );
        let failed = CloudLb::new(Err("HTTP 503".into())).unwrap();
        assert!(!ok(Some(&failed)), "a load balancer that cannot be asked");
        assert!(CloudLb::new(Ok(None)).is_none());
    }

    #[test]
    fn the_cloud_lb_view_is_in_the_json() {
        let c = CloudLb::new(Ok(Some(lb(&["healthy", "unhealthy"])))).unwrap();
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["healthy"], false);
        assert_eq!(v["health"]["listeners"][0]["port"], 443);
        assert_eq!(
            v["health"]["listeners"][0]["targets"][1]["target"],
            "acura-2"
        );
        assert_eq!(
            v["health"]["listeners"][0]["targets"][1]["state"],
            "unhealthy"
        );
        assert!(v.get("error").is_none());
        assert!(c.listener(Protocol::Tcp, 443).is_some());
        assert!(c.listener(Protocol::Udp, 443).is_none());
    }
}
