//! The webhook senders' own signature schemes (`WEBHOOK_SIGNATURE_SCHEME`): which headers carry
//! the signature and its timestamp, which string is signed, how the digest is encoded, how the
//! secret is written, and which id names a delivery. `hmac-sha256` is the configurable check
//! (`WEBHOOK_SIGNATURE_HEADER`, `..._PREFIX`, `WEBHOOK_TIMESTAMP_HEADER`) that `webhook_auth`
//! runs itself; every other scheme is a preset fixed here, after the sender's documentation
//! (docs/senders.md names the page each follows):
//!
//! | scheme | signature | signed string | encoding | timestamp |
//! | --- | --- | --- | --- | --- |
//! | `github` | `X-Hub-Signature-256: sha256=…` | body | hex | – |
//! | `stripe` | `Stripe-Signature: t=…,v1=…[,v1=…]` | `t.body` | hex | `t=`, 300 s |
//! | `standard-webhooks` | `webhook-signature: v1,… [v1,…]` | `id.timestamp.body` | base64 | `webhook-timestamp`, 300 s |
//! | `svix` | `svix-signature` (else `webhook-signature`) | `id.timestamp.body` | base64 | `svix-timestamp`, 300 s |
//! | `slack` | `X-Slack-Signature: v0=…` | `v0:timestamp:body` | hex | `X-Slack-Request-Timestamp`, 300 s |
//! | `zendesk` | `X-Zendesk-Webhook-Signature` | `timestamp` + body | base64 | `X-Zendesk-Webhook-Signature-Timestamp` (RFC 3339), 300 s |
//! | `shopify` | `X-Shopify-Hmac-Sha256` | body | base64 | – |
//! | `pagerduty` | `X-PagerDuty-Signature: v1=…[,v1=…]` | body | hex | – |
//!
//! Every signature a header carries is tried (a sender signs with old and new secret during a
//! rotation); every version of the secret held is tried too. A caller learns only "invalid
//! signature", never which part failed.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::token::digest_parts;

/// Where a sender documents no tolerance for its timestamp (Zendesk), and what Stripe, Slack and
/// Standard Webhooks document: five minutes.
pub const PRESET_TOLERANCE: Duration = Duration::from_secs(300);

/// A webhook signature scheme (`WEBHOOK_SIGNATURE_SCHEME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// The configurable check: an HMAC-SHA256 of the body (or `timestamp.body`), hex, behind a
    /// prefix, in a header of the operator's choosing. The default.
    HmacSha256,
    Github,
    Stripe,
    StandardWebhooks,
    Svix,
    Slack,
    Zendesk,
    Shopify,
    PagerDuty,
}

