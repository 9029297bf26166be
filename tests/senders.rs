//! Webhook senders' presets (`WEBHOOK_SIGNATURE_SCHEME`) end to end, signed by the senders' own
//! libraries: the function binary under the local Runtime API, its secret in Secrets Manager
//! (moto's server), each body signed by `tests/senders/sign.py` (PyPI: standardwebhooks, svix,
//! slack-sdk, stripe) or `tests/senders/sign.mjs` (npm: stripe, @octokit/webhooks-methods).
//! For each sender: accepted; tampered body, wrong secret, missing header → 401; a signed
//! timestamp stale or in the future → 401; the sender's retry → the same task; another event →
//! another task. A missing tool fails the test, naming what to install.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{event, root};
use connect_standin::harness::LocalStack;
use connect_standin::moto::Moto;
use connect_standin::runtime_api::{Invocation, InvokeError};
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(20);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The Python of `.venv` (or `SENDERS_PYTHON`), with the senders' libraries installed.
fn python() -> PathBuf {
    let path = std::env::var_os("SENDERS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv/bin/python"));
    assert!(
        path.exists(),
        "{} is missing: run `make test` (it installs tests/senders/requirements.txt into .venv), or set SENDERS_PYTHON",
        path.display()
    );
    path
}

fn node_modules() -> PathBuf {
    let dir = root().join("tests/senders/node_modules");
    assert!(
        dir.join("stripe").exists() && dir.join("@octokit/webhooks-methods").exists(),
        "{} lacks stripe or @octokit/webhooks-methods: run `make test` (it runs `npm ci --prefix tests/senders`)",
        dir.display()
    );
    dir
}

/// The headers the sender's own library computes for `body` (see tests/senders/sign.*).
fn signed_by_library(
    library: Library,
    scheme: &str,
    secret: &str,
    body: &str,
    id: &str,
    timestamp: u64,
) -> Value {
    let (program, script) = match library {
        Library::Python => (python(), "tests/senders/sign.py"),
        Library::Npm => {
            node_modules();
            (PathBuf::from("node"), "tests/senders/sign.mjs")
        }
    };
    let mut child = Command::new(&program)
        .arg(root().join(script))
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e} (is it installed?)", program.display()));
    let input =
        json!({"scheme": scheme, "secret": secret, "body": body, "id": id, "timestamp": timestamp});
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{script} failed for {scheme} (are the senders' libraries installed? run `make test`): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the signer writes JSON headers")
}

#[derive(Clone, Copy)]
enum Library {
    Python,
    Npm,
}

fn request(body: &str, headers: &Value) -> Value {
    common::http_api_request(body, headers)
}

fn status(result: Result<Invocation, InvokeError>) -> (u64, Value) {
    match result {
        Ok(Invocation::Response(v)) => (
            v["statusCode"].as_u64().unwrap(),
            serde_json::from_str(v["body"].as_str().unwrap_or("null")).unwrap_or(Value::Null),
        ),
        other => panic!("expected an HTTP answer, got {other:?}"),
    }
}

/// moto with the secret stored as the sender's dashboard shows it, and the function configured
/// for `scheme`.
async fn stack_for(scheme: &str, secret: &str) -> (Moto, LocalStack) {
    stack_with(scheme, secret, false).await
}

/// As `stack_for`; `queued`: webhooks go through a task queue in moto's SQS (202).
async fn stack_with(scheme: &str, secret: &str, queued: bool) -> (Moto, LocalStack) {
    let moto = common::moto_with_webhook_secret(secret).await;
    let mut extra = Vec::new();
    if queued {
        let url = moto
            .sqs_client()
            .create_queue()
            .queue_name("tasks")
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        extra.push(("TASK_QUEUE_URL", url));
        extra.push(("AWS_ENDPOINT_URL_SQS", moto.url.clone()));
        extra.push(("WEBHOOK_MODE", "queued".to_string()));
    }
    let stack = common::start_signed_webhooks(&moto, scheme, &extra).await;
    (moto, stack)
}

