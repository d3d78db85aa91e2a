//! The cluster file's model: what a user writes in `cluster.toml`, typed. Deserialisation
//! rejects unknown keys; [`ClusterSpec::validate`] then checks what types cannot say (odd node
//! counts, hostnames without dots, one provider section...) and names the key of each problem,
//! so the loader can point at `file:line:col`.
//!
//! The provider sections (`[aws]`, `[openstack]`, `[static]`, `[local]`) are each target's
//! `section.rs` in [`crate::targets`], re-exported here. What depends on the file's target (its
//! section's checks, the node names, ...) is dispatched through the registry there, which adds
//! [`ClusterSpec::validate`] and the other such methods.
//!
//! Credentials are never part of this model: they come from the clouds' own mechanisms
//! (AWS profiles and environment, `clouds.yaml` and `OS_*`).

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::tables::{self, NodeMinimums, ProductOverlay, UbuntuRelease};

pub use crate::targets::aws::section::AwsSection;
pub use crate::targets::local::section::LocalSection;
pub use crate::targets::openstack::section::{AntiAffinity, OpenStackSection};
pub use crate::targets::r#static::section::{StaticHost, StaticSection};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    pub cluster: ClusterSection,
    #[serde(default)]
    pub nodes: NodesSection,
    pub load_balancer: LoadBalancerSection,
    pub access: AccessSection,
    #[serde(default)]
    pub bootstrap: BootstrapSection,
    #[serde(default)]
    pub preflight: PreflightSection,
    // One optional section per target (`crate::targets`); `validate` allows exactly one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openstack: Option<OpenStackSection>,
    #[serde(rename = "static", default, skip_serializing_if = "Option::is_none")]
    pub static_hosts: Option<StaticSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalSection>,
    /// Where the cluster's state and lock live (`.acura-ha/` next to the file by default).
    #[serde(default, skip_serializing_if = "StateSection::is_local_default")]
    pub state: StateSection,
    /// The state's lineage, set by the engine once the state is loaded (never in the file):
    /// every resource a provider creates carries it as `acura-ha/lineage`, so `up` adopts only
    /// its own cluster's resources and refuses another state's of the same name.
    #[serde(skip)]
    pub lineage: Option<String>,
    /// The lineage was made by this run (its state never written before): nothing in any cloud
    /// can carry it yet, so a provider need not look for resources of its own to adopt (it
    /// still looks for another state's under the cluster's names, #9.4). Set only by `up`.
    #[serde(skip)]
    pub lineage_new: bool,
}

/// `[state]`: where the state and its lock live. `local` is the directory next to the cluster
/// file (or `--state-dir`); `s3` and `swift` share one state object per cluster between
/// operators and CI. Credentials are never here: S3 uses the aws CLI's resolution (profiles,
/// `AWS_*`), Swift the `clouds.yaml`/`OS_*` of the OpenStack provider.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateSection {
    #[serde(default)]
    pub backend: StateBackendKind,
    /// S3: the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// Swift: the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Prepended to the object names (`team/prod/`); none by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// S3: otherwise the region the aws CLI would use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// S3: a profile of the aws CLI's files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// S3: SSE-KMS with this key ID or ARN; SSE-S3 (AES256) otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// Swift: a `clouds.yaml` entry; otherwise `[openstack] cloud`, `OS_CLOUD` or `OS_*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<String>,
}

impl StateSection {
    pub fn is_local_default(&self) -> bool {
        *self == StateSection::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateBackendKind {
    #[default]
    Local,
    S3,
    Swift,
}

impl StateBackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StateBackendKind::Local => "local",
            StateBackendKind::S3 => "s3",
            StateBackendKind::Swift => "swift",
        }
    }
}

/// Which provider section the file has: one per target, each with its row in
/// [`TARGETS`](crate::targets::TARGETS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Aws,
    OpenStack,
    Static,
    Local,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// Used in every resource name and in the `acura-ha/cluster` tag.
    pub name: String,
    #[serde(default)]
    pub product: Product,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Product {
    #[default]
    Dr,
    Migration,
}

