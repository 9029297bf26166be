//! `redrive` through the binary against moto's SQS, with the function under the local Runtime
//! API answering what comes back: a message whose task exists is answered with that task (no
//! second one at the stand-in), nothing is lost when the command is killed mid-way, a forged
//! redrive envelope is refused by the function, progress on a terminal and in plain lines, the
//! summary, a FIFO DLQ keeping its groups, the asynchronous failure queue and the EventBridge
//! rule's DLQ.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use common::{batch_failures, response, root};
use connect_standin::harness::LocalStack;
use connect_standin::moto::{moto_server, Moto};
use connect_standin::surge::{esm_record, queue_arn};
use connect_standin::{LOCAL_ACCESS_KEY, LOCAL_REGION, LOCAL_SECRET_KEY};
use connect_task_bridge::queue::{envelope, queued_payload, EnvelopeKeys};
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(15);
const KEY: &str = "the-functions-own-key";

struct Queue {
    sqs: aws_sdk_sqs::Client,
    url: String,
    arn: String,
}

impl Queue {
    /// A queue; with `dlq`, its redrive policy names it after two receives (moto, as SQS, moves
    /// the message itself: same messageId).
    async fn new(moto: &Moto, name: &str, dlq: Option<&Queue>) -> Queue {
        let sqs = moto.sqs_client();
        let mut create = sqs
            .create_queue()
            .queue_name(name)
            .attributes(QueueAttributeName::VisibilityTimeout, "1");
        if name.ends_with(".fifo") {
            create = create
                .attributes(QueueAttributeName::FifoQueue, "true")
                .attributes(QueueAttributeName::ContentBasedDeduplication, "true");
        }
        if let Some(dlq) = dlq {
            create = create.attributes(
                QueueAttributeName::RedrivePolicy,
                json!({"deadLetterTargetArn": dlq.arn, "maxReceiveCount": 2}).to_string(),
            );
        }
        let url = create.send().await.unwrap().queue_url.unwrap();
        Queue {
            sqs,
            url,
            arn: queue_arn(name),
        }
    }

    async fn send(&self, body: &str, group: Option<&str>) -> String {
        let mut send = self
            .sqs
            .send_message()
            .queue_url(&self.url)
            .message_body(body);
        if let Some(g) = group {
            send = send.message_group_id(g);
        }
        send.send().await.unwrap().message_id.unwrap()
    }

    async fn receive(&self, visibility: i32) -> Vec<aws_sdk_sqs::types::Message> {
        let mut all = Vec::new();
        loop {
            let got = self
                .sqs
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(10)
                .visibility_timeout(visibility)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .unwrap()
                .messages
                .unwrap_or_default();
            if got.is_empty() {
                return all;
            }
            all.extend(got);
        }
    }

    async fn count(&self) -> u64 {
        let attrs = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap();
        [
            QueueAttributeName::ApproximateNumberOfMessages,
            QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        ]
        .iter()
        .map(|a| attrs[a].parse::<u64>().unwrap())
        .sum()
    }

    async fn make_visible(&self, messages: &[aws_sdk_sqs::types::Message]) {
        for m in messages {
            self.sqs
                .change_message_visibility()
                .queue_url(&self.url)
                .receipt_handle(m.receipt_handle.clone().unwrap())
                .visibility_timeout(0)
                .send()
                .await
                .unwrap();
        }
    }
}

/// Delivers everything the queue holds to the function, as its event source mapping would, in
/// batches of ten; deletes what it answered as done (`delete`) or leaves it (an answer lost).
async fn deliver(stack: &mut LocalStack, q: &Queue, delete: bool) -> Vec<Value> {
    // An answer that will be lost: the message is soon received again (and goes to its DLQ).
    let messages = q.receive(if delete { 30 } else { 1 }).await;
    let mut answers = Vec::new();
    for chunk in messages.chunks(10) {
        let records: Vec<Value> = chunk.iter().map(|m| esm_record(m, &q.arn)).collect();
        let answer = response(stack.invoke(json!({ "Records": records }), TIMEOUT).await);
        let failed = batch_failures(&answer);
        if delete {
            for m in chunk {
                if !failed.contains(m.message_id.as_deref().unwrap()) {
                    q.sqs
                        .delete_message()
                        .queue_url(&q.url)
                        .receipt_handle(m.receipt_handle.clone().unwrap())
                        .send()
                        .await
                        .unwrap();
                }
            }
        }
        println!("answer: {answer}");
        answers.push(answer);
    }
    answers
}

/// Lets what the queue holds reach its DLQ, as SQS does after `maxReceiveCount` receives.
async fn to_dlq(q: &Queue, dlq: &Queue, expected: u64) {
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let _ = q.receive(1).await;
        if dlq.count().await >= expected && q.count().await == 0 {
            return;
        }
    }
    panic!("the messages did not reach the DLQ");
}