impl Scheme {
    pub const ALL: [Scheme; 9] = [
        Scheme::HmacSha256,
        Scheme::Github,
        Scheme::Stripe,
        Scheme::StandardWebhooks,
        Scheme::Svix,
        Scheme::Slack,
        Scheme::Zendesk,
        Scheme::Shopify,
        Scheme::PagerDuty,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::HmacSha256 => "hmac-sha256",
            Scheme::Github => "github",
            Scheme::Stripe => "stripe",
            Scheme::StandardWebhooks => "standard-webhooks",
            Scheme::Svix => "svix",
            Scheme::Slack => "slack",
            Scheme::Zendesk => "zendesk",
            Scheme::Shopify => "shopify",
            Scheme::PagerDuty => "pagerduty",
        }
    }

    /// The scheme a name means (case-insensitive).
    pub fn parse(name: &str) -> Option<Scheme> {
        let name = name.trim().to_ascii_lowercase();
        Scheme::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether the scheme is a sender's preset (every one but `hmac-sha256`).
    pub fn is_preset(self) -> bool {
        self != Scheme::HmacSha256
    }

    /// The header carrying the signature (lower-case); None for `hmac-sha256`, whose header is
    /// configured.
    pub fn signature_header(self) -> Option<&'static str> {
        Some(match self {
            Scheme::HmacSha256 => return None,
            Scheme::Github => "x-hub-signature-256",
            Scheme::Stripe => "stripe-signature",
            Scheme::StandardWebhooks => "webhook-signature",
            Scheme::Svix => "svix-signature",
            Scheme::Slack => "x-slack-signature",
            Scheme::Zendesk => "x-zendesk-webhook-signature",
            Scheme::Shopify => "x-shopify-hmac-sha256",
            Scheme::PagerDuty => "x-pagerduty-signature",
        })
    }

    /// Whether the preset signs a timestamp (and so has a tolerance).
    pub fn signs_timestamp(self) -> bool {
        matches!(
            self,
            Scheme::Stripe
                | Scheme::StandardWebhooks
                | Scheme::Svix
                | Scheme::Slack
                | Scheme::Zendesk
        )
    }

    /// The HMAC key a secret, as the sender's dashboard shows it, stands for. Presets take the
    /// text without surrounding whitespace (a pasted newline); Standard Webhooks and Svix write
    /// the key as `whsec_<base64>` and their libraries decode it, so this does too. None: the
    /// secret cannot be this scheme's (a Standard Webhooks secret that is not base64).
    pub fn key(self, secret: &[u8]) -> Option<Vec<u8>> {
        if !self.is_preset() {
            return Some(secret.to_vec());
        }
        let text = std::str::from_utf8(secret).ok()?.trim();
        if text.is_empty() {
            return None;
        }
        match self {
            Scheme::StandardWebhooks | Scheme::Svix => {
                let encoded = text.strip_prefix("whsec_").unwrap_or(text);
                // Padded or not, as the libraries take it.
                base64::engine::general_purpose::GeneralPurpose::new(
                    &base64::alphabet::STANDARD,
                    base64::engine::general_purpose::GeneralPurposeConfig::new()
                        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
                )
                .decode(encoded)
                .ok()
                .filter(|k| !k.is_empty())
            }
            _ => Some(text.as_bytes().to_vec()),
        }
    }

    /// What a request presents under this preset: the text signed before the body and the
    /// signatures to compare, once its timestamp (where one is signed) is within `tolerance`
    /// of `now`. None: the request cannot be valid (a header missing or malformed, a stale or
    /// future timestamp).
    pub fn presented(
        self,
        headers: &BTreeMap<String, String>,
        now: SystemTime,
        tolerance: Duration,
    ) -> Option<Presented> {
        let header = |name: &str| headers.get(name).map(|v| v.trim());
        let fresh = |secs: u64| {
            let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
            now.abs_diff(secs) <= tolerance.as_secs()
        };
        let presented = match self {
            Scheme::HmacSha256 => return None,
            Scheme::Github => Presented {
                prefix: Vec::new(),
                signatures: vec![hex::decode(
                    header("x-hub-signature-256")?.strip_prefix("sha256=")?,
                )
                .ok()?],
            },
            Scheme::Stripe => {
                let mut timestamp = None;
                let mut signatures = Vec::new();
                for item in header("stripe-signature")?.split(',') {
                    let (name, value) = item.trim().split_once('=')?;
                    match name {
                        // One timestamp, or the header is not Stripe's.
                        "t" if timestamp.is_none() => timestamp = Some(value),
                        "t" => return None,
                        "v1" => signatures.extend(hex::decode(value).ok()),
                        // v0 (test-mode legacy) and any future scheme are not ours to check.
                        _ => {}
                    }
                }
                let timestamp = timestamp?;
                if !fresh(epoch_seconds(timestamp)?) {
                    return None;
                }
                Presented {
                    prefix: format!("{timestamp}.").into_bytes(),
                    signatures,
                }
            }
            Scheme::StandardWebhooks | Scheme::Svix => {
                let [id, timestamp, signature] = self.standard_headers(headers)?;
                if !fresh(epoch_seconds(timestamp)?) {
                    return None;
                }
                let signatures = signature
                    .split_whitespace()
                    .filter_map(|s| s.split_once(','))
                    .filter(|(version, _)| *version == "v1")
                    .filter_map(|(_, sig)| {
                        base64::engine::general_purpose::STANDARD.decode(sig).ok()
                    })
                    .collect();
                Presented {
                    prefix: format!("{id}.{timestamp}.").into_bytes(),
                    signatures,
                }
            }
            Scheme::Slack => {
                let timestamp = header("x-slack-request-timestamp")?;
                if !fresh(epoch_seconds(timestamp)?) {
                    return None;
                }
                let sig = header("x-slack-signature")?.strip_prefix("v0=")?;
                Presented {
                    prefix: format!("v0:{timestamp}:").into_bytes(),
                    signatures: vec![hex::decode(sig).ok()?],
                }
            }
            Scheme::Zendesk => {
                let timestamp = header("x-zendesk-webhook-signature-timestamp")?;
                let secs = chrono::DateTime::parse_from_rfc3339(timestamp)
                    .ok()?
                    .timestamp();
                if !fresh(u64::try_from(secs).ok()?) {
                    return None;
                }
                Presented {
                    prefix: timestamp.as_bytes().to_vec(),
                    signatures: vec![base64::engine::general_purpose::STANDARD
                        .decode(header("x-zendesk-webhook-signature")?)
                        .ok()?],
                }
            }
            Scheme::Shopify => Presented {
                prefix: Vec::new(),
                signatures: vec![base64::engine::general_purpose::STANDARD
                    .decode(header("x-shopify-hmac-sha256")?)
                    .ok()?],
            },
            Scheme::PagerDuty => Presented {
                prefix: Vec::new(),
                signatures: header("x-pagerduty-signature")?
                    .split(',')
                    .filter_map(|s| s.trim().strip_prefix("v1="))
                    .filter_map(|s| hex::decode(s).ok())
                    .collect(),
            },
        };
        (!presented.signatures.is_empty()).then_some(presented)
    }

    /// `id`, `timestamp`, `signature` of Standard Webhooks (`webhook-*`) or Svix (`svix-*`,
    /// else the `webhook-*` spelling Svix's libraries also accept), all from one spelling.
    fn standard_headers<'a>(self, headers: &'a BTreeMap<String, String>) -> Option<[&'a str; 3]> {
        let read = |prefix: &str| -> Option<[&'a str; 3]> {
            let get = |name: &str| {
                headers
                    .get(&format!("{prefix}-{name}"))
                    .map(|v| v.trim())
                    .filter(|v| !v.is_empty())
            };
            Some([get("id")?, get("timestamp")?, get("signature")?])
        };
        match self {
            Scheme::Svix => read("svix").or_else(|| read("webhook")),
            _ => read("webhook"),
        }
    }

    /// A delivery's identity under this preset (namespace, value), from what the signature
    /// covers: the sender's event or message id where it is signed (Standard Webhooks' and
    /// Svix's id header; Stripe's, Slack's and PagerDuty's event id inside the body), so that
    /// the sender's retries, re-signed with a new timestamp, make one task; else the signed
    /// body without its timestamp, so that a replay under a new (unsigned) delivery id is
    /// still one task. Each namespace is the sender's own: no sender's id meets another
    /// source's identity.
    pub fn identity(
        self,
        headers: &BTreeMap<String, String>,
        text: &str,
        body: &Value,
    ) -> (&'static str, String) {
        let id = |v: Option<&Value>| {
            v.and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
                .map(str::to_string)
        };
        let from_sender = match self {
            Scheme::Stripe => id(body.get("id")).map(|v| ("stripe-event", v)),
            Scheme::Slack => id(body.get("event_id")).map(|v| ("slack-event", v)),
            Scheme::PagerDuty => id(body.pointer("/event/id")).map(|v| ("pagerduty-event", v)),
            Scheme::StandardWebhooks | Scheme::Svix => self
                .standard_headers(headers)
                .map(|[id, _, _]| (self.id_namespace(), id.to_string())),
            _ => None,
        };
        from_sender.unwrap_or_else(|| ("webhook-signed-body", digest_parts(&[text.as_bytes()])))
    }

    fn id_namespace(self) -> &'static str {
        match self {
            Scheme::Svix => "svix-message",
            _ => "standard-webhooks-message",
        }
    }
}

