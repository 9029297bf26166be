//! The mapping document as written: the types a YAML (or JSON) document is read into, which
//! are also what its JSON Schema (`make schema`) is generated from.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::plan::{Action, IfMissing, Priority};
use crate::task::TaskRequest;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "connect-task-bridge mapping",
    description = "Routes tried in order; the first whose `when` matches renders the task. Templates are Jinja (minijinja) and see source, id, body, headers, attributes, meta and event."
)]
pub(super) struct Document {
    /// The routes, in order. A route without `when` matches everything and must be last.
    pub(super) routes: Vec<RouteDoc>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RouteDoc {
    /// Unique; part of every client token the route derives.
    pub(super) name: String,
    /// What a record must be to take this route; absent: every record (the catch-all, last).
    #[serde(default)]
    pub(super) when: Option<WhenDoc>,
    /// The StartTaskContact members, as templates (read as a tree, checked against the request
    /// type when the mapping is compiled).
    #[serde(default)]
    #[schemars(with = "TaskDoc")]
    pub(super) task: Map<String, Value>,
    /// The identity of the route's events (`order-{{ body.orderId }}`): events that render the
    /// same one are one task, within Connect's client-token window. Every part must be present:
    /// a missing, null or empty one fails the record. (For a key that holds while the task is
    /// open, and that later events can act on, use `key`.)
    #[serde(default)]
    pub(super) client_token: Option<String>,
    /// What the route does: start (default), update, reschedule, stop or tag the key's task.
    #[serde(default)]
    pub(super) action: Action,
    /// A business key (`order-{{ body.orderId }}`): at most one open task per key (with
    /// TASK_TABLE for as long as it is open), and what update/reschedule/stop/tag routes find
    /// the task by. Rendered strictly, like `client_token`.
    #[serde(default)]
    pub(super) key: Option<String>,
    /// update/reschedule/stop/tag: what to do when the key has no open task (ignore, the
    /// default; fail; start, for update and reschedule).
    #[serde(default)]
    pub(super) if_missing: Option<IfMissing>,
    /// start: a Step Functions task token waiting for the task (`{{ body.taskToken }}`), told
    /// when the task completes. Kept in the task table, never in the task.
    #[serde(default)]
    pub(super) task_token: Option<String>,
    /// tag: the tags (at most 6), values templates.
    #[serde(default)]
    pub(super) tags: BTreeMap<String, String>,
    /// `high`: what the function queues of this route (queued webhooks, throttled direct
    /// requests) goes to the priority queue (PRIORITY_QUEUE_URL), and its calls take the pace's
    /// tokens before normal ones. Default `normal`.
    #[serde(default)]
    pub(super) priority: Priority,
}

// One value or a list of them; a record matches when it equals any. `Many` comes first because
// a list is also a valid `serde_json::Value`: tried second, a list in `when.body` would be taken
// as one array value and never match.
/// One value, or a list meaning any of them.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub(super) enum OneOrMany<T> {
    Many(Vec<T>),
    One(T),
}

impl<T> OneOrMany<T> {
    pub(super) fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(v) => vec![v],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct WhenDoc {
    /// A source kind (`eventbridge`, `sqs`, `kinesis`, ...: docs/mapping.md lists them), or `webhook` for
    /// every HTTP kind. `connect-task-bridge check` lists which kinds each route can match.
    pub(super) source: Option<OneOrMany<String>>,
    /// EventBridge `source`.
    pub(super) event_source: Option<OneOrMany<String>>,
    /// EventBridge `detail-type`.
    pub(super) detail_type: Option<OneOrMany<String>>,
    /// Webhook headers (names case-insensitive) and the values they must hold.
    #[serde(default)]
    pub(super) headers: BTreeMap<String, OneOrMany<String>>,
    /// SQS / SNS message attributes and the values they must hold.
    #[serde(default)]
    pub(super) attributes: BTreeMap<String, OneOrMany<String>>,
    /// Dotted paths into the body (`customer.tier`) and the values they must hold.
    #[serde(default)]
    pub(super) body: BTreeMap<String, OneOrMany<Value>>,
    /// A Jinja expression that must hold (`body.amount > 100`).
    pub(super) expr: Option<String>,
}

/// A number or a text in the document; both become template sources (schema only).
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum Scalar {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// The `task:` block as editors see it (only its schema is used): the request's members in
/// snake_case, every text a template, plus two shorthands.
#[derive(JsonSchema)]
#[schemars(deny_unknown_fields)]
#[allow(dead_code)]
struct TaskDoc {
    #[serde(flatten)]
    pub(super) request: TaskRequest,
    /// Schedule the task this long after the event is handled: seconds, or `90s`, `15m`, `2h`, `1d`.
    pub(super) delay: Option<Scalar>,
    /// Shorthand for the `connect:ContactExpiry` segment attribute.
    pub(super) expiry_minutes: Option<Scalar>,
}

/// The shorthands a `task:` block may hold besides the request's members.
pub(super) const SHORTHANDS: [&str; 2] = ["delay", "expiry_minutes"];

/// The member names a `task:` block may use, from the request type's schema.
pub(super) fn task_members() -> &'static [String] {
    static MEMBERS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    MEMBERS.get_or_init(|| {
        let schema = schemars::schema_for!(TaskRequest);
        schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    })
}
