//! Property tests: random and mutated cluster files never panic the loader (nor the planner
//! when they load), and every error is located inside the file.

use acura_ha::config::{ConfigError, parse};
use acura_ha::plan;
use proptest::prelude::*;

const EXAMPLES: &[&str] = &[
    include_str!("../examples/local.toml"),
    include_str!("../examples/static.toml"),
    include_str!("../examples/aws.toml"),
    include_str!("../examples/openstack.toml"),
];

fn check(source: &str) {
    match parse("fuzz.toml", source) {
        Ok(spec) => {
            // A valid file must also plan without panicking.
            let paths = acura_ha::bootstrap::Paths {
                key_file: None,
                inventory: "ha_env_file".into(),
            };
            let p = plan::build(&spec, None, &paths);
            assert!(!p.bootstrap.is_empty());
        }
        Err(e) => assert_located(source, &e),
    }
}

fn assert_located(source: &str, e: &ConfigError) {
    assert!(!e.problems.is_empty(), "an error without a problem: {e:?}");
    let lines = source.split('\n').count();
    for p in &e.problems {
        assert!(
            p.line >= 1 && p.line <= lines,
            "line {} outside 1..={lines}: {e}",
            p.line
        );
        let line_len = source
            .split('\n')
            .nth(p.line - 1)
            .unwrap_or("")
            .chars()
            .count();
        assert!(
            p.col >= 1 && p.col <= line_len + 1,
            "col {} outside the line: {e}",
            p.col
        );
        assert!(!p.message.trim().is_empty(), "empty message: {e:?}");
    }
    let shown = e.to_string();
    assert!(shown.starts_with("fuzz.toml:"), "{shown}");
}

/// Edits that keep a file looking like a cluster file: drop, repeat or swap lines, change a
/// number, replace a value with another type, or insert a stray key.
#[derive(Debug, Clone)]
enum Mutation {
    DropLine(usize),
    RepeatLine(usize),
    SwapLines(usize, usize),
    SetNumber(usize, i64),
    ReplaceValue(usize, &'static str),
    InsertKey(usize, String),
    TruncateAt(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let values = prop::sample::select(vec![
        "1",
        "-3",
        "4",
        "0",
        "\"\"",
        "\"a.b\"",
        "true",
        "[]",
        "[\"x\"]",
        "{ }",
        "\"10.0.0.0/33\"",
        "\"0.0.0.0/0\"",
        "99999999999",
        "1.5",
        "\"cloud\"",
        "\"external\"",
    ]);
    prop_oneof![
        any::<usize>().prop_map(Mutation::DropLine),
        any::<usize>().prop_map(Mutation::RepeatLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        (any::<usize>(), -5i64..100_000).prop_map(|(a, n)| Mutation::SetNumber(a, n)),
        (any::<usize>(), values).prop_map(|(a, v)| Mutation::ReplaceValue(a, v)),
        (any::<usize>(), "[a-z_]{1,12}").prop_map(|(a, k)| Mutation::InsertKey(a, k)),
        any::<usize>().prop_map(Mutation::TruncateAt),
    ]
}

fn apply(source: &str, m: &Mutation) -> String {
    let mut lines: Vec<String> = source.lines().map(String::from).collect();
    if lines.is_empty() {
        return String::new();
    }
    let n = lines.len();
    match m {
        Mutation::DropLine(i) => {
            lines.remove(i % n);
        }
        Mutation::RepeatLine(i) => {
            let l = lines[i % n].clone();
            lines.insert(i % n, l);
        }
        Mutation::SwapLines(a, b) => lines.swap(a % n, b % n),
        Mutation::SetNumber(i, v) => {
            let l = &mut lines[i % n];
            if let Some((k, _)) = l.split_once('=') {
                *l = format!("{k}= {v}");
            }
        }
        Mutation::ReplaceValue(i, v) => {
            let l = &mut lines[i % n];
            if let Some((k, _)) = l.split_once('=') {
                *l = format!("{k}= {v}");
            }
        }
        Mutation::InsertKey(i, k) => lines.insert(i % n, format!("{k} = 1")),
        Mutation::TruncateAt(i) => {
            let joined = lines.join("\n");
            let mut cut = i % (joined.len() + 1);
            while !joined.is_char_boundary(cut) {
                cut -= 1;
            }
            return joined[..cut].to_string();
        }
    }
    lines.join("\n")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn mutated_examples_never_panic_and_errors_are_located(
        which in 0..EXAMPLES.len(),
        muts in prop::collection::vec(mutation(), 1..4),
    ) {
        let mut src = EXAMPLES[which].to_string();
        for m in &muts {
            src = apply(&src, m);
        }
        check(&src);
    }

    #[test]
    fn random_text_never_panics(src in "[\\[\\]a-z_.=\"0-9 {},\n#-]{0,300}") {
        check(&src);
    }

    #[test]
    fn random_bytes_as_text_never_panic(src in any::<String>()) {
        check(&src);
    }
}

#[test]
fn every_example_is_valid() {
    for src in EXAMPLES {
        parse("example.toml", src).unwrap_or_else(|e| panic!("{e}"));
    }
}
