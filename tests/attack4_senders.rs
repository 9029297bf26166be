//! Attack 4: the webhook senders' presets (`WEBHOOK_SIGNATURE_SCHEME`) driven through the
//! binary, the secret in moto's Secrets Manager, signatures computed by `senders::sign` (which
//! tests/senders.rs checks against the senders' own libraries). Module `held`: attacks that
//! failed (kept as regressions). Module `defects`: each test fails on the commit it was written
//! against, and its doc comment says what is wrong.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{root, start_function, EXAMPLE_MAPPING};
use connect_standin::harness::LocalStack;
use connect_standin::moto::{moto_server, Moto};
use connect_standin::runtime_api::{Invocation, InvokeError};
use connect_task_bridge::senders::{sign, Scheme};
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(20);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn request(body: &str, headers: &Value) -> Value {
    common::http_api_request(body, headers)
}

fn status(result: Result<Invocation, InvokeError>) -> (u64, Value) {
    match result {
        Ok(Invocation::Response(v)) => (
            v["statusCode"].as_u64().unwrap_or(0),
            serde_json::from_str(v["body"].as_str().unwrap_or("null")).unwrap_or(v.clone()),
        ),
        other => panic!("expected an HTTP answer, got {other:?}"),
    }
}

async fn stack_with(scheme: &str, secret: &str, extra: &[(&str, String)]) -> (Moto, LocalStack) {
    let moto = common::moto_with_webhook_secret(secret).await;
    let stack = common::start_signed_webhooks(&moto, scheme, extra).await;
    (moto, stack)
}

const STRIPE_SECRET: &str = "whsec_8c2f3b1e5d7a4c6b9e0f1a2b3c4d5e6f";

fn stripe_body(id: &str, canary: &str) -> String {
    json!({"id": id, "object": "event", "type": "setup_intent.created", "livemode": false,
           "data": {"object": {"id": "seti_1", "object": "setup_intent", "description": canary}}})
    .to_string()
}

fn stripe_headers(body: &str, ts: u64) -> Value {
    json!({"Stripe-Signature": sign(Scheme::Stripe, STRIPE_SECRET.as_bytes(), "", &ts.to_string(), body.as_bytes()).unwrap()})
}

/// The warning line `for_sender` writes when it answers 200 "recorded".
fn recorded_lines(stack: &LocalStack) -> Vec<Value> {
    stack
        .function
        .json_logs()
        .into_iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("webhook delivery can never become a task"))
        })
        .collect()
}

mod held {
    use super::*;
    use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
    use connect_standin::surge::{esm_record, queue_arn};

