//! `fake-openstack [--port N] [--config FILE.json]`: run the fake cloud on 127.0.0.1 for
//! scripts and benchmarks. Drive it through the admin routes under `/__fake/`.

use fake_openstack::{Config, FakeCloud};

fn usage() -> ! {
    eprintln!("usage: fake-openstack [--port N] [--config FILE.json]");
    std::process::exit(2);
}

fn main() {
    let mut port = 0u16;
    let mut config = Config::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => {
                port = args
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--config" => {
                let path = args.next().unwrap_or_else(|| usage());
                let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
                    eprintln!("fake-openstack: cannot read {path}: {e}");
                    std::process::exit(1)
                });
                config = serde_json::from_str(&text).unwrap_or_else(|e| {
                    eprintln!("fake-openstack: bad config {path}: {e}");
                    std::process::exit(1)
                });
            }
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    let cloud = FakeCloud::start_on(config, port).unwrap_or_else(|e| {
        eprintln!("fake-openstack: cannot bind 127.0.0.1:{port}: {e}");
        std::process::exit(1)
    });
    // One line a script can parse, then serve until killed.
    println!(
        "fake-openstack listening on {} (auth_url {})",
        cloud.base_url(),
        cloud.auth_url()
    );
    loop {
        std::thread::park();
    }
}
