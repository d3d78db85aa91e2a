//! Snapshot tests of `plan` for every example, as text and as JSON.

mod common;

use common::{acura_ha, example};

fn plan(example_file: &str, json: bool) -> String {
    let state = tempfile::tempdir().unwrap();
    let mut cmd = acura_ha();
    cmd.arg("plan")
        .arg("-c")
        .arg(example(example_file))
        .arg("--state-dir")
        .arg(state.path());
    if json {
        cmd.args(["--output", "json"]);
    }
    let out = cmd.assert().success().code(0).get_output().stdout.clone();
    String::from_utf8(out)
        .unwrap()
        .replace(&state.path().display().to_string(), "[STATE_DIR]")
}

macro_rules! snap {
    ($name:ident, $file:literal) => {
        #[test]
        fn $name() {
            insta::assert_snapshot!(concat!(stringify!($name), "_text"), plan($file, false));
            let json = plan($file, true);
            let value: serde_json::Value = serde_json::from_str(&json).expect("plan JSON parses");
            insta::assert_json_snapshot!(concat!(stringify!($name), "_json"), value);
        }
    };
}

snap!(local, "local.toml");
snap!(static_hosts, "static.toml");
snap!(aws, "aws.toml");
snap!(openstack, "openstack.toml");