    /// Hostile `Stripe-Signature` headers: uppercase hex, spaces, a `v0=` first, 2,000 bogus
    /// `v1=` beside the good one and an empty `v1=` pass; a duplicate `t=`, a `v0=` only, a
    /// millisecond, overflowing, signed, or stale/future timestamp are 401.
    #[tokio::test]
    async fn stripe_signature_header_parsing() {
        let (_moto, mut stack) = stack_with("stripe", STRIPE_SECRET, &[]).await;
        let t = now();
        type Edit = fn(&str, &str, u64) -> String;
        let cases: [(&str, Edit, u64); 12] = [
            ("plain", |h, _, _| h.into(), 201),
            (
                "uppercase hex",
                |h, _, _| {
                    let (t, v) = h.split_once(",v1=").unwrap();
                    format!("{t},v1={}", v.to_uppercase())
                },
                201,
            ),
            ("spaces", |h, _, _| h.replace(',', " , "), 201),
            ("v0 first", |h, _, _| format!("v0=abcd,{h}"), 201),
            (
                "2000 bogus v1",
                |h, _, _| format!("{h}{}", ",v1=00".repeat(2000)),
                201,
            ),
            ("empty v1", |h, _, _| format!("{h},v1="), 201),
            ("duplicate t", |h, _, _| format!("{h},t=1"), 401),
            ("v0 only", |h, _, _| h.replace("v1=", "v0="), 401),
            (
                "milliseconds",
                |_, b, t| {
                    let ms = (t * 1000).to_string();
                    sign(
                        Scheme::Stripe,
                        STRIPE_SECRET.as_bytes(),
                        "",
                        &ms,
                        b.as_bytes(),
                    )
                    .unwrap()
                },
                401,
            ),
            (
                "overflow",
                |_, b, _| {
                    let ts = "184467440737095516160";
                    sign(
                        Scheme::Stripe,
                        STRIPE_SECRET.as_bytes(),
                        "",
                        ts,
                        b.as_bytes(),
                    )
                    .unwrap()
                },
                401,
            ),
            (
                "signed sign",
                |_, b, t| {
                    let ts = format!("+{t}");
                    sign(
                        Scheme::Stripe,
                        STRIPE_SECRET.as_bytes(),
                        "",
                        &ts,
                        b.as_bytes(),
                    )
                    .unwrap()
                },
                401,
            ),
            (
                "stale",
                |_, b, t| {
                    sign(
                        Scheme::Stripe,
                        STRIPE_SECRET.as_bytes(),
                        "",
                        &(t - 301).to_string(),
                        b.as_bytes(),
                    )
                    .unwrap()
                },
                401,
            ),
        ];
        for (n, (what, edit, expected)) in cases.into_iter().enumerate() {
            let body = stripe_body(&format!("evt_parse{n}"), "x");
            let h = stripe_headers(&body, t);
            let value = edit(h["Stripe-Signature"].as_str().unwrap(), &body, t);
            let req = request(&body, &json!({ "Stripe-Signature": value }));
            let (code, answer) = status(stack.invoke(req, TIMEOUT).await);
            assert_eq!(code, expected, "{what}: {answer}");
        }
        stack.stop().await;
    }

    /// Slack's url_verification: answered only when signed and fresh; a 200 KB challenge is
    /// echoed as JSON text (no markup interpretation: the content type is JSON).
    #[tokio::test]
    async fn slack_url_verification_needs_a_fresh_signature() {
        const SLACK: &str = "8f742231b10e8888abcd99yyyzzz85a5";
        let headers = |body: &str, ts: u64| {
            let ts = ts.to_string();
            json!({"X-Slack-Request-Timestamp": ts,
                   "X-Slack-Signature": sign(Scheme::Slack, SLACK.as_bytes(), "", &ts, body.as_bytes()).unwrap()})
        };
        let (_moto, mut stack) = stack_with("slack", SLACK, &[]).await;
        let body = json!({"type": "url_verification", "challenge": "abc"}).to_string();
        let (code, answer) = status(
            stack
                .invoke(request(&body, &headers(&body, now())), TIMEOUT)
                .await,
        );
        assert_eq!((code, answer), (200, json!({"challenge": "abc"})));
        for (what, h) in [
            ("stale", headers(&body, now() - 400)),
            ("future", headers(&body, now() + 400)),
            ("unsigned", json!({})),
            ("other body", headers("{}", now())),
        ] {
            let (code, _) = status(stack.invoke(request(&body, &h), TIMEOUT).await);
            assert_eq!(code, 401, "{what}");
        }
        let big = json!({"type": "url_verification", "challenge": "C".repeat(200_000)}).to_string();
        let (code, answer) = status(
            stack
                .invoke(request(&big, &headers(&big, now())), TIMEOUT)
                .await,
        );
        assert_eq!(code, 200);
        assert_eq!(answer["challenge"].as_str().unwrap().len(), 200_000);
        assert!(stack.connect.tasks().is_empty());
        stack.stop().await;
    }

