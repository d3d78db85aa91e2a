//! Root on a host for the commands the tool runs itself (the NGINX host, the post-checks, the
//! day-2 `kubectl`/`kubeadm` calls, the dpkg-lock wait): without sudo for root, `sudo -n` where
//! sudo needs no password, and — for a user whose sudo asks for one, with the guide's `-K`
//! password given — `sudo -k -S -p '' …` with the password as the first line of the command's
//! standard input. The password never appears in a command line (those show in `ps` and in
//! error messages), in output or in a log.
//!
//! Why each flag: `-S` reads the password from standard input (there is no terminal); `-p ''`
//! keeps the prompt out of the command's stderr; `-k` ignores a cached timestamp, because a
//! sudo that did not need the line would leave it for the command to read. For the same reason
//! the password line is sent only to hosts whose sudo really asks for it: once per host and
//! process [`Become::prepare`] asks `sudo -n true` (the preflight facts' own test) and, when a
//! password is needed, checks it with `sudo -k -S -p '' true`, so a wrong password fails at
//! once, naming the host, instead of every later command failing (or a wait polling) on it.
//!
//! Every command built here holds exactly one sudo invocation (a script runs whole under one
//! `sudo … sh -c '…'`), so one password line serves it; sudo reads that line byte by byte and
//! leaves the rest of standard input (a file's contents) to the command.
//!
//! The password reaches this module where it enters the process: `up` installs it
//! ([`install`]); otherwise [`current`] takes `ACURA_HA_BECOME_PASSWORD` (the day-2 commands'
//! path to it until they install what they were given).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::ssh::{Session, SshError, shell_quote};

/// Where the become password comes from when `-K` does not ask for it.
pub const PASSWORD_ENV: &str = "ACURA_HA_BECOME_PASSWORD";

/// How long the probe and the password check may take (sudo waits ~2 s after a wrong one).
const PROBE: Duration = Duration::from_secs(30);

/// Bytes that are overwritten with zeros when dropped and never printed.
#[derive(Clone, Default)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // Volatile writes, so the compiler cannot drop them as dead stores before the free.
        for b in self.0.iter_mut() {
            // SAFETY: `b` is a valid, aligned, exclusive reference into the vector.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// How a host's login user becomes root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The login user is root: no sudo.
    Root,
    /// `sudo -n`: passwordless sudo (or none given: the command then fails as sudo says).
    NoPassword,
    /// `sudo -k -S -p ''` with the password on standard input.
    Password,
}

#[derive(Debug, thiserror::Error)]
pub enum SudoError {
    #[error("{0}")]
    Ssh(#[from] SshError),
    #[error(
        "{host}: sudo refused the become password of {user} ({message}): check -K / {PASSWORD_ENV}"
    )]
    WrongPassword {
        host: String,
        user: String,
        message: String,
    },
    #[error(
        "{host}: sudo asks {user} for a password and none was given: pass -K (--ask-become-pass) or set {PASSWORD_ENV}, or allow {user} passwordless sudo"
    )]
    PasswordRequired { host: String, user: String },
}

impl SudoError {
    /// The stable code printed as `error[AH…]` where this error is shown on its own.
    pub fn code(&self) -> &'static str {
        match self {
            SudoError::Ssh(_) => "AH500",
            SudoError::WrongPassword { .. } => "AH505",
            SudoError::PasswordRequired { .. } => "AH506",
        }
    }
}

/// The become password (if any) and what each host's sudo was found to need.
#[derive(Default)]
pub struct Become {
    password: Option<Secret>,
    modes: Mutex<BTreeMap<String, Mode>>,
}

impl std::fmt::Debug for Become {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Become")
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Become {
    pub fn new(password: Option<&str>) -> Self {
        Become {
            password: password.map(|p| Secret::new(p.as_bytes().to_vec())),
            modes: Mutex::default(),
        }
    }

    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }

    fn key(session: &Session) -> String {
        let t = &session.target;
        format!("{}@{}:{} ({})", t.user, t.address, t.port, t.name)
    }

