//! The NGINX stream configuration of the load-balancer host (`load_balancer.kind = "nginx"`).
//!
//! It is the guide's Step 3 configuration with its defects mended (see DESIGN.md §2): every block
//! is closed, `pid` names a file, the stream module is loaded by its full file name, and all six
//! listeners of the shared table are served (the guide's cloud table has only four). Worker
//! settings and per-listener timeouts are the guide's.

use std::fmt::Write as _;
use std::net::IpAddr;

use acura_ha_api::tables::{LISTENERS, Listener, Protocol};

/// Where the rendered file differs between a production host and a test or lab instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NginxOptions {
    /// `listen <address>:<port>` instead of `listen <port>`: for a host that serves other things on
    /// the same ports on other addresses (tests on loopback). Production leaves it unset, because a
    /// cloud VM does not own its floating or public address.
    pub listen_address: Option<IpAddr>,
    /// `None` leaves out the `user` line (for an NGINX that does not start as root).
    pub user: Option<String>,
    pub pid_file: String,
    pub error_log: String,
    /// Debian and Ubuntu build the stream module as a dynamic module (package `libnginx-mod-stream`).
    pub stream_module: String,
}

impl Default for NginxOptions {
    fn default() -> Self {
        NginxOptions {
            listen_address: None,
            user: Some("www-data".into()),
            pid_file: "/run/nginx.pid".into(),
            error_log: "/var/log/nginx/error.log".into(),
            stream_module: "/usr/lib/nginx/modules/ngx_stream_module.so".into(),
        }
    }
}

/// The guide's worker settings (Step 3).
const WORKER_PROCESSES: &str = "auto";
const WORKER_RLIMIT_NOFILE: u32 = 70000;
const WORKER_CONNECTIONS: u32 = 70000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    #[error("no node addresses: the load balancer needs at least one upstream")]
    NoUpstreams,
    #[error("{0:?} is not a host address NGINX can use as an upstream")]
    BadAddress(String),
    #[error("{0:?} cannot stand in an NGINX config (white space, ';', braces or quotes)")]
    BadPath(String),
}

/// Renders `/etc/nginx/nginx.conf` for upstream nodes at `nodes` (IP addresses or host names).
pub fn render(cluster: &str, nodes: &[String], opts: &NginxOptions) -> Result<String, RenderError> {
    if nodes.is_empty() {
        return Err(RenderError::NoUpstreams);
    }
    let upstreams = nodes
        .iter()
        .map(|n| upstream_host(n))
        .collect::<Result<Vec<_>, _>>()?;
    for p in [&opts.pid_file, &opts.error_log, &opts.stream_module]
        .into_iter()
        .chain(opts.user.as_ref())
    {
        check_word(p)?;
    }

    let mut out = String::new();
    let w = &mut out;
    // Writing to a String cannot fail; the `let _` keeps the renderer free of unwraps.
    let _ = writeln!(
        w,
        "# Rendered by acura-ha for cluster {cluster}: the load balancer of the Acura HA guide (Step 3)."
    );
    let _ = writeln!(w, "# Do not edit: `acura-ha up` writes it again.");
    let _ = writeln!(w, "load_module {};", opts.stream_module);
    let _ = writeln!(w);
    if let Some(user) = &opts.user {
        let _ = writeln!(w, "user {user};");
    }
    let _ = writeln!(w, "worker_processes {WORKER_PROCESSES};");
    let _ = writeln!(w, "worker_rlimit_nofile {WORKER_RLIMIT_NOFILE};");
    let _ = writeln!(w, "pid {};", opts.pid_file);
    let _ = writeln!(w, "error_log {};", opts.error_log);
    let _ = writeln!(w);
    let _ = writeln!(w, "events {{");
    let _ = writeln!(w, "    worker_connections {WORKER_CONNECTIONS};");
    let _ = writeln!(w, "}}");
    let _ = writeln!(w);
    let _ = writeln!(w, "stream {{");
    for l in LISTENERS {
        let _ = writeln!(w, "    upstream {} {{", l.upstream);
        for host in &upstreams {
            let _ = writeln!(w, "        server {host}:{};", l.port);
        }
        let _ = writeln!(w, "    }}");
        let _ = writeln!(w);
    }
    for (i, l) in LISTENERS.iter().enumerate() {
        let _ = writeln!(w, "    # {} ({})", l.name, l.description);
        let _ = writeln!(w, "    server {{");
        let _ = writeln!(w, "        listen {};", listen(l, opts.listen_address));
        let _ = writeln!(w, "        proxy_pass {};", l.upstream);
        for (directive, value) in l.nginx_directives {
            let _ = writeln!(w, "        {directive} {value};");
        }
        let _ = writeln!(w, "    }}");
        if i + 1 < LISTENERS.len() {
            let _ = writeln!(w);
        }
    }
    let _ = writeln!(w, "}}");
    Ok(out)
}

