//! What the OpenStack provider's tests against the fake cloud share: an in-memory journal and
//! the fake cloud (2 items a page, as every provider test) with a directory holding its
//! clouds.yaml and a public key, a provider pointed at it and a session of one's own.
#![allow(dead_code)] // each test file uses its own part of it

use std::collections::BTreeMap;

use acura_ha_api::model::Recorded;
use acura_ha_api::provider::{Journal, ProviderError};
use acura_ha_api::spec::ClusterSpec;
use acura_ha_openstack::OpenStackProvider;
use acura_ha_openstack::client::Session;
use acura_ha_openstack::wait::Pace;
use fake_openstack::{CloudTraits, Config, FakeCloud};

/// The journal, by address.
#[derive(Default)]
pub struct Records(pub BTreeMap<String, Recorded>);

impl Journal for Records {
    fn record(&mut self, r: Recorded) -> Result<(), ProviderError> {
        self.0.insert(r.address.clone(), r);
        Ok(())
    }
    fn forget(&mut self, address: &str) -> Result<(), ProviderError> {
        self.0.remove(address);
        Ok(())
    }
    fn get(&self, address: &str) -> Option<&Recorded> {
        self.0.get(address)
    }
    fn all(&self) -> Vec<Recorded> {
        self.0.values().cloned().collect()
    }
}

/// The fake cloud and the directory of its clouds.yaml and `id.pub`. Dropping it stops the
/// cloud.
pub struct Cloud {
    pub fake: FakeCloud,
    pub dir: tempfile::TempDir,
}

impl Cloud {
    /// A cloud with the fake's default traits.
    pub fn start() -> Cloud {
        Cloud::with(CloudTraits::default())
    }

    /// A cloud with these traits (API versions, extensions, Octavia's full create…).
    pub fn with(cloud: CloudTraits) -> Cloud {
        Cloud::with_config(Config {
            page_size: Some(2),
            cloud,
            ..Config::default()
        })
    }

    /// A cloud of this configuration (delays, pages…).
    pub fn with_config(config: Config) -> Cloud {
        let fake = FakeCloud::start(config);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("clouds.yaml"), fake.clouds_yaml("fake")).unwrap();
        std::fs::write(
            dir.path().join("id.pub"),
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq2bmgO5vLp2Wq5l2B6Cq9a1PZt0W8S8pQ0bW3pH2mL test\n",
        )
        .unwrap();
        Cloud { fake, dir }
    }

    /// The provider, credentials from the cloud's clouds.yaml only, quiet, at the test pace.
    pub fn provider(&self) -> OpenStackProvider {
        self.provider_paced(Pace::scaled(0.01))
    }

    /// The same at another pace.
    pub fn provider_paced(&self, pace: Pace) -> OpenStackProvider {
        let home = self.dir.path().display().to_string();
        let env: BTreeMap<String, String> = [
            ("OS_CLIENT_CONFIG_FILE", format!("{home}/clouds.yaml")),
            ("HOME", home.clone()),
            ("PWD", home),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        OpenStackProvider::new(self.dir.path().to_path_buf())
            .quiet(true)
            .pace(pace)
            .env(env)
    }

    /// A session of our own, as an operator's openstack CLI would be.
    pub async fn session(&self, spec: &ClusterSpec) -> Session {
        let cfg = self.provider().cloud_config(spec).unwrap();
        Session::connect(&cfg).await.unwrap()
    }
}

/// A cluster file's text as a spec, checked valid.
pub fn parse_spec(text: &str) -> ClusterSpec {
    let spec: ClusterSpec = toml::from_str(text).unwrap();
    assert!(spec.validate().is_empty(), "{:?}", spec.validate());
    spec
}
