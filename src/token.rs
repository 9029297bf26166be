//! Client tokens: the idempotency key that makes a redelivered event reopen the same task, and
//! the identity model it is derived from.
//!
//! An event's identity is what makes two deliveries "the same event". Who can choose it decides
//! how it is hashed (docs/identity.md has the table per source):
//!
//! - `Service`: assigned by an AWS service and kept across redeliveries (EventBridge `id`, SQS
//!   `messageId` — standard and FIFO alike — and SNS `MessageId`). No outside caller sets it.
//! - `Key`: a route's rendered `client_token` template, a business key chosen by the mapping's
//!   author ("one task per order"). Every part it reads must be present (see `mapping`).
//! - `Caller`: chosen or shaped by whoever calls (a webhook's `Idempotency-Key`, or a digest of
//!   its method, path and body; a direct payload's canonical digest). Hashed with its namespace,
//!   so no caller can produce the token of another source's event.
//! - `Signed`: a webhook under signature checking: a digest of the signed body (or a route key
//!   that reads only the body). Hashed without the route, because which route renders a request
//!   can depend on unsigned headers, and changing anything unsigned must not open a new task.
//!
//! Formulas (stable across cold starts and releases; changing one would let a redelivery that
//! straddles a deploy open a second task, so a change gets a new prefix):
//!
//! ```text
//! Service, Key:     "ctb1-" + hex(SHA-256(part(instance_id) || part(route) || part(value)))
//! Caller:           "ctb2-" + hex(SHA-256(part(instance_id) || part(route) || part(namespace) || part(value)))
//! Signed:           "ctb2-" + hex(SHA-256(part(instance_id) || part("")    || part(namespace) || part(value)))
//! part(s) = u64_be(len(s)) || utf8(s)
//! ```
//!
//! Three parts and four never hash the same input (the length prefixes make each encoding
//! unambiguous, and the streams differ in length). Tokens are 69 characters, inside Connect's 500.
//!
//! A direct invocation that carries its own `ClientToken` keeps it unchanged: the caller chose it
//! as Connect's idempotency key, and a call made with the same token through the CLI must meet
//! the same task. A token with our own prefixes (`ctb` + digits + `-`) is refused: it could name
//! another event's task.

use serde_json::Value;
use sha2::{Digest, Sha256};

pub const TOKEN_PREFIX: &str = "ctb1-";
pub const CALLER_TOKEN_PREFIX: &str = "ctb2-";

/// What a record's client token is derived from, and who chose it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identity {
    Service(String),
    Key(String),
    Caller {
        namespace: &'static str,
        value: String,
    },
    Signed {
        namespace: &'static str,
        value: String,
    },
}

impl Identity {
    /// The identity's own text (for logs of ids, never of data: every variant is an id or a
    /// digest, or a business key the mapping's author chose to expose as one).
    pub fn value(&self) -> &str {
        match self {
            Identity::Service(v) | Identity::Key(v) => v,
            Identity::Caller { value, .. } | Identity::Signed { value, .. } => value,
        }
    }
}

pub fn client_token(instance_id: &str, route: &str, identity: &Identity) -> String {
    let (prefix, digest) = match identity {
        Identity::Service(value) | Identity::Key(value) => (
            TOKEN_PREFIX,
            digest_parts(&[instance_id.as_bytes(), route.as_bytes(), value.as_bytes()]),
        ),
        Identity::Caller { namespace, value } => (
            CALLER_TOKEN_PREFIX,
            digest_parts(&[
                instance_id.as_bytes(),
                route.as_bytes(),
                namespace.as_bytes(),
                value.as_bytes(),
            ]),
        ),
        Identity::Signed { namespace, value } => (
            CALLER_TOKEN_PREFIX,
            digest_parts(&[
                instance_id.as_bytes(),
                b"",
                namespace.as_bytes(),
                value.as_bytes(),
            ]),
        ),
    };
    format!("{prefix}{digest}")
}

/// The day events started to carry their content in their identity (this version's release).
/// An event stamped before it keeps the identity earlier versions gave it (its id alone), so
/// its redelivery after an upgrade meets the task it opened before. That exception is as wide
/// as the risk it leaves: it lets only events stamped before this date share an id, and no
/// event stamped then can still be delivered 15 days later (SQS keeps a message 14 days).
const VOUCHED_SINCE: i64 = 1_795_737_600; // 2026-11-27T00:00:00Z

/// The identity of an event whose id another AWS service assigns (EventBridge `id`, SNS
/// `MessageId`). The id alone is trustworthy only where that service delivers the event
/// itself; inside an SQS message anyone who may send to the queue can write any id, and two
/// different messages with one id once made one task. So the content is part of the identity
/// on every path (an event delivered directly and the same event through a queue stay one
/// task): `content` is a digest of what the event says, `time` its stamp (epoch seconds).
pub fn vouched_event(id: &str, content: &str, time: Option<i64>) -> Identity {
    if time.is_some_and(|t| t < VOUCHED_SINCE) {
        Identity::Service(id.to_string())
    } else {
        Identity::Service(format!("{id}#{content}"))
    }
}

