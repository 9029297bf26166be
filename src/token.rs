//! Client tokens: the idempotency key that makes a redelivered event reopen the same task.
//!
//! Formula (version 1, stable across cold starts and releases; changing it would let a
//! redelivery that straddles a deploy open a second task):
//!
//! ```text
//! token = "ctb1-" + hex(SHA-256(part(instance_id) || part(route) || part(identity)))
//! part(s) = u64_be(len(s)) || utf8(s)
//! ```
//!
//! `identity` is the record's identity (EventBridge id, SQS message id or FIFO deduplication id,
//! SNS message id, webhook Idempotency-Key or a hash of method/path/body) or the route's rendered
//! `client_token` template. The length prefixes make the encoding unambiguous. The result is 69
//! characters, well inside Connect's 500.
//!
//! A direct invocation that carries its own `ClientToken` keeps it unchanged: the caller chose it
//! as Connect's idempotency key, and a call made with the same token through the CLI must meet
//! the same task.

use crate::record::digest_parts;

pub const TOKEN_PREFIX: &str = "ctb1-";

pub fn client_token(instance_id: &str, route: &str, identity: &str) -> String {
    let digest = digest_parts(&[
        instance_id.as_bytes(),
        route.as_bytes(),
        identity.as_bytes(),
    ]);
    format!("{TOKEN_PREFIX}{digest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fixed vectors, computed independently (Python hashlib). If one of these changes, every in-flight redelivery after a deploy would
    /// open a second task. Never update them without a new prefix.
    #[test]
    fn fixed_vectors() {
        assert_eq!(
            client_token(
                "11111111-2222-3333-4444-555555555555",
                "order-failed",
                "ev-1"
            ),
            "ctb1-ffcf9bc29ea2f2e42488d62f67663420b42faee9df4f7aca6e243ec69b3b6512"
        );
        assert_eq!(
            client_token("inst", "default", ""),
            "ctb1-2481cc86a13b6791ddefb044e218257daf7eab552e8fa34630eec9610daa2853"
        );
    }

    #[test]
    fn parts_do_not_run_into_each_other() {
        assert_ne!(client_token("a", "bc", "d"), client_token("ab", "c", "d"));
        assert_ne!(client_token("a", "b", "cd"), client_token("a", "bc", "d"));
    }

    #[test]
    fn fits_connect_bound() {
        let t = client_token(&"i".repeat(100), &"r".repeat(1000), &"x".repeat(100_000));
        assert_eq!(t.len(), 69);
    }
}
