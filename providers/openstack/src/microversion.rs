//! The microversions this provider asks Nova and Cinder for on every call, and what their 406
//! to one of them means (issue 13 item 5): the cloud is too old, named with what it offers and
//! what needs more. The first call of a run is the check (issue 12: no version document read
//! first). Kept apart from the client, which sends the header and reads the answer.

/// A microversioned service's version this provider needs, and why.
#[derive(Debug, Clone, Copy)]
pub struct Micro {
    /// The `OpenStack-API-Version` header's value.
    pub header: &'static str,
    /// The service as the messages name it.
    pub service: &'static str,
    pub version: &'static str,
    pub why: &'static str,
}

/// Nova: 2.64 is the first that takes a server group's `policy` as one string (2.52: `tags` in
/// a server create; 2.37: `networks`).
pub const NOVA: Micro = Micro {
    header: "compute 2.64",
    service: "compute (Nova)",
    version: "2.64",
    why: "a server group's `policy` (2.64) and server tags at create (2.52)",
};

/// Cinder: the v3 API, nothing newer.
pub const CINDER: Micro = Micro {
    header: "volume 3.0",
    service: "block-storage (Cinder)",
    version: "3.0",
    why: "the block-storage v3 API",
};

/// The message for a 406 of `m`'s service at `url` ("Version 2.64 is not supported by the
/// API. Minimum is 2.1 and maximum is 2.60."): what it offers, what needs more, the fix.
pub fn refused(m: &Micro, url: &str, answer: &str) -> String {
    let offers = answer
        .split_once("maximum is ")
        .map(|(_, rest)| {
            rest.trim_end()
                .trim_end_matches('.')
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string()
        })
        // `2.60`: digits, a dot, digits.
        .filter(|v| {
            v.split_once('.').is_some_and(|(a, b)| {
                !a.is_empty()
                    && !b.is_empty()
                    && a.chars().chain(b.chars()).all(|c| c.is_ascii_digit())
            })
        })
        .map_or_else(
            || format!("refuses {} ({answer})", m.version),
            |v| format!("offers at most {v}"),
        );
    let base = url.split_once("://").map_or(url, |(_, rest)| rest);
    let host = base.split('/').next().unwrap_or(base);
    format!(
        "{} at {host} is too old: it {offers}, and acura-ha needs {} for {} (use a newer cloud or region, or ask its operators to upgrade)",
        m.service, m.version, m.why
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_microversion_names_the_service_what_it_offers_and_what_is_needed() {
        let m = refused(
            &NOVA,
            "https://nova.example:8774/v2.1/flavors/detail",
            "Version 2.64 is not supported by the API. Minimum is 2.1 and maximum is 2.60.",
        );
        assert!(
            m.contains("compute (Nova) at nova.example:8774")
                && m.contains("offers at most 2.60")
                && m.contains("needs 2.64"),
            "{m}"
        );
        assert!(refused(&CINDER, "http://c/v3/p/x", "odd").contains("refuses 3.0 (odd)"));
    }
}