/// An RFC 3339 stamp (EventBridge `time`, SNS `Timestamp`) in epoch seconds.
pub fn stamp(text: Option<&str>) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text?)
        .ok()
        .map(|t| t.timestamp())
}

/// Whether a caller-supplied token uses a prefix reserved for derived tokens.
pub fn is_reserved(token: &str) -> bool {
    let Some(rest) = token.strip_prefix("ctb") else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && rest.as_bytes().get(digits) == Some(&b'-')
}

/// The client token of a business key's `generation`-th task: independent of the route (every
/// route that names the key means the same task) and of the event.
pub fn business_token(instance_id: &str, key: &str, generation: u64) -> String {
    format!(
        "ctb3-{}",
        digest_parts(&[
            instance_id.as_bytes(),
            b"business-key",
            key.as_bytes(),
            generation.to_string().as_bytes(),
        ])
    )
}

/// What a keyed task was opened with (the request as sent, and the workflow waiting for it):
/// a later event on the key that says something else is answered with the key's task and
/// counted as a reused key.
pub fn request_digest(request: &str, task_token: &str) -> String {
    digest_parts(&[request.as_bytes(), task_token.as_bytes()])
}

/// The event's identity as the task table records it (who claimed a key): its client token in
/// a route-independent namespace of its own.
pub fn origin(identity: &Identity) -> String {
    client_token("origin", "", identity)
}

/// SHA-256 of the parts, each length-prefixed so that no two different lists of parts can
/// produce the same input ("ab","c" vs "a","bc").
pub fn digest_parts(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hex::encode(hasher.finalize())
}

