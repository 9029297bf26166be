//! Webhook signatures: an HMAC-SHA256 of the raw body (optionally of `timestamp.body`, with the
//! timestamp checked against a tolerance window to stop replays), sent hex-encoded in a header
//! such as `X-Signature-256: sha256=<hex>`. The secret comes from AWS Secrets Manager, fetched
//! once at cold start. A caller learns only "invalid signature", never why.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{BridgeError, ConfigError};

pub const DEFAULT_HEADER: &str = "x-signature-256";
pub const DEFAULT_PREFIX: &str = "sha256=";
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// What the environment says about signatures (the secret itself is fetched later).
#[derive(Debug, Clone, PartialEq)]
pub struct SignatureSettings {
    /// Secrets Manager secret name or ARN (`WEBHOOK_SECRET_ID`).
    pub secret_id: String,
    /// Header carrying the signature, lower-case (`WEBHOOK_SIGNATURE_HEADER`).
    pub header: String,
    /// Text before the hex digest (`WEBHOOK_SIGNATURE_PREFIX`).
    pub prefix: String,
    /// Header carrying a Unix timestamp that is signed with the body (`WEBHOOK_TIMESTAMP_HEADER`).
    pub timestamp_header: Option<String>,
    /// How far the timestamp may be from now (`WEBHOOK_TOLERANCE_SECONDS`).
    pub tolerance: Duration,
}

impl SignatureSettings {
    pub fn from_lookup(
        get: &impl Fn(&str) -> Option<String>,
    ) -> Result<Option<SignatureSettings>, ConfigError> {
        let Some(secret_id) = get("WEBHOOK_SECRET_ID") else {
            return Ok(None);
        };
        let tolerance = match get("WEBHOOK_TOLERANCE_SECONDS") {
            None => DEFAULT_TOLERANCE,
            Some(t) => Duration::from_secs(t.parse().map_err(|_| ConfigError::Env {
                name: "WEBHOOK_TOLERANCE_SECONDS",
                message: format!("'{t}' is not a whole number of seconds"),
            })?),
        };
        Ok(Some(SignatureSettings {
            secret_id,
            header: get("WEBHOOK_SIGNATURE_HEADER")
                .unwrap_or_else(|| DEFAULT_HEADER.into())
                .to_ascii_lowercase(),
            prefix: get("WEBHOOK_SIGNATURE_PREFIX").unwrap_or_else(|| DEFAULT_PREFIX.into()),
            timestamp_header: get("WEBHOOK_TIMESTAMP_HEADER").map(|h| h.to_ascii_lowercase()),
            tolerance,
        }))
    }
}

/// The check itself, holding the secret.
pub struct SignatureCheck {
    settings: SignatureSettings,
    secret: Vec<u8>,
}

impl std::fmt::Debug for SignatureCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret, not even in a debug dump.
        f.debug_struct("SignatureCheck")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl SignatureCheck {
    pub fn new(settings: SignatureSettings, secret: Vec<u8>) -> SignatureCheck {
        SignatureCheck { settings, secret }
    }

    /// Fetches the secret (SecretString, else SecretBinary) once, at cold start.
    pub async fn fetch(
        settings: SignatureSettings,
        client: &aws_sdk_secretsmanager::Client,
    ) -> Result<SignatureCheck, ConfigError> {
        let out = client
            .get_secret_value()
            .secret_id(&settings.secret_id)
            .send()
            .await
            .map_err(|e| ConfigError::Env {
                name: "WEBHOOK_SECRET_ID",
                message: format!(
                    "cannot read secret {}: {}",
                    settings.secret_id,
                    aws_sdk_secretsmanager::error::DisplayErrorContext(&e)
                ),
            })?;
        let secret = match (out.secret_string(), out.secret_binary()) {
            (Some(s), _) => s.as_bytes().to_vec(),
            (None, Some(b)) => b.as_ref().to_vec(),
            (None, None) => Vec::new(),
        };
        if secret.is_empty() {
            return Err(ConfigError::Env {
                name: "WEBHOOK_SECRET_ID",
                message: format!("secret {} is empty", settings.secret_id),
            });
        }
        Ok(SignatureCheck::new(settings, secret))
    }

    /// Accepts the request only if its signature is the HMAC of its raw body under the secret.
    pub fn verify(
        &self,
        headers: &BTreeMap<String, String>,
        body: &str,
        now: SystemTime,
    ) -> Result<(), BridgeError> {
        let invalid = || BridgeError::Unauthorized;
        let given = headers.get(&self.settings.header).ok_or_else(invalid)?;
        let hex_digest = given
            .trim()
            .strip_prefix(self.settings.prefix.as_str())
            .ok_or_else(invalid)?;
        let digest = hex::decode(hex_digest).map_err(|_| invalid())?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key");
        if let Some(ts_header) = &self.settings.timestamp_header {
            let ts = headers.get(ts_header).ok_or_else(invalid)?;
            let secs: u64 = ts.trim().parse().map_err(|_| invalid())?;
            let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
            if now.abs_diff(secs) > self.settings.tolerance.as_secs() {
                return Err(invalid());
            }
            mac.update(ts.trim().as_bytes());
            mac.update(b".");
        }
        mac.update(body.as_bytes());
        // verify_slice compares in constant time.
        mac.verify_slice(&digest).map_err(|_| invalid())
    }
}

