//! What the tests that drive [`AwsProvider`](acura_ha_aws::AwsProvider) through the real SDK
//! share: the journal the engine would be, the SDK pointed at moto or the fault proxy, and a
//! three-node cluster behind an NLB. `mod driver;` next to `mod common;`.

#![allow(dead_code)]

use acura_ha_api::model::{Recorded, Status};
use acura_ha_api::provider::{Journal, ProviderError};
use acura_ha_api::spec::ClusterSpec;
use serde_json::json;

use super::common;

/// The journal the engine would be: records by address, in order, and every status written.
#[derive(Debug, Default, Clone)]
pub struct MemJournal {
    pub records: Vec<Recorded>,
    pub history: Vec<(String, Option<Status>)>,
}

impl Journal for MemJournal {
    fn record(&mut self, resource: Recorded) -> Result<(), ProviderError> {
        self.history
            .push((resource.address.clone(), Some(resource.status)));
        match self
            .records
            .iter_mut()
            .find(|r| r.address == resource.address)
        {
            Some(r) => *r = resource,
            None => self.records.push(resource),
        }
        Ok(())
    }
    fn forget(&mut self, address: &str) -> Result<(), ProviderError> {
        self.history.push((address.to_string(), None));
        self.records.retain(|r| r.address != address);
        Ok(())
    }
    fn get(&self, address: &str) -> Option<&Recorded> {
        self.records.iter().find(|r| r.address == address)
    }
    fn all(&self) -> Vec<Recorded> {
        self.records.clone()
    }
}

impl MemJournal {
    pub fn id(&self, address: &str) -> String {
        self.get(address)
            .and_then(|r| r.id.clone())
            .unwrap_or_else(|| panic!("{address} has no ID: {:#?}", self.records))
    }
}

/// Points this process's AWS SDK at `url` (call it from the only test of a binary: no other
/// thread reads the environment meanwhile).
pub fn point_sdk_at(url: &str) {
    for k in common::aws_env_remove() {
        // SAFETY: single-threaded at this point; no other test runs in this binary.
        unsafe { std::env::remove_var(k) };
    }
    for (k, v) in common::aws_env(url) {
        // SAFETY: as above.
        unsafe { std::env::set_var(k, v) };
    }
}

pub fn spec(dir: &std::path::Path, cluster: &str) -> ClusterSpec {
    let key = dir.join("id.pub");
    std::fs::write(&key, format!("{}\n", common::TEST_PUBLIC_KEY)).unwrap();
    let spec: ClusterSpec = serde_json::from_value(json!({
        "cluster": { "name": cluster },
        "nodes": { "count": 3, "hostname_prefix": "acura" },
        "load_balancer": { "kind": "cloud" },
        "access": { "admin_cidrs": ["198.51.100.7/32"], "ssh_agent": true },
        "aws": {
            "region": common::REGION,
            "instance_type": "m5.2xlarge",
            "public_key_file": key.display().to_string(),
        },
    }))
    .expect("a valid spec");
    let problems = spec.validate();
    assert!(problems.is_empty(), "{problems:?}");
    spec
}
