//! Finding and stopping the lab's daemons by PID, never by name: other tests and the user run
//! their own sshd, nginx and dnsmasq on this machine. A PID from a pid file is only trusted
//! after checking that the process is the one the lab started (its network namespace, its
//! executable, its command line), so a recycled PID is never signalled.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

/// How long a stopped process gets after SIGTERM before SIGKILL.
pub const GRACE: Duration = Duration::from_secs(5);

/// The PID in a pid file, if the file exists and holds one.
pub fn read_pid_file(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path)
        .ok()?
        .trim()
        .parse::<i32>()
        .ok()
        .filter(|p| *p > 1)
}

/// Whether `pid` runs. A zombie does not count: daemonized children are reparented to PID 1,
/// which is not systemd here and may reap them late.
pub fn alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses and may contain spaces.
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    !matches!(state, None | Some("Z") | Some("X") | Some("x"))
}

/// The executable of `pid` (`/usr/sbin/sshd`).
pub fn exe(pid: i32) -> Option<std::path::PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/exe")).ok()
}

/// The arguments of `pid`.
pub fn cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `pid` lives in the named network namespace (`/run/netns/<ns>`): both are the same
/// nsfs inode. This is what `ip netns identify` checks, without a command.
pub fn in_namespace(pid: i32, namespace: &str) -> bool {
    let ns = std::fs::metadata(format!("/run/netns/{namespace}"));
    let own = std::fs::metadata(format!("/proc/{pid}/ns/net"));
    match (ns, own) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Sends `signal`; a process that is already gone is not an error.
pub fn signal(pid: i32, signal: Signal) {
    if let Some(p) = Pid::from_raw(pid) {
        // ESRCH (already gone) is the only expected failure, and it means done.
        let _ = rustix::process::kill_process(p, signal);
    }
}

/// SIGTERM to every PID, SIGKILL to what is left after [`GRACE`], then waits a little for
/// those. Returns the PIDs still running at the end (normally none).
pub async fn stop_all(pids: &[i32]) -> Vec<i32> {
    for &pid in pids {
        signal(pid, Signal::TERM);
    }
    let left = wait_gone(pids, GRACE).await;
    for &pid in &left {
        signal(pid, Signal::KILL);
    }
    wait_gone(&left, Duration::from_secs(2)).await
}

async fn wait_gone(pids: &[i32], within: Duration) -> Vec<i32> {
    let deadline = Instant::now() + within;
    loop {
        let left: Vec<i32> = pids.iter().copied().filter(|p| alive(*p)).collect();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_bogus_pid_is_not() {
        assert!(alive(std::process::id() as i32));
        assert!(!alive(i32::MAX));
    }

    #[tokio::test]
    async fn stop_all_terminates_a_child() {
        let mut child = tokio::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep starts");
        let pid = child.id().expect("pid") as i32;
        // Reap it concurrently, as PID 1 would for a daemon.
        let reaper = tokio::spawn(async move { child.wait().await });
        assert!(stop_all(&[pid]).await.is_empty());
        let _ = reaper.await;
    }
}
