//! Who may call a webhook (`WEBHOOK_AUTH`), checked before anything about the request is parsed
//! or judged:
//!
//! - `signature`: an HMAC-SHA256 of the raw body (optionally of `timestamp.body`, with the
//!   timestamp checked against a tolerance window to stop replays), sent hex-encoded in a header
//!   such as `X-Signature-256: sha256=<hex>`. The secret comes from AWS Secrets Manager, its
//!   current and previous versions (a rotation does not lock senders out), fetched at cold start
//!   and again after a failed check, at most once a minute. A caller learns only "invalid
//!   signature", never why.
//! - `iam`: the request context must show an IAM-authenticated caller (API Gateway or the
//!   function URL checked SigV4); anything else that reaches the function is refused (403).
//! - `authorizer`: the request context must carry a Lambda or JWT authorizer's result.
//! - `none`: anyone may call (an explicit opt-out, warned about at cold start).
//! - unset: webhooks are refused (403); other sources are unaffected.

use std::collections::BTreeMap;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{BridgeError, ConfigError};
use crate::senders::Scheme;

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
    /// How far the timestamp may be from now (`WEBHOOK_TOLERANCE_SECONDS`; a preset's own
    /// default when unset).
    pub tolerance: Duration,
    /// `hmac-sha256` (the header, prefix and timestamp above), or a sender's preset, which
    /// fixes them (`WEBHOOK_SIGNATURE_SCHEME`, see `senders`).
    pub scheme: Scheme,
}

