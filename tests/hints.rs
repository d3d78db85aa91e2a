//! Every command the tool suggests runs as printed (#15.2): the hints name the program as it can
//! be typed and this run's `-c FILE` (and `--state-dir DIR`), shell-quoted. Through the binary:
//! a held lock's `state unlock` and a state-less cluster's `up` are taken from stderr exactly as
//! printed and run with `sh -c` from the same directory; `--help` of every subcommand and every
//! hint in the sources is checked for a bare "`acura-ha <cmd>`" without `-c` where a cluster
//! file is needed. No root, no cloud. `cargo test --test hints`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use acura_ha::config::load;
use acura_ha::state::{LockInfo, StateStore};
use common::{acura_ha_std, example, repo};

/// A cluster file in a directory whose name has a space (so a suggested command must quote it),
/// given to the binary as a path relative to `cwd`.
struct Cluster {
    dir: tempfile::TempDir,
    /// The `-c` argument, relative to [`Cluster::cwd`].
    config: PathBuf,
}

impl Cluster {
    fn static_example() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("my cluster")).unwrap();
        let config = PathBuf::from("my cluster/static.toml");
        std::fs::copy(example("static.toml"), dir.path().join(&config)).unwrap();
        Cluster { dir, config }
    }

    fn cwd(&self) -> &Path {
        self.dir.path()
    }

    /// The binary, run from [`Cluster::cwd`] with no terminal and none of the variables that
    /// would fill `-c` or `--state-dir` for it.
    fn run(&self, args: &[&str]) -> Output {
        acura_ha_std()
            .current_dir(self.cwd())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `command` exactly as printed, through the shell, from the same directory.
    fn shell(&self, command: &str) -> Output {
        let mut sh = std::process::Command::new("sh");
        sh.arg("-c")
            .arg(command)
            .current_dir(self.cwd())
            .env_remove("ACURA_HA_CONFIG")
            .env_remove("ACURA_HA_STATE_DIR")
            .stdin(Stdio::null());
        sh.output().unwrap()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The command in backticks right after `after` on stderr.
fn suggested(stderr: &str, after: &str) -> String {
    let start = stderr
        .find(after)
        .unwrap_or_else(|| panic!("no {after:?} in:\n{stderr}"))
        + after.len();
    let rest = &stderr[start..];
    let end = rest.find('`').expect("a closing backtick");
    rest[..end].to_string()
}

/// The program as the hints print it: the binary's full path (it is not on the PATH here).
fn program() -> String {
    env!("CARGO_BIN_EXE_acura-ha").to_string()
}

#[test]
fn a_held_lock_names_an_unlock_command_that_works_as_printed() {
    let c = Cluster::static_example();
    let state_dir = "state dir";
    let store = StateStore::for_config(
        &load(&c.cwd().join(&c.config)).unwrap(),
        Some(&c.cwd().join(state_dir)),
    );
    std::fs::create_dir_all(store.lock_path().parent().unwrap()).unwrap();
    // A lock left by a run that died on another host.
    let lock = LockInfo {
        id: "dead-run-1".into(),
        operation: "up".into(),
        owner: "someone".into(),
        host: "elsewhere".into(),
        pid: 999_999_999,
        started_at: "2026-11-30T00:00:00Z".into(),
    };
    std::fs::write(store.lock_path(), serde_json::to_string(&lock).unwrap()).unwrap();

    let config = c.config.to_str().unwrap();
    let o = c.run(&["up", "--yes", "-c", config, "--state-dir", state_dir]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("error[AH210]"), "{err}");
    let unlock = suggested(&err, "if it died, run `");
    assert_eq!(
        unlock,
        format!(
            "{} state unlock dead-run-1 -c 'my cluster/static.toml' --state-dir 'state dir'",
            program()
        )
    );

    let o = c.shell(&unlock);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{unlock}: {}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert!(text(&o.stdout).contains("unlocked"), "{}", text(&o.stdout));
    assert!(!store.lock_path().exists(), "the lock is gone");
}

#[test]
fn a_cluster_without_state_names_an_up_command_that_works_as_printed() {
    let c = Cluster::static_example();
    let config = c.config.to_str().unwrap();
    let o = c.run(&["update", "--add-overlay", "extra", "--yes", "-c", config]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("has no state in "), "{err}");
    let up = {
        let line = err
            .lines()
            .find(|l| l.contains("has no state in "))
            .unwrap();
        suggested(line, ": run `")
    };
    assert_eq!(
        up,
        format!("{} up -c 'my cluster/static.toml'", program()),
        "the default state directory needs no --state-dir"
    );

    // As printed, with no terminal: `up` reads this cluster file, shows its whole plan (a
    // state-less cluster: everything to do) and stops at the question, changing nothing.
    let o = c.shell(&up);
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(
        err.contains("error[AH004]: ")
            && err.contains(
                "Apply this plan? — there is no terminal to confirm on: pass --yes to proceed"
            ),
        "{err}"
    );
    let plan = format!("{out}{err}");
    for node in ["acura-1", "acura-2", "acura-3", "acura-lb"] {
        assert!(plan.contains(node), "the plan of this cluster file: {plan}");
    }
    assert!(
        !c.cwd()
            .join("my cluster/.acura-ha/acura-static/state.json")
            .exists(),
        "nothing was applied"
    );
}

/// The subcommands that need a cluster file: those with `-c/--config`.
fn cluster_commands(
    cmd: &clap::Command,
    path: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, bool)>,
) {
    for sub in cmd.get_subcommands() {
        path.push(sub.get_name().to_string());
        let takes_config = sub.get_arguments().any(|a| a.get_id() == "config");
        out.push((path.clone(), takes_config));
        cluster_commands(sub, path, out);
        path.pop();
    }
}

/// Every "`acura-ha …`" in `text` whose command needs a cluster file but has no `-c`.
fn bare_hints(text: &str, needs_file: &[String]) -> Vec<String> {
    let mut bad = Vec::new();
    for (i, _) in text.match_indices("`acura-ha ") {
        let rest = &text[i + 1..];
        let Some(end) = rest.find('`') else { continue };
        let command = &rest[..end];
        let words: Vec<&str> = command.split_whitespace().skip(1).collect();
        let sub = words.first().copied().unwrap_or_default();
        let sub2 = words.get(..2).map(|w| w.join(" ")).unwrap_or_default();
        let needs = needs_file.iter().any(|n| *n == sub || *n == sub2);
        if needs && !words.contains(&"-c") && !words.contains(&"--config") {
            bad.push(command.to_string());
        }
    }
    bad
}

#[test]
fn no_help_text_or_hint_names_a_bare_command_that_needs_a_cluster_file() {
    let mut all = Vec::new();
    cluster_commands(&acura_ha::cli::command(), &mut Vec::new(), &mut all);
    let needs_file: Vec<String> = all
        .iter()
        .filter(|(_, c)| *c)
        .map(|(p, _)| p.join(" "))
        .collect();
    assert!(
        needs_file.contains(&"up".to_string()) && needs_file.contains(&"state unlock".to_string()),
        "{needs_file:?}"
    );
    // The sanity of the check itself.
    assert_eq!(
        bare_hints(
            "run `acura-ha up` and `acura-ha state unlock X`",
            &needs_file
        ),
        ["acura-ha up", "acura-ha state unlock X"]
    );
    assert!(bare_hints("run `acura-ha up -c x.toml` or `acura-ha man`", &needs_file).is_empty());

    // `--help` of the program and of every subcommand, and the manual page, from the binary.
    let mut helps = vec![(vec!["--help".to_string()], String::new())];
    for (path, _) in &all {
        let mut args = path.clone();
        args.push("--help".into());
        helps.push((args, String::new()));
    }
    helps.push((vec!["man".into()], String::new()));
    let mut bad = Vec::new();
    for (args, out) in &mut helps {
        let o = acura_ha_std().args(&*args).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", text(&o.stderr));
        *out = text(&o.stdout);
        assert!(!out.is_empty(), "{args:?} printed nothing");
        for b in bare_hints(out, &needs_file) {
            bad.push(format!("acura-ha {}: `{b}`", args.join(" ")));
        }
    }

    // Every string in the sources (comments aside): the errors' hints, warnings and notes.
    let mut files = Vec::new();
    let mut dirs = vec![repo().join("src")];
    for p in std::fs::read_dir(repo().join("providers")).unwrap() {
        dirs.push(p.unwrap().path().join("src"));
    }
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    assert!(files.len() > 50, "the sources were found: {}", files.len());
    for f in files {
        let source = std::fs::read_to_string(&f).unwrap();
        for (n, line) in source.lines().enumerate() {
            // A comment line, or the header of a file the lab writes, which names its writer.
            if line.trim_start().starts_with("//") || line.contains("generated, rewritten by") {
                continue;
            }
            for b in bare_hints(line, &needs_file) {
                bad.push(format!("{}:{}: `{b}`", f.display(), n + 1));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "commands printed without the cluster file they need:\n{}",
        bad.join("\n")
    );
}