struct Sender {
    scheme: &'static str,
    library: Library,
    /// The secret as the sender's dashboard shows it (stored as is).
    secret: &'static str,
    body: String,
    /// The message id, for Standard Webhooks and Svix.
    id: &'static str,
    /// The header carrying the signature (removed for "missing").
    header: &'static str,
    signs_timestamp: bool,
    /// Headers a retry adds (Slack's retry count).
    retry_headers: Value,
    /// Another event of the sender: the body, and its id.
    other: (String, &'static str),
}

async fn check_sender(sender: Sender) {
    let (_moto, mut stack) = stack_for(sender.scheme, sender.secret).await;
    let sign = |body: &str, secret: &str, id: &str, at: u64| {
        signed_by_library(sender.library, sender.scheme, secret, body, id, at)
    };
    let scheme = sender.scheme;

    // Accepted: one task.
    let t0 = now();
    let headers = sign(&sender.body, sender.secret, sender.id, t0);
    let (code, answer) = status(stack.invoke(request(&sender.body, &headers), TIMEOUT).await);
    assert_eq!(code, 201, "{scheme}: {answer}");
    assert_eq!(stack.connect.tasks().len(), 1, "{scheme}");
    let token = answer["clientToken"].clone();

    // Refused, nothing created: tampered body, wrong secret, the signature header missing.
    let tampered = sender.body.replacen('"', "\" ", 1);
    let wrong = sign(
        &sender.body,
        "whsec_bm90LXRoZS1zZW5kZXJzLXNlY3JldA==",
        sender.id,
        t0,
    );
    let mut missing = headers.clone();
    missing
        .as_object_mut()
        .unwrap()
        .retain(|k, _| !k.eq_ignore_ascii_case(sender.header));
    let mut refused = vec![
        ("tampered", request(&tampered, &headers)),
        ("wrong secret", request(&sender.body, &wrong)),
        ("missing header", request(&sender.body, &missing)),
    ];
    if sender.signs_timestamp {
        let stale = sign(&sender.body, sender.secret, sender.id, t0 - 600);
        let future = sign(&sender.body, sender.secret, sender.id, t0 + 600);
        refused.push(("stale", request(&sender.body, &stale)));
        refused.push(("future", request(&sender.body, &future)));
    }
    for (what, req) in refused {
        let (code, answer) = status(stack.invoke(req, TIMEOUT).await);
        assert_eq!(code, 401, "{scheme}, {what}: {answer}");
        assert_eq!(answer["message"], "invalid signature", "{scheme}, {what}");
    }
    assert_eq!(stack.connect.tasks().len(), 1, "{scheme}");

    // The sender's retry, signed again a little later: the same task.
    let mut retry = sign(&sender.body, sender.secret, sender.id, t0 + 2);
    for (k, v) in sender.retry_headers.as_object().unwrap() {
        retry[k] = v.clone();
    }
    let (code, answer) = status(stack.invoke(request(&sender.body, &retry), TIMEOUT).await);
    assert!((200..300).contains(&code), "{scheme}: {code} {answer}");
    assert_eq!(answer["clientToken"], token, "{scheme}: the retry's token");
    assert_eq!(
        stack.connect.tasks().len(),
        1,
        "{scheme}: the retry made a task"
    );

    // Another event: another task.
    let (other_body, other_id) = &sender.other;
    let headers = sign(other_body, sender.secret, other_id, now());
    let (code, answer) = status(stack.invoke(request(other_body, &headers), TIMEOUT).await);
    assert_eq!(code, 201, "{scheme}: {answer}");
    assert_ne!(answer["clientToken"], token, "{scheme}");
    assert_eq!(stack.connect.tasks().len(), 2, "{scheme}");

    tokio::time::sleep(Duration::from_millis(100)).await;
    let logs = stack.function.logs().join("\n");
    assert!(
        !logs.contains(sender.secret),
        "{scheme}: the secret was logged"
    );
    stack.stop().await;
}

fn body(name: &str) -> String {
    std::fs::read_to_string(root().join("tests/senders/bodies").join(name))
        .unwrap()
        .trim_end()
        .to_string()
}

#[tokio::test]
async fn stripe_signed_by_stripe_node_and_stripe_python() {
    let stripe = body("stripe.json");
    let other = stripe
        .replace(
            "evt_1NG8Du2eZvKYlo2CUI79vXWy",
            "evt_1NG8Du2eZvKYlo2CUI79vXWz",
        )
        .replace("setup_intent.created", "setup_intent.succeeded");
    for library in [Library::Npm, Library::Python] {
        check_sender(Sender {
            scheme: "stripe",
            library,
            // Stripe's signing secret is the key as written, `whsec_` and all.
            secret: "whsec_8c2f3b1e5d7a4c6b9e0f1a2b3c4d5e6f",
            body: stripe.clone(),
            id: "",
            header: "Stripe-Signature",
            signs_timestamp: true,
            retry_headers: json!({}),
            other: (other.clone(), ""),
        })
        .await;
    }
}

#[tokio::test]
async fn standard_webhooks_signed_by_standardwebhooks() {
    let body = body("standard-webhooks.json");
    check_sender(Sender {
        scheme: "standard-webhooks",
        library: Library::Python,
        // The specification's example secret, decoded by the function as by the library.
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        other: (
            body.replace("contact.created", "contact.updated"),
            "msg_2KWPBgLlAfxdpx2AI54pPJ85f4X",
        ),
        body,
        id: "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
        header: "webhook-signature",
        signs_timestamp: true,
        retry_headers: json!({}),
    })
    .await;
}

#[tokio::test]
async fn svix_signed_by_svix() {
    let body = body("svix.json");
    check_sender(Sender {
        scheme: "svix",
        library: Library::Python,
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        other: (
            body.replace("contact.created", "contact.deleted"),
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
        ),
        body,
        id: "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
        header: "svix-signature",
        signs_timestamp: true,
        retry_headers: json!({}),
    })
    .await;
}

#[tokio::test]
async fn slack_signed_by_slack_sdk() {
    let body = body("slack.json");
    check_sender(Sender {
        scheme: "slack",
        library: Library::Python,
        secret: "8f742231b10e8888abcd99yyyzzz85a5",
        other: (
            body.replace("Ev123ABC456", "Ev123ABC457").replace(
                "What is the hour of the pearl",
                "Is it everything a river should be",
            ),
            "",
        ),
        body,
        id: "",
        header: "X-Slack-Signature",
        signs_timestamp: true,
        retry_headers: json!({"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}),
    })
    .await;
}

#[tokio::test]
async fn github_signed_by_octokit_webhooks_methods() {
    let body = event("apigw-rest-github-issue")["body"]
        .as_str()
        .unwrap()
        .to_string();
    check_sender(Sender {
        scheme: "github",
        library: Library::Npm,
        secret: "It's a Secret to Everybody",
        other: (body.replace("1347", "1348"), ""),
        body,
        id: "",
        header: "X-Hub-Signature-256",
        signs_timestamp: false,
        // GitHub's redelivery carries a new X-GitHub-Delivery: unsigned, it changes nothing.
        retry_headers: json!({"X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}),
    })
    .await;
}

/// Zendesk publishes no signing library: signed as its "Verifying webhook authenticity" page
/// documents (tests/senders/sign.py). A retry carries a new, unsigned invocation id: one task.
#[tokio::test]
async fn zendesk_signed_as_documented() {
    let body = body("zendesk.json");
    check_sender(Sender {
        scheme: "zendesk",
        library: Library::Python,
        secret: "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ==",
        other: (body.replace("hello", "goodbye"), "inv-2"),
        body,
        id: "01HV7Q7V3M3Z8T5QJ9Y6K2N4XW",
        header: "X-Zendesk-Webhook-Signature",
        signs_timestamp: true,
        retry_headers: json!({"X-Zendesk-Webhook-Invocation-Id": "01HV7Q9C0FFEE0000000000000"}),
    })
    .await;
}

/// Shopify publishes no signing library for webhooks: signed as its "Verify webhook
/// deliveries" page documents. A replay under a new X-Shopify-Webhook-Id is one task.
#[tokio::test]
async fn shopify_signed_as_documented() {
    let body = body("shopify.json");
    check_sender(Sender {
        scheme: "shopify",
        library: Library::Python,
        secret: "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",
        other: (
            body.replace("191167", "191168"),
            "b54557e4-bdd9-4b37-8a5f-bf7d70bcd044",
        ),
        body,
        id: "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        header: "X-Shopify-Hmac-Sha256",
        signs_timestamp: false,
        retry_headers: json!({"X-Shopify-Webhook-Id": "c0ffee00-bdd9-4b37-8a5f-bf7d70bcd043"}),
    })
    .await;
}

/// PagerDuty publishes no signing library for V3 webhooks: signed as its "Verifying
/// signatures" page documents; the event id in the body names the delivery.
#[tokio::test]
async fn pagerduty_signed_as_documented() {
    let body = body("pagerduty.json");
    check_sender(Sender {
        scheme: "pagerduty",
        library: Library::Python,
        secret: "q6I8JsNmuu0B6OR8yjHtg0AgUq9cJsbVGNFGWf8bcpGTmN4XGEO9K8nTfg9NG0r3",
        other: (
            body.replace(
                "5ac64822-4adc-4fda-ade0-410becf0de4f",
                "5ac64822-4adc-4fda-ade0-410becf0de50",
            )
            .replace("incident.priority_updated", "incident.resolved"),
            "",
        ),
        body,
        id: "",
        header: "X-PagerDuty-Signature",
        signs_timestamp: false,
        retry_headers: json!({}),
    })
    .await;
}

/// Slack's URL verification is answered with its challenge at once, even when webhooks are
/// queued (nothing is queued for it), and only when signed.
#[tokio::test]
async fn slack_url_verification_is_answered_only_when_signed_even_when_queued() {
    let secret = "8f742231b10e8888abcd99yyyzzz85a5";
    let (moto, mut stack) = stack_with("slack", secret, true).await;
    // Slack's url_verification reference example.
    let body = r#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let headers = signed_by_library(Library::Python, "slack", secret, body, "", now());
    let (code, answer) = status(stack.invoke(request(body, &headers), TIMEOUT).await);
    assert_eq!(code, 200, "{answer}");
    assert_eq!(
        answer,
        json!({"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"})
    );
    let (code, _) = status(stack.invoke(request(body, &json!({})), TIMEOUT).await);
    assert_eq!(code, 401);
    let sqs = moto.sqs_client();
    let url = sqs
        .get_queue_url()
        .queue_name("tasks")
        .send()
        .await
        .unwrap();
    let queued = sqs
        .receive_message()
        .queue_url(url.queue_url.unwrap())
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    assert!(
        queued.messages.unwrap_or_default().is_empty(),
        "the handshake was queued"
    );
    // An event in the same mode is queued (202).
    let event = self::body("slack.json");
    let headers = signed_by_library(Library::Python, "slack", secret, &event, "", now());
    let (code, answer) = status(stack.invoke(request(&event, &headers), TIMEOUT).await);
    assert_eq!(code, 202, "{answer}");
    assert!(stack.connect.tasks().is_empty());
    stack.stop().await;
}

/// A signed delivery that can never become a task (its body is not the JSON its Content-Type
/// says) is answered 200 under a preset, with what was wrong, so the sender does not retry it
/// for days; the same under `hmac-sha256` keeps its 400.
#[tokio::test]
async fn a_delivery_that_can_never_be_a_task_is_answered_200_under_a_preset() {
    let secret = "It's a Secret to Everybody";
    let (_moto, mut stack) = stack_for("github", secret).await;
    let broken = r#"{"action": "opened", "issue": "#;
    let headers = signed_by_library(Library::Npm, "github", secret, broken, "", now());
    let (code, answer) = status(stack.invoke(request(broken, &headers), TIMEOUT).await);
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["accepted"], false, "{answer}");
    assert_eq!(answer["recorded"], true, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON"),
        "{answer}"
    );
    assert!(stack.connect.tasks().is_empty());
    stack.stop().await;

    let (_moto, mut stack) = stack_for("hmac-sha256", secret).await;
    let signed = signed_by_library(Library::Npm, "github", secret, broken, "", now());
    let headers = json!({"X-Signature-256": signed["X-Hub-Signature-256"]});
    let (code, answer) = status(stack.invoke(request(broken, &headers), TIMEOUT).await);
    assert_eq!(code, 400, "{answer}");
    stack.stop().await;
}

/// A sender rotating its secret signs every delivery with the old and the new secret at once
/// (Stripe: two `v1=` in one `Stripe-Signature`; Standard Webhooks: two `v1,` signatures
/// separated by a space). The function holds the new secret and accepts the delivery on the
/// signature it can check; one signed with the old secret alone is refused.
#[tokio::test]
async fn a_sender_rotating_its_secret_is_accepted_on_the_signature_it_shares() {
    let when = now();
    let old_stripe = "whsec_0ld0ld0ld0ld0ld0ld0ld0ld0ld0ld0l";
    let new_stripe = "whsec_8c2f3b1e5d7a4c6b9e0f1a2b3c4d5e6f";
    let stripe = body("stripe.json");
    let v1 = |headers: &Value| {
        headers["Stripe-Signature"]
            .as_str()
            .unwrap()
            .split(',')
            .find(|p| p.starts_with("v1="))
            .unwrap()
            .to_string()
    };
    let with_old = signed_by_library(Library::Python, "stripe", old_stripe, &stripe, "", when);
    let with_new = signed_by_library(Library::Python, "stripe", new_stripe, &stripe, "", when);
    let both = format!("t={when},{},{}", v1(&with_old), v1(&with_new));
    let (_moto, mut stack) = stack_for("stripe", new_stripe).await;
    let old_only = request(
        &stripe,
        &json!({"Stripe-Signature": format!("t={when},{}", v1(&with_old))}),
    );
    assert_eq!(status(stack.invoke(old_only, TIMEOUT).await).0, 401);
    let (code, answer) = status(
        stack
            .invoke(
                request(&stripe, &json!({"Stripe-Signature": both})),
                TIMEOUT,
            )
            .await,
    );
    assert_eq!(code, 201, "{answer}");
    stack.stop().await;

    // The specification's example secret, and another one the sender rotates away from.
    let old_sw = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=";
    let new_sw = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let sw = body("standard-webhooks.json");
    let id = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";
    let with_old = signed_by_library(Library::Python, "standard-webhooks", old_sw, &sw, id, when);
    let with_new = signed_by_library(Library::Python, "standard-webhooks", new_sw, &sw, id, when);
    let mut headers = with_new.clone();
    headers["webhook-signature"] = json!(format!(
        "{} {}",
        with_old["webhook-signature"].as_str().unwrap(),
        with_new["webhook-signature"].as_str().unwrap()
    ));
    let (_moto, mut stack) = stack_for("standard-webhooks", new_sw).await;
    assert_eq!(
        status(stack.invoke(request(&sw, &with_old), TIMEOUT).await).0,
        401
    );
    let (code, answer) = status(stack.invoke(request(&sw, &headers), TIMEOUT).await);
    assert_eq!(code, 201, "{answer}");
    stack.stop().await;
}
