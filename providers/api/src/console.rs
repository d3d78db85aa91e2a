//! The SSH host-key fingerprints cloud-init prints on a server's console on boot, so the SSH layer
//! can pin keys the cloud vouches for instead of trusting them on first use.
//!
//! cloud-init's `cc_keys_to_console` (script `write-ssh-key-fingerprints`) writes, per boot:
//!
//! ```text
//! #############################################################
//! -----BEGIN SSH HOST KEY FINGERPRINTS-----
//! 256 SHA256:Yw5ZUeCexhJ8yF4Hx2f4HdWQZ3XqJ3Cp3qg3xvB0v1c root@node-1 (ECDSA)
//! 256 SHA256:2n7WgYJ9q9ZdLl8Hq6CwGgZ3u8bQ1dJkqkK0l3xVtSk root@node-1 (ED25519)
//! 3072 SHA256:fPq0bQ2Z7pQJ6cH9N0+3Jt8Xx2kRmZ1yG9c1w0mZl3E root@node-1 (RSA)
//! -----END SSH HOST KEY FINGERPRINTS-----
//! #############################################################
//! ```
//!
//! Older images prefix each line (`ec2: `, `ci-info: `, a syslog tag), kernel messages may be
//! interleaved on a serial console, and colour codes or carriage returns appear. So lines are
//! cleaned of escape sequences, the markers are found anywhere in a line, and only tokens of the
//! exact `SHA256:<43 base64 characters>` shape are taken (old `MD5` colon-hex fingerprints are
//! not: they cannot be compared with what acura-ha computes).
//!
//! The block appears once per boot. The **last complete** block wins: it describes the keys the
//! server has now (a half-written block at the end of the output is ignored rather than read as
//! "fewer keys").

use crate::model::{ConsoleHostKeys, Inventory, Recorded};

/// The servers behind `inventory`'s hosts as `(host name, cloud ID)`, from the state's records
/// (`instance[name]` for nodes, `lb_instance[name]` for the NGINX host); hosts without an ID
/// recorded are left out.
pub fn server_ids(inventory: &Inventory, recorded: &[Recorded]) -> Vec<(String, String)> {
    let nodes = inventory
        .nodes
        .iter()
        .map(|h| (h.name.clone(), format!("instance[{}]", h.name)));
    let lb = inventory
        .lb
        .nginx_host
        .iter()
        .map(|h| (h.name.clone(), format!("lb_instance[{}]", h.name)));
    nodes
        .chain(lb)
        .filter_map(|(name, address)| {
            let id = recorded.iter().find(|r| r.address == address)?.id.clone()?;
            Some((name, id))
        })
        .collect()
}

/// The fingerprints of each host whose console output holds cloud-init's block; hosts with no
/// output, or none in it yet, are left out (pinned on first use).
pub fn from_outputs(
    outputs: impl IntoIterator<Item = (String, Option<String>)>,
) -> ConsoleHostKeys {
    let mut keys = ConsoleHostKeys::default();
    for (host, output) in outputs {
        let fps = output
            .as_deref()
            .map(host_key_fingerprints)
            .unwrap_or_default();
        if !fps.is_empty() {
            keys.fingerprints.insert(host, fps);
        }
    }
    keys
}

const BEGIN: &str = "-----BEGIN SSH HOST KEY FINGERPRINTS-----";
const END: &str = "-----END SSH HOST KEY FINGERPRINTS-----";

