//! `acura-ha node remove NAME | add | replace NAME`: the guide's "remove a dead node" and "add a
//! new node", one command each.

use super::{ChangeArgs, EXIT_OK};
use crate::day2::node::{self, NodeOptions};
use crate::error::Error;

#[derive(Debug, clap::Subcommand)]
pub enum What {
    /// Remove a dead node: kubectl delete node, etcd member remove, out of the load balancer, delete its host
    Remove(Remove),
    /// Add a node (dead nodes are removed first): create or take the host, join it with a fresh token, add it to the load balancer
    Add(Add),
    /// Replace a node: remove it, then add a new one (resumes if interrupted)
    Replace(Remove),
}

#[derive(Debug, clap::Args)]
pub struct Remove {
    /// The node's name (as in `kubectl get nodes`)
    pub name: String,
    /// Also when the node is still Ready
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub common: ChangeArgs,
}

#[derive(Debug, clap::Args)]
pub struct Add {
    /// The host to take (static provider): its address
    #[arg(long, value_name = "IP")]
    pub address: Option<std::net::IpAddr>,
    /// The new node's name [default: <prefix>-<next number>]; for the static provider its hostname
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub common: ChangeArgs,
}

pub fn exec(what: What) -> Result<u8, Error> {
    let common = match &what {
        What::Remove(r) | What::Replace(r) => &r.common,
        What::Add(a) => &a.common,
    };
    let (cfg, store) = common.cluster.load()?;
    let ui = common.ui();
    let mut opts = NodeOptions {
        become_password: common.become_.password()?,
        ..NodeOptions::default()
    };
    let report = super::block_on(async {
        Ok(match &what {
            What::Remove(r) => {
                opts.force = r.force;
                node::remove(&cfg, &store, &r.name, &opts, &ui).await?
            }
            What::Replace(r) => {
                opts.force = r.force;
                node::replace(&cfg, &store, &r.name, &opts, &ui).await?
            }
            What::Add(a) => {
                opts.address = a.address;
                opts.name = a.name.clone();
                node::add(&cfg, &store, &opts, &ui).await?
            }
        })
    })?;
    ui.result(&report);
    Ok(EXIT_OK)
}