impl SignatureSettings {
    /// The settings, when `WEBHOOK_SECRET_ID` names a secret (its variables are described in
    /// `config::VARIABLES`).
    /// `get` is configuration's reader (`config::Vars::get`: trimmed, empty as unset).
    pub fn from_vars(
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<SignatureSettings>, ConfigError> {
        let Some(secret_id) = get("WEBHOOK_SECRET_ID") else {
            return Ok(None);
        };
        let scheme = scheme_of(get)?;
        let tolerance = match get("WEBHOOK_TOLERANCE_SECONDS") {
            None if scheme.is_preset() => crate::senders::PRESET_TOLERANCE,
            None => DEFAULT_TOLERANCE,
            Some(t) => Duration::from_secs(t.parse().map_err(|_| ConfigError::Env {
                name: "WEBHOOK_TOLERANCE_SECONDS",
                message: format!("'{t}' is not a whole number of seconds"),
            })?),
        };
        if scheme.is_preset() {
            // A preset fixes headers, prefix and timestamp: a setting beside it would be
            // silently ignored, and the operator would believe it applies.
            let mut conflicting: Vec<&str> = [
                "WEBHOOK_SIGNATURE_HEADER",
                "WEBHOOK_SIGNATURE_PREFIX",
                "WEBHOOK_TIMESTAMP_HEADER",
            ]
            .into_iter()
            .filter(|name| get(name).is_some())
            .collect();
            if !scheme.signs_timestamp() && get("WEBHOOK_TOLERANCE_SECONDS").is_some() {
                conflicting.push("WEBHOOK_TOLERANCE_SECONDS");
            }
            if !conflicting.is_empty() {
                return Err(ConfigError::Env {
                    name: "WEBHOOK_SIGNATURE_SCHEME",
                    message: format!(
                        "`{}` fixes the signature's headers, prefix and timestamp; unset {}",
                        scheme.as_str(),
                        conflicting.join(", ")
                    ),
                });
            }
            return Ok(Some(SignatureSettings {
                secret_id,
                header: scheme.signature_header().unwrap_or_default().into(),
                prefix: String::new(),
                timestamp_header: None,
                tolerance,
                scheme,
            }));
        }
        Ok(Some(SignatureSettings {
            secret_id,
            header: get("WEBHOOK_SIGNATURE_HEADER")
                .unwrap_or_else(|| DEFAULT_HEADER.into())
                .to_ascii_lowercase(),
            prefix: get("WEBHOOK_SIGNATURE_PREFIX").unwrap_or_else(|| DEFAULT_PREFIX.into()),
            timestamp_header: get("WEBHOOK_TIMESTAMP_HEADER").map(|h| h.to_ascii_lowercase()),
            tolerance,
            scheme,
        }))
    }
}

/// `WEBHOOK_SIGNATURE_SCHEME` (unset: `hmac-sha256`).
fn scheme_of(get: &dyn Fn(&str) -> Option<String>) -> Result<Scheme, ConfigError> {
    match get("WEBHOOK_SIGNATURE_SCHEME") {
        None => Ok(Scheme::HmacSha256),
        Some(name) => Scheme::parse(&name).ok_or_else(|| ConfigError::Env {
            name: "WEBHOOK_SIGNATURE_SCHEME",
            message: format!(
                "unknown scheme '{name}'; must be one of {}",
                Scheme::ALL.map(Scheme::as_str).join(", ")
            ),
        }),
    }
}

/// How webhooks are authenticated, as configured (`WEBHOOK_AUTH`).
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookAuthSetting {
    /// Unset: webhooks are refused.
    Refuse,
    None,
    Signature(SignatureSettings),
    Iam,
    Authorizer,
}

impl WebhookAuthSetting {
    /// `get` is configuration's reader (`config::Vars::get`: trimmed, empty as unset).
    pub fn from_vars(
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<WebhookAuthSetting, ConfigError> {
        let mode = get("WEBHOOK_AUTH").map(|m| m.to_ascii_lowercase());
        let secret = get("WEBHOOK_SECRET_ID");
        if secret.is_some() && mode.as_deref() != Some("signature") {
            return Err(ConfigError::Env {
                name: "WEBHOOK_AUTH",
                message: "WEBHOOK_SECRET_ID is set but WEBHOOK_AUTH is not `signature`; say which authentication webhooks use".into(),
            });
        }
        let preset = get("WEBHOOK_SIGNATURE_SCHEME")
            .is_some_and(|s| Scheme::parse(&s) != Some(Scheme::HmacSha256));
        if preset && mode.as_deref() != Some("signature") {
            return Err(ConfigError::Env {
                name: "WEBHOOK_AUTH",
                message: "WEBHOOK_SIGNATURE_SCHEME is set but WEBHOOK_AUTH is not `signature`; a scheme applies to signatures only".into(),
            });
        }
        Ok(match mode.as_deref() {
            None => WebhookAuthSetting::Refuse,
            Some("none") => WebhookAuthSetting::None,
            Some("iam") => WebhookAuthSetting::Iam,
            Some("authorizer") => WebhookAuthSetting::Authorizer,
            Some("signature") => match SignatureSettings::from_vars(get)? {
                Some(settings) => WebhookAuthSetting::Signature(settings),
                None => {
                    return Err(ConfigError::Env {
                        name: "WEBHOOK_SECRET_ID",
                        message: "WEBHOOK_AUTH=signature needs the Secrets Manager secret holding the key (name or ARN)".into(),
                    })
                }
            },
            Some(_) => {
                return Err(ConfigError::Env {
                    name: "WEBHOOK_AUTH",
                    message: "must be one of signature, iam, authorizer, none (unset: webhooks are refused)".into(),
                })
            }
        })
    }

    /// The signature scheme in force (`WEBHOOK_SIGNATURE_SCHEME`), for the cold-start line and
    /// `check`; None unless webhooks are signed.
    pub fn scheme(&self) -> Option<&'static str> {
        match self {
            WebhookAuthSetting::Signature(settings) => Some(settings.scheme.as_str()),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            WebhookAuthSetting::Refuse => "unset (webhooks refused)",
            WebhookAuthSetting::None => "none",
            WebhookAuthSetting::Signature(_) => "signature",
            WebhookAuthSetting::Iam => "iam",
            WebhookAuthSetting::Authorizer => "authorizer",
        }
    }
}

/// The check itself, built at cold start (with the secret, for signatures).
#[derive(Debug)]
pub enum WebhookAuth {
    Refuse,
    None,
    Signature(SignatureCheck),
    Iam,
    Authorizer,
}

/// What a webhook check looks at: the raw body (before any parsing), the headers, and the
/// request context API Gateway or the function URL filled in.
pub struct WebhookRequest<'a> {
    pub headers: &'a BTreeMap<String, String>,
    pub body: &'a [u8],
    pub request_context: Option<&'a Value>,
}