    /// How `session`'s user becomes root: found once per host (see the module's comment). A
    /// password that sudo refuses, or a password sudo needs and that was not given, is an
    /// error naming the host.
    pub async fn prepare(&self, session: &Session) -> Result<Sudo<'_>, SudoError> {
        let mode = self.mode(session).await?;
        Ok(Sudo {
            mode,
            password: self.password.as_ref(),
        })
    }

    /// As [`Become::prepare`], but a host whose sudo asks for a password that was not given
    /// gets `sudo -n` (for commands that tolerate failing, such as the preflight's dpkg-lock
    /// wait). A refused password is still an error.
    pub async fn prepare_lenient(&self, session: &Session) -> Result<Sudo<'_>, SudoError> {
        match self.prepare(session).await {
            Err(SudoError::PasswordRequired { .. }) => Ok(Sudo {
                mode: Mode::NoPassword,
                password: None,
            }),
            other => other,
        }
    }

    async fn mode(&self, session: &Session) -> Result<Mode, SudoError> {
        let t = &session.target;
        if t.user == "root" {
            return Ok(Mode::Root);
        }
        let key = Self::key(session);
        if let Some(m) = self.lock().get(&key) {
            return Ok(*m);
        }
        let probe = session.run("sudo -n true", PROBE).await?;
        let mode = if probe.status == 0 {
            Mode::NoPassword
        } else {
            let Some(pw) = &self.password else {
                return Err(SudoError::PasswordRequired {
                    host: t.name.clone(),
                    user: t.user.clone(),
                });
            };
            let stdin = password_line(pw, b"");
            let check = session
                .exec(
                    &format!("{}true", Mode::Password.prefix()),
                    Some(stdin.expose()),
                    PROBE,
                    |_, _| {},
                )
                .await?;
            if check.status != 0 {
                return Err(SudoError::WrongPassword {
                    host: t.name.clone(),
                    user: t.user.clone(),
                    message: sudo_message(&check.stderr_text()),
                });
            }
            Mode::Password
        };
        self.lock().insert(key, mode);
        Ok(mode)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Mode>> {
        self.modes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What sudo said, on one line (its "Sorry, try again." lines dropped).
fn sudo_message(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Sorry, try again"))
        .collect();
    if lines.is_empty() {
        "sudo failed without a message".into()
    } else {
        lines.join("; ")
    }
}

fn password_line(pw: &Secret, rest: &[u8]) -> Secret {
    let mut v = Vec::with_capacity(pw.expose().len() + 1 + rest.len());
    v.extend_from_slice(pw.expose());
    v.push(b'\n');
    v.extend_from_slice(rest);
    Secret::new(v)
}

impl Mode {
    /// What goes before the command.
    pub fn prefix(self) -> &'static str {
        match self {
            Mode::Root => "",
            Mode::NoPassword => "sudo -n ",
            Mode::Password => "sudo -k -S -p '' ",
        }
    }
}

/// One host's way to root, ready to wrap commands.
#[derive(Debug, Clone, Copy)]
pub struct Sudo<'a> {
    mode: Mode,
    password: Option<&'a Secret>,
}

impl<'a> Sudo<'a> {
    /// For tests and callers that know the mode already.
    pub fn with(mode: Mode, password: Option<&'a Secret>) -> Self {
        Sudo { mode, password }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether commands run through sudo (the login user is not root).
    pub fn elevates(&self) -> bool {
        self.mode != Mode::Root
    }

    /// `command` (one simple command, no pipeline or list) as root.
    pub fn command(&self, command: &str) -> String {
        format!("{}{command}", self.mode.prefix())
    }

    /// A shell script run whole as root under one sudo: `sudo … sh -c '<script>'`.
    pub fn script(&self, script: &str) -> String {
        self.command(&format!("sh -c {}", shell_quote(script)))
    }

    /// The standard input for a command built here: the password line first when sudo reads
    /// it, then `rest`.
    pub fn stdin(&self, rest: &[u8]) -> Secret {
        match (self.mode, self.password) {
            (Mode::Password, Some(pw)) => password_line(pw, rest),
            _ => Secret::new(rest.to_vec()),
        }
    }

    /// Writes `contents` to `path` on the session's host atomically (temporary file, then
    /// rename) with `mode`, through the command's standard input: the contents never appear in
    /// a command line. One sudo for the whole script: its password line, when sudo reads one,
    /// comes first on the same standard input, and sudo leaves the rest to `cat`.
    pub async fn write_file(
        &self,
        session: &Session,
        path: &str,
        contents: &[u8],
        mode: u32,
        deadline: Duration,
    ) -> Result<(), SshError> {
        let tmp = shell_quote(&format!("{path}.acura-ha.tmp"));
        let cmd = self.script(&format!(
            "umask 077 && cat > {tmp} && chmod {mode:o} {tmp} && mv -f {tmp} {q}",
            q = shell_quote(path),
        ));
        let stdin = self.stdin(contents);
        let out = session
            .exec(&cmd, Some(stdin.expose()), deadline, |_, _| {})
            .await?;
        if out.status != 0 {
            return Err(SshError::Channel {
                host: session.target.name.clone(),
                command: format!("write {path}"),
                message: format!("exit {}: {}", out.status, out.stderr_text().trim()),
            });
        }
        Ok(())
    }

    /// Runs `command` (built with [`Sudo::command`] or [`Sudo::script`]) with the password line
    /// on its standard input when needed, and collects its output.
    pub async fn run(
        &self,
        session: &Session,
        command: &str,
        deadline: Duration,
    ) -> Result<super::ssh::Output, SshError> {
        let stdin = self.stdin(b"");
        session
            .exec(command, Some(stdin.expose()), deadline, |_, _| {})
            .await
    }
}

/// `false`: as the login user, no sudo; `true`: `sudo -n` (what callers that know no password
/// meant before [`Sudo`] existed).
impl From<bool> for Sudo<'static> {
    fn from(elevate: bool) -> Self {
        let mode = if elevate {
            Mode::NoPassword
        } else {
            Mode::Root
        };
        Sudo {
            mode,
            password: None,
        }
    }
}

