//! The security group, enforced inside each host's namespace with nftables: the guide's Step 1
//! table (expanded over the file's admin and public CIDRs by `ingress_rules`) becomes one
//! accept rule each, after a drop policy. "The group itself" is the set of every lab host's
//! address, so the deploy side (`.1`) gets only what the admin and public CIDRs give it, as a
//! workstation outside the cloud's security group would. Outgoing traffic is not filtered.
//!
//! The ruleset replaces its own table atomically (`table …; delete table …; table … {…}` in one
//! `nft -f` transaction), so loading it again is harmless and never opens a gap.

use std::fmt::Write;
use std::net::Ipv4Addr;

use acura_ha_api::desired::{ConcreteRule, RuleSource};
use ipnet::IpNet;

/// The table the lab owns in each namespace.
pub const TABLE: &str = "acura_ha";

/// The ruleset for one host. `lab_hosts` is "the group itself".
pub fn ruleset(host: &str, rules: &[ConcreteRule], lab_hosts: &[Ipv4Addr]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# acura-ha: the guide's security group (Step 1) on lab host {host}. Generated; loaded \
         with `ip netns exec <ns> nft -f`."
    );
    let _ = writeln!(out, "table inet {TABLE} {{}}");
    let _ = writeln!(out, "delete table inet {TABLE}");
    let _ = writeln!(out, "table inet {TABLE} {{");
    let elements = lab_hosts
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(out, "  set lab_hosts {{");
    let _ = writeln!(out, "    type ipv4_addr");
    if !elements.is_empty() {
        let _ = writeln!(out, "    elements = {{ {elements} }}");
    }
    let _ = writeln!(out, "  }}");
    let _ = writeln!(out, "  chain input {{");
    let _ = writeln!(
        out,
        "    type filter hook input priority filter; policy drop;"
    );
    let _ = writeln!(out, "    ct state established,related accept");
    let _ = writeln!(out, "    ct state invalid drop");
    let _ = writeln!(out, "    iif \"lo\" accept");
    let _ = writeln!(out, "    meta l4proto {{ icmp, ipv6-icmp }} accept");
    for r in rules {
        let _ = writeln!(out, "    # {}: {}", r.key(), r.rule.description);
        let source = match r.source {
            RuleSource::SelfGroup => "ip saddr @lab_hosts".to_string(),
            RuleSource::Cidr(IpNet::V4(net)) => format!("ip saddr {net}"),
            RuleSource::Cidr(IpNet::V6(net)) => format!("ip6 saddr {net}"),
        };
        let _ = writeln!(
            out,
            "    {source} {} dport {} accept",
            r.rule.protocol,
            r.rule.ports()
        );
    }
    let _ = writeln!(out, "  }}");
    let _ = writeln!(out, "}}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use acura_ha_api::tables::INGRESS_RULES;

    #[test]
    fn one_accept_per_rule_after_a_drop_policy() {
        let rules = vec![
            ConcreteRule {
                rule: &INGRESS_RULES[0],
                source: RuleSource::SelfGroup,
            },
            ConcreteRule {
                rule: &INGRESS_RULES[1],
                source: RuleSource::Cidr("10.0.0.1/32".parse().expect("cidr")),
            },
            ConcreteRule {
                rule: &INGRESS_RULES[9],
                source: RuleSource::Cidr("2001:db8::/32".parse().expect("cidr")),
            },
        ];
        let hosts = [
            "10.0.0.10".parse().expect("ip"),
            "10.0.0.11".parse().expect("ip"),
        ];
        let text = ruleset("lab-1", &rules, &hosts);
        assert!(text.contains("policy drop;"));
        assert!(text.contains("elements = { 10.0.0.10, 10.0.0.11 }"));
        assert!(text.contains("ip saddr @lab_hosts tcp dport 1-65535 accept"));
        assert!(text.contains("ip saddr 10.0.0.1/32 tcp dport 22 accept"));
        assert!(text.contains("ip6 saddr 2001:db8::/32 udp dport 12201 accept"));
        assert_eq!(text.matches(" accept\n").count(), 3 + 3);
    }
}
