//! The lab's subnet must be the lab's alone. A bridge with the subnet's `.1` and the safety
//! route `unreachable <subnet>` take over whatever the machine already reaches there: on a
//! subnet that overlaps the machine's own LAN or VPC (192.168.1.0/24 at home, 172.31.0.0/16 on
//! an EC2 deploy host) the bridge takes the gateway's address and the default route stops
//! working. So before anything is created, the machine's IPv4 addresses and routes (every table)
//! are read with `ip -j` and a subnet that overlaps any of them is refused, except the lab's
//! own: its bridge (and the bridge's veth ports) and its own safety route, so that `up` on an
//! existing lab still passes. The default route (0.0.0.0/0) overlaps everything and is not
//! compared; a subnet that contains the gateway of any route, the default route's included, is
//! refused. The lab's subnet is IPv4 only (`[local] subnet` is an IPv4 prefix), so IPv6 is not
//! read.

use std::net::Ipv4Addr;

use acura_ha_api::provider::ProviderError;
use ipnet::Ipv4Net;
use serde::Deserialize;
use serde_json::Value;

use crate::cmd;
use crate::names::SAFETY_METRIC;
use crate::preflight::IP;

/// Something of the machine's that the lab subnet overlaps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    /// What it is, for the message: `address 192.168.1.23/24`, `route 172.17.0.0/16`,
    /// `gateway 192.168.1.1 of the default route`.
    pub what: String,
    /// Its interface; `None` for a route without one (`unreachable`, `blackhole`).
    pub dev: Option<String>,
}

impl std::fmt::Display for Taken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.dev {
            Some(dev) => write!(f, "{} on {dev}", self.what),
            None => write!(f, "{} (no interface)", self.what),
        }
    }
}

/// One interface of `ip -j -4 addr show`.
#[derive(Debug, Deserialize)]
struct Link {
    #[serde(default)]
    ifname: String,
    #[serde(default)]
    addr_info: Vec<AddrInfo>,
}

#[derive(Debug, Deserialize)]
struct AddrInfo {
    family: Option<String>,
    local: Option<String>,
    /// The peer of a point-to-point address (`ip addr add A peer B/n`).
    address: Option<String>,
    prefixlen: Option<u8>,
}

/// One route of `ip -j -4 route show table all`.
#[derive(Debug, Deserialize)]
struct Route {
    dst: Option<String>,
    gateway: Option<String>,
    dev: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    /// Absent for `main`; a name or a number otherwise.
    table: Option<Value>,
    metric: Option<u32>,
    #[serde(default)]
    nexthops: Vec<Nexthop>,
}

#[derive(Debug, Deserialize)]
struct Nexthop {
    gateway: Option<String>,
    dev: Option<String>,
}

/// `text` as `ip -j` prints a list: empty output is an empty list.
fn parse_list<T: for<'de> Deserialize<'de>>(what: &str, text: &str) -> Result<Vec<T>, String> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(text).map_err(|e| format!("cannot read the output of `{what}`: {e}"))
}

/// `a.b.c.d/n` or `a.b.c.d` (a host route, /32); `None` for `default` and anything that is
/// not IPv4.
fn prefix(text: &str) -> Option<Ipv4Net> {
    match text.split_once('/') {
        Some(_) => text.parse::<Ipv4Net>().ok(),
        None => text.parse::<Ipv4Addr>().ok().map(Ipv4Net::from),
    }
    .map(|n| n.trunc())
}

fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b) || b.contains(&a)
}