async fn stack(moto: &Moto, q: &Queue, extra: &[(&str, &str)]) -> LocalStack {
    let mut env = vec![
        ("WEBHOOK_AUTH", "none"),
        ("TASK_QUEUE_URL", q.url.as_str()),
        ("AWS_ENDPOINT_URL_SQS", moto.url.as_str()),
        ("ENVELOPE_SECRET_ID", "envelope"),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto.url.as_str()),
    ];
    env.extend_from_slice(extra);
    common::start_function(&env).await
}

async fn moto() -> Moto {
    let moto = Moto::start(&moto_server(&root())).await;
    moto.secrets_client()
        .create_secret()
        .name("envelope")
        .secret_string(KEY)
        .send()
        .await
        .unwrap();
    moto
}

/// `connect-task-bridge redrive ARGS` as an operator runs it, against moto.
fn redrive(moto: &Moto, args: &[&str]) -> Command {
    let mut cmd = Command::new(common::function_binary());
    cmd.arg("redrive")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_REGION", LOCAL_REGION)
        .env("AWS_ACCESS_KEY_ID", LOCAL_ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", LOCAL_SECRET_KEY)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL_SQS", &moto.url)
        .env("AWS_ENDPOINT_URL_SECRETS_MANAGER", &moto.url)
        .env("ENVELOPE_SECRET_ID", "envelope");
    cmd
}

fn run(mut cmd: Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&stdout).to_string(),
        String::from_utf8_lossy(&stderr).to_string(),
    );
    println!(
        "exit {:?}\n--- stdout\n{out}--- stderr\n{err}",
        status.code()
    );
    (status.code().unwrap_or(-1), out, err)
}

fn keys() -> EnvelopeKeys {
    EnvelopeKeys::new(vec![KEY.as_bytes().to_vec()]).unwrap()
}

/// The identity a message in the task queue carries: the messageId inside the function's
/// envelope, else its own.
fn identity_of(m: &aws_sdk_sqs::types::Message) -> String {
    let body = m.body.as_deref().unwrap();
    match queued_payload(body, Some(&keys())) {
        Some(q) => q.unwrap().payload["Records"][0]["messageId"]
            .as_str()
            .unwrap()
            .to_string(),
        None => m.message_id.clone().unwrap(),
    }
}

/// (a) The trap of #25: a message whose task was created but whose answer was lost reaches the
/// DLQ. Redriven, it is answered with the task it has (Connect replays the token); moved as SQS's
/// own redrive moves it (a new messageId), it becomes a second task.
#[tokio::test]
async fn a_message_whose_task_exists_is_redriven_and_answered_with_that_task() {
    let moto = moto().await;
    let dlq = Queue::new(&moto, "tasks-dlq", None).await;
    let q = Queue::new(&moto, "tasks", Some(&dlq)).await;
    let mut stack = stack(&moto, &q, &[]).await;
    let original = q.send("{\"orderId\": \"ord-1\"}", None).await;
    // The task is created; the answer never reaches SQS (the invocation timed out after it).
    let answers = deliver(&mut stack, &q, false).await;
    assert!(batch_failures(&answers[0]).is_empty(), "{answers:?}");
    assert_eq!(stack.connect.tasks().len(), 1);
    to_dlq(&q, &dlq, 1).await;

    let (code, out, err) = run(redrive(&moto, &["--from", &dlq.url]));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("redrive: moved 1, skipped 0, failed 0"),
        "{out}"
    );
    assert!(out.contains("raw message, in the signed envelope"), "{out}");
    assert!(
        err.contains(&format!("to {}", q.url)),
        "--to is the source queue: {err}"
    );
    assert_eq!(dlq.count().await, 0);

    let moved = q.receive(30).await;
    assert_eq!(moved.len(), 1);
    assert_ne!(moved[0].message_id.as_deref(), Some(original.as_str()));
    assert_eq!(identity_of(&moved[0]), original);
    q.make_visible(&moved).await;
    let answers = deliver(&mut stack, &q, true).await;
    assert!(batch_failures(&answers[0]).is_empty(), "{answers:?}");
    let stats = stack.connect.stats();
    assert_eq!(stack.connect.tasks().len(), 1, "a second task: {stats:?}");
    assert_eq!(
        stats.replayed, 1,
        "answered with the task it had: {stats:?}"
    );

    // What the console's redrive would have done: the same body, a new messageId.
    q.send("{\"orderId\": \"ord-1\"}", None).await;
    deliver(&mut stack, &q, true).await;
    assert_eq!(
        stack.connect.tasks().len(),
        2,
        "SQS's own redrive makes the second task this command avoids"
    );
    stack.stop().await;
}