/// Who an authenticated webhook caller is, as API Gateway or the function URL vouches for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal(pub String);

impl WebhookAuth {
    /// Checks the caller; the principal AWS vouches for when the mode names one (`iam`,
    /// `authorizer`), so that what a caller chooses (an Idempotency-Key) is scoped to it.
    pub fn check(
        &self,
        req: &WebhookRequest<'_>,
        now: SystemTime,
    ) -> Result<Option<Principal>, BridgeError> {
        let text = |v: Option<&Value>| {
            v.and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let ctx = req.request_context;
        let at = |pointer: &str| ctx.and_then(|c| c.pointer(pointer));
        match self {
            WebhookAuth::None => Ok(None),
            WebhookAuth::Refuse => Err(BridgeError::Forbidden),
            WebhookAuth::Signature(check) => {
                check.verify(req.headers, req.body, now).map(|()| None)
            }
            // REST APIs put a SigV4 caller in `identity`; HTTP APIs and function URLs in
            // `authorizer.iam`. The caller's ARN names it across key rotations; an access key
            // alone, where no ARN is given.
            WebhookAuth::Iam => text(at("/identity/userArn"))
                .or_else(|| text(at("/authorizer/iam/userArn")))
                .or_else(|| text(at("/identity/accessKey")))
                .or_else(|| text(at("/authorizer/iam/accessKey")))
                .map(|p| Some(Principal(p)))
                .ok_or(BridgeError::Forbidden),
            // A REST API authorizer leaves its principal or claims; an HTTP API its `lambda` or
            // `jwt` result. Function URLs have no authorizers. The principal is the
            // authorizer's principalId or the token's subject, else all the authorizer said.
            WebhookAuth::Authorizer => {
                let present = |v: Option<&Value>| match v {
                    Some(Value::Object(m)) => !m.is_empty(),
                    Some(Value::String(s)) => !s.is_empty(),
                    _ => false,
                };
                let authorized = text(at("/authorizer/principalId")).is_some()
                    || present(at("/authorizer/claims"))
                    || present(at("/authorizer/lambda"))
                    || present(at("/authorizer/jwt"));
                if !authorized {
                    return Err(BridgeError::Forbidden);
                }
                let principal = text(at("/authorizer/principalId"))
                    .or_else(|| text(at("/authorizer/claims/sub")))
                    .or_else(|| text(at("/authorizer/jwt/claims/sub")))
                    .or_else(|| text(at("/authorizer/jwt/claims/client_id")))
                    .or_else(|| text(at("/authorizer/lambda/principalId")))
                    .unwrap_or_else(|| {
                        let said = at("/authorizer").cloned().unwrap_or(Value::Null);
                        format!("authorizer:{}", crate::token::canonical_digest(&said))
                    });
                Ok(Some(Principal(principal)))
            }
        }
    }
}

/// How long a failed check waits before it may fetch the secret again.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(60);

/// The signature check, holding the secret's current and previous versions.
pub struct SignatureCheck {
    settings: SignatureSettings,
    /// The HMAC keys the secret's versions stand for under the scheme (`Scheme::key`).
    secrets: RwLock<Vec<Vec<u8>>>,
    last_fetch: Mutex<Option<Instant>>,
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
        SignatureCheck::with_secrets(settings, vec![secret])
    }

    /// Any of `secrets` signs valid requests (current first, then previous).
    /// A version that is no key under the scheme (a Standard Webhooks secret that is not
    /// `whsec_<base64>`) verifies nothing.
    pub fn with_secrets(settings: SignatureSettings, secrets: Vec<Vec<u8>>) -> SignatureCheck {
        let keys = keys_of(settings.scheme, secrets);
        SignatureCheck {
            settings,
            secrets: RwLock::new(keys),
            last_fetch: Mutex::new(None),
        }
    }