/// The header value a sender computes (for tests and for users' own senders).
pub fn sign(secret: &[u8], timestamp: Option<&str>, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    if let Some(ts) = timestamp {
        mac.update(ts.as_bytes());
        mac.update(b".");
    }
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(timestamp: bool) -> SignatureSettings {
        SignatureSettings {
            secret_id: "s".into(),
            header: DEFAULT_HEADER.into(),
            prefix: DEFAULT_PREFIX.into(),
            timestamp_header: timestamp.then(|| "x-signature-timestamp".into()),
            tolerance: DEFAULT_TOLERANCE,
        }
    }

    fn headers(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    const NOW: u64 = 1_800_000_000;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn a_known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", None, "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_right_signature_passes_and_anything_else_fails() {
        let check = SignatureCheck::new(settings(false), b"topsecret".to_vec());
        let body = r#"{"a":1}"#;
        let good = format!("sha256={}", sign(b"topsecret", None, body));
        assert!(check
            .verify(&headers(&[(DEFAULT_HEADER, good.clone())]), body, at(NOW))
            .is_ok());
        for bad in [
            headers(&[]),
            headers(&[(DEFAULT_HEADER, good.replace("sha256=", "sha1="))]),
            headers(&[(DEFAULT_HEADER, "sha256=zz".into())]),
            headers(&[(
                DEFAULT_HEADER,
                format!("sha256={}", sign(b"other", None, body)),
            )]),
        ] {
            let err = check.verify(&bad, body, at(NOW)).unwrap_err();
            assert!(matches!(err, BridgeError::Unauthorized));
            assert_eq!(err.to_string(), "invalid signature");
        }
        let tampered = check.verify(&headers(&[(DEFAULT_HEADER, good)]), r#"{"a":2}"#, at(NOW));
        assert!(tampered.is_err());
    }

    #[test]
    fn a_signed_timestamp_stops_replays() {
        let check = SignatureCheck::new(settings(true), b"k".to_vec());
        let ts = NOW.to_string();
        let sig = format!("sha256={}", sign(b"k", Some(&ts), "b"));
        let h = headers(&[(DEFAULT_HEADER, sig), ("x-signature-timestamp", ts.clone())]);
        assert!(check.verify(&h, "b", at(NOW + 10)).is_ok());
        assert!(check.verify(&h, "b", at(NOW + 301)).is_err());
        assert!(check.verify(&h, "b", at(NOW - 301)).is_err());
        let no_ts = headers(&[(DEFAULT_HEADER, h[DEFAULT_HEADER].clone())]);
        assert!(check.verify(&no_ts, "b", at(NOW)).is_err());
    }

    #[test]
    fn settings_come_from_the_environment_and_the_secret_never_prints() {
        let env = |k: &str| match k {
            "WEBHOOK_SECRET_ID" => Some("arn:aws:secretsmanager:eu-west-1:1:secret:hook".into()),
            "WEBHOOK_SIGNATURE_HEADER" => Some("X-Hub-Signature-256".into()),
            _ => None,
        };
        let s = SignatureSettings::from_lookup(&env).unwrap().unwrap();
        assert_eq!(s.header, "x-hub-signature-256");
        assert_eq!(s.prefix, "sha256=");
        assert!(SignatureSettings::from_lookup(&|_: &str| None)
            .unwrap()
            .is_none());
        let check = SignatureCheck::new(s, b"very-secret-value".to_vec());
        assert!(!format!("{check:?}").contains("very-secret-value"));
    }
}