/// (b) Killed mid-way during a slow run, then run again: every message is in the DLQ or the task
/// queue at every moment, and the duplicates the kill can leave are answered with their task.
#[tokio::test]
async fn nothing_is_lost_when_the_command_is_killed_mid_way() {
    let moto = moto().await;
    let dlq = Queue::new(&moto, "tasks-dlq", None).await;
    let q = Queue::new(&moto, "tasks", Some(&dlq)).await;
    let mut stack = stack(&moto, &q, &[]).await;
    let mut originals = BTreeSet::new();
    for i in 0..12 {
        originals.insert(q.send(&format!("{{\"n\": {i}}}"), None).await);
    }
    deliver(&mut stack, &q, false).await;
    assert_eq!(stack.connect.tasks().len(), 12);
    to_dlq(&q, &dlq, 12).await;

    let mut slow = redrive(&moto, &["--from", &dlq.url, "--rate", "4"]);
    let mut child = slow
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    moving(&q, 2).await;
    child.kill().unwrap();
    child.wait().unwrap();
    // What the killed run had received comes back when its receive's visibility ends.
    for _ in 0..30 {
        if dlq_invisible(&dlq).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let in_dlq = dlq.receive(30).await;
    let in_queue = q.receive(30).await;
    let mut found: BTreeSet<String> = in_dlq
        .iter()
        .map(|m| m.message_id.clone().unwrap())
        .collect();
    found.extend(in_queue.iter().map(identity_of));
    println!(
        "after the kill: {} in the DLQ, {} in the task queue",
        in_dlq.len(),
        in_queue.len()
    );
    assert!(
        !in_queue.is_empty() && !in_dlq.is_empty(),
        "the kill came mid-way"
    );
    assert_eq!(found, originals, "every message is somewhere");
    dlq.make_visible(&in_dlq).await;
    q.make_visible(&in_queue).await;

    let (code, out, _) = run(redrive(&moto, &["--from", &dlq.url]));
    assert_eq!(code, 0);
    assert!(out.contains(&format!("moved {}", in_dlq.len())), "{out}");
    assert_eq!(dlq.count().await, 0);
    let answers = deliver(&mut stack, &q, true).await;
    for a in &answers {
        assert!(batch_failures(a).is_empty(), "{a}");
    }
    let stats = stack.connect.stats();
    assert_eq!(stack.connect.tasks().len(), 12, "{stats:?}");
    assert!(stats.replayed >= 12, "{stats:?}");
    stack.stop().await;
}

/// Waits until a run has moved `n` messages into `q` (a slow machine starts the binary late).
async fn moving(q: &Queue, n: u64) {
    for _ in 0..200 {
        if q.count().await >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the run moved nothing in 20 s");
}

async fn dlq_invisible(q: &Queue) -> u64 {
    q.sqs
        .get_queue_attributes()
        .queue_url(&q.url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::ApproximateNumberOfMessagesNotVisible]
        .parse()
        .unwrap()
}

/// (c) Someone who may only send to the task queue writes a redrive envelope claiming another
/// message's identity: signed with another key, or unsigned. The function refuses both (a batch
/// item failure, toward the DLQ), as any forged envelope; redrive leaves a forged one in its DLQ.
#[tokio::test]
async fn a_forged_redrive_envelope_is_refused() {
    let moto = moto().await;
    let dlq = Queue::new(&moto, "tasks-dlq", None).await;
    let q = Queue::new(&moto, "tasks", Some(&dlq)).await;
    let mut stack = stack(&moto, &q, &[]).await;
    let victim = q.send("{\"orderId\": \"ord-1\"}", None).await;
    deliver(&mut stack, &q, true).await;
    assert_eq!(stack.connect.tasks().len(), 1);

    let claim = json!({"Records": [{
        "messageId": victim, "body": "{\"orderId\": \"written by someone else\"}",
        "attributes": {"SentTimestamp": "1795500000000"}, "messageAttributes": {},
        "md5OfBody": "", "eventSource": "aws:sqs", "eventSourceARN": q.arn,
        "awsRegion": LOCAL_REGION
    }]});
    let other = EnvelopeKeys::new(vec![b"not-the-functions-key".to_vec()]).unwrap();
    let forged = envelope(&claim, Some(&other));
    let unsigned = envelope(&claim, None);
    for body in [&forged, &unsigned] {
        let id = q.send(body, None).await;
        let answers = deliver(&mut stack, &q, true).await;
        assert!(batch_failures(&answers[0]).contains(&id), "{answers:?}");
    }
    let stats = stack.connect.stats();
    assert_eq!(
        (stack.connect.tasks().len(), stats.replayed),
        (1, 0),
        "{stats:?}"
    );
    // Both classified as today's forged envelopes: a permanent InvalidSignature.
    let refused: Vec<String> = stack
        .function
        .json_logs()
        .iter()
        .filter_map(|l| l["error_code"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        refused,
        ["InvalidSignature", "InvalidSignature"],
        "{refused:?}"
    );

    dlq.send(&forged, None).await;
    let (code, out, _) = run(redrive(&moto, &["--from", &dlq.url]));
    assert_eq!(code, 1);
    assert!(out.contains("failed 1"), "{out}");
    assert!(
        out.contains("envelope not signed with the function's key"),
        "{out}"
    );
    assert_eq!(dlq.count().await, 1, "left in place");
    stack.stop().await;
}

/// (d) A bar on a terminal (under a pty, util-linux `script`), one plain line per message
/// otherwise; (e) the summary.
#[tokio::test]
async fn progress_is_a_bar_on_a_terminal_and_lines_otherwise() {
    let moto = moto().await;
    let dlq = Queue::new(&moto, "tasks-dlq", None).await;
    let q = Queue::new(&moto, "tasks", Some(&dlq)).await;
    for i in 0..3 {
        dlq.send(&format!("{{\"n\": {i}}}"), None).await;
    }
    // Plain lines, a dry run: nothing moves.
    let (code, out, err) = run(redrive(&moto, &["--from", &dlq.url, "--dry-run"]));
    assert_eq!(code, 0);
    assert!(out.starts_with("redrive (dry run): would move 3"), "{out}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("would move (raw message"))
        .collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(lines[2].starts_with("3/3 "), "{err}");
    assert!(
        !err.contains('\u{1b}'),
        "no terminal codes in plain lines: {err:?}"
    );
    assert_eq!(dlq.count().await, 3);
    let (code, out, _) = run(redrive(
        &moto,
        &["--from", &dlq.url, "--dry-run", "--max", "2"],
    ));
    assert_eq!(code, 0);
    assert!(
        out.starts_with("redrive (dry run): would move 2, skipped 0"),
        "{out}"
    );
    assert_eq!(dlq.count().await, 3);

    // On a terminal.
    let script = ["/usr/bin/script", "/bin/script"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("util-linux script(1) runs the command under a pty");
    let inner = redrive(&moto, &["--from", &dlq.url, "--rate", "10"]);
    let mut line = format!("{:?}", inner.get_program());
    for a in inner.get_args() {
        line.push_str(&format!(" '{}'", a.to_str().unwrap()));
    }
    let mut cmd = Command::new(script);
    cmd.args(["-qec", &line, "/dev/null"])
        .env_clear()
        .env("TERM", "xterm-256color");
    for (k, v) in inner.get_envs() {
        cmd.env(k, v.unwrap());
    }
    let (code, out, _) = run(cmd);
    assert_eq!(code, 0);
    assert!(out.contains("3/3 messages"), "the bar's counts: {out:?}");
    assert!(out.contains("/s, moved 3 skipped 0 failed 0"), "{out:?}");
    assert!(out.contains('\u{1b}'), "drawn with terminal codes: {out:?}");
    assert!(
        out.contains("redrive: moved 3, skipped 0, failed 0"),
        "{out:?}"
    );
    assert_eq!(q.count().await, 3);
}

/// (e) A FIFO DLQ: each message back in its group, the duplicates of a rerun dropped by the
/// deduplication id, the tasks answered as they were.
#[tokio::test]
async fn a_fifo_dlq_keeps_each_message_in_its_group() {
    let moto = moto().await;
    let dlq = Queue::new(&moto, "orders-dlq.fifo", None).await;
    let q = Queue::new(&moto, "orders.fifo", Some(&dlq)).await;
    let mut stack = stack(&moto, &q, &[]).await;
    let mut groups = std::collections::BTreeMap::new();
    for (body, group) in [
        ("{\"n\": 1}", "g1"),
        ("{\"n\": 2}", "g1"),
        ("{\"n\": 3}", "g2"),
    ] {
        groups.insert(q.send(body, Some(group)).await, group.to_string());
    }
    deliver(&mut stack, &q, false).await;
    assert_eq!(stack.connect.tasks().len(), 3);
    to_dlq(&q, &dlq, 3).await;

    let (code, out, _) = run(redrive(&moto, &["--from", &dlq.url]));
    assert_eq!(code, 0, "{out}");
    let moved = q.receive(30).await;
    assert_eq!(moved.len(), 3);
    for m in &moved {
        let group = m
            .attributes
            .as_ref()
            .unwrap()
            .get(&MessageSystemAttributeName::MessageGroupId)
            .unwrap();
        assert_eq!(&groups[&identity_of(m)], group);
    }
    q.make_visible(&moved).await;
    deliver(&mut stack, &q, true).await;
    assert_eq!(stack.connect.tasks().len(), 3);
    assert_eq!(stack.connect.stats().replayed, 3);
    stack.stop().await;
}

/// (e) The asynchronous failure queue (Lambda's destination records: the request is inside) and
/// the EventBridge rule's DLQ (the event is the body): each redriven to the task queue with its
/// identity; an unreadable record stays, counted with its reason.
#[tokio::test]
async fn failure_records_and_the_rules_dlq_are_redriven_with_their_identity() {
    let moto = moto().await;
    let q = Queue::new(&moto, "tasks", None).await;
    let failures = Queue::new(&moto, "failures", None).await;
    let rule_dlq = Queue::new(&moto, "rule-dlq", None).await;
    let mut stack = stack(&moto, &q, &[]).await;

    // Tasks created, each answer lost: an SNS notification invoked asynchronously, an
    // EventBridge event delivered to the task queue by the rule.
    let sns = common::event("sns-notification");
    let answer = response(stack.invoke(sns.clone(), TIMEOUT).await);
    println!("sns: {answer}");
    let event = common::event("eventbridge-order-failed");
    q.send(&event.to_string(), None).await;
    deliver(&mut stack, &q, true).await;
    assert_eq!(stack.connect.tasks().len(), 2);

    let record = |payload: Option<&Value>| {
        let mut r = json!({
            "version": "1.0", "timestamp": "2026-11-26T10:00:00.000Z",
            "requestContext": {"requestId": "r-1", "condition": "RetriesExhausted",
                "functionArn": "arn:aws:lambda:eu-west-1:123456789012:function:bridge:$LATEST",
                "approximateInvokeCount": 3},
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST",
                                "functionError": "Unhandled"},
            "responsePayload": {"errorType": "transient.Unavailable", "errorMessage": "m"}
        });
        if let Some(p) = payload {
            r["requestPayload"] = p.clone();
        }
        r.to_string()
    };
    failures.send(&record(Some(&sns)), None).await;
    failures.send(&record(None), None).await;
    rule_dlq.send(&event.to_string(), None).await;

    let (code, out, _) = run(redrive(&moto, &["--from", &failures.url]));
    assert_eq!(code, 2, "no source queue: --to is required");
    assert!(out.is_empty());
    let (code, out, _) = run(redrive(&moto, &["--from", &failures.url, "--to", &q.url]));
    assert_eq!(code, 1, "one record stays");
    assert!(
        out.starts_with("redrive: moved 1, skipped 0, failed 1"),
        "{out}"
    );
    assert!(out.contains("failure record's request"), "{out}");
    assert!(
        out.contains("failure record without its requestPayload"),
        "{out}"
    );
    assert_eq!(failures.count().await, 1);
    let (code, out, _) = run(redrive(&moto, &["--from", &rule_dlq.url, "--to", &q.url]));
    assert_eq!(code, 0);
    assert!(
        out.contains("event with its own identity, as it is"),
        "{out}"
    );

    let answers = deliver(&mut stack, &q, true).await;
    assert!(batch_failures(&answers[0]).is_empty(), "{answers:?}");
    let stats = stack.connect.stats();
    assert_eq!(stack.connect.tasks().len(), 2, "{stats:?}");
    assert_eq!(stats.replayed, 2, "{stats:?}");
    stack.stop().await;
}

/// A usage error stops before any call (exit 2, the usage); `--help` names where the key comes
/// from.
#[test]
fn usage_errors_stop_before_any_call_and_help_names_the_key() {
    let mut cmd = Command::new(common::function_binary());
    cmd.args(["redrive", "--to", "http://127.0.0.1:9/q"])
        .env_clear();
    let (code, out, err) = run(cmd);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(err.contains("--from DLQ_URL is required"), "{err}");
    assert!(err.contains("usage: connect-task-bridge redrive"), "{err}");
    let mut cmd = Command::new(common::function_binary());
    cmd.args(["redrive", "--help"]).env_clear();
    let (code, out, _) = run(cmd);
    assert_eq!(code, 0);
    assert!(out.contains("ENVELOPE_SECRET_ID"), "{out}");
    assert!(out.contains("Start DLQ redrive"), "{out}");
}

/// Ctrl-C (SIGINT) during a slow run stops between two messages, never between a send and its
/// delete: the summary, exit 130, each message in exactly one of the queues. `--to` naming the
/// DLQ itself is refused before anything moves.
#[tokio::test]
async fn ctrl_c_stops_between_two_messages_with_the_summary() {
    let moto = moto().await;
    let dlq = Queue::new(&moto, "tasks-dlq", None).await;
    let q = Queue::new(&moto, "tasks", Some(&dlq)).await;
    for i in 0..10 {
        dlq.send(&format!("{{\"n\": {i}}}"), None).await;
    }
    let (code, _, err) = run(redrive(&moto, &["--from", &dlq.url, "--to", &dlq.url]));
    assert_eq!(code, 2);
    assert!(
        err.contains("--to names the dead-letter queue itself"),
        "{err}"
    );

    let mut slow = redrive(&moto, &["--from", &dlq.url, "--rate", "4"]);
    let child = slow
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    moving(&q, 2).await;
    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let output = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    println!("{out}{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.status.code(), Some(130));
    assert!(out.contains("stopped (Ctrl-C)"), "{out}");
    let moved = q.count().await;
    assert!(moved > 0 && moved < 10, "stopped mid-way: {moved} moved");
    assert!(
        out.starts_with(&format!("redrive: moved {moved}, ")),
        "{out}"
    );
    assert_eq!(dlq.count().await + moved, 10, "no duplicate, no loss");
}

/// A body this run already sent that is in the DLQ again (it failed again while the run lasted,
/// or a copy) is left for the next run, so a fault that lasts cannot send it round and round.
#[tokio::test]
async fn a_message_back_in_the_dlq_during_the_run_is_left_for_the_next() {
    let moto = moto().await;
    let dlq = Queue::new(&moto, "tasks-dlq", None).await;
    let q = Queue::new(&moto, "tasks", Some(&dlq)).await;
    let record = json!({"Records": [{
        "messageId": "first-id", "body": "{\"n\": 1}", "attributes": {"SentTimestamp": "1"},
        "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
        "eventSourceARN": q.arn, "awsRegion": LOCAL_REGION
    }]});
    let body = envelope(&record, Some(&keys()));
    dlq.send(&body, None).await;
    dlq.send(&body, None).await;
    let (code, out, _) = run(redrive(&moto, &["--from", &dlq.url]));
    assert_eq!(code, 0);
    assert!(
        out.starts_with("redrive: moved 1, skipped 1, failed 0"),
        "{out}"
    );
    assert!(out.contains("back in the DLQ during this run"), "{out}");
    assert_eq!((dlq.count().await, q.count().await), (1, 1));
    let (_, out, _) = run(redrive(&moto, &["--from", &dlq.url]));
    assert!(out.starts_with("redrive: moved 1, skipped 0"), "{out}");
}

/// A producer's message in the task queue's DLQ whose body looks like a Lambda destination
/// record (another function's on-failure destination is the task queue: a task per failed
/// invocation). The function read it as a raw message, identity its messageId; redrive must move
/// it as such (in the signed envelope), not take it for the failure queue's record and send its
/// `requestPayload` instead: that was a second, different task, and the message itself deleted.
#[tokio::test]
async fn a_message_shaped_like_a_failure_record_in_a_queues_dlq_is_a_raw_message() {
    let moto = moto().await;
    let dlq = Queue::new(&moto, "tasks-dlq", None).await;
    let q = Queue::new(&moto, "tasks", Some(&dlq)).await;
    let mut stack = stack(&moto, &q, &[]).await;
    let record = json!({
        "version": "1.0", "timestamp": "2026-11-26T10:00:00.000Z",
        "requestContext": {"requestId": "r-9", "condition": "RetriesExhausted",
            "functionArn": "arn:aws:lambda:eu-west-1:123456789012:function:billing:$LATEST",
            "approximateInvokeCount": 3},
        "requestPayload": common::event("eventbridge-order-failed"),
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST",
                            "functionError": "Unhandled"},
        "responsePayload": {"errorType": "Error", "errorMessage": "billing failed"}
    });
    let original = q.send(&record.to_string(), None).await;
    // Its task is created; the answer is lost.
    deliver(&mut stack, &q, false).await;
    assert_eq!(stack.connect.tasks().len(), 1);
    to_dlq(&q, &dlq, 1).await;

    let (code, out, err) = run(redrive(&moto, &["--from", &dlq.url]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("raw message, in the signed envelope"), "{out}");
    let moved = q.receive(30).await;
    assert_eq!(moved.len(), 1);
    assert_eq!(identity_of(&moved[0]), original);
    q.make_visible(&moved).await;
    let answers = deliver(&mut stack, &q, true).await;
    assert!(batch_failures(&answers[0]).is_empty(), "{answers:?}");
    let stats = stack.connect.stats();
    assert_eq!(stack.connect.tasks().len(), 1, "a second task: {stats:?}");
    assert_eq!(stats.replayed, 1, "{stats:?}");
    stack.stop().await;
}

/// A `--rate` so slow that a receive's visibility (the batch's share of time, plus a margin)
/// passes SQS's 12 hours is a usage error before any call: it made every ReceiveMessage fail
/// (InvalidParameterValue, exit 1 as if some messages had failed), and a tinier one (1e-300)
/// panicked converting the interval (exit 101).
#[tokio::test]
async fn a_rate_too_slow_for_sqs_is_a_usage_error() {
    let moto = moto().await;
    let dlq = Queue::new(&moto, "tasks-dlq", None).await;
    let q = Queue::new(&moto, "tasks", Some(&dlq)).await;
    dlq.send("{\"n\": 1}", None).await;
    for rate in ["0.00001", "1e-300"] {
        let (code, out, err) = run(redrive(&moto, &["--from", &dlq.url, "--rate", rate]));
        assert_eq!(code, 2, "--rate {rate}: {err}");
        assert!(out.is_empty(), "{out}");
        assert!(err.contains("--rate must be at least"), "{err}");
    }
    let (code, _, err) = run(redrive(&moto, &["--from", &dlq.url, "--rate", "0.001"]));
    assert_eq!(code, 0, "{err}");
    assert_eq!((dlq.count().await, q.count().await), (0, 1));
}

/// Lambda invokes an event source mapping's batch (SQS, Kinesis, DynamoDB Streams) synchronously:
/// a failure record carrying one was written by someone who may send to the failure queue, not
/// by Lambda. Signed into the function's envelope by redrive, its SQS record's claim on another
/// message's messageId became the function's word (the victim then answered with the forger's
/// task); it is left in place, refused, as a forged envelope is.
#[tokio::test]
async fn a_failure_record_claiming_a_queue_message_is_refused() {
    let moto = moto().await;
    let q = Queue::new(&moto, "tasks", None).await;
    let failures = Queue::new(&moto, "failures", None).await;
    let mut stack = stack(&moto, &q, &[]).await;
    // The victim's message, waiting elsewhere (in the DLQ, say) while the claim goes first.
    let victim = q.send("{\"orderId\": \"ord-1\"}", None).await;
    let waiting = q.receive(120).await;
    let claim = json!({"Records": [{
        "messageId": victim, "body": "{\"orderId\": \"written by someone else\"}",
        "attributes": {"SentTimestamp": "1795500000000"}, "messageAttributes": {},
        "md5OfBody": "", "eventSource": "aws:sqs", "eventSourceARN": q.arn,
        "awsRegion": LOCAL_REGION
    }]});
    let record = json!({
        "version": "1.0", "timestamp": "2026-11-26T10:00:00.000Z",
        "requestContext": {"requestId": "r-1", "condition": "RetriesExhausted",
            "functionArn": "arn:aws:lambda:eu-west-1:123456789012:function:bridge:$LATEST",
            "approximateInvokeCount": 3},
        "requestPayload": claim,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST",
                            "functionError": "Unhandled"},
        "responsePayload": {"errorType": "transient.Unavailable", "errorMessage": "m"}
    });
    failures.send(&record.to_string(), None).await;
    let (code, out, err) = run(redrive(&moto, &["--from", &failures.url, "--to", &q.url]));
    assert_eq!(code, 1, "{err}");
    assert!(out.contains("failed 1"), "{out}");
    assert_eq!(failures.count().await, 1, "left in place");

    deliver(&mut stack, &q, true).await;
    q.make_visible(&waiting).await;
    let answers = deliver(&mut stack, &q, true).await;
    assert!(batch_failures(&answers[0]).is_empty(), "{answers:?}");
    let tasks = stack.connect.tasks();
    assert_eq!(tasks.len(), 1);
    assert!(
        tasks[0].request.to_string().contains("ord-1"),
        "the victim's own task: {}",
        tasks[0].request
    );
    stack.stop().await;
}

/// FIFO: a message left in place (forged here; a send SQS refused, one without the key) holds
/// back the rest of its group: moving the next one would let it overtake the earlier one, and
/// the function would handle the group out of order. Other groups move; the summary counts what
/// waits behind it.
#[tokio::test]
async fn a_fifo_message_left_in_place_holds_back_the_rest_of_its_group() {
    let moto = moto().await;
    let dlq = Queue::new(&moto, "orders-dlq.fifo", None).await;
    let q = Queue::new(&moto, "orders.fifo", Some(&dlq)).await;
    let other = EnvelopeKeys::new(vec![b"not-the-functions-key".to_vec()]).unwrap();
    let forged = envelope(&json!({"Records": []}), Some(&other));
    dlq.send(&forged, Some("a")).await;
    dlq.send("{\"a\": 1}", Some("a")).await;
    dlq.send("{\"a\": 2}", Some("a")).await;
    dlq.send("{\"b\": 1}", Some("b")).await;
    // Two seconds' worth at 2/s: a receive takes four, both groups' first ones together.
    let (code, out, err) = run(redrive(&moto, &["--from", &dlq.url, "--rate", "2"]));
    assert_eq!(code, 1, "{err}");
    let moved: Vec<String> = q
        .receive(30)
        .await
        .iter()
        .map(|m| {
            let opened = queued_payload(m.body.as_deref().unwrap(), Some(&keys()));
            opened.unwrap().unwrap().payload["Records"][0]["body"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(moved, ["{\"b\": 1}"], "group a moved past its first: {out}");
    assert_eq!(dlq.count().await, 3);
    assert!(out.contains("failed 1"), "{out}");
    assert!(
        out.contains("left behind an earlier message of its FIFO group left in place"),
        "{out}"
    );
}

/// A message left in place comes back into view once its receive's visibility ends (7 s at
/// 2/s); a slow run receives it again and again. It is one message: counted once, and not
/// against `--max`. Before, every new receipt counted it again as skipped ("received again"):
/// 23 messages reported as 27 or more, and a `--max` run spent its count on them.
#[tokio::test]
async fn a_message_left_in_place_is_counted_once_however_long_the_run() {
    let moto = moto().await;
    let dlq = Queue::new(&moto, "tasks-dlq", None).await;
    let q = Queue::new(&moto, "tasks", Some(&dlq)).await;
    let other = EnvelopeKeys::new(vec![b"not-the-functions-key".to_vec()]).unwrap();
    for i in 0..3 {
        dlq.send(&envelope(&json!({ "Records": [i] }), Some(&other)), None)
            .await;
    }
    for i in 0..20 {
        dlq.send(&format!("{{\"n\": {i}}}"), None).await;
    }
    let (code, out, err) = run(redrive(&moto, &["--from", &dlq.url, "--rate", "2"]));
    assert_eq!(code, 1, "{err}");
    assert!(
        out.starts_with("redrive: moved 20, skipped 0, failed 3"),
        "{out}"
    );
    assert_eq!((q.count().await, dlq.count().await), (20, 3));
}

/// The rule's DLQ is shared by the event rule (its events go back to the task queue) and the
/// priority rule (#22: back to the priority queue). Each event names its rule in its RULE_ARN
/// message attribute, and `--rule-arn` moves only that rule's: before, a run moved the whole DLQ
/// to its one `--to`, so the docs' "--to PriorityQueueUrl puts them back in their lane" put the
/// normal rule's events in the priority lane too.
#[tokio::test]
async fn the_rules_dlq_goes_back_one_rule_at_a_time() {
    let moto = moto().await;
    let tasks = Queue::new(&moto, "tasks", None).await;
    let urgent = Queue::new(&moto, "urgent", None).await;
    let rule_dlq = Queue::new(&moto, "rule-dlq", None).await;
    let (main_rule, priority_rule) = (
        "arn:aws:events:eu-west-1:123456789012:rule/main",
        "arn:aws:events:eu-west-1:123456789012:rule/priority",
    );
    let mut urgent_event = common::event("eventbridge-order-failed");
    urgent_event["id"] = json!("urgent-1");
    let normal_event = common::event("eventbridge-order-failed");
    for (event, rule) in [(&urgent_event, priority_rule), (&normal_event, main_rule)] {
        rule_dlq
            .sqs
            .send_message()
            .queue_url(&rule_dlq.url)
            .message_body(event.to_string())
            .message_attributes(
                "RULE_ARN",
                aws_sdk_sqs::types::MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(rule)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }
    let (code, out, err) = run(redrive(
        &moto,
        &[
            "--from",
            &rule_dlq.url,
            "--to",
            &urgent.url,
            "--rule-arn",
            priority_rule,
        ],
    ));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("redrive: moved 1, skipped 1, failed 0"),
        "{out}"
    );
    let moved = urgent.receive(30).await;
    assert_eq!(moved.len(), 1);
    assert_eq!(
        serde_json::from_str::<Value>(moved[0].body.as_deref().unwrap()).unwrap()["id"],
        "urgent-1"
    );
    let (code, out, err) = run(redrive(
        &moto,
        &[
            "--from",
            &rule_dlq.url,
            "--to",
            &tasks.url,
            "--rule-arn",
            main_rule,
        ],
    ));
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("redrive: moved 1, skipped 0, failed 0"),
        "{out}"
    );
    assert_eq!((tasks.count().await, rule_dlq.count().await), (1, 0));
}

/// The envelope key rotated while the function is warm: redrive signs with the new version,
/// which the environment (it read the key at its cold start) did not know, and refused every
/// redriven message as forged (InvalidSignature), delivery after delivery, back to the DLQ (a
/// queued webhook written by a newer environment met the same). The environment now reads the
/// key again after an envelope that does not verify (at most once a minute), so the message's
/// next delivery is the task.
#[tokio::test]
async fn a_redrive_signed_after_a_key_rotation_is_opened_by_a_warm_function() {
    let moto = moto().await;
    let dlq = Queue::new(&moto, "tasks-dlq", None).await;
    let q = Queue::new(&moto, "tasks", Some(&dlq)).await;
    let mut stack = stack(&moto, &q, &[]).await;
    q.send("{\"warm\": 1}", None).await;
    deliver(&mut stack, &q, true).await;
    assert_eq!(stack.connect.tasks().len(), 1);
    moto.secrets_client()
        .put_secret_value()
        .secret_id("envelope")
        .secret_string("the-key-rotated")
        .send()
        .await
        .unwrap();
    dlq.send("{\"orderId\": \"ord-1\"}", None).await;
    let (code, _, err) = run(redrive(&moto, &["--from", &dlq.url]));
    assert_eq!(code, 0, "{err}");
    // Delivered twice (the first may meet the old key), the answer not deleting it.
    let mut failed = Vec::new();
    for _ in 0..2 {
        let answers = deliver(&mut stack, &q, false).await;
        failed = answers.iter().flat_map(batch_failures).collect();
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    assert!(failed.is_empty(), "refused on its second delivery too");
    assert_eq!(stack.connect.tasks().len(), 2);
    stack.stop().await;
}
