use super::*;
use serde_json::json;

const NOW: u64 = 1_800_000_000;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn headers(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect()
}

fn valid(scheme: Scheme, secret: &str, h: &BTreeMap<String, String>, body: &str, now: u64) -> bool {
    let key = scheme.key(secret.as_bytes()).expect("a key");
    scheme
        .presented(h, at(now), PRESET_TOLERANCE)
        .is_some_and(|p| p.signed_by(&[key], body.as_bytes()))
}

#[test]
fn every_scheme_has_its_name_and_presets_their_header() {
    for scheme in Scheme::ALL {
        assert_eq!(Scheme::parse(scheme.as_str()), Some(scheme));
        assert_eq!(scheme.is_preset(), scheme.signature_header().is_some());
    }
    assert_eq!(Scheme::parse(" Stripe "), Some(Scheme::Stripe));
    assert_eq!(Scheme::parse("stripe-v2"), None);
}

/// Zendesk's webhooks page (developer.zendesk.com/documentation/webhooks/verifying/) signs
/// `base64(HMACSHA256(TIMESTAMP + BODY))`, the timestamp as sent (RFC 3339). The expected value
/// was computed independently (Python's `hmac`) over the inputs of Zendesk's event-connectors
/// example, whose own signature is over BODY + TIMESTAMP (that page says so): refused here.
#[test]
fn zendesk_signs_timestamp_then_body() {
    let secret = "HRkRd4BeOAoUkfZr-mhauJT64rvBASlJRoIyPsd3zeA=";
    let body = r#"{"say": "hello"}"#;
    let ts = "2021-07-25T10:00:00Z";
    let expected = "Rry/4TtIdFyawtXXp8QdI6tlAUUQ/5kL1OTp5qo/ZIk=";
    assert_eq!(
        sign(Scheme::Zendesk, secret.as_bytes(), "", ts, body.as_bytes()).unwrap(),
        expected
    );
    let h = headers(&[
        ("X-Zendesk-Webhook-Signature", expected),
        ("X-Zendesk-Webhook-Signature-Timestamp", ts),
    ]);
    let then = chrono::DateTime::parse_from_rfc3339(ts)
        .unwrap()
        .timestamp() as u64;
    assert!(valid(Scheme::Zendesk, secret, &h, body, then + 10));
    assert!(
        !valid(Scheme::Zendesk, secret, &h, body, then + 301),
        "stale"
    );
    assert!(
        !valid(Scheme::Zendesk, secret, &h, body, then - 301),
        "future"
    );
    assert!(!valid(
        Scheme::Zendesk,
        secret,
        &h,
        r#"{"say": "hellO"}"#,
        then
    ));
    let body_first = headers(&[
        (
            "X-Zendesk-Webhook-Signature",
            "tRDSF7URY8BLCDlaBcQ7FHu051Zk+aAB0NKMP53teMw=",
        ),
        ("X-Zendesk-Webhook-Signature-Timestamp", ts),
    ]);
    assert!(!valid(Scheme::Zendesk, secret, &body_first, body, then));
}

#[test]
fn stripe_accepts_every_v1_of_a_rotation_and_checks_the_timestamp() {
    let secret = "whsec_test_secret";
    let body = r#"{"id":"evt_1","object":"event"}"#;
    let ts = NOW.to_string();
    let good = sign(Scheme::Stripe, secret.as_bytes(), "", &ts, body.as_bytes()).unwrap();
    let good_sig = good.split_once(",v1=").unwrap().1.to_string();
    let old = sign(Scheme::Stripe, b"whsec_old", "", &ts, body.as_bytes()).unwrap();
    let old_sig = old.split_once(",v1=").unwrap().1;
    // The new secret's signature second, a v0 ignored.
    let rotated = format!("t={ts},v1={old_sig},v1={good_sig},v0=00");
    assert!(valid(
        Scheme::Stripe,
        secret,
        &headers(&[("Stripe-Signature", &rotated)]),
        body,
        NOW
    ));
    assert!(valid(
        Scheme::Stripe,
        secret,
        &headers(&[("Stripe-Signature", &good)]),
        body,
        NOW + 300
    ));
    for bad in [
        format!("t={ts},v1={old_sig}"),
        format!("v1={good_sig}"),
        format!("t={ts},t={ts},v1={good_sig}"),
        format!("t=+{ts},v1={good_sig}"),
        format!("t={ts},v0={good_sig}"),
        "garbage".to_string(),
    ] {
        assert!(
            !valid(
                Scheme::Stripe,
                secret,
                &headers(&[("Stripe-Signature", &bad)]),
                body,
                NOW
            ),
            "{bad}"
        );
    }
    let h = headers(&[("Stripe-Signature", &good)]);
    assert!(!valid(Scheme::Stripe, secret, &h, body, NOW + 301), "stale");
    assert!(
        !valid(Scheme::Stripe, secret, &h, body, NOW - 301),
        "future"
    );
}

