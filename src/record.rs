//! One unit of work: a single event, SQS message, SNS notification, webhook request or direct
//! request, reduced to what routing, templates and the client token need, whatever its source.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use serde::Serialize;
use serde_json::Value;

use crate::error::BridgeError;
use crate::task::TaskRequest;
use crate::token::Identity;

/// Where a record came from: the name mappings match on (`when.source`) and logs show. Each
/// source module declares its own kinds; `sources::REGISTRY` is the one list of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourceKind {
    name: &'static str,
    /// An HTTP kind, which `when.source: webhook` stands for.
    http: bool,
}

impl SourceKind {
    pub const fn new(name: &'static str) -> SourceKind {
        SourceKind { name, http: false }
    }

    /// A kind of webhook request.
    pub const fn http(name: &'static str) -> SourceKind {
        SourceKind { name, http: true }
    }

    pub fn as_str(self) -> &'static str {
        self.name
    }

    pub fn is_webhook(self) -> bool {
        self.http
    }
}

impl Serialize for SourceKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name)
    }
}

/// One unit of work from a source, whatever the source: its identity, ordering and answer
/// bookkeeping, and the work itself (an event to route, or a request already).
#[derive(Debug, Clone)]
pub struct Record {
    pub kind: SourceKind,
    /// The source's own id of the record: EventBridge id, SQS/SNS message id, webhook request id.
    /// SQS batch item failures are reported with it.
    pub id: String,
    /// What makes this record the same record when it is delivered again, and who chose it; the
    /// client token is derived from it unless the route names its own key (see `token`).
    pub identity: Identity,
    /// The record exactly as it arrived (shared with the templates that read it, not copied).
    pub event: Arc<Value>,
    pub work: Work,
    /// Records with the same key are handled in order, and after a failure the later ones of
    /// that key fail too (a FIFO message group). None: no order to keep.
    pub order_key: Option<String>,
    /// The contact the task is linked to unless the route links it itself (a contact flow's
    /// calling contact); how is `CONTACT_FLOW_LINK`.
    pub linked_contact: Option<String>,
    /// The queue message the record arrived in (SQS only): it is handed back with a delay when
    /// the pace cannot serve it in this invocation, and a record that has one is never queued
    /// again.
    pub queue_message: Option<crate::queue::QueueMessage>,
    /// When the function queued this request itself (answered 202, or queued for the pace):
    /// its request was judged then, and a time it names that has passed since is moved, never
    /// refused (see `prepare`).
    pub queued_at: Option<std::time::SystemTime>,
    /// How many times the function held it for Connect's exhausted quota.
    pub holds: u32,
}

/// What a record asks for.
#[derive(Debug, Clone)]
pub enum Work {
    /// An event for the mapping's routes: what its templates see.
    Route(Content),
    /// A StartTaskContact request already (a direct invocation): sent as it is, never rendered;
    /// with the Step Functions task token that waits for it, if any.
    Direct {
        request: Box<TaskRequest>,
        task_token: Option<String>,
    },
    /// A contact event Connect published about a task: the lifecycle hears how it ended (None:
    /// not about a task).
    Heard(Option<crate::plan::Ending>),
}

/// What routes and templates see of an event besides `source`, `id` and `event` (see
/// `mapping::context`).
#[derive(Debug, Clone)]
pub struct Content {
    /// The payload: EventBridge `detail`, a message body or webhook body parsed as JSON when it is
    /// JSON, else the text itself.
    pub body: Body,
    /// HTTP headers with lower-case names (webhooks only).
    pub headers: BTreeMap<String, String>,
    /// SQS / SNS message attributes with a string value.
    pub attributes: BTreeMap<String, String>,
    /// Source-specific fields: EventBridge source and detail-type, queue, topic, method, path...
    /// A typed struct of the source's own; templates see it as `meta`.
    pub meta: Arc<dyn SourceMeta>,
}

impl Content {
    /// A body and the source's fields, with no headers or attributes.
    pub fn new(body: Body, meta: Arc<dyn SourceMeta>) -> Content {
        Content {
            body,
            headers: BTreeMap::new(),
            attributes: BTreeMap::new(),
            meta,
        }
    }
}

