//! `acura-ha status -c FILE [--output json]`

use super::{ClusterArgs, EXIT_DEGRADED, EXIT_OK, OutputArgs};
use crate::engine::status::{self, CloudLb, Status};
use crate::error::Error;
use crate::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

pub fn exec(args: Args) -> Result<u8, Error> {
    let (cfg, store) = args.cluster.load()?;
    let status = super::block_on(status::status(&cfg, &store))?;
    args.output.ui().render(&status, render);
    Ok(if status.healthy {
        EXIT_OK
    } else {
        EXIT_DEGRADED
    })
}

/// The cloud load balancer's view: per listener, each target and its health.
fn cloud_lb(c: &CloudLb) -> String {
    let Some(h) = &c.health else {
        return format!(
            "\ncloud load balancer: {}\n",
            c.error.as_deref().unwrap_or("no answer")
        );
    };
    let mut rows = Vec::new();
    for l in &h.listeners {
        let listener = format!("{}/{}", l.protocol.to_lowercase(), l.port);
        if l.targets.is_empty() {
            rows.push(vec![
                listener.clone(),
                "-".into(),
                "no targets".into(),
                String::new(),
            ]);
        }
        for t in &l.targets {
            rows.push(vec![
                listener.clone(),
                t.target.clone(),
                t.state.clone(),
                t.reason.clone().unwrap_or_default(),
            ]);
        }
    }
    format!(
        "\ncloud load balancer: {}\n{}",
        h.state,
        output::table(&["LB LISTENER", "TARGET", "HEALTH", "REASON"], &rows)
    )
}

/// The status as tables: hosts, Kubernetes, listeners, the cloud load balancer's targets.
pub fn render(s: &Status) -> String {
    let mut out = format!("cluster {:?} on {}\n\n", s.cluster, s.provider);
    let rows: Vec<Vec<String>> = s
        .hosts
        .iter()
        .map(|h| {
            vec![
                h.host.clone(),
                h.address.clone(),
                h.role.to_string(),
                h.ssh.clone(),
                h.preflight.clone(),
            ]
        })
        .collect();
    out.push_str(&output::table(
        &["HOST", "ADDRESS", "ROLE", "SSH", "PREFLIGHT"],
        &rows,
    ));
    out.push_str(&format!(
        "\nkubernetes: {}\n\n",
        s.kubernetes
            .as_ref()
            .map(|k| k.describe())
            .unwrap_or_else(|| "no node reachable".into())
    ));
    let rows: Vec<Vec<String>> = s
        .listeners
        .iter()
        .map(|l| vec![l.listener.clone(), l.address.clone(), l.state.clone()])
        .collect();
    out.push_str(&output::table(&["LISTENER", "ADDRESS", "STATE"], &rows));
    if let Some(c) = &s.cloud_lb {
        out.push_str(&cloud_lb(c));
    }
    out.push_str(&format!(
        "\n{}\n",
        if s.healthy { "healthy" } else { "DEGRADED" }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use acura_ha_api::model::{LbHealth, ListenerHealth, TargetHealth};

    #[test]
    fn each_listener_shows_each_target_and_its_health() {
        let c = CloudLb {
            health: Some(LbHealth {
                state: "active/degraded".into(),
                listeners: vec![
                    ListenerHealth {
                        port: 12201,
                        protocol: "UDP".into(),
                        targets: vec![
                            TargetHealth {
                                target: "acura-1".into(),
                                state: "healthy".into(),
                                reason: None,
                            },
                            TargetHealth {
                                target: "acura-2".into(),
                                state: "unhealthy".into(),
                                reason: Some("operating_status ERROR".into()),
                            },
                        ],
                    },
                    ListenerHealth {
                        port: 443,
                        protocol: "TCP".into(),
                        targets: vec![],
                    },
                ],
            }),
            error: None,
            healthy: false,
        };
        let text = cloud_lb(&c);
        assert!(
            text.contains("cloud load balancer: active/degraded"),
            "{text}"
        );
        let row = |needle: &str| {
            text.lines()
                .find(|l| l.contains(needle))
                .unwrap_or_default()
                .to_string()
        };
        let sick = row("acura-2");
        assert!(
            sick.contains("udp/12201") && sick.contains("unhealthy") && sick.contains("ERROR"),
            "{text}"
        );
        assert!(row("acura-1").contains("healthy"), "{text}");
        assert!(row("tcp/443").contains("no targets"), "{text}");
        let failed = CloudLb {
            health: None,
            error: Some("load-balancer (Octavia): HTTP 503".into()),
            healthy: false,
        };
        assert!(cloud_lb(&failed).contains("HTTP 503"));
    }
}