#[test]
fn standard_webhooks_decodes_its_secret_and_reads_either_spelling_for_svix() {
    // The Standard Webhooks specification's example secret.
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let body = r#"{"type":"user.created"}"#;
    let ts = NOW.to_string();
    let sig = sign(
        Scheme::StandardWebhooks,
        secret.as_bytes(),
        "msg_1",
        &ts,
        body.as_bytes(),
    )
    .unwrap();
    let h = headers(&[
        ("webhook-id", "msg_1"),
        ("webhook-timestamp", &ts),
        ("webhook-signature", &format!("v1,AAAA {sig} v1a,zzz")),
    ]);
    assert!(valid(Scheme::StandardWebhooks, secret, &h, body, NOW));
    // The id is signed: another id, no match.
    let mut other = h.clone();
    other.insert("webhook-id".into(), "msg_2".into());
    assert!(!valid(Scheme::StandardWebhooks, secret, &other, body, NOW));
    assert!(!valid(
        Scheme::StandardWebhooks,
        secret,
        &h,
        body,
        NOW + 301
    ));
    // Svix: its own spelling, or the webhook- one.
    assert!(valid(Scheme::Svix, secret, &h, body, NOW));
    let svix = headers(&[
        ("svix-id", "msg_1"),
        ("svix-timestamp", &ts),
        ("svix-signature", &sig),
    ]);
    assert!(valid(Scheme::Svix, secret, &svix, body, NOW));
    assert!(!valid(Scheme::StandardWebhooks, secret, &svix, body, NOW));
    // A secret that is not base64 is no key.
    assert_eq!(Scheme::StandardWebhooks.key(b"whsec_***"), None);
    assert_eq!(Scheme::Svix.key(b"  \n"), None);
    // Pasted with a newline: the same key.
    assert_eq!(
        Scheme::Svix.key(format!("{secret}\n").as_bytes()),
        Scheme::Svix.key(secret.as_bytes())
    );
}

/// The reference vector of the Standard Webhooks specification's libraries (and Svix's
/// "verifying manually" page): secret, id, timestamp, body and the signature they publish.
#[test]
fn the_standard_webhooks_reference_vector_verifies() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let body = r#"{"test": 2432232314}"#;
    let published = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    for (scheme, prefix) in [
        (Scheme::StandardWebhooks, "webhook"),
        (Scheme::Svix, "svix"),
    ] {
        let h = headers(&[
            (&format!("{prefix}-id"), "msg_p5jXN8AQM9LWM0D4loKWxJek"),
            (&format!("{prefix}-timestamp"), "1614265330"),
            (&format!("{prefix}-signature"), published),
        ]);
        assert!(valid(scheme, secret, &h, body, 1_614_265_330), "{scheme:?}");
        assert!(
            !valid(scheme, secret, &h, body, 1_614_265_330 + 301),
            "{scheme:?}"
        );
        let sig = sign(
            scheme,
            secret.as_bytes(),
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            body.as_bytes(),
        );
        assert_eq!(sig.as_deref(), Some(published));
    }
    // Unpadded base64, as the libraries accept it: the same key.
    let unpadded = "whsec_dGVzdC1rZXk";
    assert_eq!(
        Scheme::StandardWebhooks.key(unpadded.as_bytes()),
        Some(b"test-key".to_vec())
    );
}

#[test]
fn slack_signs_version_timestamp_and_body() {
    let secret = "8f742231b10e8888abcd99yyyzzz85a5";
    let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J";
    let ts = NOW.to_string();
    let sig = sign(Scheme::Slack, secret.as_bytes(), "", &ts, body.as_bytes()).unwrap();
    let h = headers(&[
        ("X-Slack-Signature", &sig),
        ("X-Slack-Request-Timestamp", &ts),
    ]);
    assert!(valid(Scheme::Slack, secret, &h, body, NOW));
    assert!(!valid(Scheme::Slack, secret, &h, body, NOW + 301));
    assert!(!valid(Scheme::Slack, "other", &h, body, NOW));
    assert!(!valid(
        Scheme::Slack,
        secret,
        &headers(&[("X-Slack-Signature", &sig)]),
        body,
        NOW
    ));
}

