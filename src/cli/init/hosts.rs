//! `init --provider static` on a terminal (or with `--interactive`): asks for the nodes' names
//! and addresses, one `name=address` a line, and the NGINX host, checking each answer as `plan`
//! will (a hostname without dots, an IP address, no name or address twice, an odd count of at
//! least three) and asking again until it passes.

use std::io::{BufRead, Write};
use std::net::IpAddr;

use acura_ha_api::spec::check_hostname;

use crate::error::Error;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub name: String,
    pub address: IpAddr,
}

/// What was typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answers {
    pub nodes: Vec<Host>,
    /// The NGINX host; `None` keeps the template's placeholder.
    pub lb: Option<Host>,
}

const MIN: usize = 3;
const MAX: usize = 99;

/// Asks on `out`, reads `input`. `placeholder` is the template's NGINX host, kept when the
/// answer is empty. An empty first answer (or the end of input) keeps the template's hosts, to
/// edit later: `None`.
pub fn ask(
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    placeholder: &Host,
) -> Result<Option<Answers>, Error> {
    let w = |out: &mut dyn Write, s: &str| {
        let _ = out.write_all(s.as_bytes());
        let _ = out.flush();
    };
    w(
        out,
        "The nodes: one name=address a line (e.g. acura-1=192.0.2.11); an empty line ends the list\n(an empty first line keeps the example's hosts, to edit in the file).\n",
    );
    let mut nodes: Vec<Host> = Vec::new();
    loop {
        w(out, &format!("node {}: ", nodes.len() + 1));
        let line = read(input)?;
        if nodes.is_empty() && line.as_deref().is_none_or(str::is_empty) {
            w(
                out,
                "\nkeeping the example's hosts: edit [static] in the file\n",
            );
            return Ok(None);
        }
        let Some(line) = line else {
            // End of input: the list must already be whole.
            match count_problem(nodes.len()) {
                None => {
                    w(out, "\n");
                    break;
                }
                Some(p) => {
                    return Err(Error::Usage(format!(
                        "init: the input ended with {} node(s) typed: {p}; nothing was written",
                        nodes.len()
                    )));
                }
            }
        };
        if line.is_empty() {
            match count_problem(nodes.len()) {
                None => break,
                Some(p) => {
                    w(out, &format!("  {p}\n"));
                    continue;
                }
            }
        }
        if nodes.len() == MAX {
            w(
                out,
                &format!("  at most {MAX} nodes: end the list with an empty line\n"),
            );
            continue;
        }
        match parse(&line, &nodes) {
            Ok(h) => nodes.push(h),
            Err(why) => w(out, &format!("  {why}\n")),
        }
    }
    let taken = |h: &Host| {
        nodes
            .iter()
            .any(|n| n.name == h.name || n.address == h.address)
    };
    let lb = loop {
        w(
            out,
            &format!(
                "The NGINX host, name=address (an empty line keeps the placeholder {}={} to edit later): ",
                placeholder.name, placeholder.address
            ),
        );
        let line = read(input)?;
        match line.as_deref() {
            None | Some("") => {
                if taken(placeholder) {
                    w(
                        out,
                        &format!(
                            "\n  the placeholder {}={} is one of the nodes: type the NGINX host\n",
                            placeholder.name, placeholder.address
                        ),
                    );
                    if line.is_none() {
                        return Err(Error::Usage(
                            "init: the input ended before the NGINX host was typed; nothing was written".into(),
                        ));
                    }
                    continue;
                }
                if line.is_none() {
                    w(out, "\n");
                }
                break None;
            }
            Some(l) => match parse(l, &nodes) {
                Ok(h) => break Some(h),
                Err(why) => w(out, &format!("  {why}\n")),
            },
        }
    };
    Ok(Some(Answers { nodes, lb }))
}

/// One line without its end, `None` at the end of input.
fn read(input: &mut dyn BufRead) -> Result<Option<String>, Error> {
    let mut line = String::new();
    let n = input
        .read_line(&mut line)
        .map_err(|e| Error::Usage(format!("init: cannot read the answer: {e}")))?;
    Ok((n > 0).then(|| line.trim().to_string()))
}

