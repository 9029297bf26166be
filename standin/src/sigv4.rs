//! SigV4 verification: re-sign what the request says it signed with the credentials the stand-in
//! was started with, using aws-sigv4 (the SDK's own signer), and compare. Errors carry the codes
//! and statuses AWS gives for unsigned, wrongly signed and stale requests.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use axum::http::HeaderMap;

/// How far a request's X-Amz-Date may be from the stand-in's clock, as AWS allows.
pub const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone)]
pub struct Signer {
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    pub service: String,
}

#[derive(Debug, PartialEq)]
pub struct AuthError {
    pub code: &'static str,
    pub status: u16,
    pub message: String,
}

fn deny(code: &'static str, message: impl Into<String>) -> AuthError {
    AuthError {
        code,
        status: 403,
        message: message.into(),
    }
}

impl Signer {
    pub fn verify(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), AuthError> {
        let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
            return Err(deny(
                "MissingAuthenticationTokenException",
                "Missing Authentication Token",
            ));
        };
        let parsed = parse_authorization(auth).ok_or_else(|| {
            deny(
                "IncompleteSignatureException",
                "Authorization header is malformed",
            )
        })?;
        let scope: Vec<&str> = parsed.credential.split('/').collect();
        let [key, date, region, service, "aws4_request"] = scope[..] else {
            return Err(deny(
                "IncompleteSignatureException",
                "Credential scope is malformed",
            ));
        };
        if key != self.access_key {
            return Err(deny(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            ));
        }
        if region != self.region || service != self.service {
            return Err(deny(
                "InvalidSignatureException",
                format!(
                    "Credential should be scoped to a valid region and service ('{}', '{}'), not ('{region}', '{service}')",
                    self.region, self.service
                ),
            ));
        }
        let amz_date = headers
            .get("x-amz-date")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| deny("IncompleteSignatureException", "X-Amz-Date is missing"))?;
        let signed_at = parse_amz_date(amz_date)
            .filter(|_| amz_date.starts_with(date))
            .ok_or_else(|| deny("IncompleteSignatureException", "X-Amz-Date is malformed"))?;
        let skew = now
            .duration_since(signed_at)
            .or_else(|_| signed_at.duration_since(now))
            .unwrap_or_default();
        if skew > MAX_SKEW {
            return Err(deny(
                "InvalidSignatureException",
                "Signature expired: the request time is too far from the server time",
            ));
        }

        let mut signed = Vec::new();
        for name in parsed.signed_headers.split(';') {
            let values: Vec<&str> = headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            if values.is_empty() {
                return Err(deny(
                    "InvalidSignatureException",
                    format!("Signed header {name} is missing"),
                ));
            }
            for v in values {
                signed.push((name, v));
            }
        }
        let host = headers
            .get("host")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("localhost");
        let uri = format!("http://{host}{path_and_query}");
        let identity =
            Credentials::new(&self.access_key, &self.secret_key, None, None, "standin").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(&self.service)
            .time(signed_at)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| deny("InvalidSignatureException", e.to_string()))?
            .into();
        let request =
            SignableRequest::new(method, uri, signed.into_iter(), SignableBody::Bytes(body))
                .map_err(|e| deny("InvalidSignatureException", e.to_string()))?;
        let (_, expected) = sign(request, &params)
            .map_err(|e| deny("InvalidSignatureException", e.to_string()))?
            .into_parts();
        if !constant_time_eq(expected.as_bytes(), parsed.signature.as_bytes()) {
            return Err(deny(
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
            ));
        }
        Ok(())
    }
}

struct Authorization<'a> {
    credential: &'a str,
    signed_headers: &'a str,
    signature: &'a str,
}

fn parse_authorization(header: &str) -> Option<Authorization<'_>> {
    let rest = header.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed_headers = Some(v),
            "Signature" => signature = Some(v),
            _ => {}
        }
    }
    Some(Authorization {
        credential: credential?,
        signed_headers: signed_headers?,
        signature: signature?,
    })
}

/// `20261124T101112Z` → the instant.
pub fn parse_amz_date(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_dates_parse() {
        let t = parse_amz_date("20261124T101112Z").unwrap();
        assert_eq!(
            t.duration_since(UNIX_EPOCH).unwrap().as_secs(),
            1_795_515_072
        );
        assert!(parse_amz_date("2026-11-24T10:11:12Z").is_none());
        assert!(parse_amz_date("20261324T101112Z").is_none());
    }

    #[test]
    fn unsigned_and_foreign_requests_are_refused() {
        let signer = Signer {
            access_key: "AKIDLOCAL".into(),
            secret_key: "secret".into(),
            region: "eu-west-1".into(),
            service: "connect".into(),
        };
        let headers = HeaderMap::new();
        let err = signer
            .verify("PUT", "/contact/task", &headers, b"{}", SystemTime::now())
            .unwrap_err();
        assert_eq!(err.code, "MissingAuthenticationTokenException");

        let mut headers = HeaderMap::new();
        headers.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=OTHER/20261124/eu-west-1/connect/aws4_request, SignedHeaders=host;x-amz-date, Signature=00"
                .parse()
                .unwrap(),
        );
        let err = signer
            .verify("PUT", "/contact/task", &headers, b"{}", SystemTime::now())
            .unwrap_err();
        assert_eq!(err.code, "UnrecognizedClientException");
    }
}