impl Record {
    /// An event to route, with no order to keep, no linked contact and no queue message (a
    /// source sets those it has).
    pub fn event(
        kind: SourceKind,
        id: String,
        identity: Identity,
        event: Arc<Value>,
        content: Content,
    ) -> Record {
        Record::new(kind, id, identity, event, Work::Route(content))
    }

    /// A request to send as it is.
    pub fn direct(
        kind: SourceKind,
        id: String,
        identity: Identity,
        event: Arc<Value>,
        request: TaskRequest,
        task_token: Option<String>,
    ) -> Record {
        let work = Work::Direct {
            request: Box::new(request),
            task_token,
        };
        Record::new(kind, id, identity, event, work)
    }

    /// A contact event for the lifecycle.
    pub fn heard(
        kind: SourceKind,
        id: String,
        identity: Identity,
        event: Arc<Value>,
        ending: Option<crate::plan::Ending>,
    ) -> Record {
        Record::new(kind, id, identity, event, Work::Heard(ending))
    }

    pub(crate) fn new(
        kind: SourceKind,
        id: String,
        identity: Identity,
        event: Arc<Value>,
        work: Work,
    ) -> Record {
        Record {
            kind,
            id,
            identity,
            event,
            work,
            order_key: None,
            linked_contact: None,
            queue_message: None,
            queued_at: None,
            holds: 0,
        }
    }

    /// What templates see, for an event to route.
    pub fn content(&self) -> Option<&Content> {
        match &self.work {
            Work::Route(content) => Some(content),
            Work::Direct { .. } | Work::Heard(_) => None,
        }
    }
}

/// A source's fields of a record (`meta` in templates): each source has its own struct.
pub trait SourceMeta: ToJson + std::fmt::Debug + Send + Sync {
    /// The `source` and `detail-type` of an EventBridge event, however it arrived: what
    /// `when.event_source` and `when.detail_type` match.
    fn event_type(&self) -> Option<(&str, &str)> {
        None
    }
}

/// The JSON templates see of a source's fields.
pub trait ToJson {
    fn to_json(&self) -> Value;
}

