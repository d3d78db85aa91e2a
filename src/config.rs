//! Loading the cluster file: TOML syntax, then the typed model (unknown keys are errors), then
//! the model's own checks. Every problem is reported at `file:line:col` with what is wrong and
//! what is allowed.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use acura_ha_api::spec::{ClusterSpec, Invalid};
use toml::de::{DeTable, DeValue};

/// A parsed, valid cluster file.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub spec: ClusterSpec,
    /// The path as given.
    pub path: PathBuf,
    /// The directory relative paths in the file are resolved against.
    pub dir: PathBuf,
}

impl LoadedConfig {
    /// A path from the file: `~/…` is kept for the user's shell and Ansible to expand, anything
    /// else relative is taken relative to the cluster file's directory.
    pub fn resolve(&self, p: &str) -> PathBuf {
        let path = Path::new(p);
        if p.starts_with("~/") || path.is_absolute() {
            path.to_path_buf()
        } else {
            self.dir.join(path)
        }
    }
}

/// One located problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub col: usize,
    pub message: String,
    /// The source line, for the caret display.
    pub source_line: String,
}

/// What kind of problem a file has (decides the error code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigErrorKind {
    /// The file could not be read (its one problem says why).
    Io,
    Syntax,
    Schema,
    Invalid,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub kind: ConfigErrorKind,
    pub problems: Vec<Problem>,
    pub help: Option<String>,
}

impl std::error::Error for ConfigError {}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.kind == ConfigErrorKind::Io {
            let why = self.problems.first().map(|p| p.message.as_str());
            return write!(f, "cannot read {}: {}", self.file, why.unwrap_or("?"));
        }
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{}:{}: {}", self.file, p.line, p.col, p.message)?;
            if !p.source_line.is_empty() {
                let gutter = p.line.to_string().len();
                write!(
                    f,
                    "\n {:gutter$} |\n {} | {}\n {:gutter$} | {}^",
                    "",
                    p.line,
                    p.source_line,
                    "",
                    " ".repeat(p.col.saturating_sub(1))
                )?;
            }
        }
        Ok(())
    }
}

impl ConfigError {
    pub fn code(&self) -> &'static str {
        match self.kind {
            ConfigErrorKind::Io => "AH001",
            ConfigErrorKind::Syntax => "AH101",
            ConfigErrorKind::Schema => "AH102",
            ConfigErrorKind::Invalid => "AH103",
        }
    }

    pub fn help(&self) -> Option<String> {
        self.help.clone()
    }
}

/// Reads and checks a cluster file.
pub fn load(path: &Path) -> Result<LoadedConfig, ConfigError> {
    let source = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.display().to_string(),
        kind: ConfigErrorKind::Io,
        problems: vec![Problem {
            line: 0,
            col: 0,
            message: e.to_string(),
            source_line: String::new(),
        }],
        help: None,
    })?;
    let spec = parse(&path.display().to_string(), &source)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    Ok(LoadedConfig {
        spec,
        path: path.to_path_buf(),
        dir,
    })
}

/// Parses and checks cluster-file text; `file` is only used in messages.
pub fn parse(file: &str, source: &str) -> Result<ClusterSpec, ConfigError> {
    let located = |kind, span: Option<Range<usize>>, message: String, help| ConfigError {
        file: file.to_string(),
        kind,
        problems: vec![locate(source, span.map(|s| s.start).unwrap_or(0), message)],
        help,
    };
    let table = DeTable::parse(source).map_err(|e| {
        located(
            ConfigErrorKind::Syntax,
            e.span(),
            first_line(e.message()),
            None,
        )
    })?;
    let spec: ClusterSpec = toml::from_str(source).map_err(|e| {
        let message = first_line(e.message());
        let help = schema_help(&message);
        located(ConfigErrorKind::Schema, e.span(), message, help)
    })?;
    let problems = spec.validate();
    if problems.is_empty() {
        return Ok(spec);
    }
    let spans = SpanIndex::new(table.get_ref());
    Err(ConfigError {
        file: file.to_string(),
        kind: ConfigErrorKind::Invalid,
        problems: problems
            .into_iter()
            .map(|Invalid { path, message }| locate(source, spans.offset(&path), message))
            .collect(),
        help: None,
    })
}

fn first_line(s: &str) -> String {
    s.trim().lines().next().unwrap_or("").to_string()
}

/// Keys that look like credentials get a pointer to where credentials belong.
fn schema_help(message: &str) -> Option<String> {
    let field = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())?
        .to_ascii_lowercase();
    let secretish = [
        "secret",
        "password",
        "passwd",
        "token",
        "access_key",
        "credential",
    ];
    if secretish.iter().any(|s| field.contains(s)) {
        Some(
            "credentials never go in the cluster file: AWS reads them from profiles, SSO and AWS_* \
             variables (as the aws CLI does); OpenStack from clouds.yaml, OS_CLOUD and OS_* variables"
                .into(),
        )
    } else {
        None
    }
}

