//! Converge (issue 9, item 2; DESIGN §4): narrowing `admin_cidrs` or `public_cidrs` closes the
//! old sources. Against the stateful fake cloud serving 2 items a page: after the second
//! `provision`, the cluster group's rules on the ports concerned come only from the new CIDRs,
//! the journal holds no `security_group_rule[...]` that is not desired, the other groups' rules
//! and the default egress rules are untouched, and a third `provision` mutates nothing.

mod common;

use std::collections::BTreeSet;

use acura_ha_api::model::Kind;
use acura_ha_api::provider::{Journal, Provider};
use acura_ha_api::spec::ClusterSpec;
use common::{Cloud, Records, parse_spec};

const GROUP: &str = "acura-ha-acura-conv";
const ADMIN_PORTS: [&str; 4] = ["22-22", "30080-30080", "30081-30081", "30082-30082"];
const PUBLIC_PORTS: [&str; 5] = ["80-80", "443-443", "4443-4443", "6443-6443", "12201-12201"];

impl Cloud {
    /// A 3-node cluster behind the NGINX VM with these sources.
    fn spec(admin: &[&str], public: &[&str]) -> ClusterSpec {
        let list = |c: &[&str]| {
            c.iter()
                .map(|x| format!("{x:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let text = format!(
            "[cluster]\nname = \"acura-conv\"\n\
             [nodes]\ncount = 3\nhostname_prefix = \"conv\"\nvolume_size_gb = 200\n\
             [load_balancer]\nkind = \"nginx\"\n\
             [access]\nadmin_cidrs = [{}]\npublic_cidrs = [{}]\nssh_agent = true\n\
             [openstack]\ncloud = \"fake\"\nflavor = \"m1.xlarge\"\nimage = \"ubuntu-20.04\"\n\
             network = \"acura-net\"\npublic_key_file = \"id.pub\"\nlb_flavor = \"m1.small\"\n",
            list(admin),
            list(public)
        );
        parse_spec(&text)
    }

    /// Every rule of the fake, as its labels (`group direction ethertype proto min-max remote`).
    fn rules(&self) -> Vec<String> {
        self.fake.inventory().names("security_group_rules")
    }

    /// `ports remote` of the cluster group's ingress rules on these ports.
    fn sources(&self, ports: &[&str]) -> BTreeSet<String> {
        self.rules()
            .iter()
            .filter_map(|r| {
                let f: Vec<&str> = r.split(' ').collect();
                (f[0] == GROUP && f[1] == "ingress" && ports.contains(&f[4]))
                    .then(|| format!("{} {}", f[4], f[5]))
            })
            .collect()
    }

    /// Provisions `spec`; returns the number of mutating calls it made.
    async fn provision(&self, spec: &ClusterSpec, j: &mut Records) -> u64 {
        self.fake.reset_stats();
        self.provider().provision(spec, j).await.expect("provision");
        assert!(
            self.fake.unhandled().is_empty(),
            "{:?}",
            self.fake.unhandled()
        );
        self.fake.stats().mutating
    }
}

fn expect(ports: &[&str], cidrs: &[&str]) -> BTreeSet<String> {
    ports
        .iter()
        .flat_map(|p| cidrs.iter().map(move |c| format!("{p} {c}")))
        .collect()
}

/// The journal's rule records are exactly the desired ones, each with the ID of a rule.
fn assert_journal_desired(spec: &ClusterSpec, j: &Records) {
    let desired: BTreeSet<String> = acura_ha_api::desired::desired(spec)
        .into_iter()
        .filter(|r| r.kind == Kind::SecurityGroupRule)
        .map(|r| r.address)
        .collect();
    let recorded: BTreeSet<String> = j
        .all()
        .into_iter()
        .filter(|r| {
            r.kind == Kind::SecurityGroupRule || r.address.starts_with("security_group_rule[")
        })
        .inspect(|r| assert!(r.id.as_deref().is_some_and(|i| !i.is_empty()), "{r:?}"))
        .map(|r| r.address)
        .collect();
    assert_eq!(recorded, desired);
}

/// What must survive every narrowing: the default group's rules, the cluster group's egress
/// rules (Neutron's defaults) and its self rule.
fn untouched(rules: &[String]) -> Vec<String> {
    rules
        .iter()
        .filter(|r| r.starts_with("default ") || r.contains(" egress ") || r.contains(" group:"))
        .cloned()
        .collect()
}

#[tokio::test]
async fn narrowing_admin_cidrs_closes_the_old_source() {
    let cloud = Cloud::start();
    let public = ["0.0.0.0/0"];
    let wide = Cloud::spec(&["0.0.0.0/0"], &public);
    let mut j = Records::default();
    assert!(cloud.provision(&wide, &mut j).await > 0);
    assert_eq!(
        cloud.sources(&ADMIN_PORTS),
        expect(&ADMIN_PORTS, &["0.0.0.0/0"])
    );
    assert_journal_desired(&wide, &j);
    let kept = untouched(&cloud.rules());
    assert_eq!(
        kept.iter().filter(|r| r.starts_with("default ")).count(),
        4,
        "{kept:?}"
    );

    let narrow = Cloud::spec(&["198.51.100.7/32"], &public);
    assert!(cloud.provision(&narrow, &mut j).await > 0);
    assert_eq!(
        cloud.sources(&ADMIN_PORTS),
        expect(&ADMIN_PORTS, &["198.51.100.7/32"]),
        "{:#?}",
        cloud.rules()
    );
    assert_eq!(
        cloud.sources(&PUBLIC_PORTS),
        expect(&PUBLIC_PORTS, &["0.0.0.0/0"])
    );
    assert_journal_desired(&narrow, &j);
    assert_eq!(untouched(&cloud.rules()), kept);

    // Converged: nothing left to do.
    assert_eq!(cloud.provision(&narrow, &mut j).await, 0);
    assert_journal_desired(&narrow, &j);
}

#[tokio::test]
async fn widening_then_narrowing_public_cidrs() {
    let cloud = Cloud::start();
    let admin = ["198.51.100.7/32"];
    let office = "203.0.113.0/24";
    let mut j = Records::default();
    let first = Cloud::spec(&admin, &[office]);
    cloud.provision(&first, &mut j).await;
    let kept = untouched(&cloud.rules());

    let wide = Cloud::spec(&admin, &[office, "0.0.0.0/0"]);
    assert!(cloud.provision(&wide, &mut j).await > 0);
    assert_eq!(
        cloud.sources(&PUBLIC_PORTS),
        expect(&PUBLIC_PORTS, &[office, "0.0.0.0/0"])
    );
    assert_journal_desired(&wide, &j);

    let narrow = Cloud::spec(&admin, &[office]);
    assert!(cloud.provision(&narrow, &mut j).await > 0);
    assert_eq!(
        cloud.sources(&PUBLIC_PORTS),
        expect(&PUBLIC_PORTS, &[office]),
        "{:#?}",
        cloud.rules()
    );
    assert_eq!(cloud.sources(&ADMIN_PORTS), expect(&ADMIN_PORTS, &admin));
    assert_journal_desired(&narrow, &j);
    assert_eq!(untouched(&cloud.rules()), kept);

    assert_eq!(cloud.provision(&narrow, &mut j).await, 0);
    assert_journal_desired(&narrow, &j);
}
