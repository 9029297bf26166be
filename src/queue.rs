//! The task queue, storage-first: what the function puts on it (webhooks in `queued` mode,
//! direct requests Connect throttled) and how it hands a received message back for later
//! (records the pace could not serve before the invocation's deadline).
//!
//! A message the function queues is the payload it received, whole, in an envelope of its own.
//! With the function's envelope key (`ENVELOPE_SECRET_ID`, a secret the template creates and
//! keeps across deploys) the envelope is signed:
//! `{"connectTaskBridge": {"version": 2, "payload": "<the payload's JSON text>", "mac": hex}}`,
//! `mac` an HMAC-SHA256 of `ctb-envelope-v2\n` + the text under the key. Read back, a signed
//! envelope is the function's own word: the request was checked when it came in (its webhook
//! signature included, so a secret rotated since, or an environment that started before the
//! rotation, cannot turn a 202 into a refusal), and it is opened without checking it again.
//! A signature that does not verify under the key's current or previous version is refused.
//! Without a key (tests, `send`), and for messages queued before the key existed, the envelope
//! is unsigned (`"version": 1, "payload": {...}`) and what it carries is checked again as it
//! was the first time, with the queue's `SentTimestamp` (set by SQS, not by the sender) as
//! "now". Either way the record has the same identity, route and task as the request had.
//! `redrive` writes the same signed envelope around a dead-letter message (a hold's shape, the
//! message in a batch of its own), which is how a raw message keeps its `messageId`.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::error::{BridgeError, Op};
use crate::plan::Priority;

/// The envelope's key: a body that is an object with this one key is the function's own.
pub const ENVELOPE_KEY: &str = "connectTaskBridge";
const ENVELOPE_VERSION: u64 = 1;
const SIGNED_VERSION: u64 = 2;
const MAC_CONTEXT: &[u8] = b"ctb-envelope-v2\n";

/// The function's envelope key: its current version signs, the previous one still verifies
/// (a rotation never refuses what was queued before it). Fetched from Secrets Manager, it is
/// read again after an envelope that does not verify (`refresh`): a rotation since the cold
/// start (a redrive, a newer environment sign with the new version) is not a forgery.
pub struct EnvelopeKeys {
    keys: std::sync::RwLock<Vec<Vec<u8>>>,
    /// Where they came from, to read them again; None when given.
    source: Option<KeySource>,
}

struct KeySource {
    secret_id: String,
    client: aws_sdk_secretsmanager::Client,
    /// The last fetch after a failed check (None: none yet).
    last: std::sync::Mutex<Option<std::time::Instant>>,
}

/// At most one fetch of the key a minute after failed checks (forged envelopes cost no more).
const REFRESH_INTERVAL: Duration = Duration::from_secs(60);

impl std::fmt::Debug for EnvelopeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvelopeKeys")
            .field("versions", &self.read().len())
            .finish_non_exhaustive()
    }
}

fn usable(keys: Vec<Vec<u8>>) -> Option<Vec<Vec<u8>>> {
    let keys: Vec<Vec<u8>> = keys.into_iter().filter(|k| !k.is_empty()).collect();
    (!keys.is_empty()).then_some(keys)
}

impl EnvelopeKeys {
    /// `keys[0]` signs; all verify. None when there is no key.
    pub fn new(keys: Vec<Vec<u8>>) -> Option<EnvelopeKeys> {
        usable(keys).map(|keys| EnvelopeKeys {
            keys: std::sync::RwLock::new(keys),
            source: None,
        })
    }

    /// The key as `ENVELOPE_SECRET_ID` names it in Secrets Manager (current and previous).
    pub async fn fetch(
        secret_id: &str,
        client: &aws_sdk_secretsmanager::Client,
    ) -> Result<EnvelopeKeys, crate::error::ConfigError> {
        let keys =
            crate::webhook_auth::fetch_versions_of("ENVELOPE_SECRET_ID", secret_id, client).await?;
        let keys = usable(keys).ok_or(crate::error::ConfigError::Env {
            name: "ENVELOPE_SECRET_ID",
            message: "the secret is empty".into(),
        })?;
        Ok(EnvelopeKeys {
            keys: std::sync::RwLock::new(keys),
            source: Some(KeySource {
                secret_id: secret_id.to_string(),
                client: client.clone(),
                last: std::sync::Mutex::new(None),
            }),
        })
    }