impl<'a> From<&Sudo<'a>> for Sudo<'a> {
    fn from(s: &Sudo<'a>) -> Self {
        *s
    }
}

/// The process's become value: installed by `up`, or else read once from [`PASSWORD_ENV`].
static PROCESS: OnceLock<Mutex<Option<Arc<Become>>>> = OnceLock::new();

fn slot() -> &'static Mutex<Option<Arc<Become>>> {
    PROCESS.get_or_init(Mutex::default)
}

/// Makes `password` the become password of every command this process runs on a host from
/// now on (what `-K` or the environment gave the command).
pub fn install(password: Option<&str>) -> Arc<Become> {
    let b = Arc::new(Become::new(password));
    *slot().lock().unwrap_or_else(|e| e.into_inner()) = Some(b.clone());
    b
}

/// The installed become value, or one from [`PASSWORD_ENV`] (installed then).
pub fn current() -> Arc<Become> {
    let mut slot = slot().lock().unwrap_or_else(|e| e.into_inner());
    slot.get_or_insert_with(|| {
        let pw = std::env::var(PASSWORD_ENV)
            .ok()
            .map(|s| Secret::new(s.into_bytes()));
        Arc::new(Become {
            password: pw,
            modes: Mutex::default(),
        })
    })
    .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> Secret {
        Secret::new(s.as_bytes().to_vec())
    }

    #[test]
    fn root_runs_without_sudo_and_sends_nothing_extra() {
        let pw = secret("hunter2");
        let s = Sudo::with(Mode::Root, Some(&pw));
        assert_eq!(s.command("nginx -t"), "nginx -t");
        assert_eq!(s.stdin(b"conf").expose(), b"conf");
        assert!(!s.elevates());
    }

    #[test]
    fn passwordless_sudo_never_gets_the_password_line() {
        // A sudo that does not ask would leave the line for the command to read.
        let pw = secret("hunter2");
        let s = Sudo::with(Mode::NoPassword, Some(&pw));
        assert_eq!(s.command("nginx -t"), "sudo -n nginx -t");
        assert_eq!(s.stdin(b"conf").expose(), b"conf");
    }

    #[test]
    fn password_goes_first_on_stdin_never_in_the_command() {
        let pw = secret("p4ss 'w\"rd");
        let s = Sudo::with(Mode::Password, Some(&pw));
        let cmd = s.script("a | b && c");
        assert_eq!(cmd, "sudo -k -S -p '' sh -c 'a | b && c'");
        assert!(!cmd.contains("p4ss"));
        assert_eq!(s.stdin(b"conf\n").expose(), b"p4ss 'w\"rd\nconf\n");
        // One sudo per command: one password line serves it.
        assert_eq!(cmd.matches("sudo ").count(), 1);
    }

    #[test]
    fn plain_flags_mean_no_sudo_or_sudo_n() {
        assert_eq!(Sudo::from(false).command("id"), "id");
        assert_eq!(Sudo::from(true).command("id"), "sudo -n id");
        assert_eq!(Sudo::from(true).stdin(b"x").expose(), b"x");
    }

    #[test]
    fn secrets_never_print() {
        let b = Become::new(Some("hunter2"));
        assert!(!format!("{b:?}").contains("hunter2"));
        assert!(format!("{b:?}").contains("redacted"));
        let s = secret("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        let pw = secret("hunter2");
        let sudo = Sudo::with(Mode::Password, Some(&pw));
        assert!(!format!("{sudo:?}").contains("hunter2"));
        assert!(!format!("{:?}", sudo.stdin(b"x")).contains("hunter2"));
    }

    #[test]
    fn sudo_messages_are_one_line_without_the_retries() {
        assert_eq!(
            sudo_message(
                "Sorry, try again.\nsudo: no password was provided\nsudo: 1 incorrect password attempt\n"
            ),
            "sudo: no password was provided; sudo: 1 incorrect password attempt"
        );
        assert_eq!(sudo_message(""), "sudo failed without a message");
    }

    #[test]
    fn errors_name_the_host_and_what_to_do() {
        let e = SudoError::WrongPassword {
            host: "acura-1".into(),
            user: "deploy".into(),
            message: "sudo: 1 incorrect password attempt".into(),
        };
        let t = e.to_string();
        assert!(
            t.contains("acura-1") && t.contains("incorrect password"),
            "{t}"
        );
        assert_eq!(e.code(), "AH505");
        let e = SudoError::PasswordRequired {
            host: "acura-2".into(),
            user: "deploy".into(),
        };
        assert!(e.to_string().contains("-K"));
    }
}