impl Product {
    pub fn overlay(self) -> ProductOverlay {
        match self {
            Product::Dr => ProductOverlay::Dr,
            Product::Migration => ProductOverlay::Migration,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodesSection {
    #[serde(default = "default_node_count")]
    pub count: u32,
    /// Node hostnames are `<prefix>-1`, `<prefix>-2`, ...; defaults to the cluster name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname_prefix: Option<String>,
    #[serde(default = "default_volume_gb")]
    pub volume_size_gb: u32,
    #[serde(default)]
    pub os_version: OsVersion,
    /// The node names after day-2 changes (`node remove/add/replace`): set by the engine from
    /// the state, never read from the file. `None` means `<prefix>-1 … <prefix>-<count>`.
    #[serde(skip)]
    pub members: Option<Vec<String>>,
}

fn default_node_count() -> u32 {
    tables::MIN_NODES
}
fn default_volume_gb() -> u32 {
    tables::GUIDE_MINIMUMS.root_gb
}

impl Default for NodesSection {
    fn default() -> Self {
        NodesSection {
            count: default_node_count(),
            hostname_prefix: None,
            volume_size_gb: default_volume_gb(),
            os_version: OsVersion::default(),
            members: None,
        }
    }
}

/// `"20.04"` or `"24.04"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum OsVersion {
    #[default]
    #[serde(rename = "20.04")]
    Focal,
    #[serde(rename = "24.04")]
    Noble,
}

impl OsVersion {
    pub fn release(self) -> UbuntuRelease {
        match self {
            OsVersion::Focal => UbuntuRelease::Focal,
            OsVersion::Noble => UbuntuRelease::Noble,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancerSection {
    pub kind: LbKind,
    /// Only with `kind = "external"`: the address users and nodes reach the cluster on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LbKind {
    /// The cloud's own load balancer (AWS NLB, OpenStack Octavia).
    Cloud,
    /// A small VM (or, for `static`/`local`, a given host) running NGINX with every listener.
    Nginx,
    /// A load balancer the user runs; the tool only uses its address.
    External,
}

impl LbKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LbKind::Cloud => "cloud",
            LbKind::Nginx => "nginx",
            LbKind::External => "external",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessSection {
    /// Who may reach SSH and the admin-only ports (the guide's `<IP*>/32`).
    pub admin_cidrs: Vec<IpNet>,
    /// Who may reach the UI, the Kubernetes API and the log port.
    #[serde(default = "default_public_cidrs")]
    pub public_cidrs: Vec<IpNet>,
    #[serde(default = "default_ssh_user")]
    pub ssh_user: String,
    /// A private key file (relative paths are relative to the cluster file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_private_key: Option<String>,
    /// Use the keys of the running ssh-agent (`SSH_AUTH_SOCK`), e.g. for password-protected keys.
    #[serde(default)]
    pub ssh_agent: bool,
}

fn default_public_cidrs() -> Vec<IpNet> {
    vec!["0.0.0.0/0".parse().expect("a valid CIDR")]
}
fn default_ssh_user() -> String {
    "ubuntu".to_string()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapSection {
    /// `hystax-ha-archive.tar.gz` or an unpacked folder (relative to the cluster file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<String>,
    /// Replaces the product's default overlay list (Step 6) when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlays: Option<Vec<String>>,
    /// Step 5's `logstash_host` (empty in the guide).
    #[serde(default)]
    pub logstash_host: String,
    #[serde(default = "yes")]
    pub copy_patch: bool,
    #[serde(default = "yes")]
    pub copy_ca: bool,
}

fn yes() -> bool {
    true
}

impl Default for BootstrapSection {
    fn default() -> Self {
        BootstrapSection {
            archive: None,
            overlays: None,
            logstash_host: String::new(),
            copy_patch: true,
            copy_ca: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreflightSection {
    /// A name every node must resolve (the guide's nslookup check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_name: Option<String>,
    /// Overrides the guide's node minimums. `plan` prints every relaxed value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimums: Option<MinimumsSection>,
    /// How long `up` waits for every host to accept an SSH login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_wait_secs: Option<u64>,
    /// How long the post-checks wait for nodes Ready and pods Running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_wait_secs: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinimumsSection {
    pub root_gb: u32,
    pub ram_gb: u32,
    pub vcpus: u32,
    #[serde(default = "yes")]
    pub single_partition: bool,
    /// Operating systems accepted instead of the guide's Ubuntu, as `"<ID> <VERSION_ID>"` from
    /// `/etc/os-release` (e.g. `"debian 12"` for the local target's hosts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_releases: Option<Vec<String>>,
}

/// A problem found by [`ClusterSpec::validate`]: the dotted key it concerns, what is wrong, and
/// what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// `nodes.count`, `static.nodes[1].name`, or `` for the whole file.
    pub path: String,
    pub message: String,
}

pub(crate) fn invalid(path: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid {
        path: path.into(),
        message: message.into(),
    }
}

/// Cluster names appear in cloud resource names with suffixes (`-nlb`, `-tcp-15000`); AWS caps
/// load balancer and target group names at 32 characters.
pub const MAX_CLUSTER_NAME: usize = 20;

impl ClusterSpec {
    /// This spec as the engine hands it to a provider: with the state's lineage, which is never
    /// in the cluster file (`None` before a state exists, and for a lost state's teardown).
    pub fn with_lineage(&self, lineage: Option<String>) -> ClusterSpec {
        ClusterSpec {
            lineage,
            lineage_new: false,
            ..self.clone()
        }
    }

    /// This spec with a lineage `up` has just made for a state never written before.
    pub fn with_new_lineage(&self, lineage: String) -> ClusterSpec {
        ClusterSpec {
            lineage: Some(lineage),
            lineage_new: true,
            ..self.clone()
        }
    }

    pub fn hostname_prefix(&self) -> &str {
        self.nodes
            .hostname_prefix
            .as_deref()
            .unwrap_or(&self.cluster.name)
    }

    /// The number in a `<prefix>-<k>` node name (what the local target derives an address
    /// from, so that removing a node never moves the others).
    pub fn node_number(&self, name: &str) -> Option<u32> {
        name.strip_prefix(self.hostname_prefix())?
            .strip_prefix('-')?
            .parse()
            .ok()
    }

    /// The overlay list Step 6 passes: the file's override or the product's default.
    pub fn overlays(&self) -> Vec<String> {
        self.bootstrap
            .overlays
            .clone()
            .unwrap_or_else(|| tables::default_overlays(self.cluster.product.overlay()))
    }

    /// The minimums preflight checks against: the guide's unless the file relaxes them.
    pub fn minimums(&self) -> NodeMinimums {
        match &self.preflight.minimums {
            Some(m) => NodeMinimums {
                root_gb: m.root_gb,
                single_partition: m.single_partition,
                ram_gb: m.ram_gb,
                vcpus: m.vcpus,
            },
            None => tables::GUIDE_MINIMUMS,
        }
    }

    /// The `"<ID> <VERSION_ID>"` values preflight accepts: the file's override, or Ubuntu of
    /// `nodes.os_version`.
    pub fn accepted_os(&self) -> Vec<String> {
        self.preflight
            .minimums
            .as_ref()
            .and_then(|m| m.os_releases.clone())
            .unwrap_or_else(|| {
                vec![format!(
                    "ubuntu {}",
                    self.nodes.os_version.release().version()
                )]
            })
    }

    /// The tags every created resource carries.
    pub fn tags(&self, role: &str) -> Vec<(String, String)> {
        vec![
            (TAG_CLUSTER.to_string(), self.cluster.name.clone()),
            (TAG_ROLE.to_string(), role.to_string()),
            (TAG_MANAGED_BY.to_string(), "acura-ha".to_string()),
        ]
    }

    /// The tags a provider sends to the cloud: [`tags`](Self::tags) and the state's lineage.
    /// The lineage stays out of the desired model's `tags` attribute, so the plan reads the same
    /// before the first state exists and for clusters created before lineage tags.
    pub fn cloud_tags(&self, role: &str) -> Vec<(String, String)> {
        let mut t = self.tags(role);
        if let Some(l) = &self.lineage {
            t.push((TAG_LINEAGE.to_string(), l.clone()));
        }
        t
    }

    /// Whether a resource found in the cloud with the cluster's name may be adopted: one whose
    /// `acura-ha/lineage` tag names another state belongs to another cluster of the same name
    /// (two operators, one name, one account) and is refused, naming it. A resource without
    /// the tag (made before lineage tags, or by hand) is adopted as before.
    pub fn check_lineage(&self, resource: &str, found: Option<&str>) -> Result<(), String> {
        match (found, &self.lineage) {
            (Some(theirs), Some(ours)) if theirs != ours => Err(format!(
                "{resource} carries {TAG_LINEAGE} = {theirs}, but this state's lineage is {ours}: \
                 another state owns a cluster named {:?} in this account. Nothing of it is \
                 touched. Use another cluster.name, or run from the state that made it \
                 ({} prints the lineage of that cluster file's state)",
                self.cluster.name,
                crate::hint::program_command("state show -c FILE")
            )),
            _ => Ok(()),
        }
    }

    /// The checks every cluster file shares, in the order [`validate`](Self::validate) reports
    /// them; `makes_ssh_key`: whether the file's target makes an SSH key when `[access]` gives
    /// none.
    pub(crate) fn validate_shared(&self, makes_ssh_key: bool, out: &mut Vec<Invalid>) {
        self.validate_cluster(out);
        self.validate_nodes(out);
        self.validate_access(makes_ssh_key, out);
        self.validate_bootstrap(out);
        self.validate_preflight(out);
        self.validate_state(out);
    }

    /// `[state]`: the chosen backend's required key. Keys of the other backends are allowed:
    /// they say where `state migrate --to <backend>` moves the state.
    fn validate_state(&self, out: &mut Vec<Invalid>) {
        let st = &self.state;
        let missing = match st.backend {
            StateBackendKind::Local => None,
            StateBackendKind::S3 => st.bucket.is_none().then_some("bucket"),
            StateBackendKind::Swift => st.container.is_none().then_some("container"),
        };
        if let Some(key) = missing {
            out.push(invalid(
                "state.backend",
                format!(
                    "state.backend = \"{}\" needs state.{key}: name the {key} that holds the state",
                    st.backend.as_str()
                ),
            ));
        }
        if let Some(prefix) = &st.prefix
            && (prefix.starts_with('/') || prefix.split('/').any(|p| p == ".." || p == "."))
        {
            out.push(invalid(
                "state.prefix",
                format!("state.prefix = {prefix:?}: use a relative object-name prefix such as \"team/prod/\" (no leading '/', no '.' or '..')"),
            ));
        }
    }

    fn validate_cluster(&self, out: &mut Vec<Invalid>) {
        let name = &self.cluster.name;
        if let Err(why) = check_label(name, MAX_CLUSTER_NAME) {
            out.push(invalid(
                "cluster.name",
                format!(
                    "cluster.name = {name:?}: {why}; use 1 to {MAX_CLUSTER_NAME} lowercase letters, digits and '-', starting with a letter"
                ),
            ));
        } else if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
            out.push(invalid(
                "cluster.name",
                format!("cluster.name = {name:?}: must start with a lowercase letter"),
            ));
        }
    }

    fn validate_nodes(&self, out: &mut Vec<Invalid>) {
        let n = self.nodes.count;
        if n < tables::MIN_NODES {
            out.push(invalid(
                "nodes.count",
                format!(
                    "nodes.count = {n}: the guide's HA cluster has at least {} nodes; use 3 or 5",
                    tables::MIN_NODES
                ),
            ));
        } else if n.is_multiple_of(2) {
            out.push(invalid(
                "nodes.count",
                format!(
                    "nodes.count = {n}: etcd needs an odd number of members; use {} or {}",
                    n - 1,
                    n + 1
                ),
            ));
        } else if n > 99 {
            out.push(invalid(
                "nodes.count",
                format!("nodes.count = {n}: at most 99 nodes are supported"),
            ));
        }
        if let Some(members) = &self.nodes.members {
            for (i, name) in members.iter().enumerate() {
                if let Err(why) = check_hostname(name) {
                    out.push(invalid(
                        format!("nodes.members[{i}]"),
                        format!("node name {name:?}: {why}; {HOSTNAME_RULE}"),
                    ));
                }
            }
        }
        if let Some(prefix) = &self.nodes.hostname_prefix {
            // Room for "-99" and "-lb" inside a 63-character DNS label.
            if let Err(why) = check_label(prefix, 60) {
                out.push(invalid(
                    "nodes.hostname_prefix",
                    format!(
                        "nodes.hostname_prefix = {prefix:?}: {why}; hostnames must not be FQDNs (no dots): use lowercase letters, digits and '-'"
                    ),
                ));
            }
        }
        let min = tables::GUIDE_MINIMUMS.root_gb;
        if self.nodes.volume_size_gb < min {
            out.push(invalid(
                "nodes.volume_size_gb",
                format!(
                    "nodes.volume_size_gb = {}: the guide needs at least {min} GB as one partition; use {min} or more",
                    self.nodes.volume_size_gb
                ),
            ));
        }
    }

    fn validate_access(&self, makes_ssh_key: bool, out: &mut Vec<Invalid>) {
        let a = &self.access;
        if a.admin_cidrs.is_empty() {
            out.push(invalid(
                "access.admin_cidrs",
                "access.admin_cidrs is empty: SSH (22) and the admin ports (30080-30082) need the deploy host's address, e.g. [\"198.51.100.7/32\"]",
            ));
        }
        if a.public_cidrs.is_empty() {
            out.push(invalid(
                "access.public_cidrs",
                "access.public_cidrs is empty: the UI, Kubernetes API and log ports need at least one source, e.g. [\"0.0.0.0/0\"]",
            ));
        }
        if let Err(why) = check_user(&a.ssh_user) {
            out.push(invalid(
                "access.ssh_user",
                format!("access.ssh_user = {:?}: {why}", a.ssh_user),
            ));
        }
        if let Some(k) = &a.ssh_private_key
            && k.trim().is_empty()
        {
            out.push(invalid(
                "access.ssh_private_key",
                "access.ssh_private_key is empty: give a key file path, or remove it and set ssh_agent = true",
            ));
        }
        if !makes_ssh_key && a.ssh_private_key.is_none() && !a.ssh_agent {
            out.push(invalid(
                "access",
                "access has no SSH credentials: set ssh_private_key = \"<file>\" or ssh_agent = true",
            ));
        }
    }

    fn validate_bootstrap(&self, out: &mut Vec<Invalid>) {
        if let Some(list) = &self.bootstrap.overlays {
            if list.is_empty() {
                out.push(invalid(
                    "bootstrap.overlays",
                    "bootstrap.overlays is empty: remove it to use the product's default list, or name the overlays",
                ));
            }
            for (i, o) in list.iter().enumerate() {
                if o.trim().is_empty() || o.contains(['"', '\'', '\n']) {
                    out.push(invalid(
                        format!("bootstrap.overlays[{i}]"),
                        format!("bootstrap.overlays[{i}] = {o:?}: not an overlay path like \"overlay/ha.yaml\""),
                    ));
                }
            }
        }
        let logstash = &self.bootstrap.logstash_host;
        if !logstash.is_empty()
            && let Err(why) = check_host(logstash)
        {
            out.push(invalid(
                "bootstrap.logstash_host",
                format!(
                    "bootstrap.logstash_host = {logstash:?}: {why}; give an IP address or a DNS name, or \"\""
                ),
            ));
        }
    }

    fn validate_preflight(&self, out: &mut Vec<Invalid>) {
        if let Some(name) = &self.preflight.dns_name
            && let Err(why) = check_dns_name(name)
        {
            out.push(invalid(
                "preflight.dns_name",
                format!(
                    "preflight.dns_name = {name:?}: {why}; give a DNS name every node must resolve"
                ),
            ));
        }
        if let Some(m) = &self.preflight.minimums {
            if let Some(list) = &m.os_releases {
                for (i, os) in list.iter().enumerate() {
                    let mut words = os.split(' ');
                    let ok = matches!((words.next(), words.next(), words.next()), (Some(id), Some(v), None) if !id.is_empty() && !v.is_empty() && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
                    if !ok {
                        out.push(invalid(
                            format!("preflight.minimums.os_releases[{i}]"),
                            format!("preflight.minimums.os_releases[{i}] = {os:?}: write \"<ID> <VERSION_ID>\" as /etc/os-release has them, e.g. \"ubuntu 20.04\" or \"debian 12\""),
                        ));
                    }
                }
            }
            for (key, v) in [
                ("root_gb", m.root_gb),
                ("ram_gb", m.ram_gb),
                ("vcpus", m.vcpus),
            ] {
                if v == 0 {
                    out.push(invalid(
                        format!("preflight.minimums.{key}"),
                        format!("preflight.minimums.{key} = 0: use at least 1"),
                    ));
                }
            }
        }
    }

    /// `[load_balancer]`'s address checks, run when the file has one provider section.
    pub(crate) fn validate_load_balancer(&self, out: &mut Vec<Invalid>) {
        let lb = &self.load_balancer;
        match (lb.kind, &lb.address) {
            (LbKind::External, None) => out.push(invalid(
                "load_balancer",
                "load_balancer.kind = \"external\" needs address = \"<the load balancer's address>\"",
            )),
            (LbKind::External, Some(a)) => {
                if let Err(why) = check_host(a) {
                    out.push(invalid(
                        "load_balancer.address",
                        format!("load_balancer.address = {a:?}: {why}; give an IP address or a DNS name"),
                    ))
                }
            }
            (LbKind::Cloud | LbKind::Nginx, Some(_)) => out.push(invalid(
                "load_balancer.address",
                format!(
                    "load_balancer.address is only for kind = \"external\"; with kind = \"{}\" the tool {}",
                    lb.kind.as_str(),
                    if lb.kind == LbKind::Cloud { "creates the load balancer" } else { "knows the NGINX host's address" }
                ),
            )),
            _ => {}
        }
    }
}

/// The tag keys every created resource carries.
pub const TAG_CLUSTER: &str = "acura-ha/cluster";
pub const TAG_ROLE: &str = "acura-ha/role";
pub const TAG_MANAGED_BY: &str = "acura-ha/managed-by";
/// The state's lineage on every resource the tool creates ([`ClusterSpec::cloud_tags`]).
pub const TAG_LINEAGE: &str = "acura-ha/lineage";

/// What [`check_hostname`] allows, for messages.
pub const HOSTNAME_RULE: &str = "a node name is a hostname without dots: 1 to 63 lowercase letters, digits and '-', not starting or ending with '-'";

/// Whether `name` may be a node's hostname: the rule of `nodes.hostname_prefix` for a whole
/// name — one DNS label of lowercase letters, digits and '-', not at either end, at most 63
/// characters. Every node name passes it wherever it comes from (the file's `static.nodes`,
/// `node add --name`, the state's day-2 node set) before it becomes a path, an inventory line, a
/// cloud-init or NGINX file or a cloud tag.
pub fn check_hostname(name: &str) -> Result<(), String> {
    check_label(name, 63)
}

/// Whether `s` is an IP address (v4 or v6) or a DNS name: what an address the tool hands to
/// the bootstrap (`load_balancer.address`, `logstash_host`, a recorded load balancer address)
/// may be. No port, scheme, path or quoting: nothing that could mean more than a host.
pub fn check_host(s: &str) -> Result<(), String> {
    if s.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    check_dns_name(s).map_err(|why| format!("not an IP address, and as a DNS name it {why}"))
}

/// A DNS name after RFC 1123: dot-separated labels of ASCII letters, digits and '-', none
/// empty, none starting or ending with '-', each at most 63 characters, at most 253 in all (a
/// single trailing dot allowed); the last label is not all digits (`999.1.1.1` is a mistyped
/// address, not a name).
pub fn check_dns_name(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("is empty".into());
    }
    let name = s.strip_suffix('.').unwrap_or(s);
    if name.len() > 253 {
        return Err(format!("is {} characters, more than 253", name.len()));
    }
    let labels: Vec<&str> = name.split('.').collect();
    for label in &labels {
        if label.is_empty() {
            return Err("has an empty label (two dots in a row, or a dot at the start)".into());
        }
        if label.len() > 63 {
            return Err(format!(
                "has a label of {} characters, more than 63",
                label.len()
            ));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err(format!("contains {c:?}"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("has a label {label:?} starting or ending with '-'"));
        }
    }
    if labels
        .last()
        .is_some_and(|l| l.chars().all(|c| c.is_ascii_digit()))
    {
        return Err("ends in an all-numeric label (not a valid IP address either)".into());
    }
    Ok(())
}

/// A DNS label: lowercase letters, digits and '-', not at either end, at most `max` characters.
pub(crate) fn check_label(s: &str, max: usize) -> Result<(), String> {
    if s.is_empty() {
        return Err("is empty".into());
    }
    if s.len() > max {
        return Err(format!("is {} characters, more than {max}", s.len()));
    }
    if s.contains('.') {
        return Err("contains a dot".into());
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!("contains {c:?}"));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err("starts or ends with '-'".into());
    }
    Ok(())
}

fn check_user(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 32 {
        return Err("use a login name of 1 to 32 characters".into());
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        || s.starts_with('-')
    {
        return Err("not a login name: use letters, digits, '_', '-' and '.'".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert!(check_label("acura-1", 63).is_ok());
        assert!(
            check_label("node1.example.com", 63)
                .unwrap_err()
                .contains("dot")
        );
        assert!(check_label("-a", 63).is_err());
        assert!(check_label("A", 63).is_err());
        assert!(check_label("", 63).is_err());
    }

    #[test]
    fn hostnames() {
        for ok in ["acura-1", "a", "n0", &"a".repeat(63)] {
            assert!(check_hostname(ok).is_ok(), "{ok:?}");
        }
        let long = "a".repeat(64);
        for bad in [
            "", "/", "../x", "x/y", "Acura-1", "-a", "a-", "a_b", "a b", "a.b", "é", "x;y", &long,
        ] {
            assert!(check_hostname(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hosts() {
        let label63 = "a".repeat(63);
        let long_ok = [label63.as_str(); 3].join(".") + ".abcdefghijklmnopqrstuvwxyz0123456789ab";
        assert_eq!(long_ok.len(), 230);
        for ok in [
            "203.0.113.5",
            "2001:db8::1",
            "::1",
            "lb.example.com",
            "LB.Example.COM",
            "lb.example.com.",
            "acura",
            "1a.example",
            "x--y.example",
            long_ok.as_str(),
        ] {
            assert!(check_host(ok).is_ok(), "{ok:?}: {:?}", check_host(ok));
        }
        let label64 = "a".repeat(64);
        let too_long = [label63.as_str(); 5].join(".");
        for bad in [
            "",
            " ",
            ".",
            "a..b",
            ".a",
            "-a.example",
            "a-.example",
            "a_b.example",
            "999.1.1.1",
            "1.2.3",
            "[2001:db8::1]",
            "lb.example.com:443",
            "http://lb",
            "$(reboot)",
            "a;b",
            "{{x}}",
            "a'b",
            "a\nb",
            "é.example",
            label64.as_str(),
            too_long.as_str(),
        ] {
            assert!(check_host(bad).is_err(), "{bad:?}");
        }
    }
}
