//! The task queue, storage-first: what the function puts on it (webhooks in `queued` mode,
//! direct requests Connect throttled) and how it hands a received message back for later
//! (records the pace could not serve before the invocation's deadline).
//!
//! A message the function queues is the payload it received, whole, in an envelope of its own
//! (`{"connectTaskBridge": {"version": 1, "payload": ...}}`). Read back from the queue it is
//! opened by the same source as before, so the record has the same identity, route and task;
//! the queue's `SentTimestamp` (set by SQS, not by the sender) stands in for "now" in checks
//! that depend on time, such as a signature's timestamp window: the request was fresh when it
//! was queued. Whoever may send to the task queue can create tasks anyway (it is an SQS
//! source); through this envelope they reach only the namespaces webhook and direct callers
//! already reach (see `token`).

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry;
use serde_json::{json, Value};

use crate::error::{BridgeError, Op};

/// The envelope's key: a body that is an object with this one key is the function's own.
pub const ENVELOPE_KEY: &str = "connectTaskBridge";
const ENVELOPE_VERSION: u64 = 1;

/// SQS holds a message invisible for at most 12 hours.
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

/// A received queue message: enough to hand it back for later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    pub queue_arn: String,
    pub receipt_handle: String,
}

/// The payload inside a body the function queued, if the body is one.
pub fn queued_payload(body: &str) -> Option<Result<Value, BridgeError>> {
    // Cheap test first: most bodies are not ours, and parsing a large one twice costs.
    if !body.trim_start().starts_with('{') || !body.contains(ENVELOPE_KEY) {
        return None;
    }
    let Ok(Value::Object(mut outer)) = serde_json::from_str::<Value>(body) else {
        return None;
    };
    if outer.len() != 1 {
        return None;
    }
    let mut inner = match outer.remove(ENVELOPE_KEY)? {
        Value::Object(inner) => inner,
        _ => return None,
    };
    let version = inner.get("version").and_then(Value::as_u64);
    Some(match (version, inner.remove("payload")) {
        (Some(ENVELOPE_VERSION), Some(payload)) => Ok(payload),
        _ => Err(BridgeError::InvalidEvent(format!(
            "a queued {ENVELOPE_KEY} message needs version {ENVELOPE_VERSION} and a payload"
        ))),
    })
}

/// The body that carries `payload` through the queue.
pub fn envelope(payload: &Value) -> String {
    json!({ ENVELOPE_KEY: { "version": ENVELOPE_VERSION, "payload": payload } }).to_string()
}

/// The queue's URL from its ARN (`arn:aws:sqs:REGION:ACCOUNT:NAME`), in the documented form;
/// the SDK sends it to the endpoint it is configured with.
pub fn url_of(queue_arn: &str) -> Option<String> {
    let mut parts = queue_arn.split(':');
    let (Some("arn"), Some(partition), Some("sqs"), Some(region), Some(account), Some(name)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let domain = match partition {
        "aws-cn" => "amazonaws.com.cn",
        _ => "amazonaws.com",
    };
    Some(format!("https://sqs.{region}.{domain}/{account}/{name}"))
}

/// The task queue and its client, built at cold start.
#[derive(Debug, Clone)]
pub struct TaskQueue {
    client: aws_sdk_sqs::Client,
    /// Where the function puts what it queues (`TASK_QUEUE_URL`); None: it queues nothing.
    url: Option<String>,
}

impl TaskQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: Option<String>) -> TaskQueue {
        TaskQueue { client, url }
    }

    pub fn can_enqueue(&self) -> bool {
        self.url.is_some()
    }

    /// Whether `queue_arn` names the task queue: the only queue whose messages the function
    /// hands back (the only one its role may change visibilities on).
    pub fn is_task_queue(&self, queue_arn: &str) -> bool {
        let tail = |url: &str| {
            let mut parts = url.trim_end_matches('/').rsplit('/');
            (
                parts.next().map(str::to_string),
                parts.next().map(str::to_string),
            )
        };
        match (&self.url, url_of(queue_arn)) {
            (Some(ours), Some(theirs)) => tail(ours) == tail(&theirs),
            _ => false,
        }
    }

    /// Puts `payload` on the task queue. Only an answer from SQS counts: a 2xx to the caller is
    /// given only for what is durably queued.
    pub async fn enqueue(&self, payload: &Value) -> Result<(), BridgeError> {
        let url = self.url.as_deref().ok_or(BridgeError::Dispatch {
            code: "QueueNotConfigured",
            message: "no TASK_QUEUE_URL to queue the request on".into(),
        })?;
        self.client
            .send_message()
            .queue_url(url)
            .message_body(envelope(payload))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Op::SendMessage.error(e))
    }

    /// Makes each message visible again after its delay, instead of the queue's whole
    /// visibility timeout. Failures are logged and otherwise harmless: the message then comes
    /// back when its visibility timeout ends.
    pub async fn postpone(&self, messages: Vec<(QueueMessage, Duration)>) {
        let mut by_queue: BTreeMap<String, Vec<(String, Duration)>> = BTreeMap::new();
        for (message, delay) in messages {
            by_queue
                .entry(message.queue_arn)
                .or_default()
                .push((message.receipt_handle, delay));
        }
        for (arn, entries) in by_queue {
            // Queue names can carry business names: the log says how many, never which queue.
            let Some(url) = url_of(&arn) else {
                tracing::warn!(
                    messages = entries.len(),
                    "cannot hand messages back: their event source is not an SQS queue ARN"
                );
                continue;
            };
            for chunk in entries.chunks(10) {
                let batch = chunk
                    .iter()
                    .enumerate()
                    .filter_map(|(i, (handle, delay))| {
                        ChangeMessageVisibilityBatchRequestEntry::builder()
                            .id(format!("m{i}"))
                            .receipt_handle(handle)
                            .visibility_timeout(visibility_secs(*delay))
                            .build()
                            .ok()
                    })
                    .collect::<Vec<_>>();
                let sent = self
                    .client
                    .change_message_visibility_batch()
                    .queue_url(&url)
                    .set_entries(Some(batch))
                    .send()
                    .await;
                match sent {
                    Ok(out) if out.failed().is_empty() => {}
                    Ok(out) => tracing::warn!(
                        failed = out.failed().len(),
                        "some messages keep the queue's visibility timeout"
                    ),
                    Err(e) => tracing::warn!(
                        messages = chunk.len(),
                        error = %Op::ChangeMessageVisibilityBatch.error(e),
                        "messages keep the queue's visibility timeout"
                    ),
                }
            }
        }
    }
}

