//! The targets a cluster can be deployed to. Each folder holds everything one target means to
//! this crate: its cluster-file section (`section.rs`, which [`spec`](crate::spec) builds the file
//! from), that section's checks, what `up` converges to there, and where the hosts' addresses come
//! from (`mod.rs`, with its row in [`TARGETS`]).
//!
//! [`TARGETS`] is the registry the rest of the crate dispatches through: here, the methods of
//! [`ClusterSpec`] that depend on the file's target ([`ClusterSpec::validate`],
//! [`ClusterSpec::target`], [`ClusterSpec::node_names`], ...), and through them
//! [`desired`](crate::desired) and [`inventory`](crate::inventory).
//!
//! A new cloud is its provider crate plus, here: one folder, one [`ProviderKind`] variant, one
//! line in [`TARGETS`], and its section's field in [`ClusterSpec`].

pub mod aws;
pub mod local;
pub mod openstack;
pub mod shared;
pub mod r#static;
pub mod target;

pub use crate::spec::ProviderKind;
pub use target::Target;

use crate::spec::{ClusterSpec, Invalid, LbKind, invalid};

/// Every target, in the order messages list their sections.
pub static TARGETS: &[Target] = &[
    aws::TARGET,
    openstack::TARGET,
    r#static::TARGET,
    local::TARGET,
];

impl ProviderKind {
    /// This kind's line in [`TARGETS`].
    pub fn target(self) -> &'static Target {
        TARGETS
            .iter()
            .find(|t| t.kind == self)
            .expect("every ProviderKind has a line in TARGETS")
    }

    pub fn as_str(self) -> &'static str {
        self.target().name
    }

    /// Whether the provider creates the hosts (and so can create a load balancer VM).
    pub fn creates_hosts(self) -> bool {
        self.target().creates_hosts
    }
}

/// What the cluster file means through its target.
impl ClusterSpec {
    /// The provider section present. Call after [`validate`](Self::validate) has passed.
    pub fn provider_kind(&self) -> ProviderKind {
        self.provider_kinds()
            .first()
            .copied()
            .expect("validate() ensures one provider section")
    }

    /// The target of the provider section present. Call after [`validate`](Self::validate) has
    /// passed.
    pub fn target(&self) -> &'static Target {
        self.provider_kind().target()
    }

    /// The targets whose sections the file has, in [`TARGETS`] order.
    fn targets(&self) -> impl Iterator<Item = &'static Target> + '_ {
        TARGETS.iter().filter(|t| (t.present)(self))
    }

    fn provider_kinds(&self) -> Vec<ProviderKind> {
        self.targets().map(|t| t.kind).collect()
    }

    /// The node hostnames, in order. For `static` they are the file's; otherwise `<prefix>-<k>`.
    pub fn node_names(&self) -> Vec<String> {
        match self.targets().find_map(|t| (t.node_names)(self)) {
            Some(names) => names,
            None => match &self.nodes.members {
                Some(members) => members.clone(),
                None => (1..=self.nodes.count)
                    .map(|k| format!("{}-{k}", self.hostname_prefix()))
                    .collect(),
            },
        }
    }

    /// The name `node add` gives a new node: one past the highest number ever used, so a
    /// replaced node's name (and its pinned host key) is never reused.
    pub fn next_node_name(&self, used: &[String]) -> String {
        let high = used
            .iter()
            .chain(self.node_names().iter())
            .filter_map(|n| self.node_number(n))
            .max()
            .unwrap_or(0);
        format!("{}-{}", self.hostname_prefix(), high + 1)
    }

    /// The NGINX host's name, when the tool creates one.
    pub fn lb_host_name(&self) -> String {
        self.targets()
            .find_map(|t| (t.lb_host_name)(self))
            .unwrap_or_else(|| format!("{}-lb", self.hostname_prefix()))
    }

    /// How long to wait for SSH logins: the file's value, or what the provider needs (cloud VMs
    /// boot and run cloud-init; existing and local hosts answer at once).
    pub fn ssh_wait_secs(&self) -> u64 {
        self.preflight
            .ssh_wait_secs
            .unwrap_or(self.targets().next().map_or(60, |t| t.ssh_wait_secs))
    }

    /// Every problem in the file; empty when it is valid: the checks every file shares
    /// ([`spec`](crate::spec)), then, when it has exactly one provider section, its target's.
    pub fn validate(&self) -> Vec<Invalid> {
        let mut out = Vec::new();
        let makes_ssh_key = self.targets().any(|t| t.makes_ssh_key);
        self.validate_shared(makes_ssh_key, &mut out);
        let kinds = self.provider_kinds();
        match kinds.len() {
            0 => {
                let names: Vec<_> = TARGETS.iter().map(|t| format!("[{}]", t.name)).collect();
                let (last, rest) = names.split_last().expect("TARGETS is not empty");
                out.push(invalid(
                    "",
                    format!(
                        "no provider section: add one of {} or {last}",
                        rest.join(", ")
                    ),
                ));
            }
            1 => {
                let target = kinds[0].target();
                self.validate_load_balancer(&mut out);
                if self.load_balancer.kind == LbKind::Cloud && !target.cloud_lb {
                    out.push(invalid(
                        "load_balancer.kind",
                        format!(
                            "load_balancer.kind = \"cloud\": the {} provider has no cloud load balancer; use \"nginx\" or \"external\"",
                            target.name
                        ),
                    ));
                }
                (target.validate)(self, &mut out);
            }
            _ => {
                let names: Vec<_> = kinds.iter().map(|k| format!("[{}]", k.as_str())).collect();
                out.push(invalid(
                    kinds[1].as_str(),
                    format!(
                        "more than one provider section ({}): a cluster file has exactly one",
                        names.join(", ")
                    ),
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_kind() {
        for (i, t) in TARGETS.iter().enumerate() {
            assert!(
                std::ptr::eq(t.kind.target(), t),
                "{} is listed twice",
                t.name
            );
            assert_eq!(
                serde_json::to_string(&t.kind).unwrap(),
                format!("{:?}", t.name)
            );
            assert!(TARGETS[..i].iter().all(|u| u.name != t.name));
        }
    }
}