/// What a request presents: the text signed before its body, and its signatures.
#[derive(Debug, Clone, PartialEq)]
pub struct Presented {
    pub prefix: Vec<u8>,
    pub signatures: Vec<Vec<u8>>,
}

impl Presented {
    /// Whether one of the signatures is the HMAC-SHA256 of `prefix + body` under one of the
    /// keys (compared in constant time).
    pub fn signed_by(&self, keys: &[Vec<u8>], body: &[u8]) -> bool {
        // One HMAC per key, whatever the number of signatures a header lists: the body is
        // hashed at most once per version of the secret.
        keys.iter().any(|key| {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
            mac.update(&self.prefix);
            mac.update(body);
            let expected = mac.finalize();
            self.signatures.iter().any(|sig| {
                // CtOutput's equality is constant-time.
                sig.len() == 32
                    && expected
                        == hmac::digest::CtOutput::new(
                            hmac::digest::generic_array::GenericArray::clone_from_slice(sig),
                        )
            })
        })
    }
}

/// Unix seconds written as digits only (no sign, no fraction, no spaces).
fn epoch_seconds(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Slack's URL verification handshake (`{"type": "url_verification", "challenge": …}`): the
/// challenge to send back, for a request already checked under the `slack` preset.
pub fn slack_challenge(body: &Value) -> Option<&str> {
    (body.get("type").and_then(Value::as_str) == Some("url_verification"))
        .then(|| body.get("challenge").and_then(Value::as_str))
        .flatten()
}

/// The header a sender's signature goes in, computed as the sender computes it (for tests,
/// fuzzing, and the docs' examples): `id` is the Standard Webhooks/Svix message id, `timestamp`
/// the signed timestamp as the header carries it.
pub fn sign(
    scheme: Scheme,
    secret: &[u8],
    id: &str,
    timestamp: &str,
    body: &[u8],
) -> Option<String> {
    let key = scheme.key(secret)?;
    let prefix = match scheme {
        Scheme::Stripe => format!("{timestamp}."),
        Scheme::StandardWebhooks | Scheme::Svix => format!("{id}.{timestamp}."),
        Scheme::Slack => format!("v0:{timestamp}:"),
        Scheme::Zendesk => timestamp.to_string(),
        _ => String::new(),
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key");
    mac.update(prefix.as_bytes());
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let b64 = || base64::engine::general_purpose::STANDARD.encode(digest);
    Some(match scheme {
        Scheme::HmacSha256 | Scheme::Github => format!("sha256={}", hex::encode(digest)),
        Scheme::Stripe => format!("t={timestamp},v1={}", hex::encode(digest)),
        Scheme::StandardWebhooks | Scheme::Svix => format!("v1,{}", b64()),
        Scheme::Slack => format!("v0={}", hex::encode(digest)),
        Scheme::Zendesk | Scheme::Shopify => b64(),
        Scheme::PagerDuty => format!("v1={}", hex::encode(digest)),
    })
}

#[cfg(test)]
mod tests;