fn locate(source: &str, offset: usize, message: String) -> Problem {
    let offset = offset.min(source.len());
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = source[line_start..offset].chars().count() + 1;
    let source_line = source[line_start..]
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    Problem {
        line,
        col,
        message,
        source_line,
    }
}

/// Byte offsets of every key's value in the document, by dotted path (`static.nodes[1].name`).
struct SpanIndex {
    spans: BTreeMap<String, usize>,
}

impl SpanIndex {
    fn new(table: &DeTable<'_>) -> Self {
        let mut spans = BTreeMap::new();
        walk_table(table, "", &mut spans);
        SpanIndex { spans }
    }

    /// The offset of `path`, or of its nearest ancestor present in the file (a defaulted key
    /// points at its table), or the start of the file.
    fn offset(&self, path: &str) -> usize {
        let mut p = path.to_string();
        loop {
            if let Some(o) = self.spans.get(&p) {
                return *o;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p.truncate(i),
                None => return 0,
            }
        }
    }
}

fn walk_table(table: &DeTable<'_>, prefix: &str, out: &mut BTreeMap<String, usize>) {
    for (key, value) in table.iter() {
        let path = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        // A table points at its key (the `[section]` header); a value at itself.
        let at = match value.get_ref() {
            DeValue::Table(_) => key.span().start,
            _ => value.span().start,
        };
        out.insert(path.clone(), at);
        walk_value(value.get_ref(), &path, out);
    }
}

fn walk_value(value: &DeValue<'_>, path: &str, out: &mut BTreeMap<String, usize>) {
    match value {
        DeValue::Table(t) => walk_table(t, path, out),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let p = format!("{path}[{i}]");
                out.insert(p.clone(), item.span().start);
                walk_value(item.get_ref(), &p, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[cluster]
name = "demo"

[nodes]
count = 3

[load_balancer]
kind = "nginx"

[access]
admin_cidrs = ["198.51.100.7/32"]
ssh_private_key = "~/.ssh/id_ed25519"

[static]
nodes = [
  { name = "a-1", address = "192.0.2.11" },
  { name = "a-2", address = "192.0.2.12" },
  { name = "a-3", address = "192.0.2.13" },
]
lb = { name = "a-lb", address = "192.0.2.10" }
"#;

    fn err(src: &str) -> ConfigError {
        parse("c.toml", src).expect_err("should fail")
    }

    #[test]
    fn good_file_parses() {
        let spec = parse("c.toml", GOOD).unwrap();
        assert_eq!(spec.node_names(), ["a-1", "a-2", "a-3"]);
    }

    #[test]
    fn even_count_points_at_the_value() {
        let e = err(&GOOD.replace("count = 3", "count = 4"));
        assert_eq!(e.kind, ConfigErrorKind::Invalid);
        let p = &e.problems[0];
        assert_eq!((p.line, p.col), (6, 9));
        assert!(
            p.message
                .contains("nodes.count = 4: etcd needs an odd number of members; use 3 or 5")
        );
        assert!(e.to_string().starts_with("c.toml:6:9: nodes.count = 4"));
    }

    #[test]
    fn unknown_key_is_located() {
        let e = err(&GOOD.replace("count = 3", "count = 3\ncolour = \"blue\""));
        assert_eq!(e.kind, ConfigErrorKind::Schema);
        assert!(
            e.problems[0].message.contains("unknown field `colour`"),
            "{e}"
        );
        assert_eq!(e.problems[0].line, 7);
    }

    #[test]
    fn credentials_get_help() {
        let e = err(&GOOD.replace(
            "kind = \"nginx\"",
            "kind = \"nginx\"\naws_secret_access_key = \"x\"",
        ));
        assert!(e.help.unwrap().contains("never go in the cluster file"));
    }

    #[test]
    fn syntax_error_is_located() {
        let e = err("[cluster\nname = 1");
        assert_eq!(e.kind, ConfigErrorKind::Syntax);
        assert_eq!(e.problems[0].line, 1);
    }

    #[test]
    fn dotted_hostname_in_array_is_located() {
        let e = err(&GOOD.replace("\"a-2\"", "\"a-2.example.com\""));
        let p = &e.problems[0];
        assert_eq!(p.line, 18);
        assert!(p.message.contains("static.nodes[1].name"), "{}", p.message);
        assert!(p.message.contains("no dots"));
    }

    #[test]
    fn missing_provider_points_at_start() {
        let src = GOOD.split("[static]").next().unwrap();
        let e = err(src);
        assert!(
            e.problems
                .iter()
                .any(|p| p.message.contains("no provider section"))
        );
    }
}
