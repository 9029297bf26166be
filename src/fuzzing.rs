//! What the fuzz targets (`fuzz/`, `make fuzz`) run on their input, here so that the corpus
//! test (`tests/fuzz_corpus.rs`, part of `make test`) replays every kept input through exactly
//! the same code on stable Rust. Only inputs are generated; configuration is fixed.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, UNIX_EPOCH};

use aws_smithy_types::DateTime;

use crate::config::Config;
use crate::prepare::prepare_payload;
use crate::senders::Scheme;
use crate::task::ScheduledTime;
use crate::webhook_auth::{sign, SignatureCheck, SignatureSettings};

/// A fixed "now" so a run is repeatable.
const NOW: i64 = 1_800_000_000;
const SECRET: &[u8] = b"fuzz-secret";
/// The presets' secret: `fuzz-secret` as Standard Webhooks writes it (the others use the text).
const PRESET_SECRET: &[u8] = b"whsec_ZnV6ei1zZWNyZXQ=";

fn config(mapping: Option<&'static str>) -> Config {
    Config::from_lookup(|name| match name {
        "CONNECT_INSTANCE_ID" => Some("11111111-2222-3333-4444-555555555555".into()),
        "CONNECT_CONTACT_FLOW_ID" => Some("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee".into()),
        "TASK_MAPPING" => mapping.map(str::to_string),
        _ => None,
    })
    .expect("the fuzz configuration is valid")
}

/// The example mapping and the built-in default, built once.
pub fn payload_configs() -> &'static [Config; 2] {
    static CONFIGS: OnceLock<[Config; 2]> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        [
            config(Some(include_str!("../examples/mapping.yaml"))),
            config(None),
        ]
    })
}

/// Raw payload bytes through every configuration. Any outcome but a panic is fine.
pub fn run_payload(configs: &[Config], data: &[u8]) {
    let Ok(payload) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    for config in configs {
        let _ = prepare_payload(payload.clone(), config, DateTime::from_secs(NOW));
    }
}

pub fn run_scheduled_time(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ScheduledTime::parse(text);
        let _ = serde_json::from_str::<ScheduledTime>(text);
    }
}

/// `signature \0 timestamp \0 body`: refused unless the signature is the HMAC of the body (and
/// timestamp) under the secret; never a panic.
pub fn run_signature(data: &[u8]) {
    let mut parts = data.splitn(3, |b| *b == 0);
    let sig = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let ts = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let body = parts.next().unwrap_or_default();
    let settings = SignatureSettings {
        secret_id: "fuzz".into(),
        header: "x-signature-256".into(),
        prefix: "sha256=".into(),
        timestamp_header: (!ts.is_empty()).then(|| "x-signature-timestamp".into()),
        tolerance: Duration::from_secs(300),
        scheme: Scheme::HmacSha256,
    };
    let check = SignatureCheck::new(settings, SECRET.to_vec());
    let headers = BTreeMap::from([
        ("x-signature-256".to_string(), sig.clone()),
        ("x-signature-timestamp".to_string(), ts.clone()),
    ]);
    let now = UNIX_EPOCH + Duration::from_secs(NOW as u64);
    if check.verify(&headers, body, now).is_ok() {
        let expected = sign(SECRET, (!ts.is_empty()).then_some(ts.trim()), body);
        assert_eq!(sig.trim().strip_prefix("sha256="), Some(expected.as_str()));
    }
    let _ = run_presets(data);
}

/// The senders' presets over the same kind of input: `preset-byte signature \0 timestamp \0 id
/// \0 body`, the first byte choosing the preset, each part put in every header that preset
/// reads. Never a panic; a request one preset accepts under the secret is refused under another
/// secret; its identity is computed without a panic. Returns the preset when it accepted.
pub fn run_presets(data: &[u8]) -> Option<Scheme> {
    let (&selector, rest) = data.split_first()?;
    let presets = &Scheme::ALL[1..];
    let scheme = presets[usize::from(selector) % presets.len()];
    let mut parts = rest.splitn(4, |b| *b == 0);
    let mut text = || String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let (sig, ts, id) = (text(), text(), text());
    let body = parts.next().unwrap_or_default();
    let mut headers = BTreeMap::new();
    for name in [
        "x-hub-signature-256",
        "stripe-signature",
        "webhook-signature",
        "svix-signature",
        "x-slack-signature",
        "x-zendesk-webhook-signature",
        "x-shopify-hmac-sha256",
        "x-pagerduty-signature",
    ] {
        headers.insert(name.to_string(), sig.clone());
    }
    for name in [
        "webhook-timestamp",
        "svix-timestamp",
        "x-slack-request-timestamp",
        "x-zendesk-webhook-signature-timestamp",
    ] {
        headers.insert(name.to_string(), ts.clone());
    }
    for name in ["webhook-id", "svix-id"] {
        headers.insert(name.to_string(), id.clone());
    }
    let now = UNIX_EPOCH + Duration::from_secs(NOW as u64);
    let mut accepted = false;
    if let Some(presented) = scheme.presented(&headers, now, Duration::from_secs(300)) {
        let key = scheme
            .key(PRESET_SECRET)
            .expect("the fuzz secret is a key of every preset");
        if presented.signed_by(&[key], body) {
            let other = scheme.key(b"d3JvbmctZnV6ei1zZWNyZXQ=").expect("a key");
            assert!(
                !presented.signed_by(&[other], body),
                "{scheme:?}: another secret passed"
            );
            accepted = true;
        }
    }
    let text = String::from_utf8_lossy(body);
    let value = crate::record::parse_body(&text);
    let _ = scheme.identity(&headers, &text, &value);
    accepted.then_some(scheme)
}
