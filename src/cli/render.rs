//! `acura-ha render nginx | inventory | security-group -c FILE`

use std::net::IpAddr;

use acura_ha_api::desired::{RuleSource, ingress_rules};
use acura_ha_nginx::NginxOptions;
use serde::Serialize;

use super::{ClusterArgs, EXIT_OK, OutputArgs};
use crate::bootstrap;
use crate::error::Error;
use crate::output;

#[derive(Debug, clap::Subcommand)]
pub enum What {
    /// The NGINX stream config of the load-balancer host (all six listeners)
    Nginx {
        #[command(flatten)]
        cluster: ClusterArgs,
        /// Listen on this address only (`listen ADDR:PORT`) instead of every address
        #[arg(long, value_name = "IP")]
        listen_address: Option<IpAddr>,
    },
    /// The guide's ha_env_file (Ansible inventory)
    Inventory {
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// The security group's ingress rules, as an audit table
    SecurityGroup {
        #[command(flatten)]
        cluster: ClusterArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
}

pub fn exec(what: What) -> Result<u8, Error> {
    match what {
        What::Nginx {
            cluster,
            listen_address,
        } => {
            let (cfg, store) = cluster.load()?;
            let inv = crate::engine::known_inventory(&cfg, &store)?;
            if inv.lb.nginx_host.is_none() {
                return Err(Error::Usage(format!(
                    "cluster {:?} has load_balancer.kind = \"{}\": there is no NGINX host to render a config for",
                    cfg.spec.cluster.name,
                    cfg.spec.load_balancer.kind.as_str()
                )));
            }
            let nodes: Vec<String> = inv.nodes.iter().map(|h| h.address.clone()).collect();
            let opts = NginxOptions {
                listen_address,
                ..NginxOptions::default()
            };
            print!(
                "{}",
                acura_ha_nginx::render(&cfg.spec.cluster.name, &nodes, &opts)?
            );
        }
        What::Inventory { cluster } => {
            let (cfg, store) = cluster.load()?;
            let inv = crate::engine::known_inventory(&cfg, &store)?;
            let key = bootstrap::key_file(&cfg, &store.cluster_dir());
            print!(
                "{}",
                bootstrap::ha_env::render(&cfg.spec.cluster.name, &inv.nodes, key.as_deref())
            );
        }
        What::SecurityGroup { cluster, output } => {
            let (cfg, _) = cluster.load()?;
            let rows: Vec<AuditRow> = ingress_rules(&cfg.spec)
                .iter()
                .map(|r| AuditRow {
                    direction: "ingress",
                    ether_type: "IPv4",
                    protocol: r.rule.protocol.as_str(),
                    ports: r.rule.ports(),
                    source: match r.source {
                        RuleSource::SelfGroup => "security group itself".into(),
                        RuleSource::Cidr(c) => c.to_string(),
                    },
                    description: r.rule.description,
                })
                .map(|mut row| {
                    if row.source.contains(':') {
                        row.ether_type = "IPv6";
                    }
                    row
                })
                .collect();
            output.ui().render(&rows, |rows| {
                let table: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        vec![
                            r.ether_type.to_string(),
                            r.protocol.to_uppercase(),
                            r.ports.clone(),
                            r.source.clone(),
                            r.description.to_string(),
                        ]
                    })
                    .collect();
                output::table(
                    &["ETHER", "PROTOCOL", "PORTS", "SOURCE", "DESCRIPTION"],
                    &table,
                )
            });
        }
    }
    Ok(EXIT_OK)
}

#[derive(Debug, Serialize)]
struct AuditRow {
    direction: &'static str,
    ether_type: &'static str,
    protocol: &'static str,
    ports: String,
    source: String,
    description: &'static str,
}
