//! Scriptable faults: match a request by method, path regex and body substring, and make it
//! fail (or slow, or lose its response) a given number of times.

use regex::Regex;
use serde::{Deserialize, Serialize};

/// One fault rule. JSON shape (admin route `POST /__fake/faults` takes a list of these):
///
/// ```json
/// {"method": "POST", "path": "^/compute/v2\\.1/servers$", "body_contains": "node-1",
///  "skip": 0, "times": 1, "action": {"type": "status", "status": 503}}
/// ```
///
/// `method` absent: any method. `times` absent: fire on every match. `skip`: let the first
/// `skip` matching requests through untouched.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultRule {
    #[serde(default)]
    pub method: Option<String>,
    /// A regex searched in the request path (no query string), e.g. `/v2/lbaas/listeners$`.
    pub path: String,
    #[serde(default)]
    pub body_contains: Option<String>,
    #[serde(default)]
    pub skip: u32,
    #[serde(default)]
    pub times: Option<u32>,
    pub action: FaultAction,
}

/// What a matching rule does.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FaultAction {
    /// Answer with this status and the service's error body (or `body` if given), with a
    /// `Retry-After` header when `retry_after` is set (a number of seconds, or a string sent
    /// as it is, e.g. an HTTP-date). The request is not performed.
    Status {
        status: u16,
        #[serde(default)]
        retry_after: Option<RetryAfter>,
        #[serde(default)]
        body: Option<serde_json::Value>,
    },
    /// Octavia's 409 "Load Balancer ... is immutable and cannot be updated." (not performed).
    OctaviaImmutable,
    /// The service's quota-exceeded error (Nova 403, Neutron 409 OverQuota, Cinder 413,
    /// Octavia 403); not performed.
    QuotaExceeded,
    /// Perform the request for real, then close the connection without any response.
    LostResponse,
    /// Add latency before handling (stacks with other rules).
    Delay { ms: u64 },
    /// Nova only: the server is created but ends in ERROR ("No valid host was found").
    BootFails,
    /// The request's token is revoked (as when it expires): this request and every later one
    /// with that token answer 401. Not performed.
    TokenRevoked,
}

/// A `Retry-After` value: seconds (`2`) or any text (`"Wed, 21 Oct 2015 07:28:00 GMT"`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum RetryAfter {
    Seconds(u64),
    Text(String),
}

impl RetryAfter {
    pub fn header_value(&self) -> String {
        match self {
            RetryAfter::Seconds(s) => s.to_string(),
            RetryAfter::Text(t) => t.clone(),
        }
    }
}

impl From<u64> for RetryAfter {
    fn from(s: u64) -> Self {
        RetryAfter::Seconds(s)
    }
}

impl FaultRule {
    /// A rule for `method` on paths matching `path`, firing once.
    pub fn new(method: &str, path: &str, action: FaultAction) -> Self {
        FaultRule {
            method: Some(method.to_string()),
            path: path.to_string(),
            body_contains: None,
            skip: 0,
            times: Some(1),
            action,
        }
    }
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }
    pub fn always(mut self) -> Self {
        self.times = None;
        self
    }
    pub fn skip(mut self, n: u32) -> Self {
        self.skip = n;
        self
    }
    pub fn body_contains(mut self, s: &str) -> Self {
        self.body_contains = Some(s.to_string());
        self
    }
}

struct Armed {
    rule: FaultRule,
    re: Option<Regex>,
    seen: u32,
    fired: u32,
}

/// The live rules with their counters.
#[derive(Default)]
pub struct FaultBook {
    rules: Vec<Armed>,
}

/// What the matching rules decided for one request.
#[derive(Default, Debug)]
pub struct Decision {
    pub delay_ms: u64,
    /// The first non-delay action that fired.
    pub action: Option<FaultAction>,
}

impl FaultBook {
    pub fn add(&mut self, rule: FaultRule) -> Result<(), String> {
        let re = Regex::new(&rule.path).map_err(|e| format!("bad path regex: {e}"))?;
        self.rules.push(Armed {
            rule,
            re: Some(re),
            seen: 0,
            fired: 0,
        });
        Ok(())
    }

    pub fn clear(&mut self) {
        self.rules.clear();
    }

    pub fn decide(&mut self, method: &str, path: &str, body: &str) -> Decision {
        let mut d = Decision::default();
        for a in &mut self.rules {
            if let Some(m) = &a.rule.method
                && !m.eq_ignore_ascii_case(method)
            {
                continue;
            }
            if !a.re.as_ref().is_some_and(|re| re.is_match(path)) {
                continue;
            }
            if let Some(s) = &a.rule.body_contains
                && !body.contains(s.as_str())
            {
                continue;
            }
            // A non-delay rule is not consumed when an earlier one already decided.
            let is_delay = matches!(a.rule.action, FaultAction::Delay { .. });
            if !is_delay && d.action.is_some() {
                continue;
            }
            a.seen += 1;
            if a.seen <= a.rule.skip {
                continue;
            }
            if a.rule.times.is_some_and(|t| a.fired >= t) {
                continue;
            }
            a.fired += 1;
            match &a.rule.action {
                FaultAction::Delay { ms } => d.delay_ms += ms,
                other => d.action = Some(other.clone()),
            }
        }
        d
    }
}

impl From<String> for RetryAfter {
    fn from(s: String) -> Self {
        RetryAfter::Text(s)
    }
}