/// The lab's bridge or one of its veth ports (`<bridge>v<index>`, see [`crate::names`]).
fn is_lab_dev(dev: &str, bridge: &str) -> bool {
    dev == bridge
        || dev
            .strip_prefix(bridge)
            .and_then(|rest| rest.strip_prefix('v'))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The main table: `ip -j` omits `table` for it.
fn in_main_table(r: &Route) -> bool {
    match &r.table {
        None => true,
        Some(Value::String(s)) => s == "main" || s == "254",
        Some(Value::Number(n)) => n.as_u64() == Some(254),
        Some(_) => false,
    }
}

/// The route the provider itself adds: `unreachable <subnet> metric 4000` in the main table.
fn is_safety_route(r: &Route, subnet: Ipv4Net) -> bool {
    r.kind.as_deref() == Some("unreachable")
        && r.dst.as_deref().and_then(prefix) == Some(subnet.trunc())
        && r.metric == Some(SAFETY_METRIC)
        && in_main_table(r)
}

/// The interfaces a route leaves by: its own, or its nexthops'.
fn route_devs(r: &Route) -> Vec<&str> {
    r.dev
        .iter()
        .chain(r.nexthops.iter().filter_map(|h| h.dev.as_ref()))
        .map(String::as_str)
        .collect()
}

/// The addresses in `addrs` (`ip -j -4 addr show`) that `subnet` overlaps, on any interface
/// but the lab's own bridge `bridge` and its veth ports. Pure: the caller runs the command.
pub fn address_conflicts(subnet: Ipv4Net, bridge: &str, addrs: &str) -> Result<Vec<Taken>, String> {
    let subnet = subnet.trunc();
    let mut found: Vec<Taken> = Vec::new();
    let mut add = |t: Taken| {
        if !found.contains(&t) {
            found.push(t);
        }
    };
    for link in parse_list::<Link>("ip -j -4 addr show", addrs)? {
        if is_lab_dev(&link.ifname, bridge) {
            continue;
        }
        for a in &link.addr_info {
            if a.family.as_deref().is_some_and(|f| f != "inet") {
                continue;
            }
            let Some(len) = a.prefixlen else { continue };
            let local = a.local.as_deref().and_then(|s| s.parse::<Ipv4Addr>().ok());
            let peer = a
                .address
                .as_deref()
                .and_then(|s| s.parse::<Ipv4Addr>().ok());
            let candidates = [
                local.map(|l| (l, format!("address {l}/{len}"))),
                peer.map(|p| match local {
                    Some(l) => (p, format!("address {l} peer {p}/{len}")),
                    None => (p, format!("address {p}/{len}")),
                }),
            ];
            for (ip, what) in candidates.into_iter().flatten() {
                if Ipv4Net::new(ip, len).is_ok_and(|n| overlaps(subnet, n.trunc())) {
                    add(Taken {
                        what,
                        dev: Some(link.ifname.clone()),
                    });
                }
            }
        }
    }
    Ok(found)
}

/// Everything in `addrs` (`ip -j -4 addr show`) and `routes` (`ip -j -4 route show table all`)
/// that `subnet` overlaps, except what belongs to the lab whose bridge is `bridge`. Pure: the
/// caller runs the commands.
pub fn conflicts(
    subnet: Ipv4Net,
    bridge: &str,
    addrs: &str,
    routes: &str,
) -> Result<Vec<Taken>, String> {
    let subnet = subnet.trunc();
    let mut found = address_conflicts(subnet, bridge, addrs)?;
    let mut add = |t: Taken| {
        if !found.contains(&t) {
            found.push(t);
        }
    };
    for r in parse_list::<Route>("ip -j -4 route show table all", routes)? {
        let devs = route_devs(&r);
        if (!devs.is_empty() && devs.iter().all(|d| is_lab_dev(d, bridge)))
            || is_safety_route(&r, subnet)
        {
            continue;
        }
        let dst = r.dst.as_deref().unwrap_or("default");
        // `default` (0.0.0.0/0) would overlap every subnet: only its gateway counts.
        let net = prefix(dst).filter(|n| n.prefix_len() > 0);
        let dev = devs.first().map(|d| d.to_string());
        if let Some(net) = net.filter(|n| overlaps(subnet, *n)) {
            let kind = match r.kind.as_deref() {
                None | Some("unicast") => String::new(),
                Some(k) => format!("{k} "),
            };
            let table = match &r.table {
                None => String::new(),
                Some(Value::String(t)) => format!(" table {t}"),
                Some(t) => format!(" table {t}"),
            };
            add(Taken {
                what: format!("route {kind}{net}{table}"),
                dev: dev.clone(),
            });
        }
        let of = if net.is_some() {
            format!("the route {dst}")
        } else {
            "the default route".to_string()
        };
        let gateways =
            r.gateway
                .iter()
                .map(|g| (g, r.dev.clone()))
                .chain(r.nexthops.iter().filter_map(|h| {
                    h.gateway
                        .as_ref()
                        .map(|g| (g, h.dev.clone().or(r.dev.clone())))
                }));
        for (gw, gw_dev) in gateways {
            let Ok(ip) = gw.parse::<Ipv4Addr>() else {
                continue;
            };
            if subnet.contains(&ip) {
                add(Taken {
                    what: format!("gateway {ip} of {of}"),
                    dev: gw_dev,
                });
            }
        }
    }
    Ok(found)
}

/// The refusal for `subnet`, naming what it overlaps and what to do.
pub fn refusal(resource: &str, subnet: Ipv4Net, taken: &[Taken]) -> ProviderError {
    let list = taken
        .iter()
        .map(Taken::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    ProviderError::Unsupported(format!(
        "{resource}: the lab subnet {subnet} overlaps this machine's own network: {list}. The \
         lab's bridge and safety route would take over those addresses and could cut the machine \
         off its network, so nothing was created: choose another `local.subnet` (a private range \
         that neither `ip -4 addr` nor `ip -4 route show table all` shows)"
    ))
}

/// Reads the machine's IPv4 addresses and routes (this namespace, every table) and refuses
/// `subnet` if it overlaps any of them other than the lab's own (bridge `bridge`).
pub async fn require_free_subnet(
    resource: &str,
    subnet: Ipv4Net,
    bridge: &str,
) -> Result<(), ProviderError> {
    let addrs = cmd::run(resource, IP, ["-j", "-4", "addr", "show"]).await?;
    let routes = cmd::run(resource, IP, ["-j", "-4", "route", "show", "table", "all"]).await?;
    let taken = conflicts(subnet, bridge, &addrs.stdout, &routes.stdout)
        .map_err(|e| cmd::cloud(resource, e))?;
    if taken.is_empty() {
        Ok(())
    } else {
        Err(refusal(resource, subnet, &taken))
    }
}

/// The interfaces other than this lab's bridge and veths that hold an address in `subnet`:
/// another lab's bridge (a cluster whose `up` was refused shares the subnet with it), or the
/// machine's own network. While any holds one, the subnet's shared objects (the safety route,
/// a resolver listening on its `.1`) are not this lab's to remove.
pub async fn others_on_subnet(
    resource: &str,
    subnet: Ipv4Net,
    bridge: &str,
) -> Result<Vec<Taken>, ProviderError> {
    let addrs = cmd::run(resource, IP, ["-j", "-4", "addr", "show"]).await?;
    address_conflicts(subnet, bridge, &addrs.stdout).map_err(|e| cmd::cloud(resource, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().expect("a prefix")
    }

    /// A laptop at home: wlan0 192.168.1.23/24, default via 192.168.1.1.
    const HOME_ADDRS: &str = r#"[
      {"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"addr_info":[
        {"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host","label":"lo"}]},
      {"ifindex":3,"ifname":"wlan0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"addr_info":[
        {"family":"inet","local":"192.168.1.23","prefixlen":24,"broadcast":"192.168.1.255",
         "scope":"global","dynamic":true,"label":"wlan0"}]},
      {"ifindex":4,"ifname":"eth1","flags":["NO-CARRIER"],"addr_info":[{}]}]"#;
    const HOME_ROUTES: &str = r#"[
      {"dst":"default","gateway":"192.168.1.1","dev":"wlan0","protocol":"dhcp","metric":600,"flags":[]},
      {"dst":"192.168.1.0/24","dev":"wlan0","protocol":"kernel","scope":"link","prefsrc":"192.168.1.23","metric":600,"flags":[]},
      {"type":"local","dst":"127.0.0.0/8","dev":"lo","table":"local","protocol":"kernel","scope":"host","prefsrc":"127.0.0.1","flags":[]},
      {"type":"local","dst":"192.168.1.23","dev":"wlan0","table":"local","protocol":"kernel","scope":"host","prefsrc":"192.168.1.23","flags":[]},
      {"type":"broadcast","dst":"192.168.1.255","dev":"wlan0","table":"local","protocol":"kernel","scope":"link","prefsrc":"192.168.1.23","flags":[]}]"#;

    /// An EC2 deploy host in the default VPC, with Docker's bridge.
    const EC2_ADDRS: &str = r#"[
      {"ifindex":1,"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"label":"lo"}]},
      {"ifindex":2,"ifname":"ens5","addr_info":[{"family":"inet","local":"172.31.40.17","prefixlen":20,"broadcast":"172.31.47.255","scope":"global","dynamic":true,"label":"ens5"}]},
      {"ifindex":3,"ifname":"docker0","addr_info":[{"family":"inet","local":"172.17.0.1","prefixlen":16,"broadcast":"172.17.255.255","scope":"global","label":"docker0"}]}]"#;
    const EC2_ROUTES: &str = r#"[
      {"dst":"default","gateway":"172.31.32.1","dev":"ens5","protocol":"dhcp","prefsrc":"172.31.40.17","metric":100,"flags":[]},
      {"dst":"172.17.0.0/16","dev":"docker0","protocol":"kernel","scope":"link","prefsrc":"172.17.0.1","flags":["linkdown"]},
      {"dst":"172.31.0.2","gateway":"172.31.32.1","dev":"ens5","protocol":"dhcp","prefsrc":"172.31.40.17","metric":100,"flags":[]},
      {"dst":"172.31.32.0/20","dev":"ens5","protocol":"kernel","scope":"link","prefsrc":"172.31.40.17","metric":100,"flags":[]}]"#;

    /// This machine on a re-run of `up`: eth0, plus lab `ah1234abcd` on 10.213.0.0/16 with its
    /// bridge, a veth port and its safety route (as `ip -j` printed them in a scratch netns).
    const LAB_ADDRS: &str = r#"[
      {"ifindex":1,"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host","label":"lo"}]},
      {"ifindex":4,"ifname":"eth0","addr_info":[{"family":"inet","local":"192.0.2.2","prefixlen":24,"broadcast":"192.0.2.255","scope":"global","label":"eth0"}]},
      {"ifindex":7,"ifname":"ah1234abcd","flags":["BROADCAST","MULTICAST","UP"],"addr_info":[{"family":"inet","local":"10.213.0.1","prefixlen":16,"scope":"global","label":"ah1234abcd"}]},
      {"ifindex":8,"ifname":"ah1234abcdv11","addr_info":[]}]"#;
    const LAB_ROUTES: &str = r#"[
      {"dst":"default","gateway":"192.0.2.1","dev":"eth0","flags":[]},
      {"dst":"192.0.2.0/24","dev":"eth0","protocol":"kernel","scope":"link","prefsrc":"192.0.2.2","flags":[]},
      {"dst":"10.213.0.0/16","dev":"ah1234abcd","protocol":"kernel","scope":"link","prefsrc":"10.213.0.1","flags":[]},
      {"type":"unreachable","dst":"10.213.0.0/16","metric":4000,"flags":[]},
      {"type":"local","dst":"10.213.0.1","dev":"ah1234abcd","table":"local","protocol":"kernel","scope":"host","prefsrc":"10.213.0.1","flags":[]},
      {"type":"broadcast","dst":"10.213.255.255","dev":"ah1234abcd","table":"local","protocol":"kernel","scope":"link","prefsrc":"10.213.0.1","flags":[]},
      {"type":"local","dst":"127.0.0.0/8","dev":"lo","table":"local","protocol":"kernel","scope":"host","prefsrc":"127.0.0.1","flags":[]}]"#;

    const HOME: (&str, &str) = (HOME_ADDRS, HOME_ROUTES);
    const EC2: (&str, &str) = (EC2_ADDRS, EC2_ROUTES);
    const LAB: (&str, &str) = (LAB_ADDRS, LAB_ROUTES);

    /// What `subnet` of the lab with `bridge` overlaps on a machine, as the refusal lists it.
    fn found(subnet: &str, bridge: &str, (addrs, routes): (&str, &str)) -> Vec<String> {
        conflicts(net(subnet), bridge, addrs, routes)
            .expect("parses")
            .iter()
            .map(Taken::to_string)
            .collect()
    }

    fn assert_lists(got: &[String], wanted: &[&str]) {
        for w in wanted {
            assert!(got.iter().any(|g| g == w), "{w:?} missing from {got:?}");
        }
    }

    #[test]
    fn the_home_lan_and_its_gateway_are_refused() {
        let gateway = "gateway 192.168.1.1 of the default route on wlan0";
        assert_lists(
            &found("192.168.1.0/24", "ah1234abcd", HOME),
            &[
                "address 192.168.1.23/24 on wlan0",
                "route 192.168.1.0/24 on wlan0",
                gateway,
            ],
        );
        // A smaller subnet around the gateway alone, and a larger one around the LAN.
        assert_lists(&found("192.168.1.0/30", "ah1234abcd", HOME), &[gateway]);
        assert_lists(&found("192.168.0.0/16", "ah1234abcd", HOME), &[gateway]);
        // The default route overlaps nothing by itself: another private range is free.
        assert_eq!(
            found("10.213.0.0/24", "ah1234abcd", HOME),
            Vec::<String>::new()
        );
    }

    #[test]
    fn the_vpc_and_a_docker_bridge_are_refused() {
        assert_lists(
            &found("172.31.0.0/16", "ah1234abcd", EC2),
            &[
                "address 172.31.40.17/20 on ens5",
                "route 172.31.0.2/32 on ens5",
                "gateway 172.31.32.1 of the default route on ens5",
            ],
        );
        let docker: &[&str] = &[
            "address 172.17.0.1/16 on docker0",
            "route 172.17.0.0/16 on docker0",
        ];
        for (subnet, want) in [("172.17.5.0/24", docker), ("10.213.0.0/24", &[])] {
            assert_eq!(found(subnet, "ah1234abcd", EC2), want, "{subnet}");
        }
    }

    #[test]
    fn a_rerun_accepts_the_labs_own_bridge_and_safety_route_only() {
        let safety = "route unreachable 10.213.0.0/16 (no interface)";
        // `up` again on the same lab: its bridge, veth and safety route are its own.
        assert_eq!(
            found("10.213.0.0/16", "ah1234abcd", LAB),
            Vec::<String>::new()
        );
        // Another cluster (another bridge) on an overlapping subnet is refused by both.
        assert_lists(
            &found("10.213.5.0/24", "ah99999999", LAB),
            &["address 10.213.0.1/16 on ah1234abcd", safety],
        );
        // The same lab with a narrower subnet: the old safety route is not its own any more.
        assert_eq!(found("10.213.0.0/24", "ah1234abcd", LAB), [safety]);
        // An interface whose name merely starts like the lab's bridge is not the lab's.
        assert!(is_lab_dev("ah1234abcdv11", "ah1234abcd"));
        assert!(!is_lab_dev("ah1234abcdx", "ah1234abcd"));
        assert!(!is_lab_dev("ah1234abcdv", "ah1234abcd"));
    }

    /// What `destroy` asks before it removes the subnet's safety route or a resolver on `.1`:
    /// the lab's own bridge is no holder, another lab's bridge is.
    #[test]
    fn another_labs_bridge_holds_the_subnet_the_labs_own_does_not() {
        let lab = |subnet: &str, bridge: &str| -> Vec<String> {
            address_conflicts(net(subnet), bridge, LAB_ADDRS)
                .expect("parses")
                .iter()
                .map(Taken::to_string)
                .collect()
        };
        assert_eq!(lab("10.213.0.0/16", "ah1234abcd"), Vec::<String>::new());
        assert_eq!(
            lab("10.213.0.0/16", "ah99999999"),
            ["address 10.213.0.1/16 on ah1234abcd"]
        );
        assert_eq!(lab("10.214.0.0/24", "ah99999999"), Vec::<String>::new());
    }

    #[test]
    fn peers_other_tables_and_multipath_gateways_count() {
        let addrs = r#"[{"ifname":"wg0","addr_info":[
            {"family":"inet","local":"10.8.0.2","address":"10.8.0.1","prefixlen":32}]}]"#;
        let routes = r#"[
          {"type":"blackhole","dst":"10.10.0.0/16","table":"100","flags":[]},
          {"dst":"10.9.0.0/16","flags":[],"nexthops":[
            {"gateway":"10.20.0.5","dev":"eth1","weight":1,"flags":[]},
            {"gateway":"10.20.0.6","dev":"eth2","weight":1,"flags":[]}]}]"#;
        let cases: [(&str, &[&str]); 3] = [
            (
                "10.8.0.0/30",
                &[
                    "address 10.8.0.2/32 on wg0",
                    "address 10.8.0.2 peer 10.8.0.1/32 on wg0",
                ],
            ),
            (
                "10.10.3.0/24",
                &["route blackhole 10.10.0.0/16 table 100 (no interface)"],
            ),
            (
                "10.20.0.6/31",
                &["gateway 10.20.0.6 of the route 10.9.0.0/16 on eth2"],
            ),
        ];
        for (subnet, want) in cases {
            assert_eq!(found(subnet, "ahx", (addrs, routes)), want, "{subnet}");
        }
    }

    #[test]
    fn unreadable_output_is_an_error_and_empty_output_is_nothing() {
        assert!(conflicts(net("10.0.0.0/8"), "ahx", "not json", "[]").is_err());
        assert_eq!(
            conflicts(net("10.0.0.0/8"), "ahx", "", "\n"),
            Ok(Vec::new())
        );
    }

    #[test]
    fn the_refusal_names_subnet_overlap_interface_and_the_fix() {
        let taken =
            conflicts(net("192.168.1.0/24"), "ahx", HOME_ADDRS, HOME_ROUTES).expect("parses");
        let msg = refusal("lab_network", net("192.168.1.0/24"), &taken).to_string();
        assert!(
            msg.starts_with("lab_network: the lab subnet 192.168.1.0/24 overlaps"),
            "{msg}"
        );
        assert!(msg.contains("address 192.168.1.23/24 on wlan0"), "{msg}");
        assert!(msg.contains("choose another `local.subnet`"), "{msg}");
    }

    /// The real `ip -j` of this machine, read only: loopback 127.0.0.1/8 is always there.
    #[tokio::test]
    async fn this_machines_own_addresses_are_seen() {
        let err = require_free_subnet("lab_network", net("127.0.0.0/24"), "ah00000000")
            .await
            .expect_err("loopback overlaps 127.0.0.0/24");
        let msg = err.to_string();
        assert!(msg.contains("address 127.0.0.1/8 on lo"), "{msg}");
        assert!(
            msg.contains("route local 127.0.0.0/8 table local on lo"),
            "{msg}"
        );
        // The default route's gateway, where this machine has one.
        let routes = cmd::run("t", IP, ["-j", "-4", "route", "show", "table", "main"])
            .await
            .expect("ip runs");
        let parsed: Vec<Route> = parse_list("ip", &routes.stdout).expect("parses");
        if let Some(gw) = parsed
            .iter()
            .filter(|r| r.dst.as_deref() == Some("default"))
            .find_map(|r| r.gateway.as_deref()?.parse::<Ipv4Addr>().ok())
        {
            let err = require_free_subnet("lab_network", Ipv4Net::from(gw), "ah00000000")
                .await
                .expect_err("the gateway is taken");
            assert!(err.to_string().contains(&format!("gateway {gw}")), "{err}");
        }
    }
}