/// The `SHA256:…` fingerprints of the last complete cloud-init block in `output`, in the order
/// printed and without duplicates; empty when there is no complete block (the server has not
/// finished booting, the image has no cloud-init, or the console holds something else).
pub fn host_key_fingerprints(output: &str) -> Vec<String> {
    let mut last: Option<Vec<String>> = None;
    let mut open: Option<Vec<String>> = None;
    for raw in output.split(['\n', '\r']) {
        let line = strip_escapes(raw);
        if line.contains(BEGIN) {
            // A block that restarts before it ended was cut off (a reboot mid-print).
            open = Some(Vec::new());
            continue;
        }
        if line.contains(END) {
            if let Some(block) = open.take() {
                last = Some(block);
            }
            continue;
        }
        if let Some(block) = open.as_mut() {
            for token in line.split(|c: char| c.is_whitespace() || c == ',') {
                if is_sha256_fingerprint(token) && !block.iter().any(|f| f == token) {
                    block.push(token.to_string());
                }
            }
        }
    }
    last.unwrap_or_default()
}

/// `SHA256:` and the 43 unpadded base64 characters of a 32-byte digest, as `ssh-keygen -l`
/// prints it.
pub fn is_sha256_fingerprint(token: &str) -> bool {
    let Some(b64) = token.strip_prefix("SHA256:") else {
        return false;
    };
    b64.len() == 43
        && b64
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// Removes ANSI/VT100 escape sequences (`ESC [ … letter`, `ESC ] … BEL`, two-byte `ESC x`) and
/// other control characters except tabs.
fn strip_escapes(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            match chars.next() {
                Some('[') => {
                    // CSI: parameters and intermediates, then one final byte in @..~.
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                Some(']') => {
                    // OSC: up to BEL or ESC \.
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' {
                            break;
                        }
                        if c == '\u{1b}' {
                            chars.next();
                            break;
                        }
                    }
                }
                _ => {}
            }
        } else if c == '\t' || !c.is_control() {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str = "SHA256:2n7WgYJ9q9ZdLl8Hq6CwGgZ3u8bQ1dJkqkK0l3xVtSk";
    const EC: &str = "SHA256:Yw5ZUeCexhJ8yF4Hx2f4HdWQZ3XqJ3Cp3qg3xvB0v1c";
    const RSA: &str = "SHA256:fPq0bQ2Z7pQJ6cH9N0+3Jt8Xx2kRmZ1yG9c1w0mZl3E";
    const NEW: &str = "SHA256:Q7x0m1r9d3l5X0b2c8J6tVh9S1aF3kP0oLz4W8n2yUe";

    /// An Ubuntu 24.04 boot on a serial console as EC2's GetConsoleOutput returns it (decoded):
    /// kernel lines, cloud-init's ci-info tables, systemd colours, CRLF line ends.
    fn ubuntu_boot(keys: &[(&str, &str, &str)]) -> String {
        let mut s = String::from(
            "[    0.000000] Linux version 6.8.0-1012-aws (buildd@lcy02-amd64-068)\r\n\
             [    3.120113] systemd[1]: Starting \u{1b}[0;1;39mcloud-init.service\u{1b}[0m - Cloud-init: Network Stage...\r\n\
             ci-info: +++++++++++++++++++++++++++Net device info++++++++++++++++++++++++++++\r\n\
             ci-info: | ens5  | True |  10.0.1.23  | 255.255.255.0 | global | 0a:1b:2c:3d:4e:5f |\r\n\
             <14>Dec  7 07:40:12 cloud-init: #############################################################\r\n",
        );
        s.push_str("<14>Dec  7 07:40:12 cloud-init: -----BEGIN SSH HOST KEY FINGERPRINTS-----\r\n");
        for (bits, fp, kind) in keys {
            s.push_str(&format!(
                "<14>Dec  7 07:40:12 cloud-init: {bits} {fp} root@ip-10-0-1-23 ({kind})\r\n"
            ));
        }
        s.push_str(
            "<14>Dec  7 07:40:12 cloud-init: -----END SSH HOST KEY FINGERPRINTS-----\r\n\
             <14>Dec  7 07:40:12 cloud-init: #############################################################\r\n\
             -----BEGIN SSH HOST KEY KEYS-----\r\n\
             ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ root@ip-10-0-1-23\r\n\
             -----END SSH HOST KEY KEYS-----\r\n\
             [   14.880431] cloud-init[1021]: Cloud-init v. 24.1.3 finished at Mon, 07 Dec 2026 07:40:12 +0000. Up 14.83 seconds\r\n",
        );
        s
    }

    #[test]
    fn reads_cloud_inits_block_through_prefixes_colours_and_crlf() {
        let out = ubuntu_boot(&[
            ("256", EC, "ECDSA"),
            ("256", ED, "ED25519"),
            ("3072", RSA, "RSA"),
        ]);
        assert_eq!(host_key_fingerprints(&out), vec![EC, ED, RSA]);
    }

    #[test]
    fn plain_and_ec2_prefixed_blocks() {
        let plain = format!("{BEGIN}\n256 {ED} root@node-1 (ED25519)\n{END}\n");
        assert_eq!(host_key_fingerprints(&plain), vec![ED]);
        // Ubuntu 14.04–16.04 images tagged every line `ec2: `.
        let ec2 = format!("ec2: {BEGIN}\nec2: 256 {ED} root@node-1 (ED25519)\nec2: {END}\n");
        assert_eq!(host_key_fingerprints(&ec2), vec![ED]);
        // A coloured marker and key line.
        let colour = format!(
            "\u{1b}[1m{BEGIN}\u{1b}[0m\n\u{1b}[32m256 {ED}\u{1b}[0m no comment (ED25519)\n{END}\n"
        );
        assert_eq!(host_key_fingerprints(&colour), vec![ED]);
    }

    #[test]
    fn the_last_complete_block_wins_and_a_cut_off_one_is_ignored() {
        // Two boots: the keys were regenerated on the second; a third boot is still printing.
        let out = format!(
            "{}{}{BEGIN}\n256 {EC} root@node-1 (ECDSA)\n",
            ubuntu_boot(&[("256", ED, "ED25519")]),
            ubuntu_boot(&[("256", NEW, "ED25519")]),
        );
        assert_eq!(host_key_fingerprints(&out), vec![NEW]);
        // The same block printed twice (cloud-init and a re-run of the module) is one set.
        let twice = format!("{0}{0}", ubuntu_boot(&[("256", ED, "ED25519")]));
        assert_eq!(host_key_fingerprints(&twice), vec![ED]);
    }

    #[test]
    fn garbage_md5_and_missing_blocks_give_nothing() {
        assert!(host_key_fingerprints("").is_empty());
        assert!(host_key_fingerprints("\u{0}\u{ff}binary\u{1b}[2J junk").is_empty());
        // Only the beginning has been written so far.
        assert!(host_key_fingerprints(&format!("{BEGIN}\n256 {ED} root@x (ED25519)\n")).is_empty());
        // An END without a BEGIN.
        assert!(host_key_fingerprints(&format!("256 {ED} root@x (ED25519)\n{END}\n")).is_empty());
        // cloud-init on very old images printed MD5 colon-hex: not comparable, not taken.
        let md5 = format!(
            "{BEGIN}\n2048 3f:a1:9c:0e:55:21:7d:b4:88:19:aa:02:6e:f3:41:9b root@x (RSA)\n{END}\n"
        );
        assert!(host_key_fingerprints(&md5).is_empty());
        // Interleaved kernel noise and near-misses inside the block are skipped.
        let noisy = format!(
            "{BEGIN}\n[   15.1] random: crng init done\n256 SHA256:short root@x (ED25519)\n\
             256 {ED}x root@x (ED25519)\n256 {ED} root@x (ED25519)\n{END}\n"
        );
        assert_eq!(host_key_fingerprints(&noisy), vec![ED]);
    }

    #[test]
    fn fingerprint_shape() {
        assert!(is_sha256_fingerprint(ED));
        assert!(is_sha256_fingerprint(RSA));
        assert!(!is_sha256_fingerprint("SHA256:"));
        assert!(!is_sha256_fingerprint(&format!("{ED}=")));
        assert!(!is_sha256_fingerprint(&ED.replace("SHA256", "MD5")));
    }
}