    /// After an envelope that did not verify: reads the key again unless that was done less
    /// than a minute ago. Whether new keys were read (a failed fetch keeps the keys held).
    pub async fn refresh(&self) -> bool {
        let Some(source) = &self.source else {
            return false;
        };
        {
            let mut last = source.last.lock().expect("not poisoned");
            if last.is_some_and(|t| t.elapsed() < REFRESH_INTERVAL) {
                return false;
            }
            *last = Some(std::time::Instant::now());
        }
        let fetched = crate::webhook_auth::fetch_versions_of(
            "ENVELOPE_SECRET_ID",
            &source.secret_id,
            &source.client,
        )
        .await;
        match fetched.ok().and_then(usable) {
            Some(keys) => {
                *self.keys.write().expect("not poisoned") = keys;
                tracing::info!("envelope key read again after an envelope that did not verify");
                true
            }
            None => {
                tracing::warn!("envelope key could not be read again");
                false
            }
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Vec<u8>>> {
        self.keys.read().expect("not poisoned")
    }

    fn mac(key: &[u8], text: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
        mac.update(MAC_CONTEXT);
        mac.update(text.as_bytes());
        mac
    }

    pub fn sign(&self, text: &str) -> String {
        hex::encode(Self::mac(&self.read()[0], text).finalize().into_bytes())
    }

    pub fn verify(&self, text: &str, mac_hex: &str) -> bool {
        let Ok(digest) = hex::decode(mac_hex) else {
            return false;
        };
        // verify_slice compares in constant time.
        self.read()
            .iter()
            .any(|key| Self::mac(key, text).verify_slice(&digest).is_ok())
    }
}

/// A payload read back from the task queue, and whether the function's own signature vouches
/// for it (then it was checked when it came in, and is not checked again).
#[derive(Debug)]
pub struct Queued {
    pub payload: Value,
    pub signed: bool,
    /// How many times it was held for Connect's exhausted quota.
    pub holds: u32,
}

/// SQS holds a message invisible for at most 12 hours.
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

/// A received queue message: enough to hand it back for later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    pub queue_arn: String,
    pub receipt_handle: String,
    /// SQS's messageId: what a turn reserved for it is named by (`pace::turns`).
    pub message_id: String,
    /// SQS's ApproximateReceiveCount (None: not given).
    pub receive_count: Option<u32>,
}

/// A hold's delay: `base` (a minute by default, `QUOTA_HOLD_SECONDS`), doubled with each hold,
/// at most SQS's 15 minutes.
pub fn hold_delay(base: Duration, holds: u32) -> Duration {
    (base * (1u32 << holds.min(10))).min(Duration::from_secs(900))
}

/// The payload inside a body the function queued, if the body is one.
pub fn queued_payload(
    body: &str,
    keys: Option<&EnvelopeKeys>,
) -> Option<Result<Queued, BridgeError>> {
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
        (Some(ENVELOPE_VERSION), Some(payload)) => Ok(Queued {
            payload,
            signed: false,
            holds: 0,
        }),
        (Some(SIGNED_VERSION), Some(Value::String(text))) => {
            let mac = inner.get("mac").and_then(Value::as_str).unwrap_or_default();
            match keys {
                Some(keys) if keys.verify(&text, mac) => serde_json::from_str(&text)
                    .map(|payload| Queued {
                        payload,
                        signed: true,
                        holds: inner
                            .get("holds")
                            .and_then(Value::as_u64)
                            .map_or(0, |h| h.min(u64::from(u32::MAX)) as u32),
                    })
                    .map_err(|_| BridgeError::InvalidEvent("a signed envelope's payload is not JSON".into())),
                // Not the function's signature: someone who may send to the queue wrote it.
                Some(_) => Err(BridgeError::Unauthorized),
                None => Err(BridgeError::InvalidEvent(format!(
                    "a signed {ENVELOPE_KEY} message needs the envelope key (ENVELOPE_SECRET_ID) to be read"
                ))),
            }
        }
        _ => Err(BridgeError::InvalidEvent(format!(
            "a queued {ENVELOPE_KEY} message needs version {ENVELOPE_VERSION} and a payload, or version {SIGNED_VERSION}, a payload text and its mac"
        ))),
    })
}

/// The body that carries `payload` through the queue: signed with `keys` when there are any.
pub fn envelope(payload: &Value, keys: Option<&EnvelopeKeys>) -> String {
    held_envelope(payload, keys, 0)
}