    /// Queued webhooks (with and without the envelope key): the 202's client token is the
    /// task's; a Stripe timestamp that goes stale while the message waits in the queue does not
    /// refuse it (the unsigned envelope is checked at its SentTimestamp).
    #[tokio::test]
    async fn identity_survives_the_queue_and_a_stale_wait() {
        for envelope_key in [false, true] {
            let moto = Moto::start(&moto_server(&root())).await;
            let secrets = moto.secrets_client();
            secrets
                .create_secret()
                .name(common::WEBHOOK_SECRET_NAME)
                .secret_string(STRIPE_SECRET)
                .send()
                .await
                .unwrap();
            let sqs = moto.sqs_client();
            let url = sqs
                .create_queue()
                .queue_name("tasks")
                .attributes(QueueAttributeName::VisibilityTimeout, "30")
                .send()
                .await
                .unwrap()
                .queue_url
                .unwrap();
            let mut env = vec![
                ("WEBHOOK_AUTH", "signature".to_string()),
                ("WEBHOOK_SECRET_ID", common::WEBHOOK_SECRET_NAME.to_string()),
                ("WEBHOOK_SIGNATURE_SCHEME", "stripe".to_string()),
                ("TASK_MAPPING_FILE", EXAMPLE_MAPPING.to_string()),
                ("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto.url.clone()),
                ("TASK_QUEUE_URL", url.clone()),
                ("AWS_ENDPOINT_URL_SQS", moto.url.clone()),
                ("WEBHOOK_MODE", "queued".to_string()),
            ];
            if envelope_key {
                secrets
                    .create_secret()
                    .name("envelope")
                    .secret_string("own-key")
                    .send()
                    .await
                    .unwrap();
                env.push(("ENVELOPE_SECRET_ID", "envelope".to_string()));
            }
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let mut stack = start_function(&env).await;
            let body = stripe_body("evt_queued", "x");
            let (code, answer) = status(
                stack
                    .invoke(request(&body, &stripe_headers(&body, now() - 297)), TIMEOUT)
                    .await,
            );
            assert_eq!(code, 202, "{answer}");
            tokio::time::sleep(Duration::from_secs(4)).await;
            let out = sqs
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(10)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .unwrap();
            let records: Vec<Value> = out
                .messages
                .unwrap_or_default()
                .iter()
                .map(|m| esm_record(m, &queue_arn("tasks")))
                .collect();
            assert_eq!(records.len(), 1);
            let done = common::response(stack.invoke(json!({"Records": records}), TIMEOUT).await);
            assert_eq!(done["batchItemFailures"], json!([]), "{done}");
            let tasks = stack.connect.tasks();
            assert_eq!(tasks.len(), 1);
            assert_eq!(json!(tasks[0].client_token), answer["clientToken"]);
            stack.stop().await;
        }
    }

    /// At DEBUG and TRACE, neither a 201, a 200 "recorded" (no route; broken JSON; not UTF-8)
    /// nor a 401 writes a value of the event to the log.
    #[tokio::test]
    async fn no_event_value_in_the_log_at_debug_or_trace() {
        use base64::Engine as _;
        const ONLY_GITHUB: &str = "routes:\n  - name: gh\n    when: { source: webhook, headers: { x-github-event: issues } }\n    task: { name: \"GitHub\" }\n";
        for level in ["DEBUG", "TRACE"] {
            for mapping in [None, Some(ONLY_GITHUB)] {
                let mut extra = vec![("AWS_LAMBDA_LOG_LEVEL", level.to_string())];
                if let Some(m) = mapping {
                    extra.push(("TASK_MAPPING", m.to_string()));
                    extra.push(("TASK_MAPPING_FILE", String::new()));
                }
                let (_moto, mut stack) = stack_with("stripe", STRIPE_SECRET, &extra).await;
                let canary = "CANARY-maria.lopez@example.com";
                let body = stripe_body("evt_log", canary);
                let (code, _) = status(
                    stack
                        .invoke(request(&body, &stripe_headers(&body, now())), TIMEOUT)
                        .await,
                );
                assert!(code == 201 || code == 200, "{code}");
                let broken = format!("{{\"id\": \"evt_b\", \"x\": \"{canary}\"");
                let (code, _) = status(
                    stack
                        .invoke(request(&broken, &stripe_headers(&broken, now())), TIMEOUT)
                        .await,
                );
                assert_eq!(code, 200);
                let raw: Vec<u8> =
                    [b"{\"x\":\"".as_slice(), &[0xff], canary.as_bytes(), b"\"}"].concat();
                let ts = now().to_string();
                let sig = sign(Scheme::Stripe, STRIPE_SECRET.as_bytes(), "", &ts, &raw).unwrap();
                let mut req = request("", &json!({ "Stripe-Signature": sig }));
                req["body"] = json!(base64::engine::general_purpose::STANDARD.encode(&raw));
                req["isBase64Encoded"] = json!(true);
                let (code, _) = status(stack.invoke(req, TIMEOUT).await);
                assert_eq!(code, 200);
                let (code, _) = status(
                    stack
                        .invoke(request(&body, &stripe_headers(&body, now() - 900)), TIMEOUT)
                        .await,
                );
                assert_eq!(code, 401);
                tokio::time::sleep(Duration::from_millis(200)).await;
                let logs = stack.function.logs().join("\n");
                assert!(
                    !logs.contains("CANARY"),
                    "{level}: an event value was logged"
                );
                assert!(
                    !logs.contains(STRIPE_SECRET),
                    "{level}: the secret was logged"
                );
                stack.stop().await;
            }
        }
    }
}

mod defects {
    use super::*;

