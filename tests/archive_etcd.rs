//! The stand-in archive's REAL etcd on the local target: after `up`, the kubectl and kubeadm
//! stand-ins on a node answer the vendor guide's commands from the real clusters (the
//! control-plane etcd, v3 with TLS; Acura's store, v2), and a killed host shows as NotReady, is
//! deleted from the node list and removed from the etcd cluster with the guide's commands.
//! (The join run of k8s-master.yaml needs a fourth host: tests/e2e_day2.rs drives it through
//! `node add`.)

mod common;

use std::process::{Command, Output};

use common::lab::{Lab, ok};
use serde_json::Value;

const PKI: &str = "--cacert /etc/kubernetes/pki/etcd/ca.crt --cert /etc/kubernetes/pki/etcd/peer.crt --key /etc/kubernetes/pki/etcd/peer.key";

/// A command on a node over SSH, as acura-ha runs it (`PATH=$HOME/.local/bin:$PATH`).
fn on(lab: &Lab, node: &(String, String), cmd: &str) -> Output {
    Command::new("ssh")
        .arg("-i")
        .arg(lab.key())
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            lab.cluster_dir().join("known_hosts").display()
        ))
        .args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
        .arg(format!("root@{}", node.1))
        .arg(format!("env PATH=\"$HOME/.local/bin:$PATH\" {cmd}"))
        .output()
        .unwrap()
}

fn nodes_ready(lab: &Lab, via: &(String, String)) -> Vec<(String, String, String)> {
    let (out, _) = ok(&on(lab, via, "kubectl get nodes -o json"));
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{out}: {e}"));
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let ready = i["status"]["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == "Ready")
                .unwrap()["status"]
                .as_str()
                .unwrap()
                .to_string();
            let ip = i["status"]["addresses"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["type"] == "InternalIP")
                .unwrap()["address"]
                .as_str()
                .unwrap()
                .to_string();
            (
                i["metadata"]["name"].as_str().unwrap().to_string(),
                ip,
                ready,
            )
        })
        .collect()
}

fn members(lab: &Lab, via: &(String, String)) -> Vec<(String, String)> {
    let (out, _) = ok(&on(
        lab,
        via,
        &format!(
            "kubectl exec etcd-{} -n kube-system -- etcdctl {PKI} member list",
            via.0
        ),
    ));
    out.lines()
        .map(|l| {
            let f: Vec<&str> = l.split(", ").collect();
            assert_eq!(f.len(), 6, "{l}");
            assert_eq!(f[1], "started", "{l}");
            (f[0].to_string(), f[2].to_string())
        })
        .collect()
}

fn is_token(s: &str) -> bool {
    let (id, secret) = s.split_once('.').unwrap_or(("", ""));
    let ok = |p: &str, n: usize| {
        p.len() == n
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    };
    ok(id, 6) && ok(secret, 16)
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit())
}

#[test]
fn stand_ins_drive_real_etcd() {
    let lab = Lab::new("archive-etcd", 151, 3);
    let n: Vec<(String, String)> = (1..=3).map(|k| lab.node(k)).collect();
    let (_, lb) = lab.lb();
    ok(&lab.run(&["up", "--yes"]));

    // Every node Ready, with its address; three started members with the guide's output.
    let ready = nodes_ready(&lab, &n[1]);
    assert_eq!(
        ready,
        n.iter()
            .map(|(h, a)| (h.clone(), a.clone(), "True".to_string()))
            .collect::<Vec<_>>()
    );
    let mut names: Vec<String> = members(&lab, &n[0]).into_iter().map(|m| m.1).collect();
    names.sort();
    assert_eq!(names, n.iter().map(|m| m.0.clone()).collect::<Vec<_>>());

    // Acura's store (v2) holds the overlay list ha-acura wrote.
    let (out, _) = ok(&on(
        &lab,
        &n[2],
        "kubectl exec -ti etcd-0 -- etcdctl get /overlay_list",
    ));
    let list: Vec<String> = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(list[0], "overlay/ha.yaml", "{out}");

    // kubeadm: fresh secrets each time, shaped like kubeadm's.
    let join = |k: usize| {
        let (out, _) = ok(&on(
            &lab,
            &n[k],
            "kubeadm token create --print-join-command",
        ));
        let w: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(w.len(), 7, "{out}");
        assert_eq!(
            (w[0], w[1], w[2], w[3], w[5]),
            (
                "kubeadm",
                "join",
                format!("{lb}:6443").as_str(),
                "--token",
                "--discovery-token-ca-cert-hash"
            )
        );
        assert!(is_token(w[4]), "{out}");
        let hash = w[6].strip_prefix("sha256:").unwrap();
        assert!(is_hex64(hash), "{out}");
        (w[4].to_string(), hash.to_string())
    };
    let (t1, h1) = join(0);
    let (t2, h2) = join(1);
    assert_ne!(t1, t2);
    assert_eq!(h1, h2, "one CA");
    let certs = |k: usize| {
        let (out, _) = ok(&on(
            &lab,
            &n[k],
            "kubeadm init phase upload-certs --upload-certs",
        ));
        let l: Vec<&str> = out.lines().collect();
        assert_eq!(l.len(), 3, "{out}");
        assert_eq!(
            l[0],
            "[upload-certs] Storing the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace"
        );
        assert_eq!(l[1], "[upload-certs] Using certificate key:");
        assert!(is_hex64(l[2]), "{out}");
        l[2].to_string()
    };
    assert_ne!(certs(0), certs(2));

    // A host dies: NotReady, its etcd pod unreachable; the guide's removal works.
    let dead = &n[2];
    let pids = Command::new("ip")
        .args(["netns", "pids", &lab.namespace(&dead.0)])
        .output()
        .unwrap();
    let pids: Vec<String> = String::from_utf8_lossy(&pids.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert!(!pids.is_empty());
    Command::new("kill")
        .arg("-KILL")
        .args(&pids)
        .status()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let ready = nodes_ready(&lab, &n[0]);
    assert_eq!(ready[2], (dead.0.clone(), dead.1.clone(), "Unknown".into()));
    assert_eq!(ready[0].2, "True");
    let out = on(
        &lab,
        &n[0],
        &format!(
            "kubectl exec etcd-{} -n kube-system -- etcdctl {PKI} member list",
            dead.0
        ),
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "dial tcp {}:10250: connect: connection refused",
            dead.1
        )),
        "{err}"
    );
    let (out, _) = ok(&on(&lab, &n[0], &format!("kubectl delete node {}", dead.0)));
    assert_eq!(out.trim(), format!("node \"{}\" deleted", dead.0));
    let again = on(&lab, &n[0], &format!("kubectl delete node {}", dead.0));
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains(&format!(
        "Error from server (NotFound): nodes \"{}\" not found",
        dead.0
    )));
    let id = members(&lab, &n[0])
        .into_iter()
        .find(|m| m.1 == dead.0)
        .unwrap()
        .0;
    let (out, _) = ok(&on(
        &lab,
        &n[0],
        &format!(
            "kubectl exec etcd-{} -n kube-system -- etcdctl {PKI} member remove {id}",
            n[0].0
        ),
    ));
    assert!(out.contains(&format!("Member {id} removed")), "{out}");
    let left: Vec<String> = members(&lab, &n[1]).into_iter().map(|m| m.1).collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(!left.contains(&dead.0));
    let ready = nodes_ready(&lab, &n[1]);
    assert_eq!(ready.len(), 2);
    assert!(ready.iter().all(|r| r.2 == "True"), "{ready:?}");
}