    /// Fetches the secret (AWSCURRENT, and AWSPREVIOUS when there is one), at cold start.
    pub async fn fetch(
        settings: SignatureSettings,
        client: &aws_sdk_secretsmanager::Client,
    ) -> Result<SignatureCheck, ConfigError> {
        let secrets = fetch_versions(&settings.secret_id, client).await?;
        if settings.scheme.key(&secrets[0]).is_none() {
            // Never the secret itself in the message: only what it should look like.
            return Err(ConfigError::Env {
                name: "WEBHOOK_SECRET_ID",
                message: format!(
                    "secret {} is not a `{}` signing secret (Standard Webhooks and Svix: `whsec_` and base64, as the dashboard shows it)",
                    settings.secret_id,
                    settings.scheme.as_str()
                ),
            });
        }
        // The interval counts from the last fetch a failure asked for: the first failure after
        // cold start may fetch at once (a rotation can happen seconds after a cold start).
        Ok(SignatureCheck::with_secrets(settings, secrets))
    }

    /// After a failed check: fetches the secret again unless that was done less than
    /// `REFRESH_INTERVAL` ago. Returns whether the keys were refreshed (so the request is worth
    /// checking again). A failed fetch keeps the keys held.
    pub async fn refresh(&self, client: &aws_sdk_secretsmanager::Client) -> bool {
        {
            let mut last = self.last_fetch.lock().expect("not poisoned");
            if last.is_some_and(|t| t.elapsed() < REFRESH_INTERVAL) {
                return false;
            }
            *last = Some(Instant::now());
        }
        match fetch_versions(&self.settings.secret_id, client).await {
            Ok(secrets) => {
                *self.secrets.write().expect("not poisoned") =
                    keys_of(self.settings.scheme, secrets);
                tracing::info!("webhook secret fetched again after a failed signature check");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "webhook secret could not be fetched again");
                false
            }
        }
    }

    /// Accepts the request only if its signature is the HMAC of its raw body under one of the
    /// secret's versions.
    pub fn verify(
        &self,
        headers: &BTreeMap<String, String>,
        body: impl AsRef<[u8]>,
        now: SystemTime,
    ) -> Result<(), BridgeError> {
        let body = body.as_ref();
        let invalid = || BridgeError::Unauthorized;
        if self.settings.scheme.is_preset() {
            let presented = self
                .settings
                .scheme
                .presented(headers, now, self.settings.tolerance)
                .ok_or_else(invalid)?;
            let keys = self.secrets.read().expect("not poisoned");
            return presented
                .signed_by(&keys, body)
                .then_some(())
                .ok_or_else(invalid);
        }
        let given = headers.get(&self.settings.header).ok_or_else(invalid)?;
        let hex_digest = given
            .trim()
            .strip_prefix(self.settings.prefix.as_str())
            .ok_or_else(invalid)?;
        let digest = hex::decode(hex_digest).map_err(|_| invalid())?;
        let timestamp = match &self.settings.timestamp_header {
            None => None,
            Some(ts_header) => {
                let ts = headers.get(ts_header).ok_or_else(invalid)?.trim();
                let secs: u64 = ts.parse().map_err(|_| invalid())?;
                let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
                if now.abs_diff(secs) > self.settings.tolerance.as_secs() {
                    return Err(invalid());
                }
                Some(ts)
            }
        };
        let secrets = self.secrets.read().expect("not poisoned");
        let valid = secrets.iter().any(|secret| {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
            if let Some(ts) = timestamp {
                mac.update(ts.as_bytes());
                mac.update(b".");
            }
            mac.update(body);
            // verify_slice compares in constant time.
            mac.verify_slice(&digest).is_ok()
        });
        valid.then_some(()).ok_or_else(invalid)
    }
}

impl SignatureCheck {
    pub fn scheme(&self) -> Scheme {
        self.settings.scheme
    }

    /// A signed delivery's identity (namespace, value): see `Scheme::identity`. Under
    /// `hmac-sha256`, the signed body (without its timestamp), as always.
    pub fn identity(
        &self,
        headers: &BTreeMap<String, String>,
        text: &str,
        body: &Value,
    ) -> (&'static str, String) {
        self.settings.scheme.identity(headers, text, body)
    }
}