    /// The 200 `{"recorded": true}` answer promises that "the outcome's log line records it"
    /// (docs/senders.md, Answers), and the sender, told 200, marks the delivery delivered and
    /// never sends it again. But for a signed body that is not the JSON its Content-Type says
    /// (or not UTF-8), every log line of that delivery has `record_id: ""`: the error is raised
    /// in `webhook()` after the signature check and `sources::single` gives its RecordError an
    /// empty id, so neither the API Gateway request id (the documented `record_id` of a webhook,
    /// present for `NoRoute`) nor the sender's id names the delivery. An operator cannot find
    /// which delivery was swallowed. Under `hmac-sha256` the 400 went back to the sender, which
    /// kept the failed delivery in its own dashboard; under a preset this line is the only trace.
    #[tokio::test]
    async fn a_recorded_delivery_that_is_not_json_names_its_request_in_the_log() {
        let (_moto, mut stack) = stack_with("stripe", STRIPE_SECRET, &[]).await;
        let broken = r#"{"id": "evt_broken", "object": "event""#;
        let req = request(broken, &stripe_headers(broken, now()));
        let request_id = req["requestContext"]["requestId"]
            .as_str()
            .unwrap()
            .to_string();
        let (code, answer) = status(stack.invoke(req, TIMEOUT).await);
        assert_eq!(code, 200, "{answer}");
        assert_eq!(answer["recorded"], true, "{answer}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let lines = recorded_lines(&stack);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(
            lines[0]["record_id"], request_id,
            "the only record of a delivery answered 200 does not say which request it was: {}",
            lines[0]
        );
        stack.stop().await;
    }

    /// Under a preset, a signed delivery that can never become a task is to be answered 200 so
    /// the sender does not retry it for days (Stripe: three days) nor count the endpoint as
    /// failing (Shopify removes a subscription after repeated failures; Slack disables event
    /// delivery) — docs/senders.md. A route whose `client_token` reads a field the event lacks
    /// refuses the record permanently (`RenderError`, error class `permanent`: the same body
    /// fails the same way on every retry, exactly like `NoRoute`, which is answered 200). It is
    /// answered 500 instead (Render is classed `Configuration`), so the sender retries the
    /// same body for days and may disable the endpoint for everything else. (security.md's
    /// limits table also says a webhook's RenderError is a 400, which `hmac-sha256` does not
    /// answer either: it is 500 there too.)
    #[tokio::test]
    async fn a_permanent_render_error_is_answered_200_under_a_preset() {
        const MAPPING: &str = "routes:\n  - name: keyed\n    when: { source: webhook }\n    task: { name: \"Keyed\" }\n    client_token: \"order-{{ body.order_id }}\"\n";
        let extra = [
            ("TASK_MAPPING", MAPPING.to_string()),
            ("TASK_MAPPING_FILE", String::new()),
        ];
        let (_moto, mut stack) = stack_with("stripe", STRIPE_SECRET, &extra).await;
        let body = stripe_body("evt_no_order_id", "x");
        let (code, answer) = status(
            stack
                .invoke(request(&body, &stripe_headers(&body, now())), TIMEOUT)
                .await,
        );
        assert_eq!(answer["code"], "RenderError", "{answer}");
        assert_eq!(
            code, 200,
            "a permanent refusal of a signed delivery must not make the sender retry it for days: {answer}"
        );
        stack.stop().await;
    }
}
