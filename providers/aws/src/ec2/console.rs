//! Host keys from the cloud (issue 10, item 4): each instance's console output
//! (GetConsoleOutput), where cloud-init prints the SSH host key fingerprints on first boot. EC2
//! returns the serial console base64-encoded; without `Latest` (Nitro only) only as of its last
//! capture, minutes behind on a fresh instance. An instance whose output holds no complete block
//! yet is left out, and the bootstrap pins it on first use, saying so.

use acura_ha_api::model::ConsoleHostKeys;

use crate::Clients;

/// The fingerprints cloud-init printed for each `(host, instance ID)`; hosts whose console
/// cannot be read (no output yet, an error, a denied call) are left out rather than failing.
pub(crate) async fn console_host_keys(
    c: &Clients,
    servers: Vec<(String, String)>,
) -> ConsoleHostKeys {
    let reads = servers.into_iter().map(|(host, id)| async move {
        let output = console_output(c, &id).await;
        (host, output)
    });
    acura_ha_api::console::from_outputs(futures::future::join_all(reads).await)
}

/// The decoded console output of one instance; `None` when EC2 has none or refuses the call.
/// `Latest` first: on Nitro instances it returns the console as it is now rather than as of the
/// last capture, which on a fresh instance often predates cloud-init's block; instances that do
/// not support it (Xen) are asked again without.
async fn console_output(c: &Clients, id: &str) -> Option<String> {
    let ask = |latest: bool| async move {
        let mut req = c.ec2.get_console_output().instance_id(id);
        if latest {
            req = req.latest(true);
        }
        req.send().await
    };
    let out = match ask(true).await {
        Ok(out) => out,
        Err(_) => ask(false).await.ok()?,
    };
    decode(out.output()?)
}

/// EC2's base64 (moto and older endpoints may answer with plain text: taken as it is).
fn decode(output: &str) -> Option<String> {
    let trimmed = output.trim();
    if trimmed.is_empty() {
        return None;
    }
    match aws_smithy_types::base64::decode(trimmed) {
        Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
        Err(_) => Some(output.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_plain_output() {
        let text = "-----BEGIN SSH HOST KEY FINGERPRINTS-----\n256 SHA256:x root@h (ED25519)\n";
        let b64 = aws_smithy_types::base64::encode(text);
        assert_eq!(decode(&b64).as_deref(), Some(text));
        assert_eq!(decode(text).as_deref(), Some(text));
        assert_eq!(decode("  "), None);
    }
}
