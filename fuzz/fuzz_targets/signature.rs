//! The webhook signature check over arbitrary headers and bodies: it must refuse, never panic.
#![no_main]
use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use connect_task_bridge::webhook_auth::{sign, SignatureCheck, SignatureSettings};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // signature header \0 timestamp header \0 body
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(3, '\0');
    let (sig, ts, body) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let settings = SignatureSettings {
        secret_id: "fuzz".into(),
        header: "x-signature-256".into(),
        prefix: "sha256=".into(),
        timestamp_header: (!ts.is_empty()).then(|| "x-signature-timestamp".into()),
        tolerance: Duration::from_secs(300),
    };
    let check = SignatureCheck::new(settings, b"fuzz-secret".to_vec());
    let mut headers = BTreeMap::new();
    headers.insert("x-signature-256".to_string(), sig.to_string());
    headers.insert("x-signature-timestamp".to_string(), ts.to_string());
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let accepted = check.verify(&headers, body, now).is_ok();
    // Only the right HMAC may pass.
    if accepted {
        let expected = sign(b"fuzz-secret", (!ts.is_empty()).then_some(ts.trim()), body);
        assert_eq!(sig.trim().strip_prefix("sha256="), Some(expected.as_str()));
    }
});