/// `envelope`, for a payload held `holds` times (only a signed envelope says so).
fn held_envelope(payload: &Value, keys: Option<&EnvelopeKeys>, holds: u32) -> String {
    match keys {
        Some(keys) => {
            let text = payload.to_string();
            let mac = keys.sign(&text);
            let mut inner = json!({ "version": SIGNED_VERSION, "payload": text, "mac": mac });
            if holds > 0 {
                inner["holds"] = json!(holds);
            }
            json!({ ENVELOPE_KEY: inner }).to_string()
        }
        None => {
            json!({ ENVELOPE_KEY: { "version": ENVELOPE_VERSION, "payload": payload } }).to_string()
        }
    }
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
    /// Where it puts what high-priority routes queue (`PRIORITY_QUEUE_URL`): a queue of its
    /// own, drained by its own event source mapping, so that a backlog on the task queue never
    /// holds an urgent record back.
    priority_url: Option<String>,
    /// Signs what the function queues (None: unsigned envelopes).
    keys: Option<std::sync::Arc<EnvelopeKeys>>,
    /// The first hold's delay.
    hold_base: Duration,
}

impl TaskQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: Option<String>) -> TaskQueue {
        TaskQueue {
            client,
            url,
            priority_url: None,
            keys: None,
            hold_base: Duration::from_secs(60),
        }
    }

    /// The first hold's delay (`QUOTA_HOLD_SECONDS`).
    pub fn with_hold_base(mut self, base: Duration) -> TaskQueue {
        self.hold_base = base;
        self
    }

    /// What high-priority routes queue goes to `url` (`PRIORITY_QUEUE_URL`).
    pub fn with_priority_queue(mut self, url: Option<String>) -> TaskQueue {
        self.priority_url = url;
        self
    }

    /// The queue a record of `priority` goes to. A high-priority record is never put on the
    /// normal queue instead (behind its backlog): without a priority queue it is an error,
    /// which the configuration check makes a cold-start error.
    fn url_for(&self, priority: Priority) -> Result<&str, BridgeError> {
        let url = match priority {
            Priority::Normal => self.url.as_deref(),
            Priority::High => self.priority_url.as_deref(),
        };
        url.ok_or_else(|| BridgeError::Dispatch {
            code: "QueueNotConfigured",
            message: match priority {
                Priority::Normal => "no TASK_QUEUE_URL to queue the request on".into(),
                Priority::High => {
                    "no PRIORITY_QUEUE_URL to queue a high-priority request on".into()
                }
            },
        })
    }

    /// What the function queues is signed with `keys`.
    pub fn with_keys(mut self, keys: Option<std::sync::Arc<EnvelopeKeys>>) -> TaskQueue {
        self.keys = keys;
        self
    }

    pub fn can_enqueue(&self) -> bool {
        self.url.is_some()
    }

    /// Whether it can hold a record for Connect's quota: only in a signed envelope, which
    /// nobody else can write, may a record carry its identity back through the queue.
    pub fn can_hold(&self) -> bool {
        self.url.is_some() && self.keys.is_some()
    }

    /// Puts `payload` back on its lane's queue for the `holds`-th time, signed, after
    /// `hold_delay(base, holds - 1)`.
    pub async fn hold(
        &self,
        payload: &Value,
        holds: u32,
        priority: Priority,
    ) -> Result<(), BridgeError> {
        let Some(keys) = self.keys.as_deref() else {
            return Err(BridgeError::Dispatch {
                code: "QueueNotConfigured",
                message: "holding needs TASK_QUEUE_URL and ENVELOPE_SECRET_ID".into(),
            });
        };
        let url = self.url_for(priority)?;
        let delay = hold_delay(self.hold_base, holds.saturating_sub(1));
        self.client
            .send_message()
            .queue_url(url)
            .message_body(held_envelope(payload, Some(keys), holds))
            .delay_seconds(delay.as_secs() as i32)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| Op::SendMessage.error(e))
    }

    /// Whether `queue_arn` names the task queue or the priority queue: the only queues whose
    /// messages the function hands back (the only ones its role may change visibilities on).
    pub fn is_task_queue(&self, queue_arn: &str) -> bool {
        let tail = |url: &str| {
            let mut parts = url.trim_end_matches('/').rsplit('/');
            (
                parts.next().map(str::to_string),
                parts.next().map(str::to_string),
            )
        };
        let Some(theirs) = url_of(queue_arn) else {
            return false;
        };
        [&self.url, &self.priority_url]
            .into_iter()
            .flatten()
            .any(|ours| tail(ours) == tail(&theirs))
    }

    /// Puts `payload` on its lane's queue. Only an answer from SQS counts: a 2xx to the caller
    /// is given only for what is durably queued.
    pub async fn enqueue(&self, payload: &Value, priority: Priority) -> Result<(), BridgeError> {
        let url = self.url_for(priority)?;
        self.client
            .send_message()
            .queue_url(url)
            .message_body(envelope(payload, self.keys.as_deref()))
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
        let body = envelope(&payload, None);
        let read = queued_payload(&body, None).unwrap().unwrap();
        assert_eq!(read.payload, payload);
        assert!(!read.signed);
        for other in [
            "plain text",
            "{\"orderId\": 1}",
            "{\"connectTaskBridge\": 1, \"other\": 2}",
            "[\"connectTaskBridge\"]",
            "{\"connectTaskBridge\"",
        ] {
            assert!(queued_payload(other, None).is_none(), "{other}");
        }
        let wrong = "{\"connectTaskBridge\": {\"version\": 9, \"payload\": {}}}";
        assert!(queued_payload(wrong, None).unwrap().is_err());
    }

    /// The function's signature vouches for what it queued, under the key's current or
    /// previous version; anything else claiming to be signed is refused.
    #[test]
    fn a_signed_envelope_is_the_functions_word_and_nobody_elses() {
        let payload = json!({"Name": "n", "Attributes": {"k": "v"}});
        let keys = EnvelopeKeys::new(vec![b"new".to_vec(), b"old".to_vec()]).unwrap();
        let old = EnvelopeKeys::new(vec![b"old".to_vec()]).unwrap();
        let other = EnvelopeKeys::new(vec![b"someone-else".to_vec()]).unwrap();
        for signer in [&keys, &old] {
            let body = envelope(&payload, Some(signer));
            let read = queued_payload(&body, Some(&keys)).unwrap().unwrap();
            assert_eq!(read.payload, payload);
            assert!(read.signed);
        }
        let forged = envelope(&payload, Some(&other));
        assert!(matches!(
            queued_payload(&forged, Some(&keys)).unwrap(),
            Err(BridgeError::Unauthorized)
        ));
        // The payload changed under its mac.
        let body = envelope(&payload, Some(&keys));
        let tampered = body.replace("\\\"v\\\"", "\\\"w\\\"");
        assert_ne!(tampered, body);
        assert!(matches!(
            queued_payload(&tampered, Some(&keys)).unwrap(),
            Err(BridgeError::Unauthorized)
        ));
        // No key to read it with: refused, never read unchecked.
        assert!(queued_payload(&body, None).unwrap().is_err());
        assert!(!format!("{keys:?}").contains("new"));
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
        assert!(
            !TaskQueue::new(client.clone(), None).is_task_queue("arn:aws:sqs:eu-west-1:1:tasks")
        );
        // The priority queue is the function's too: its messages are handed back through it.
        let lanes =
            queue.with_priority_queue(Some("http://127.0.0.1:5000/123456789012/urgent".into()));
        assert!(lanes.is_task_queue("arn:aws:sqs:eu-west-1:123456789012:tasks"));
        assert!(lanes.is_task_queue("arn:aws:sqs:eu-west-1:123456789012:urgent"));
        assert!(!lanes.is_task_queue("arn:aws:sqs:eu-west-1:123456789012:urgent-dlq"));
    }

    #[test]
    fn each_lane_has_its_queue_and_an_urgent_record_never_joins_the_backlog() {
        let client = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::Config::builder()
                .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
                .build(),
        );
        let one = TaskQueue::new(client, Some("https://q/1/tasks".into()));
        assert_eq!(one.url_for(Priority::Normal).unwrap(), "https://q/1/tasks");
        let err = one.url_for(Priority::High).unwrap_err();
        assert_eq!(err.code(), "QueueNotConfigured");
        let two = one.with_priority_queue(Some("https://q/1/urgent".into()));
        assert_eq!(two.url_for(Priority::High).unwrap(), "https://q/1/urgent");
        assert_eq!(two.url_for(Priority::Normal).unwrap(), "https://q/1/tasks");
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
    fn holds_wait_longer_each_time_up_to_sqs_limit() {
        let minute = Duration::from_secs(60);
        assert_eq!(hold_delay(minute, 0), minute);
        assert_eq!(hold_delay(minute, 1), 2 * minute);
        assert_eq!(hold_delay(minute, 3), 8 * minute);
        assert_eq!(hold_delay(minute, 4), Duration::from_secs(900));
        assert_eq!(hold_delay(minute, u32::MAX), Duration::from_secs(900));
    }

    #[test]
    fn visibility_is_whole_seconds_within_sqs_bounds() {
        assert_eq!(visibility_secs(Duration::ZERO), 1);
        assert_eq!(visibility_secs(Duration::from_millis(1200)), 2);
        assert_eq!(visibility_secs(Duration::from_secs(100_000)), 43_200);
    }
}