/// A JSON text of the value with object keys sorted at every depth, independent of how the
/// payload was written or of serde_json's map ordering features.
pub fn canonical_json(value: &Value) -> String {
    let mut out = Vec::new();
    write_canonical(value, &mut out).expect("a Vec takes every write");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// SHA-256 (hex) of `canonical_json(value)`, written straight into the hasher: a payload of a
/// few MiB is not copied into a text first.
pub fn canonical_digest(value: &Value) -> String {
    struct Hashing(Sha256);
    impl std::io::Write for Hashing {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.update(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut hashing = Hashing(Sha256::new());
    write_canonical(value, &mut hashing).expect("hashing takes every write");
    hex::encode(hashing.0.finalize())
}

/// serde_json writes keys and scalars exactly as `Value::to_string` does.
fn write_canonical(value: &Value, out: &mut impl std::io::Write) -> std::io::Result<()> {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.write_all(b"{")?;
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                serde_json::to_writer(&mut *out, key)?;
                out.write_all(b":")?;
                write_canonical(item, out)?;
            }
            out.write_all(b"}")
        }
        Value::Array(items) => {
            out.write_all(b"[")?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                write_canonical(item, out)?;
            }
            out.write_all(b"]")
        }
        scalar => Ok(serde_json::to_writer(&mut *out, scalar)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_aws_id_carries_the_content_except_for_events_stamped_before_the_change() {
        let new = stamp(Some("2026-12-01T10:00:00Z"));
        let old = stamp(Some("2026-11-25T10:00:00.000Z"));
        assert!(old.unwrap() < VOUCHED_SINCE && new.unwrap() > VOUCHED_SINCE);
        assert_ne!(
            vouched_event("ev-1", "aaa", new),
            vouched_event("ev-1", "bbb", new)
        );
        assert_eq!(
            vouched_event("ev-1", "aaa", new),
            vouched_event("ev-1", "aaa", new)
        );
        assert_ne!(
            vouched_event("ev-1", "aaa", None),
            vouched_event("ev-1", "bbb", None)
        );
        assert_eq!(
            vouched_event("ev-1", "aaa", old),
            Identity::Service("ev-1".into())
        );
        assert_eq!(stamp(Some("yesterday")), None);
    }

    fn service(v: &str) -> Identity {
        Identity::Service(v.into())
    }

    /// Fixed vectors, computed independently (Python hashlib). If one of these changes, every
    /// in-flight redelivery after a deploy would open a second task. Never update them without a
    /// new prefix.
    #[test]
    fn fixed_vectors() {
        assert_eq!(
            client_token(
                "11111111-2222-3333-4444-555555555555",
                "order-failed",
                &service("ev-1")
            ),
            "ctb1-ffcf9bc29ea2f2e42488d62f67663420b42faee9df4f7aca6e243ec69b3b6512"
        );
        assert_eq!(
            client_token("inst", "default", &Identity::Key(String::new())),
            "ctb1-2481cc86a13b6791ddefb044e218257daf7eab552e8fa34630eec9610daa2853"
        );
        assert_eq!(
            client_token(
                "inst",
                "default",
                &Identity::Caller {
                    namespace: "webhook",
                    value: "key-1".into()
                }
            ),
            CALLER_VECTOR
        );
        assert_eq!(
            client_token(
                "inst",
                "default",
                &Identity::Signed {
                    namespace: "webhook-signed",
                    value: "abc".into()
                }
            ),
            SIGNED_VECTOR
        );
    }

    // python3: part = lambda s: len(s.encode()).to_bytes(8, "big") + s.encode()
    //   "ctb2-" + sha256(part("inst") + part("default") + part("webhook") + part("key-1")).hexdigest()
    const CALLER_VECTOR: &str =
        "ctb2-de1b0b696c9fdec502b03c01013bde3af68719b0414f7e1d81d1b727b20309e6";
    //   "ctb2-" + sha256(part("inst") + part("") + part("webhook-signed") + part("abc")).hexdigest()
    const SIGNED_VECTOR: &str =
        "ctb2-8e43181043949a17edd5d848b9008e96a5e8da78909929c9e94e7a531e2eac54";

    #[test]
    fn a_caller_can_never_produce_a_service_token() {
        let service = client_token("inst", "default", &service("m-1"));
        for namespace in ["webhook", "direct", ""] {
            let caller = Identity::Caller {
                namespace,
                value: "m-1".into(),
            };
            assert_ne!(client_token("inst", "default", &caller), service);
        }
        // The route still separates caller identities; a signed one ignores it.
        let caller = |route| {
            client_token(
                "inst",
                route,
                &Identity::Caller {
                    namespace: "webhook",
                    value: "k".into(),
                },
            )
        };
        assert_ne!(caller("a"), caller("b"));
        let signed = |route| {
            client_token(
                "inst",
                route,
                &Identity::Signed {
                    namespace: "webhook-signed",
                    value: "k".into(),
                },
            )
        };
        assert_eq!(signed("a"), signed("b"));
    }

    #[test]
    fn parts_do_not_run_into_each_other() {
        let t = |i: &str, r: &str, v: &str| client_token(i, r, &service(v));
        assert_ne!(t("a", "bc", "d"), t("ab", "c", "d"));
        assert_ne!(t("a", "b", "cd"), t("a", "bc", "d"));
    }

    #[test]
    fn reserved_prefixes() {
        for t in ["ctb1-abc", "ctb2-", "ctb10-x"] {
            assert!(is_reserved(t), "{t}");
        }
        for t in ["ctb-1", "ctbx-", "refund-CASE-1", "CTB1-x", "ctb1"] {
            assert!(!is_reserved(t), "{t}");
        }
    }

    #[test]
    fn fits_connect_bound() {
        let t = client_token(
            &"i".repeat(100),
            &"r".repeat(1000),
            &service(&"x".repeat(100_000)),
        );
        assert_eq!(t.len(), 69);
    }

    #[test]
    fn the_canonical_digest_is_the_digest_of_the_canonical_text() {
        let v = json!({"b": [1, {"d": "x", "c": null}], "a": 1.5});
        let text = canonical_json(&v);
        assert_eq!(
            canonical_digest(&v),
            hex::encode(Sha256::digest(text.as_bytes()))
        );
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let a = json!({"b": {"y": 1, "x": [ {"q": 1, "p": 2} ]}, "a": "s"});
        assert_eq!(
            canonical_json(&a),
            r#"{"a":"s","b":{"x":[{"p":2,"q":1}],"y":1}}"#
        );
    }

    /// A direct payload's identity is a digest of this text: it must never change. Expected
    /// text from Python: `json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`.
    #[test]
    fn canonical_json_fixed_vector() {
        let v = json!({"b": {"y": 1, "x": [{"q": 1.5, "p": "é\"\\\n\u{1f}/"}]}, "a": null, "A": true, "ä": -7});
        assert_eq!(
            canonical_json(&v),
            "{\"A\":true,\"a\":null,\"b\":{\"x\":[{\"p\":\"\u{e9}\\\"\\\\\\n\\u001f/\",\"q\":1.5}],\"y\":1},\"\u{e4}\":-7}"
        );
    }

    #[test]
    fn digest_is_length_prefixed() {
        assert_ne!(digest_parts(&[b"ab", b"c"]), digest_parts(&[b"a", b"bc"]));
        assert_eq!(digest_parts(&[b"x"]).len(), 64);
    }

    #[test]
    fn business_tokens_depend_on_key_and_generation_only() {
        let a = business_token("inst", "order-1", 1);
        assert!(a.starts_with("ctb3-") && a.len() == 69);
        assert_eq!(a, business_token("inst", "order-1", 1));
        assert_ne!(a, business_token("inst", "order-1", 2));
        assert_ne!(a, business_token("inst", "order-2", 1));
        assert_ne!(a, business_token("other", "order-1", 1));
    }
}