/// Whole seconds, rounded up, at least 1 (0 would hand it straight back to a busy poller) and
/// at most SQS's 12 hours.
fn visibility_secs(delay: Duration) -> i32 {
    let secs = delay.min(MAX_VISIBILITY).as_secs_f64().ceil().max(1.0);
    secs as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_queued_reads_back_whole_and_nothing_else_looks_queued() {
        let payload = json!({"httpMethod": "POST", "body": "{\"a\":1}", "requestContext": {}});
        let body = envelope(&payload);
        assert_eq!(queued_payload(&body).unwrap().unwrap(), payload);
        for other in [
            "plain text",
            "{\"orderId\": 1}",
            "{\"connectTaskBridge\": 1, \"other\": 2}",
            "[\"connectTaskBridge\"]",
            "{\"connectTaskBridge\"",
        ] {
            assert!(queued_payload(other).is_none(), "{other}");
        }
        let wrong = "{\"connectTaskBridge\": {\"version\": 9, \"payload\": {}}}";
        assert!(queued_payload(wrong).unwrap().is_err());
    }

    #[test]
    fn only_the_task_queue_is_the_task_queue() {
        let client = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::Config::builder()
                .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
                .build(),
        );
        let queue = TaskQueue::new(
            client.clone(),
            Some("http://127.0.0.1:5000/123456789012/tasks".into()),
        );
        assert!(queue.is_task_queue("arn:aws:sqs:eu-west-1:123456789012:tasks"));
        assert!(!queue.is_task_queue("arn:aws:sqs:eu-west-1:123456789012:tasks-dlq"));
        assert!(!queue.is_task_queue("arn:aws:sqs:eu-west-1:999999999999:tasks"));
        assert!(!TaskQueue::new(client, None).is_task_queue("arn:aws:sqs:eu-west-1:1:tasks"));
    }

    #[test]
    fn urls_come_from_arns() {
        assert_eq!(
            url_of("arn:aws:sqs:eu-west-1:111122223333:tasks.fifo").as_deref(),
            Some("https://sqs.eu-west-1.amazonaws.com/111122223333/tasks.fifo")
        );
        assert_eq!(url_of("arn:aws:sns:eu-west-1:1:t"), None);
        assert_eq!(url_of(""), None);
    }

    #[test]
    fn visibility_is_whole_seconds_within_sqs_bounds() {
        assert_eq!(visibility_secs(Duration::ZERO), 1);
        assert_eq!(visibility_secs(Duration::from_millis(1200)), 2);
        assert_eq!(visibility_secs(Duration::from_secs(100_000)), 43_200);
    }
}
