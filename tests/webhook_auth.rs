//! Signed webhooks end to end: the secret lives in Secrets Manager (moto's server on loopback,
//! started here), the function binary fetches it at cold start and checks every webhook's
//! HMAC; the log never shows the secret or a signature.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{event, root, EXAMPLE_MAPPING, FLOW, INSTANCE};
use connect_standin::connect::{ConnectStandIn, Options};
use connect_standin::harness::LocalStack;
use connect_standin::moto::{moto_server, Moto};
use connect_standin::runtime_api::{Invocation, InvokeError};
use connect_task_bridge::webhook_auth::sign;
use serde_json::Value;

const SECRET: &str = "whsec-3f9a7c1e0b5d44e2a8c6d1f0e9b7a5c3";
const SECRET_NAME: &str = "connect-task-bridge/webhook";

async fn start_moto() -> Moto {
    Moto::start(&moto_server(&root())).await
}

fn secrets_client(moto: &Moto) -> aws_sdk_secretsmanager::Client {
    moto.secrets_client()
}

async fn put_secret(moto: &Moto) {
    secrets_client(moto)
        .create_secret()
        .name(SECRET_NAME)
        .secret_string(SECRET)
        .send()
        .await
        .expect("the secret is created in moto");
}

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_connect-task-bridge"))
}