fn keys_of(scheme: Scheme, secrets: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    if !scheme.is_preset() {
        return secrets;
    }
    secrets.iter().filter_map(|s| scheme.key(s)).collect()
}

/// The current and previous versions of a secret (the previous one only when it differs):
/// keys are accepted under both through a rotation. `variable` names where the id came from.
pub(crate) async fn fetch_versions_of(
    variable: &'static str,
    secret_id: &str,
    client: &aws_sdk_secretsmanager::Client,
) -> Result<Vec<Vec<u8>>, ConfigError> {
    let read = |stage: &'static str| {
        client
            .get_secret_value()
            .secret_id(secret_id)
            .version_stage(stage)
            .send()
    };
    let current = read("AWSCURRENT").await.map_err(|e| ConfigError::Env {
        name: variable,
        message: format!(
            "cannot read secret {secret_id}: {}",
            crate::error::Op::GetSecretValue.error(e)
        ),
    })?;
    let bytes =
        |out: &aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput| match (
            out.secret_string(),
            out.secret_binary(),
        ) {
            (Some(s), _) => s.as_bytes().to_vec(),
            (None, Some(b)) => b.as_ref().to_vec(),
            (None, None) => Vec::new(),
        };
    let mut secrets = vec![bytes(&current)];
    if secrets[0].is_empty() {
        return Err(ConfigError::Env {
            name: variable,
            message: format!("secret {secret_id} is empty"),
        });
    }
    // A secret never rotated has no AWSPREVIOUS; that is not an error.
    if let Ok(previous) = read("AWSPREVIOUS").await {
        let previous = bytes(&previous);
        if !previous.is_empty() && previous != secrets[0] {
            secrets.push(previous);
        }
    }
    Ok(secrets)
}

async fn fetch_versions(
    secret_id: &str,
    client: &aws_sdk_secretsmanager::Client,
) -> Result<Vec<Vec<u8>>, ConfigError> {
    fetch_versions_of("WEBHOOK_SECRET_ID", secret_id, client).await
}