#[test]
fn github_shopify_and_pagerduty_sign_the_body_alone() {
    let body = r#"{"event":{"id":"01DEN"}}"#;
    for (scheme, header) in [
        (Scheme::Github, "X-Hub-Signature-256"),
        (Scheme::Shopify, "X-Shopify-Hmac-Sha256"),
        (Scheme::PagerDuty, "X-PagerDuty-Signature"),
    ] {
        let sig = sign(scheme, b"s3cret", "", "", body.as_bytes()).unwrap();
        assert!(
            valid(scheme, "s3cret", &headers(&[(header, &sig)]), body, NOW),
            "{scheme:?}"
        );
        assert!(
            !valid(scheme, "s3cret", &headers(&[(header, &sig)]), "{}", NOW),
            "{scheme:?}"
        );
        assert!(
            !valid(scheme, "other", &headers(&[(header, &sig)]), body, NOW),
            "{scheme:?}"
        );
        assert!(
            !valid(scheme, "s3cret", &headers(&[]), body, NOW),
            "{scheme:?}"
        );
    }
    let one = sign(Scheme::PagerDuty, b"new", "", "", body.as_bytes()).unwrap();
    let two = sign(Scheme::PagerDuty, b"old", "", "", body.as_bytes()).unwrap();
    let both = headers(&[("X-PagerDuty-Signature", &format!("{two}, {one}"))]);
    assert!(valid(Scheme::PagerDuty, "new", &both, body, NOW));
    assert!(valid(Scheme::PagerDuty, "old", &both, body, NOW));
}

#[test]
fn identity_is_the_senders_signed_id_else_the_signed_body() {
    let h = headers(&[("webhook-id", "msg_1"), ("svix-id", "msg_2")]);
    let none = BTreeMap::new();
    let text = "{}";
    let id =
        |scheme: Scheme, h: &BTreeMap<String, String>, body: Value| scheme.identity(h, text, &body);
    let body_digest = ("webhook-signed-body", digest_parts(&[text.as_bytes()]));
    assert_eq!(
        id(Scheme::Stripe, &none, json!({"id": "evt_1"})),
        ("stripe-event", "evt_1".to_string())
    );
    assert_eq!(
        id(Scheme::Slack, &none, json!({"event_id": "Ev1"})),
        ("slack-event", "Ev1".to_string())
    );
    assert_eq!(
        id(Scheme::PagerDuty, &none, json!({"event": {"id": "01D"}})),
        ("pagerduty-event", "01D".to_string())
    );
    // Standard Webhooks needs all three of its headers to read the id.
    let full = headers(&[
        ("webhook-id", "msg_1"),
        ("webhook-timestamp", "1"),
        ("webhook-signature", "v1,x"),
    ]);
    assert_eq!(
        id(Scheme::StandardWebhooks, &full, json!({})),
        ("standard-webhooks-message", "msg_1".to_string())
    );
    assert_eq!(
        id(Scheme::Svix, &full, json!({})),
        ("svix-message", "msg_1".to_string())
    );
    // Without the id: the signed body. Unsigned delivery ids never count.
    for (scheme, body) in [
        (Scheme::Stripe, json!({"id": 7})),
        (Scheme::Slack, json!({"type": "block_actions"})),
        (Scheme::PagerDuty, json!({"event": {}})),
        (Scheme::Github, json!({"id": "x"})),
        (Scheme::Shopify, json!({"id": "x"})),
        (Scheme::Zendesk, json!({"id": "x"})),
        (Scheme::HmacSha256, json!({"id": "x"})),
    ] {
        assert_eq!(id(scheme, &h, body), body_digest, "{scheme:?}");
    }
}

#[test]
fn slack_challenge_is_read_only_from_url_verification() {
    assert_eq!(
        slack_challenge(&json!({"type": "url_verification", "challenge": "c-1"})),
        Some("c-1")
    );
    assert_eq!(
        slack_challenge(&json!({"type": "event_callback", "challenge": "c"})),
        None
    );
    assert_eq!(slack_challenge(&json!({"type": "url_verification"})), None);
}
