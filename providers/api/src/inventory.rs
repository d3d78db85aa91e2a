//! The hosts and load-balancer address of a cluster, from the cluster file where they are
//! known offline (`static`, `local`) and from the state's recorded outputs otherwise. Each
//! target's arm is its [`Target::inventory`](crate::targets::Target::inventory).

use crate::model::{Inventory, Recorded};
use crate::provider::ProviderError;
use crate::spec::{ClusterSpec, check_host};

pub use crate::model::OUTPUT_ADDRESS;

/// Whether addresses can be known without provisioning.
pub fn known_offline(spec: &ClusterSpec) -> bool {
    spec.target().known_offline
}

/// The inventory, or which address is not known yet. Every address in it is an IP address or
/// a DNS name ([`check_host`]): the clouds' come from the state's recorded outputs, and one
/// that is not (a hand-edited or corrupt state) never reaches an inventory line, an NGINX
/// config or `lb_address`.
pub fn inventory(spec: &ClusterSpec, recorded: &[Recorded]) -> Result<Inventory, ProviderError> {
    let inv = (spec.target().inventory)(spec, recorded)?;
    let hosts = inv
        .nodes
        .iter()
        .chain(inv.lb.nginx_host.as_ref())
        .map(|h| (format!("the address of {}", h.name), &h.address));
    for (what, address) in hosts.chain(std::iter::once((
        "the load balancer's address".to_string(),
        &inv.lb.address,
    ))) {
        if let Err(why) = check_host(address) {
            return Err(ProviderError::Cloud {
                resource: what,
                message: format!(
                    "{address:?} is {why}: the state holds something no cloud returned; restore the state from its .bak copy or run {} again",
                    crate::hint::command("up --only provision")
                ),
                request_id: None,
            });
        }
    }
    Ok(inv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Kind, Status};

    fn spec(lb: &str) -> ClusterSpec {
        serde_json::from_value(serde_json::json!({
            "cluster": { "name": "inv" },
            "load_balancer": { "kind": lb },
            "access": { "admin_cidrs": ["198.51.100.7/32"], "ssh_agent": true },
            "aws": { "region": "us-east-1", "instance_type": "m5.2xlarge" },
        }))
        .expect("a spec")
    }

    fn rec(address: &str, kind: Kind, out: &str) -> Recorded {
        Recorded {
            address: address.into(),
            kind,
            name: address.into(),
            id: Some("id".into()),
            status: Status::Ready,
            attrs: Default::default(),
            outputs: [(OUTPUT_ADDRESS.to_string(), out.to_string())].into(),
            created_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    fn recorded(lb: &str, node2: &str) -> Vec<Recorded> {
        vec![
            rec("instance[inv-1]", Kind::Instance, "10.0.0.1"),
            rec("instance[inv-2]", Kind::Instance, node2),
            rec("instance[inv-3]", Kind::Instance, "10.0.0.3"),
            rec("load_balancer", Kind::LoadBalancer, lb),
        ]
    }

    #[test]
    fn recorded_addresses_must_be_hosts() {
        let s = spec("cloud");
        let ok = inventory(
            &s,
            &recorded("inv-nlb-1.elb.us-east-1.amazonaws.com", "10.0.0.2"),
        )
        .expect("valid addresses");
        assert_eq!(ok.lb.address, "inv-nlb-1.elb.us-east-1.amazonaws.com");
        for bad in ["$(reboot)", "a b", "x;y", "{{ 7*6 }}", ""] {
            let e = inventory(&s, &recorded(bad, "10.0.0.2")).expect_err(bad);
            assert!(e.to_string().contains("load balancer"), "{e}");
            let e = inventory(&s, &recorded("lb.example.com", bad)).expect_err(bad);
            assert!(e.to_string().contains("inv-2"), "{e}");
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
    }
}