/// The header value a sender computes (for tests and for users' own senders).
pub fn sign(secret: &[u8], timestamp: Option<&str>, body: impl AsRef<[u8]>) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    if let Some(ts) = timestamp {
        mac.update(ts.as_bytes());
        mac.update(b".");
    }
    mac.update(body.as_ref());
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
            scheme: Scheme::HmacSha256,
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
    fn the_previous_version_of_a_rotated_secret_still_passes() {
        let check =
            SignatureCheck::with_secrets(settings(false), vec![b"new".to_vec(), b"old".to_vec()]);
        for key in [&b"new"[..], b"old"] {
            let h = headers(&[(DEFAULT_HEADER, format!("sha256={}", sign(key, None, "b")))]);
            assert!(check.verify(&h, "b", at(NOW)).is_ok());
        }
        let h = headers(&[(
            DEFAULT_HEADER,
            format!("sha256={}", sign(b"other", None, "b")),
        )]);
        assert!(check.verify(&h, "b", at(NOW)).is_err());
    }

    fn setting(vars: &[(&str, &str)]) -> Result<WebhookAuthSetting, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        WebhookAuthSetting::from_vars(&|k| crate::config::Vars::new(&lookup).get(k))
    }

    #[test]
    fn webhook_auth_is_explicit_and_signature_needs_a_secret() {
        assert_eq!(setting(&[]).unwrap(), WebhookAuthSetting::Refuse);
        assert_eq!(
            setting(&[("WEBHOOK_AUTH", "none")]).unwrap(),
            WebhookAuthSetting::None
        );
        assert_eq!(
            setting(&[("WEBHOOK_AUTH", "IAM")]).unwrap(),
            WebhookAuthSetting::Iam
        );
        let err = setting(&[("WEBHOOK_AUTH", "signature")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("WEBHOOK_SECRET_ID"), "{err}");
        let err = setting(&[("WEBHOOK_SECRET_ID", "s")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("WEBHOOK_AUTH"), "{err}");
        let err = setting(&[("WEBHOOK_AUTH", "open")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("WEBHOOK_AUTH"), "{err}");
        assert!(matches!(
            setting(&[("WEBHOOK_AUTH", "signature"), ("WEBHOOK_SECRET_ID", "s")]).unwrap(),
            WebhookAuthSetting::Signature(_)
        ));
    }

    #[test]
    fn a_preset_fixes_its_headers_and_an_unknown_or_conflicting_scheme_stops_the_cold_start() {
        let base = [("WEBHOOK_AUTH", "signature"), ("WEBHOOK_SECRET_ID", "s")];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut vars = base.to_vec();
            vars.extend_from_slice(extra);
            setting(&vars)
        };
        let WebhookAuthSetting::Signature(s) = with(&[]).unwrap() else {
            panic!("signature")
        };
        assert_eq!(s.scheme, Scheme::HmacSha256);
        assert_eq!(
            (s.header.as_str(), s.prefix.as_str()),
            (DEFAULT_HEADER, DEFAULT_PREFIX)
        );
        let WebhookAuthSetting::Signature(s) =
            with(&[("WEBHOOK_SIGNATURE_SCHEME", "Stripe")]).unwrap()
        else {
            panic!("signature")
        };
        assert_eq!(s.scheme, Scheme::Stripe);
        assert_eq!(s.header, "stripe-signature");
        assert_eq!(s.tolerance, Duration::from_secs(300));
        let WebhookAuthSetting::Signature(s) = with(&[
            ("WEBHOOK_SIGNATURE_SCHEME", "slack"),
            ("WEBHOOK_TOLERANCE_SECONDS", "60"),
        ])
        .unwrap() else {
            panic!("signature")
        };
        assert_eq!(s.tolerance, Duration::from_secs(60));
        let err = with(&[("WEBHOOK_SIGNATURE_SCHEME", "stripe-v2")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("WEBHOOK_SIGNATURE_SCHEME") && err.contains("standard-webhooks"),
            "{err}"
        );
        let err = with(&[
            ("WEBHOOK_SIGNATURE_SCHEME", "github"),
            ("WEBHOOK_SIGNATURE_HEADER", "X-Hub-Signature-256"),
            ("WEBHOOK_TOLERANCE_SECONDS", "60"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("WEBHOOK_SIGNATURE_HEADER"), "{err}");
        assert!(err.contains("WEBHOOK_TOLERANCE_SECONDS"), "{err}");
        let err = with(&[
            ("WEBHOOK_SIGNATURE_SCHEME", "svix"),
            ("WEBHOOK_TIMESTAMP_HEADER", "svix-timestamp"),
            ("WEBHOOK_SIGNATURE_PREFIX", "v1,"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("WEBHOOK_TIMESTAMP_HEADER") && err.contains("WEBHOOK_SIGNATURE_PREFIX"),
            "{err}"
        );
        let err = setting(&[
            ("WEBHOOK_AUTH", "iam"),
            ("WEBHOOK_SIGNATURE_SCHEME", "slack"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("WEBHOOK_SIGNATURE_SCHEME"), "{err}");
    }

    #[test]
    fn a_preset_check_decodes_its_secret_and_tries_every_version() {
        let settings = |scheme: Scheme| SignatureSettings {
            secret_id: "s".into(),
            header: String::new(),
            prefix: String::new(),
            timestamp_header: None,
            tolerance: DEFAULT_TOLERANCE,
            scheme,
        };
        let secret = b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_vec();
        let check = SignatureCheck::with_secrets(
            settings(Scheme::StandardWebhooks),
            vec![b"whsec_not*base64".to_vec(), secret.clone()],
        );
        let ts = NOW.to_string();
        let sig =
            crate::senders::sign(Scheme::StandardWebhooks, &secret, "m1", &ts, b"{}").unwrap();
        let h = headers(&[
            ("webhook-id", "m1".into()),
            ("webhook-timestamp", ts.clone()),
            ("webhook-signature", sig),
        ]);
        assert!(check.verify(&h, "{}", at(NOW)).is_ok());
        assert!(check.verify(&h, "{ }", at(NOW)).is_err());
        assert!(check.verify(&h, "{}", at(NOW + 301)).is_err());
        // The hmac-sha256 check never reads a preset's headers.
        let plain = SignatureCheck::new(settings(Scheme::HmacSha256), secret);
        assert!(plain.verify(&h, "{}", at(NOW)).is_err());
    }

    #[test]
    fn iam_and_authorizer_modes_read_the_request_context() {
        let h = BTreeMap::new();
        let req = |ctx: &'static str| -> Value { serde_json::from_str(ctx).unwrap() };
        let check = |auth: &WebhookAuth, ctx: &Value| {
            auth.check(
                &WebhookRequest {
                    headers: &h,
                    body: b"",
                    request_context: Some(ctx),
                },
                at(NOW),
            )
        };
        let rest_iam =
            req(r#"{"identity": {"userArn": "arn:aws:iam::1:user/a", "accessKey": "AKID"}}"#);
        let http_iam = req(
            r#"{"authorizer": {"iam": {"accessKey": "AKID", "userArn": "arn:aws:iam::1:role/r"}}}"#,
        );
        let rest_lambda = req(r#"{"authorizer": {"principalId": "user-1"}}"#);
        let http_jwt = req(r#"{"authorizer": {"jwt": {"claims": {"sub": "x"}, "scopes": null}}}"#);
        let anonymous = req(r#"{"identity": {"sourceIp": "1.2.3.4", "userArn": null}}"#);
        let principal = |auth: &WebhookAuth, ctx: &Value| check(auth, ctx).unwrap().unwrap().0;
        assert_eq!(
            principal(&WebhookAuth::Iam, &rest_iam),
            "arn:aws:iam::1:user/a"
        );
        assert_eq!(
            principal(&WebhookAuth::Iam, &http_iam),
            "arn:aws:iam::1:role/r"
        );
        assert_eq!(principal(&WebhookAuth::Authorizer, &rest_lambda), "user-1");
        assert_eq!(principal(&WebhookAuth::Authorizer, &http_jwt), "x");
        let http_lambda = req(r#"{"authorizer": {"lambda": {"tenant": "t-1"}}}"#);
        let other_lambda = req(r#"{"authorizer": {"lambda": {"tenant": "t-2"}}}"#);
        assert_ne!(
            principal(&WebhookAuth::Authorizer, &http_lambda),
            principal(&WebhookAuth::Authorizer, &other_lambda)
        );
        for ctx in [&rest_lambda, &http_jwt] {
            assert!(check(&WebhookAuth::Authorizer, ctx).is_ok());
            assert!(matches!(
                check(&WebhookAuth::Iam, ctx),
                Err(BridgeError::Forbidden)
            ));
        }
        for auth in [
            WebhookAuth::Iam,
            WebhookAuth::Authorizer,
            WebhookAuth::Refuse,
        ] {
            assert!(matches!(
                check(&auth, &anonymous),
                Err(BridgeError::Forbidden)
            ));
        }
        assert!(check(&WebhookAuth::None, &anonymous).is_ok());
    }

    #[test]
    fn settings_come_from_the_environment_and_the_secret_never_prints() {
        let env = |k: &str| match k {
            "WEBHOOK_SECRET_ID" => Some("arn:aws:secretsmanager:eu-west-1:1:secret:hook".into()),
            "WEBHOOK_SIGNATURE_HEADER" => Some("X-Hub-Signature-256".into()),
            _ => None,
        };
        let s = SignatureSettings::from_vars(&|k| crate::config::Vars::new(&env).get(k))
            .unwrap()
            .unwrap();
        assert_eq!(s.header, "x-hub-signature-256");
        assert_eq!(s.prefix, "sha256=");
        assert!(SignatureSettings::from_vars(&|_: &str| None)
            .unwrap()
            .is_none());
        let check = SignatureCheck::new(s, b"very-secret-value".to_vec());
        assert!(!format!("{check:?}").contains("very-secret-value"));
    }
}