fn env(moto: &Moto, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("CONNECT_INSTANCE_ID", INSTANCE),
        ("CONNECT_CONTACT_FLOW_ID", FLOW),
        ("WEBHOOK_AUTH", "signature"),
        ("LAMBDA_TASK_ROOT", root().to_str().unwrap()),
        ("TASK_MAPPING_FILE", EXAMPLE_MAPPING),
        ("WEBHOOK_SECRET_ID", SECRET_NAME),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", &moto.url),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

/// The binary, configured for signed webhooks with the key in moto, against a fresh stand-in.
async fn stack(moto: &Moto, extra: &[(&str, &str)]) -> LocalStack {
    let connect = ConnectStandIn::start(Options::local(), 0).await.unwrap();
    LocalStack::start(binary(), connect, &env(moto, extra))
        .await
        .unwrap()
}

fn with_header(mut request: Value, name: &str, value: &str) -> Value {
    request["headers"][name] = Value::String(value.to_string());
    request
}

fn status(result: Result<Invocation, InvokeError>) -> (u64, String) {
    match result {
        Ok(Invocation::Response(v)) => (
            v["statusCode"].as_u64().unwrap(),
            v["body"].as_str().unwrap_or_default().to_string(),
        ),
        other => panic!("expected an HTTP answer, got {other:?}"),
    }
}

#[tokio::test]
async fn only_correctly_signed_webhooks_become_tasks() {
    let moto = start_moto().await;
    put_secret(&moto).await;
    let mut stack = stack(&moto, &[]).await;
    let timeout = Duration::from_secs(20);

    let github = event("apigw-rest-github-issue");
    let body = github["body"].as_str().unwrap().to_string();
    let signature = format!("sha256={}", sign(SECRET.as_bytes(), None, &body));

    // Unsigned, wrongly signed, signed for another body: 401, nothing created.
    let unsigned = github.clone();
    let wrong = with_header(
        github.clone(),
        "X-Signature-256",
        &format!("sha256={}", sign(b"not-the-secret", None, &body)),
    );
    let mut other_body = with_header(github.clone(), "X-Signature-256", &signature);
    other_body["body"] = Value::String(body.replace("1347", "1348"));
    for request in [unsigned, wrong, other_body] {
        let (code, text) = status(stack.invoke(request, timeout).await);
        assert_eq!(code, 401);
        assert!(text.contains("invalid signature"), "{text}");
    }
    assert!(stack.connect.tasks().is_empty());

    // Signed: the task is created. The HTTP API sample is base64: its decoded body is signed.
    let (code, _) = status(
        stack
            .invoke(with_header(github, "X-Signature-256", &signature), timeout)
            .await,
    );
    assert_eq!(code, 201);
    let ticket = event("apigw-http-ticket");
    let decoded = {
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(ticket["body"].as_str().unwrap())
            .unwrap();
        String::from_utf8(raw).unwrap()
    };
    let signed = with_header(
        ticket,
        "x-signature-256",
        &format!("sha256={}", sign(SECRET.as_bytes(), None, &decoded)),
    );
    assert_eq!(status(stack.invoke(signed, timeout).await).0, 201);
    assert_eq!(stack.connect.tasks().len(), 2);

    // Other sources are not webhooks and need no signature.
    assert!(matches!(
        stack.invoke(event("sns-notification"), timeout).await,
        Ok(Invocation::Response(_))
    ));

    tokio::time::sleep(Duration::from_millis(100)).await;
    let logs = stack.function.logs().join("\n");
    assert!(!logs.contains(SECRET), "the secret was logged");
    assert!(!logs.contains(&signature[7..]), "a signature was logged");
    stack.stop().await;
}

#[tokio::test]
async fn a_missing_secret_stops_the_cold_start() {
    let moto = start_moto().await;
    let mut stack = stack(&moto, &[]).await;
    let result = stack
        .invoke(event("apigw-http-ticket"), Duration::from_secs(20))
        .await;
    assert!(matches!(result, Err(InvokeError::Exited(_))), "{result:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let logs = stack.function.logs().join("\n");
    assert!(logs.contains("WEBHOOK_SECRET_ID"), "{logs}");
    stack.stop().await;
}

fn signed(request: Value, key: &[u8]) -> Value {
    let body = request["body"].as_str().unwrap().to_string();
    with_header(
        request,
        "X-Signature-256",
        &format!("sha256={}", sign(key, None, &body)),
    )
}

/// A rotation moves the secret's AWSCURRENT label to a new value. Warm environments used to hold
/// the old key until recycled and refused every sender that had switched; now a failed check
/// fetches the secret again (at most once a minute), and the previous key still passes so that
/// senders can switch at their own pace.
#[tokio::test]
async fn a_rotated_secret_is_picked_up_and_the_previous_key_still_passes() {
    let moto = start_moto().await;
    put_secret(&moto).await;
    let mut stack = stack(&moto, &[]).await;
    let timeout = Duration::from_secs(20);
    let github = event("apigw-rest-github-issue");
    assert_eq!(
        status(
            stack
                .invoke(signed(github.clone(), SECRET.as_bytes()), timeout)
                .await
        )
        .0,
        201
    );

    const ROTATED: &str = "whsec-rotated-0d1e2f3a4b5c6d7e8f9a";
    secrets_client(&moto)
        .put_secret_value()
        .secret_id(SECRET_NAME)
        .secret_string(ROTATED)
        .send()
        .await
        .expect("rotated in moto");

    // Other issues (the identity comes from the signed body).
    let issue = |number: u64| {
        let mut request = github.clone();
        let mut body: Value = serde_json::from_str(request["body"].as_str().unwrap()).unwrap();
        body["issue"]["number"] = Value::from(number);
        request["body"] = Value::String(body.to_string());
        request
    };
    let second = issue(2);
    assert_eq!(
        status(
            stack
                .invoke(signed(second, ROTATED.as_bytes()), timeout)
                .await
        )
        .0,
        201
    );
    let third = issue(3);
    assert_eq!(
        status(
            stack
                .invoke(signed(third, SECRET.as_bytes()), timeout)
                .await
        )
        .0,
        201
    );
    // A wrong key is still refused (and does not fetch again within the minute).
    assert_eq!(
        status(stack.invoke(signed(github, b"wrong"), timeout).await).0,
        401
    );
    assert_eq!(stack.connect.tasks().len(), 3);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let logs = stack.function.logs().join("\n");
    assert_eq!(logs.matches("fetched again").count(), 1, "{logs}");
    assert!(!logs.contains(ROTATED) && !logs.contains(SECRET));
    stack.stop().await;
}

/// With signatures on, nothing about the request is judged before its signature: an unsigned
/// request with a broken body learns 401, not a 400 that describes its body.
#[tokio::test]
async fn an_unsigned_broken_body_gets_401_not_a_description_of_the_body() {
    let moto = start_moto().await;
    put_secret(&moto).await;
    let mut stack = stack(&moto, &[]).await;
    let timeout = Duration::from_secs(20);
    let mut broken = with_header(
        event("apigw-rest-github-issue"),
        "content-type",
        "application/json",
    );
    broken["body"] = Value::String("{\"action\": ".into());
    let (code, text) = status(stack.invoke(broken.clone(), timeout).await);
    assert_eq!(code, 401);
    assert!(
        text.contains("invalid signature") && !text.contains("JSON"),
        "{text}"
    );
    let mut not_base64 = event("apigw-http-ticket");
    not_base64["body"] = Value::String("!!not base64!!".into());
    assert_eq!(status(stack.invoke(not_base64, timeout).await).0, 401);
    // Signed, the same broken body is the sender's error to fix.
    assert_eq!(
        status(
            stack
                .invoke(signed(broken, SECRET.as_bytes()), timeout)
                .await
        )
        .0,
        400
    );
    stack.stop().await;
}

/// `WEBHOOK_AUTH=signature` with a blank secret used to mean "no signatures" (open to anyone);
/// now it stops the cold start, naming the variable.
#[tokio::test]
async fn signature_mode_with_a_blank_secret_stops_the_cold_start() {
    let moto = start_moto().await;
    let connect = ConnectStandIn::start(Options::local(), 0).await.unwrap();
    let mut stack = LocalStack::start(
        binary(),
        connect,
        &env(&moto, &[("WEBHOOK_SECRET_ID", " ")]),
    )
    .await
    .unwrap();
    let result = stack
        .invoke(event("apigw-http-ticket"), Duration::from_secs(20))
        .await;
    assert!(matches!(result, Err(InvokeError::Exited(_))), "{result:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let logs = stack.function.logs().join("\n");
    assert!(logs.contains("WEBHOOK_SECRET_ID"), "{logs}");
    stack.stop().await;
}

/// Case 4 of the identity review: the HMAC covers the body, but the identity used to come from
/// parts it does not cover (Idempotency-Key, method, path, a route token from X-GitHub-Delivery),
/// so replaying one captured, validly signed request with any of those changed opened a new task
/// each time. Now the same signed body is the same event: one task.
#[tokio::test]
async fn a_replayed_signed_webhook_with_unsigned_parts_changed_is_one_task() {
    let moto = start_moto().await;
    put_secret(&moto).await;
    // The built-in mapping (no route token) and the example mapping (a body-only route token).
    for mapping in [None, Some(EXAMPLE_MAPPING)] {
        let connect = ConnectStandIn::start(Options::local(), 0).await.unwrap();
        let extra: Vec<(&str, &str)> = match mapping {
            None => vec![("TASK_MAPPING_FILE", "")],
            Some(m) => vec![("TASK_MAPPING_FILE", m)],
        };
        let mut stack = LocalStack::start(binary(), connect, &env(&moto, &extra))
            .await
            .unwrap();
        let timeout = Duration::from_secs(20);
        let captured = signed(event("apigw-rest-github-issue"), SECRET.as_bytes());
        let mut replays = vec![captured.clone()];
        for (header, value) in [
            ("Idempotency-Key", "replay-1"),
            ("X-GitHub-Delivery", "00000000-0000-0000-0000-000000000001"),
            ("X-GitHub-Event", "issues"),
        ] {
            replays.push(with_header(captured.clone(), header, value));
        }
        let mut other_path = captured.clone();
        other_path["path"] = Value::String("/replayed".into());
        other_path["resource"] = Value::String("/replayed".into());
        replays.push(other_path);
        let mut other_method = captured.clone();
        other_method["httpMethod"] = Value::String("PUT".into());
        other_method["requestContext"]["httpMethod"] = Value::String("PUT".into());
        replays.push(other_method);
        let mut contacts = std::collections::BTreeSet::new();
        for replay in replays {
            let answer = match stack.invoke(replay, timeout).await {
                Ok(Invocation::Response(v)) => v,
                other => panic!("expected an HTTP answer, got {other:?}"),
            };
            assert_eq!(answer["statusCode"], 201, "{mapping:?}: {answer}");
            let body: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
            contacts.insert(body["contactId"].as_str().unwrap().to_string());
        }
        assert_eq!(contacts.len(), 1, "{mapping:?}: {contacts:?}");
        assert_eq!(stack.connect.tasks().len(), 1, "{mapping:?}");
        stack.stop().await;
    }
}