/// Why `n` nodes cannot end the list.
fn count_problem(n: usize) -> Option<String> {
    if n < MIN {
        Some(format!(
            "{n} node(s) so far: the HA cluster needs at least {MIN}; type another"
        ))
    } else if n.is_multiple_of(2) {
        Some(format!(
            "{n} nodes: etcd needs an odd number of members; type one more"
        ))
    } else {
        None
    }
}

/// `name=address`, checked against the hosts already typed.
fn parse(line: &str, hosts: &[Host]) -> Result<Host, String> {
    let Some((name, address)) = line.split_once('=') else {
        return Err(format!(
            "{line:?}: type name=address, e.g. acura-1=192.0.2.11"
        ));
    };
    let (name, address) = (name.trim(), address.trim());
    check_hostname(name)
        .map_err(|why| format!("{name:?}: {why}; {}", acura_ha_api::spec::HOSTNAME_RULE))?;
    let address: IpAddr = address
        .parse()
        .map_err(|_| format!("{address:?} is not an IP address (v4 or v6), e.g. 192.0.2.11"))?;
    if let Some(h) = hosts.iter().find(|h| h.name == name) {
        return Err(format!(
            "{name:?} is already typed ({}={})",
            h.name, h.address
        ));
    }
    if let Some(h) = hosts.iter().find(|h| h.address == address) {
        return Err(format!(
            "{address} is already typed ({}={})",
            h.name, h.address
        ));
    }
    Ok(Host {
        name: name.to_string(),
        address,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placeholder() -> Host {
        Host {
            name: "acura-lb".into(),
            address: "192.0.2.10".parse().unwrap(),
        }
    }

    fn run(input: &str) -> (Result<Answers, Error>, String) {
        let mut out = Vec::new();
        let r = ask(&mut input.as_bytes(), &mut out, &placeholder()).map(|a| a.expect("answers"));
        (r, String::from_utf8(out).unwrap())
    }

    #[test]
    fn bad_lines_are_asked_again_and_the_count_must_be_odd_and_at_least_three() {
        let (r, out) = run(
            "a=10.0.0.1\n\nb.example=10.0.0.2\nb=10.0.0.300\nb=10.0.0.1\nb\nb=10.0.0.2\nc=10.0.0.3\nd=::1\n\ne=10.0.0.5\n\nlb=10.0.0.1\nlb=10.0.0.9\n",
        );
        let a = r.unwrap();
        let names: Vec<_> = a.nodes.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "d", "e"], "{out}");
        assert_eq!(a.lb.unwrap().address.to_string(), "10.0.0.9");
        for said in [
            "1 node(s) so far: the HA cluster needs at least 3",
            "\"b.example\": ",
            "\"10.0.0.300\" is not an IP address",
            "10.0.0.1 is already typed (a=10.0.0.1)",
            "\"b\": type name=address",
            "4 nodes: etcd needs an odd number of members",
        ] {
            assert!(out.contains(said), "{said:?} not in {out}");
        }
    }

    #[test]
    fn an_empty_lb_answer_keeps_the_placeholder_unless_a_node_has_it() {
        let (r, _) = run("a=10.0.0.1\nb=10.0.0.2\nc=10.0.0.3\n\n\n");
        assert_eq!(r.unwrap().lb, None);
        let (r, out) = run("a=192.0.2.10\nb=10.0.0.2\nc=10.0.0.3\n\n\nlb=10.0.0.4\n");
        assert_eq!(r.unwrap().lb.unwrap().name, "lb");
        assert!(out.contains("is one of the nodes"), "{out}");
    }

    #[test]
    fn an_empty_first_answer_keeps_the_examples_hosts() {
        for input in ["", "\n", "\na=10.0.0.1\n"] {
            let mut out = Vec::new();
            let r = ask(&mut input.as_bytes(), &mut out, &placeholder()).unwrap();
            assert_eq!(r, None, "{input:?}");
        }
    }

    #[test]
    fn input_that_ends_early_writes_nothing() {
        let (r, _) = run("a=10.0.0.1\nb=10.0.0.2\n");
        let e = r.unwrap_err().to_string();
        assert!(e.contains("ended with 2 node(s)"), "{e}");
        // Ending after a whole list is an answer: the placeholder stays.
        let (r, _) = run("a=10.0.0.1\nb=10.0.0.2\nc=10.0.0.3\n");
        assert_eq!(r.unwrap().nodes.len(), 3);
    }
}