impl<T: Serialize> ToJson for T {
    fn to_json(&self) -> Value {
        // A struct of strings, numbers and lists always serialises.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// A record's body, parsed on first use. A batch holds up to ten 1 MiB messages whose parsed
/// JSON can take 30 times the text's size; parsing each only when its record is handled (and
/// dropping it before the Connect call) keeps one parsed body in memory at a time.
#[derive(Debug, Clone)]
pub struct Body {
    text: Option<String>,
    /// Where in the parsed text the body is (an event queued whole: its `detail`).
    pointer: Option<&'static str>,
    parsed: OnceLock<Arc<Value>>,
}

impl Body {
    /// A body that is already a value (EventBridge `detail`, a webhook's checked JSON).
    pub fn value(value: Value) -> Body {
        Body {
            text: None,
            pointer: None,
            parsed: OnceLock::from(Arc::new(value)),
        }
    }

    /// A message text, parsed as JSON on first use when it is JSON (`parse_body`).
    pub fn text(text: String) -> Body {
        Body {
            text: Some(text),
            pointer: None,
            parsed: OnceLock::new(),
        }
    }

    /// The value at `pointer` in a JSON text, parsed on first use (an EventBridge event that
    /// arrived whole in an SQS message: its `detail`).
    pub fn text_at(text: String, pointer: &'static str) -> Body {
        Body {
            text: Some(text),
            pointer: Some(pointer),
            parsed: OnceLock::new(),
        }
    }

    pub fn get(&self) -> &Value {
        self.parsed_shared()
    }

    /// The parsed body, shared (templates hold it without a copy).
    pub fn shared(&self) -> Arc<Value> {
        Arc::clone(self.parsed_shared())
    }

    fn parsed_shared(&self) -> &Arc<Value> {
        self.parsed.get_or_init(|| {
            let text = self.text.as_deref().unwrap_or_default();
            Arc::new(match self.pointer {
                None => parse_body(text),
                Some(pointer) => serde_json::from_str::<Value>(text)
                    .ok()
                    .and_then(|mut v| v.pointer_mut(pointer).map(Value::take))
                    .unwrap_or(Value::Null),
            })
        })
    }
}

impl std::ops::Deref for Body {
    type Target = Value;
    fn deref(&self) -> &Value {
        self.get()
    }
}

impl PartialEq<Value> for Body {
    fn eq(&self, other: &Value) -> bool {
        self.get() == other
    }
}

/// Parses a body as JSON when it is JSON, so templates can reach into it; keeps it as text
/// otherwise (a plain-text SQS message is still a valid task).
pub fn parse_body(text: &str) -> Value {
    let trimmed = text.trim_start();
    if trimmed.starts_with(['{', '[']) {
        if let Ok(value) = serde_json::from_str(text) {
            return value;
        }
    }
    Value::String(text.to_string())
}

/// The most memory one JSON document may take once parsed (the payload, or one record's body):
/// with the raw payload and the runtime beside it, a function of 128 MB stays within its
/// memory whatever shape a payload Lambda can deliver (6 MB synchronous, 1 MiB asynchronous or
/// per message) has.
pub const PARSED_BUDGET_BYTES: usize = 40 << 20;

/// What a JSON text takes once parsed into a `Value`, estimated from its structure in one pass
/// without allocating, on the safe side of what was measured on this crate's serde_json (objects
/// keep their order: an `IndexMap` each): an object about 450 bytes, each of its members up to
/// 256 more (its key, its bucket, the map's growth), any value about 72, plus the text.
/// 1 MiB of `[{"":0},...]` takes 65 MiB; 2.7 MB of objects of 29 one-letter keys, 94 MiB.
pub fn parsed_cost(text: &[u8]) -> usize {
    const OBJECT: usize = 450;
    const MEMBER: usize = 256;
    const VALUE: usize = 72;
    let (mut objects, mut members, mut values) = (0usize, 0usize, 1usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in text {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' => objects += 1,
            b':' => members += 1,
            b'[' | b',' => values += 1,
            _ => {}
        }
    }
    objects
        .saturating_mul(OBJECT)
        .saturating_add(members.saturating_mul(MEMBER))
        .saturating_add(values.saturating_mul(VALUE))
        .saturating_add(text.len())
}

/// Refuses a JSON text whose parsed form would exceed `PARSED_BUDGET_BYTES`, before parsing it.
pub fn within_budget(text: &str, what: &'static str) -> Result<(), BridgeError> {
    let estimate = parsed_cost(text.as_bytes());
    if estimate > PARSED_BUDGET_BYTES {
        return Err(BridgeError::TooComplex {
            what,
            estimate_mib: estimate >> 20,
            limit_mib: PARSED_BUDGET_BYTES >> 20,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The estimate bounds what parsing really takes, for the worst shapes (measured with
    /// `make bench`'s memory table; here: the estimate grows with what makes memory grow).
    #[test]
    fn the_parsed_cost_counts_objects_values_and_text() {
        let dense = |unit: &str, n: usize| format!("[{}]", vec![unit; n].join(","));
        let objects = parsed_cost(dense("{\"\":0}", 1000).as_bytes());
        let numbers = parsed_cost(dense("0", 1000).as_bytes());
        assert!(objects > 1000 * (450 + 256) && numbers > 1000 * 72 && numbers < 1000 * 80);
        // Members count: 2.7 MB of objects with 29 keys took 94 MiB.
        let keys: Vec<String> = (0..29).map(|k| format!("\"k{k}\":0")).collect();
        let many = dense(&format!("{{{}}}", keys.join(",")), 13_000);
        assert!(parsed_cost(many.as_bytes()) > 94 << 20);
        // Structure inside strings is text, not structure.
        let text = format!("\"{}\"", "{[,".repeat(1000));
        assert!(parsed_cost(text.as_bytes()) < 3100 + 100);
        let escaped = r#"["\"{", "{"]"#;
        assert_eq!(parsed_cost(escaped.as_bytes()), 3 * 72 + escaped.len());
        // 1 MiB of the worst shape is refused; 1 MiB of text is not.
        let worst = dense("{\"\":0}", 150_000);
        assert!(matches!(
            within_budget(&worst, "message body"),
            Err(BridgeError::TooComplex { .. })
        ));
        assert!(within_budget(&"x".repeat(6 << 20), "payload").is_ok());
    }

    #[test]
    fn json_bodies_are_parsed_and_text_is_kept() {
        assert_eq!(parse_body(r#"{"a":1}"#), json!({"a": 1}));
        assert_eq!(parse_body("hello"), json!("hello"));
        assert_eq!(parse_body("{not json"), json!("{not json"));
        assert_eq!(parse_body("42"), json!("42"));
    }
}