fn listen(l: &Listener, address: Option<IpAddr>) -> String {
    let addr = match address {
        Some(IpAddr::V4(a)) => format!("{a}:{}", l.port),
        Some(IpAddr::V6(a)) => format!("[{a}]:{}", l.port),
        None => l.port.to_string(),
    };
    match l.protocol {
        Protocol::Tcp => addr,
        Protocol::Udp => format!("{addr} udp"),
    }
}

/// `10.0.0.1`, `[2001:db8::1]` or a host name, ready to take `:port`.
fn upstream_host(node: &str) -> Result<String, RenderError> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Ok(match ip {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => format!("[{a}]"),
        });
    }
    let valid_name = !node.is_empty()
        && node.len() <= 253
        && node.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if valid_name {
        Ok(node.to_string())
    } else {
        Err(RenderError::BadAddress(node.to_string()))
    }
}

fn check_word(s: &str) -> Result<(), RenderError> {
    if s.is_empty()
        || s.contains(|c: char| c.is_whitespace() || matches!(c, ';' | '{' | '}' | '"' | '\''))
    {
        Err(RenderError::BadPath(s.to_string()))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes() -> Vec<String> {
        vec!["10.0.0.11".into(), "10.0.0.12".into(), "10.0.0.13".into()]
    }

    #[test]
    fn braces_balance_and_every_listener_is_served() {
        let conf = render("demo", &nodes(), &NginxOptions::default()).unwrap();
        assert_eq!(conf.matches('{').count(), conf.matches('}').count());
        for l in LISTENERS {
            assert!(
                conf.contains(&format!("upstream {} {{", l.upstream)),
                "{}",
                l.upstream
            );
            assert_eq!(conf.matches(&format!(":{};", l.port)).count(), 3);
        }
        assert!(conf.contains("listen 12201 udp;"));
        assert!(conf.contains("pid /run/nginx.pid;"));
        assert!(conf.contains("load_module /usr/lib/nginx/modules/ngx_stream_module.so;"));
    }

    #[test]
    fn guide_tuning_is_kept() {
        let conf = render("demo", &nodes(), &NginxOptions::default()).unwrap();
        for line in [
            "worker_processes auto;",
            "worker_rlimit_nofile 70000;",
            "worker_connections 70000;",
            "proxy_buffer_size 10m;",
            "proxy_timeout 10s;",
            "proxy_connect_timeout 60s;",
        ] {
            assert!(conf.contains(line), "{line}");
        }
    }

    #[test]
    fn ipv6_and_listen_address() {
        let opts = NginxOptions {
            listen_address: Some("127.0.2.10".parse().unwrap()),
            ..NginxOptions::default()
        };
        let conf = render("demo", &["2001:db8::5".into()], &opts).unwrap();
        assert!(conf.contains("server [2001:db8::5]:443;"));
        assert!(conf.contains("listen 127.0.2.10:12201 udp;"));
    }

    #[test]
    fn refuses_what_would_break_the_config() {
        assert_eq!(
            render("d", &[], &NginxOptions::default()),
            Err(RenderError::NoUpstreams)
        );
        assert!(matches!(
            render("d", &["1.2.3.4; evil".into()], &NginxOptions::default()),
            Err(RenderError::BadAddress(_))
        ));
        let opts = NginxOptions {
            pid_file: "/run/x y".into(),
            ..NginxOptions::default()
        };
        assert!(matches!(
            render("d", &nodes(), &opts),
            Err(RenderError::BadPath(_))
        ));
    }
}
