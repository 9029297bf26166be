//! The declarative mapping: an ordered list of routes, each a `when` condition and templates for
//! the StartTaskContact members. The document is YAML (or JSON, which YAML reads too), parsed and
//! compiled once at cold start; every template and expression error is reported then, naming the
//! route and field, so nothing about the mapping can fail for the first time at event time
//! except rendering itself (which is bounded by fuel).
//!
//! ```yaml
//! routes:
//!   - name: order-failed
//!     when:
//!       source: eventbridge
//!       event_source: shop.orders
//!       detail_type: [OrderFailed, PaymentFailed]
//!       expr: "body.amount > 100"
//!     task:
//!       name: "Order {{ body.orderId }} failed"
//!       description: "{{ body | pretty | truncate(length=4000) }}"
//!       attributes: { orderId: "{{ body.orderId }}" }
//!       references:
//!         order: { type: URL, value: "https://shop.example/orders/{{ body.orderId }}" }
//!       delay: 15m
//!       expiry_minutes: 120
//!     client_token: "order-{{ body.orderId }}"
//! ```
//!
//! Templates see `source`, `id`, `body`, `headers`, `attributes`, `meta` and `event` (see
//! `context`). Direct invocations do not go through routes: they are requests
//! already.

use std::collections::BTreeMap;

use aws_smithy_types::DateTime;
use minijinja::{Environment, UndefinedBehavior};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

mod context;

use crate::error::{BridgeError, ConfigError};
use crate::plan::{Action, IfMissing, Plan};
use crate::record::{Content, Record, SourceKind};
use crate::task::{ScheduledTime, SegmentValue, TaskRequest, CONTACT_EXPIRY};
use crate::token::Identity;
use context::RecordContext;

/// Instructions one template render may execute; a loop over a huge range runs out long before
/// it could hold up the invocation.
pub const RENDER_FUEL: u64 = 100_000;
/// Longest text one template may produce. Connect's largest single field is 32,767 characters;
/// anything longer is a runaway template.
pub const MAX_RENDERED_BYTES: usize = 64 * 1024;

/// The mapping used when none is configured: one catch-all route naming the task after the event
/// and putting the pretty-printed body in the description.
pub const DEFAULT_MAPPING: &str = r#"
routes:
  - name: default
    task:
      name: >-
        {%- if source == "eventbridge" %}{{ meta.detail_type }} ({{ meta.source }})
        {%- elif source == "sns" %}{{ meta.subject or "Notification from " ~ meta.topic_arn.split(":")[-1] }}
        {%- elif source == "sqs" %}Message from {{ meta.queue_name }}
        {%- elif source == "kinesis" %}Record from {{ meta.stream_arn.split("/")[-1] }} ({{ meta.partition_key }})
        {%- elif source == "dynamodb" %}{{ meta.event_name }} in {{ meta.table }}
        {%- elif source == "s3" %}{{ meta.event_name }}: s3://{{ meta.bucket }}/{{ meta.key }}
        {%- elif source == "contact_flow" %}Follow-up of {{ meta.channel | lower }} contact {{ meta.contact_id }}
        {%- else %}{{ meta.method }} {{ meta.path }}{% endif %}
      description: >-
        {%- if body is string %}{{ body | truncate(length=4096, killwords=true, end="…", leeway=0) }}
        {%- else %}{{ body | pretty | truncate(length=4096, killwords=true, end="…", leeway=0) }}{% endif %}
"#;

// ---------------------------------------------------------------------------------------------
// The document, as written.

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(
    title = "connect-task-bridge mapping",
    description = "Routes tried in order; the first whose `when` matches renders the task. Templates are Jinja (minijinja) and see source, id, body, headers, attributes, meta and event."
)]
struct Document {
    /// The routes, in order. A route without `when` matches everything and must be last.
    routes: Vec<RouteDoc>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RouteDoc {
    /// Unique; part of every client token the route derives.
    name: String,
    /// What a record must be to take this route; absent: every record (the catch-all, last).
    #[serde(default)]
    when: Option<WhenDoc>,
    /// The StartTaskContact members, as templates (read as a tree, checked against the request
    /// type when the mapping is compiled).
    #[serde(default)]
    #[schemars(with = "TaskDoc")]
    task: Map<String, Value>,
    /// The identity of the route's events (`order-{{ body.orderId }}`): events that render the
    /// same one are one task, within Connect's client-token window. Every part must be present:
    /// a missing, null or empty one fails the record. (For a key that holds while the task is
    /// open, and that later events can act on, use `key`.)
    #[serde(default)]
    client_token: Option<String>,
    /// What the route does: start (default), update, reschedule, stop or tag the key's task.
    #[serde(default)]
    action: Action,
    /// A business key (`order-{{ body.orderId }}`): at most one open task per key (with
    /// TASK_TABLE for as long as it is open), and what update/reschedule/stop/tag routes find
    /// the task by. Rendered strictly, like `client_token`.
    #[serde(default)]
    key: Option<String>,
    /// update/reschedule/stop/tag: what to do when the key has no open task (ignore, the
    /// default; fail; start, for update and reschedule).
    #[serde(default)]
    if_missing: Option<IfMissing>,
    /// start: a Step Functions task token waiting for the task (`{{ body.taskToken }}`), told
    /// when the task completes. Kept in the task table, never in the task.
    #[serde(default)]
    task_token: Option<String>,
    /// tag: the tags (at most 6), values templates.
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

// One value or a list of them; a record matches when it equals any. `Many` comes first because
// a list is also a valid `serde_json::Value`: tried second, a list in `when.body` would be taken
// as one array value and never match.
/// One value, or a list meaning any of them.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
enum OneOrMany<T> {
    Many(Vec<T>),
    One(T),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(v) => vec![v],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct WhenDoc {
    /// A source kind (`eventbridge`, `sqs`, `kinesis`, ...: the README lists them), or `webhook` for
    /// every HTTP kind. `connect-task-bridge check` lists which kinds each route can match.
    source: Option<OneOrMany<String>>,
    /// EventBridge `source`.
    event_source: Option<OneOrMany<String>>,
    /// EventBridge `detail-type`.
    detail_type: Option<OneOrMany<String>>,
    /// Webhook headers (names case-insensitive) and the values they must hold.
    #[serde(default)]
    headers: BTreeMap<String, OneOrMany<String>>,
    /// SQS / SNS message attributes and the values they must hold.
    #[serde(default)]
    attributes: BTreeMap<String, OneOrMany<String>>,
    /// Dotted paths into the body (`customer.tier`) and the values they must hold.
    #[serde(default)]
    body: BTreeMap<String, OneOrMany<Value>>,
    /// A Jinja expression that must hold (`body.amount > 100`).
    expr: Option<String>,
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
    request: TaskRequest,
    /// Schedule the task this long after the event is handled: seconds, or `90s`, `15m`, `2h`, `1d`.
    delay: Option<Scalar>,
    /// Shorthand for the `connect:ContactExpiry` segment attribute.
    expiry_minutes: Option<Scalar>,
}

/// The shorthands a `task:` block may hold besides the request's members.
const SHORTHANDS: [&str; 2] = ["delay", "expiry_minutes"];

/// The member names a `task:` block may use, from the request type's schema.
fn task_members() -> &'static [String] {
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

// ---------------------------------------------------------------------------------------------
// The compiled mapping.

/// A field's text: a literal needs no rendering, which keeps the per-event cost of plain routes low.
#[derive(Debug, Clone)]
enum Text {
    Literal(String),
    /// Registered in the environment under `key`.
    Template {
        key: String,
    },
}

/// A record as templates see it, built on first need: a route whose fields are all literal
/// never builds it.
struct Context<'a> {
    record: &'a Record,
    content: &'a Content,
    engine: std::cell::OnceCell<minijinja::Value>,
}

impl<'a> Context<'a> {
    fn new(record: &'a Record, content: &'a Content) -> Context<'a> {
        Context {
            record,
            content,
            engine: std::cell::OnceCell::new(),
        }
    }

    fn engine(&self) -> &minijinja::Value {
        self.engine
            .get_or_init(|| RecordContext::of(self.record, self.content, false))
    }
}

#[derive(Debug)]
struct When {
    sources: Vec<SourceKind>,
    event_sources: Vec<String>,
    detail_types: Vec<String>,
    headers: Vec<(String, Vec<String>)>,
    attributes: Vec<(String, Vec<String>)>,
    body: Vec<(Vec<String>, Vec<Value>)>,
    expr: Option<Text>,
}

#[derive(Debug)]
struct Route {
    name: String,
    when: Option<When>,
    /// The request's members (snake_case), as one tree of templates.
    task: Vec<(String, Node)>,
    delay: Option<Text>,
    expiry_minutes: Option<Text>,
    client_token: Option<IdentityTemplate>,
    action: Action,
    key: Option<IdentityTemplate>,
    if_missing: IfMissing,
    task_token: Option<Text>,
    tags: Vec<(String, Text)>,
}

/// A `task:` block compiled: its structure, with a template at every text leaf.
#[derive(Debug)]
enum Node {
    /// A leaf and the field it fills (`task.attributes.orderId`), for errors. Numbers and
    /// booleans written in the mapping are text too: the request type reads them from text.
    Text {
        field: String,
        text: Text,
    },
    Map(Vec<(String, Node)>),
    List(Vec<Node>),
}

/// A route's `client_token`: the identity of its events, so nothing in it may be missing.
#[derive(Debug)]
struct IdentityTemplate {
    key: String,
    /// `client_token` or `key`.
    field: &'static str,
    /// Every variable path it reads (`body.orderId`), for the error that names them.
    variables: Vec<String>,
    /// The top-level names it reads (`body`, `headers`), for the signature rule.
    roots: std::collections::BTreeSet<String>,
}

/// What routing produced for a record.
#[derive(Debug, Clone, PartialEq)]
pub struct Routed {
    pub route: String,
    pub request: TaskRequest,
    /// What the client token is derived from: the route's `client_token` or the record identity
    /// (a business key's token is derived from the key: see `lifecycle`).
    pub identity: Identity,
    pub plan: Plan,
}

pub struct Mapping {
    env: Environment<'static>,
    /// Where `client_token` templates render: strict (see `identity_environment`).
    identity_env: Environment<'static>,
    routes: Vec<Route>,
}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapping")
            .field(
                "routes",
                &self.routes.iter().map(|r| &r.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    minijinja_contrib::add_to_environment(&mut env);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    // Optional event fields are the norm: `body.customer.tier` on an event without a customer
    // renders empty instead of failing, and `is defined` still tells them apart.
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env.set_fuel(Some(RENDER_FUEL));
    env.set_recursion_limit(64);
    // Task text is not HTML: never escape it.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    // The filters whose output can outgrow their input (indentation: a 1 MiB body nested 100
    // deep pretty-prints to over 100 MiB) write into a bounded buffer and stop at a field's limit.
    env.add_filter("pretty", pretty);
    env.add_filter("pprint", pretty);
    env.add_filter("tojson", tojson);
    env
}

/// The environment identity templates render in. A template that leaves a part out would merge
/// different events into one task (`order-{{ body.orderId }}` rendering `order-` for every event
/// without an orderId), so here nothing may be missing: undefined values fail (strict), nulls and
/// blank strings are taken out of the context before rendering (so `~` cannot hide them), and
/// printing a null or blank value fails too.
fn identity_environment() -> Environment<'static> {
    let mut env = environment();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_formatter(|out, state, value| {
        let blank = value.is_undefined()
            || value.is_none()
            || value.as_str().is_some_and(|s| s.trim().is_empty());
        if blank {
            return Err(minijinja::Error::new(
                minijinja::ErrorKind::UndefinedError,
                "an identity part is missing, null or empty",
            ));
        }
        minijinja::escape_formatter(out, state, value)
    });
    env
}

/// A writer that keeps the first `limit` bytes and refuses the rest, so that no filter or
/// template can hold more than a field's worth of output, whatever the event.
pub(crate) struct Bounded {
    buf: Vec<u8>,
    limit: usize,
    full: bool,
}

impl Bounded {
    pub(crate) fn new(limit: usize) -> Bounded {
        Bounded {
            buf: Vec::new(),
            limit,
            full: false,
        }
    }

    /// What was written, cut back to whole characters when the limit fell inside one.
    pub(crate) fn into_string(self) -> String {
        let mut buf = self.buf;
        if let Err(e) = std::str::from_utf8(&buf) {
            buf.truncate(e.valid_up_to());
        }
        String::from_utf8(buf).expect("cut to valid UTF-8")
    }
}

impl std::io::Write for Bounded {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let room = self.limit - self.buf.len();
        if data.len() > room {
            self.buf.extend_from_slice(&data[..room]);
            self.full = true;
            return Err(std::io::Error::other("output limit reached"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Serialises `value` as JSON (indented by `indent` spaces, or compact) into at most
/// `MAX_RENDERED_BYTES`: longer output is cut there, and the field check reports it if the
/// template does not truncate it further.
fn bounded_json(
    value: &minijinja::Value,
    indent: Option<usize>,
) -> Result<String, minijinja::Error> {
    let mut out = Bounded::new(MAX_RENDERED_BYTES);
    let result = match indent {
        Some(width) => {
            let spaces = vec![b' '; width.min(16)];
            let formatter = serde_json::ser::PrettyFormatter::with_indent(&spaces);
            let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
            serde::Serialize::serialize(value, &mut ser)
        }
        None => serde::Serialize::serialize(value, &mut serde_json::Serializer::new(&mut out)),
    };
    match result {
        Err(_) if out.full => Ok(out.into_string()),
        // serde's message can quote a map key from the event: name the rule only.
        Err(_) => Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            "value cannot be written as JSON",
        )),
        Ok(()) => Ok(out.into_string()),
    }
}

/// `{{ body | pretty }}`: indented JSON, without the HTML escaping that `tojson` applies.
fn pretty(value: minijinja::Value) -> Result<String, minijinja::Error> {
    bounded_json(&value, Some(2))
}

/// `{{ value | tojson }}` / `tojson(indent=2)`: as minijinja's own (HTML-safe: `<`, `>`, `&` and
/// `'` escaped), but bounded.
fn tojson(
    value: minijinja::Value,
    indent: Option<minijinja::Value>,
    kwargs: minijinja::value::Kwargs,
) -> Result<minijinja::Value, minijinja::Error> {
    let indent = match indent.or(kwargs.get::<Option<minijinja::Value>>("indent")?) {
        Some(i) if i.is_true() => Some(usize::try_from(i).map_err(|_| {
            minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                "indent must be a whole number",
            )
        })?),
        _ => None,
    };
    kwargs.assert_all_used()?;
    let text = bounded_json(&value, indent)?
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\'', "\\u0027");
    Ok(minijinja::Value::from_safe_string(text))
}

/// A render-time error as it may be logged: the kind and the place in the template, never the
/// error's own text, which can quote event values (`cannot convert 'call me on +44…'`).
fn describe_render(err: &minijinja::Error) -> String {
    match err.line() {
        Some(line) => format!("{} (template line {line})", err.kind()),
        None => err.kind().to_string(),
    }
}

/// Compiles one document field: literal text stays literal, anything with template syntax is
/// registered under a name that says where it came from.
struct Compiler {
    env: Environment<'static>,
    identity_env: Environment<'static>,
}

impl Compiler {
    /// A `client_token` template: compiled into the strict identity environment, with the
    /// variables it reads (for the error that names them) and the record parts it needs.
    fn identity(
        &mut self,
        route: &str,
        field: &'static str,
        source: String,
    ) -> Result<IdentityTemplate, ConfigError> {
        let error = |message: String| ConfigError::Template {
            route: route.to_string(),
            field: field.into(),
            message,
        };
        let key = format!("{route}/{field}");
        self.identity_env
            .add_template_owned(key.clone(), source.clone())
            .map_err(|e| error(describe(&e)))?;
        let template = self.identity_env.get_template(&key).expect("just added");
        let mut variables: Vec<String> = template.undeclared_variables(true).into_iter().collect();
        variables.sort();
        if variables.is_empty() {
            return Err(error(
                "reads nothing from the event, so every event of the route would share one task"
                    .into(),
            ));
        }
        let roots = template.undeclared_variables(false).into_iter().collect();
        Ok(IdentityTemplate {
            key,
            field,
            variables,
            roots,
        })
    }

    fn text(&mut self, route: &str, field: &str, source: String) -> Result<Text, ConfigError> {
        if !source.contains("{{") && !source.contains("{%") && !source.contains("{#") {
            return Ok(Text::Literal(source));
        }
        let key = format!("{route}/{field}");
        self.env
            .add_template_owned(key.clone(), source)
            .map_err(|e| ConfigError::Template {
                route: route.to_string(),
                field: field.to_string(),
                message: describe(&e),
            })?;
        Ok(Text::Template { key })
    }

    fn opt(
        &mut self,
        route: &str,
        field: &str,
        source: Option<String>,
    ) -> Result<Option<Text>, ConfigError> {
        source.map(|s| self.text(route, field, s)).transpose()
    }

    /// One value of a `task:` block as a tree; `None` for a null (the member is left unset).
    fn node(
        &mut self,
        route: &str,
        field: String,
        value: Value,
    ) -> Result<Option<Node>, ConfigError> {
        Ok(Some(match value {
            Value::Null => return Ok(None),
            Value::String(source) => Node::Text {
                text: self.text(route, &field, source)?,
                field,
            },
            Value::Bool(b) => Node::Text {
                text: Text::Literal(b.to_string()),
                field,
            },
            Value::Number(n) => Node::Text {
                text: Text::Literal(n.to_string()),
                field,
            },
            Value::Array(items) => {
                let mut nodes = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    nodes.extend(self.node(route, format!("{field}[{i}]"), item)?);
                }
                Node::List(nodes)
            }
            Value::Object(map) => {
                let mut entries = Vec::with_capacity(map.len());
                for (key, item) in map {
                    if let Some(node) = self.node(route, format!("{field}.{key}"), item)? {
                        entries.push((key, node));
                    }
                }
                Node::Map(entries)
            }
        }))
    }
}

fn describe(err: &minijinja::Error) -> String {
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        message.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    message
}

impl Mapping {
    /// The built-in mapping used when none is configured.
    pub fn default_mapping() -> Mapping {
        Mapping::parse(DEFAULT_MAPPING).expect("the built-in mapping compiles")
    }

    /// Parses and compiles a mapping document (YAML or JSON).
    pub fn parse(text: &str) -> Result<Mapping, ConfigError> {
        let doc: Document =
            serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Mapping(e.to_string()))?;
        if doc.routes.is_empty() {
            return Err(ConfigError::Mapping(
                "routes: at least one route is required".into(),
            ));
        }
        let mut compiler = Compiler {
            env: environment(),
            identity_env: identity_environment(),
        };
        let mut routes = Vec::with_capacity(doc.routes.len());
        let mut names = std::collections::HashSet::new();
        let count = doc.routes.len();
        for (index, route) in doc.routes.into_iter().enumerate() {
            if route.name.trim().is_empty() {
                return Err(ConfigError::Mapping(format!(
                    "route {index}: name must not be empty"
                )));
            }
            if !names.insert(route.name.clone()) {
                return Err(ConfigError::Mapping(format!(
                    "route '{}' is defined twice; route names feed the client token and must be unique",
                    route.name
                )));
            }
            if route.when.is_none() && index + 1 < count {
                return Err(ConfigError::Mapping(format!(
                    "route '{}' has no `when`, so it matches every record and the routes after it could never match; move it last",
                    route.name
                )));
            }
            routes.push(compile_route(&mut compiler, route)?);
        }
        Ok(Mapping {
            env: compiler.env,
            identity_env: compiler.identity_env,
            routes,
        })
    }

    /// The JSON Schema of the mapping document, generated from the types the document is read
    /// into (shipped as `schema/mapping.schema.json`; a test keeps the file current).
    pub fn json_schema() -> String {
        let schema = schemars::schema_for!(Document);
        serde_json::to_string_pretty(&schema).expect("a schema serialises") + "\n"
    }

    /// One line per route for `check`: its name, the sources it can match, and what its client
    /// token is built from.
    pub fn describe_routes(&self) -> Vec<String> {
        self.routes
            .iter()
            .map(|route| {
                let sources: Vec<&str> = match &route.when {
                    Some(w) if !w.sources.is_empty() => {
                        w.sources.iter().map(|k| k.as_str()).collect()
                    }
                    // Direct payloads are requests already: no route renders them.
                    _ => crate::sources::routable_kinds()
                        .map(|k| k.as_str())
                        .collect(),
                };
                let condition = if route.when.is_some() {
                    "when …"
                } else {
                    "catch-all"
                };
                let token = match (&route.key, &route.client_token) {
                    (Some(k), _) => format!(
                        "{} by key from {}",
                        route.action.as_str(),
                        k.variables.join(", ")
                    ),
                    (None, Some(t)) => format!("client_token from {}", t.variables.join(", ")),
                    (None, None) => "client token from each record's identity".to_string(),
                };
                format!(
                    "'{}' ({condition}): sources {}; {token}",
                    route.name,
                    sources.join(", ")
                )
            })
            .collect()
    }

    /// The first route that cannot work without the task table.
    pub fn route_needing_table(&self) -> Option<&str> {
        self.routes
            .iter()
            .find(|r| r.action != Action::Start || r.task_token.is_some())
            .map(|r| r.name.as_str())
    }

    pub fn route_names(&self) -> impl Iterator<Item = &str> {
        self.routes.iter().map(|r| r.name.as_str())
    }

    /// Finds the first route matching the record and renders its request. The request carries no
    /// defaults and no client token yet: see `prepare`.
    pub fn apply(
        &self,
        record: &Record,
        content: &Content,
        now: DateTime,
    ) -> Result<Routed, BridgeError> {
        let ctx = Context::new(record, content);
        for route in &self.routes {
            let matched = match &route.when {
                None => true,
                Some(when) => self.matches(route, when, &ctx)?,
            };
            if matched {
                return self.render_route(route, &ctx, now);
            }
        }
        Err(BridgeError::NoRoute {
            source_kind: record.kind.as_str(),
        })
    }

    fn render(
        &self,
        route: &Route,
        field: &str,
        text: &Text,
        ctx: &Context<'_>,
    ) -> Result<String, BridgeError> {
        match text {
            Text::Literal(s) => Ok(s.clone()),
            Text::Template { key } => {
                let render_error = |message: String| BridgeError::Render {
                    route: route.name.clone(),
                    field: field.to_string(),
                    message,
                };
                let too_long = || {
                    render_error(format!(
                        "rendered more than {MAX_RENDERED_BYTES} bytes, the most a field may"
                    ))
                };
                // The engine writes into a bounded buffer: a template that loops over a large
                // event stops at the limit instead of growing without one.
                let mut sink = Bounded::new(MAX_RENDERED_BYTES + 1);
                let template = self
                    .env
                    .get_template(key)
                    .map_err(|e| render_error(describe_render(&e)))?;
                let out = match template.render_captured_to(ctx.engine(), &mut sink) {
                    Err(_) if sink.full => return Err(too_long()),
                    Err(e) => return Err(render_error(describe_render(&e))),
                    Ok(_) => sink.into_string(),
                };
                if out.len() > MAX_RENDERED_BYTES {
                    return Err(too_long());
                }
                Ok(out)
            }
        }
    }

    /// Renders an optional field; text that renders blank leaves the member unset, so a template
    /// over an optional event field (`{{ body.previousContactId }}`) does not send an empty id.
    fn render_opt(
        &self,
        route: &Route,
        field: &str,
        text: &Option<Text>,
        ctx: &Context<'_>,
    ) -> Result<Option<String>, BridgeError> {
        match text {
            None => Ok(None),
            Some(t) => {
                let out = self.render(route, field, t, ctx)?;
                Ok((!out.trim().is_empty()).then_some(out))
            }
        }
    }

    fn matches(&self, route: &Route, when: &When, ctx: &Context<'_>) -> Result<bool, BridgeError> {
        let (record, content) = (ctx.record, ctx.content);
        if !when.sources.is_empty() && !when.sources.contains(&record.kind) {
            return Ok(false);
        }
        let event_type = content.meta.event_type();
        if !when.event_sources.is_empty()
            && !event_type.is_some_and(|(s, _)| when.event_sources.iter().any(|e| e == s))
        {
            return Ok(false);
        }
        if !when.detail_types.is_empty()
            && !event_type.is_some_and(|(_, d)| when.detail_types.iter().any(|e| e == d))
        {
            return Ok(false);
        }
        for (name, values) in &when.headers {
            if !content
                .headers
                .get(name)
                .is_some_and(|v| values.contains(v))
            {
                return Ok(false);
            }
        }
        for (name, values) in &when.attributes {
            if !content
                .attributes
                .get(name)
                .is_some_and(|v| values.contains(v))
            {
                return Ok(false);
            }
        }
        for (path, values) in &when.body {
            let found = path
                .iter()
                .try_fold(content.body.get(), |v, key| v.get(key));
            if !found
                .is_some_and(|actual| values.iter().any(|expected| same_value(actual, expected)))
            {
                return Ok(false);
            }
        }
        if let Some(expr) = &when.expr {
            let out = self.render(route, "when.expr", expr, ctx)?;
            return Ok(out == "1");
        }
        Ok(true)
    }

    fn render_route(
        &self,
        route: &Route,
        ctx: &Context<'_>,
        now: DateTime,
    ) -> Result<Routed, BridgeError> {
        let record = ctx.record;
        let request = self.render_task(route, ctx, now)?;
        let identity = match &route.client_token {
            None => record.identity.clone(),
            Some(template) => {
                let key = self.render_identity(route, template, ctx)?;
                // A webhook under signature checking keeps its token route-less (see `token`).
                match record.identity {
                    Identity::Signed { .. } => Identity::Signed {
                        namespace: "webhook-signed-key",
                        value: key,
                    },
                    _ => Identity::Key(key),
                }
            }
        };
        let key = route
            .key
            .as_ref()
            .map(|template| self.render_identity(route, template, ctx))
            .transpose()?;
        let task_token = self.render_opt(route, "task_token", &route.task_token, ctx)?;
        let mut tags = BTreeMap::new();
        for (name, text) in &route.tags {
            tags.insert(
                name.clone(),
                self.render(route, &format!("tags.{name}"), text, ctx)?,
            );
        }
        Ok(Routed {
            route: route.name.clone(),
            request,
            identity,
            plan: Plan {
                action: route.action,
                key,
                if_missing: route.if_missing,
                task_token,
                tags,
                clock_time: route.delay.is_some(),
            },
        })
    }

    /// Renders the route's `task:` tree and reads it as the request. A top-level text that
    /// renders blank leaves its member unset, so a template over an optional event field
    /// (`{{ body.previousContactId }}`) does not send an empty id.
    fn render_task(
        &self,
        route: &Route,
        ctx: &Context<'_>,
        now: DateTime,
    ) -> Result<TaskRequest, BridgeError> {
        let field_error = |field: &str, message: String| BridgeError::Render {
            route: route.name.clone(),
            field: field.to_string(),
            message,
        };
        let mut members = Map::with_capacity(route.task.len());
        for (key, node) in &route.task {
            let value = self.render_node(route, node, ctx)?;
            let blank = match &value {
                Value::String(s) => s.trim().is_empty(),
                Value::Object(m) => m.is_empty(),
                _ => false,
            };
            if !blank {
                members.insert(key.clone(), value);
            }
        }
        let members = Value::Object(members);
        let mut request = TaskRequest::deserialize(&members).map_err(|_| {
            // Which member: each read alone. serde's message can quote the rendered value
            // (event data), so the error names the member and the rule only.
            let member = members.as_object().and_then(|m| {
                m.iter().find(|(k, v)| {
                    TaskRequest::deserialize(&Value::Object(Map::from_iter([(
                        (*k).clone(),
                        (*v).clone(),
                    )])))
                    .is_err()
                })
            });
            match member {
                Some((key, Value::String(text))) if key == "scheduled_time" => field_error(
                    "task.scheduled_time",
                    ScheduledTime::parse(text).err().unwrap_or_default(),
                ),
                Some((key, _)) => field_error(
                    &format!("task.{key}"),
                    "does not fit the StartTaskContact member (its type or shape)".into(),
                ),
                None => field_error("task", "does not fit the StartTaskContact request".into()),
            }
        })?;
        if request.scheduled_time.is_none() {
            if let Some(text) = self.render_opt(route, "task.delay", &route.delay, ctx)? {
                let secs = parse_delay(&text).map_err(|e| field_error("task.delay", e))?;
                request.scheduled_time = Some(ScheduledTime::from_epoch_secs(
                    now.secs().saturating_add(secs),
                ));
            }
        }
        if let Some(text) =
            self.render_opt(route, "task.expiry_minutes", &route.expiry_minutes, ctx)?
        {
            let minutes: i64 = text.trim().parse().map_err(|_| {
                field_error(
                    "task.expiry_minutes",
                    "is not a whole number of minutes".to_string(),
                )
            })?;
            request
                .segment_attributes
                .get_or_insert_with(BTreeMap::new)
                .insert(CONTACT_EXPIRY.into(), SegmentValue::contact_expiry(minutes));
        }
        Ok(request)
    }

    fn render_node(
        &self,
        route: &Route,
        node: &Node,
        ctx: &Context<'_>,
    ) -> Result<Value, BridgeError> {
        Ok(match node {
            Node::Text { field, text } => Value::String(self.render(route, field, text, ctx)?),
            Node::Map(entries) => {
                let mut map = Map::with_capacity(entries.len());
                for (key, node) in entries {
                    map.insert(key.clone(), self.render_node(route, node, ctx)?);
                }
                Value::Object(map)
            }
            Node::List(items) => Value::Array(
                items
                    .iter()
                    .map(|node| self.render_node(route, node, ctx))
                    .collect::<Result<_, _>>()?,
            ),
        })
    }

    /// Renders a route's `client_token` strictly; a missing, null or blank part is a permanent
    /// error naming the route and the variables the template reads (never their values).
    fn render_identity(
        &self,
        route: &Route,
        template: &IdentityTemplate,
        ctx: &Context<'_>,
    ) -> Result<String, BridgeError> {
        let error = |message: String| BridgeError::Render {
            route: route.name.clone(),
            field: template.field.into(),
            message,
        };
        let context = RecordContext::of(ctx.record, ctx.content, true);
        let mut sink = Bounded::new(MAX_RENDERED_BYTES + 1);
        let compiled = self
            .identity_env
            .get_template(&template.key)
            .map_err(|e| error(describe_render(&e)))?;
        match compiled.render_captured_to(context, &mut sink) {
            Err(_) if sink.full => Err(error(format!(
                "rendered more than {MAX_RENDERED_BYTES} bytes, the most a field may"
            ))),
            Err(e) if e.kind() == minijinja::ErrorKind::UndefinedError => Err(error(format!(
                "a part of the identity is missing, null or empty in this record (the template reads {}); refused rather than shared with every other such record",
                template.variables.join(", ")
            ))),
            Err(e) => Err(error(describe_render(&e))),
            Ok(_) => {
                let out = sink.into_string();
                if out.trim().is_empty() {
                    return Err(error("rendered blank".into()));
                }
                Ok(out)
            }
        }
    }

    /// With signatures on, a webhook's identity may come only from what the signature covers
    /// (its body). A route that can match a webhook and builds its token from anything else
    /// (headers, path, method, query, request id, the raw event) would let a replay with one
    /// unsigned part changed open a new task.
    pub fn check_signed_webhook_identity(&self) -> Result<(), ConfigError> {
        const SIGNED: [&str; 2] = ["body", "source"];
        for route in &self.routes {
            let can_match_webhook = route
                .when
                .as_ref()
                .is_none_or(|w| w.sources.is_empty() || w.sources.iter().any(|k| k.is_webhook()));
            for template in route.client_token.iter().chain(&route.key) {
                let unsigned: Vec<&str> = template
                    .roots
                    .iter()
                    .map(String::as_str)
                    .filter(|root| !SIGNED.contains(root))
                    .collect();
                if can_match_webhook && !unsigned.is_empty() {
                    return Err(ConfigError::Template {
                    route: route.name.clone(),
                    field: template.field.into(),
                    message: format!(
                        "reads {} , which a webhook's signature does not cover; with WEBHOOK_AUTH=signature a webhook's identity may come only from its body (or restrict the route's `when.source` to other sources)",
                        unsigned.join(", ")
                    ),
                });
                }
            }
        }
        Ok(())
    }
}

fn compile_route(c: &mut Compiler, mut doc: RouteDoc) -> Result<Route, ConfigError> {
    let r = doc.name.as_str();
    let mapping_error = |message: String| ConfigError::Mapping(format!("route '{r}': {message}"));
    let when = match doc.when.take() {
        None => None,
        Some(w) => {
            let mut sources = Vec::new();
            for name in w.source.map(OneOrMany::into_vec).unwrap_or_default() {
                let kinds = crate::sources::kinds_named(&name).ok_or_else(|| {
                    let known: Vec<&str> = crate::sources::all_kinds()
                        .map(SourceKind::as_str)
                        .collect();
                    mapping_error(format!(
                        "when.source: unknown source '{name}'; use one of {}, webhook",
                        known.join(", ")
                    ))
                })?;
                sources.extend(kinds);
            }
            let expr = match w.expr {
                Some(e) => {
                    // An expression is compiled as a template that prints 1 when it holds, so it
                    // is owned by the environment like every other template.
                    let t = c.text(r, "when.expr", format!("{{% if {e} %}}1{{% endif %}}"))?;
                    Some(t)
                }
                None => None,
            };
            Some(When {
                sources,
                event_sources: w.event_source.map(OneOrMany::into_vec).unwrap_or_default(),
                detail_types: w.detail_type.map(OneOrMany::into_vec).unwrap_or_default(),
                headers: w
                    .headers
                    .into_iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.into_vec()))
                    .collect(),
                attributes: w
                    .attributes
                    .into_iter()
                    .map(|(k, v)| (k, v.into_vec()))
                    .collect(),
                body: w
                    .body
                    .into_iter()
                    .map(|(k, v)| (k.split('.').map(str::to_string).collect(), v.into_vec()))
                    .collect(),
                expr,
            })
        }
    };
    let mut block = std::mem::take(&mut doc.task);
    for key in block.keys() {
        if !task_members().contains(key) && !SHORTHANDS.contains(&key.as_str()) {
            return Err(mapping_error(format!(
                "task.{key}: unknown member; a task has {} and the shorthands {}",
                task_members().join(", "),
                SHORTHANDS.join(", ")
            )));
        }
    }
    let shorthand = |block: &mut Map<String, Value>, key: &str| match block.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v @ (Value::Number(_) | Value::Bool(_))) => Ok(Some(v.to_string())),
        Some(_) => Err(mapping_error(format!(
            "task.{key}: must be text or a number"
        ))),
    };
    let delay = shorthand(&mut block, "delay")?;
    let expiry_minutes = shorthand(&mut block, "expiry_minutes")?;
    if block.get("scheduled_time").is_some_and(|v| !v.is_null()) && delay.is_some() {
        return Err(mapping_error(
            "task: give scheduled_time or delay, not both".into(),
        ));
    }
    // The block's shape is checked now, with every template standing in as "0" (which every
    // member that takes text, a number or a time accepts): a misspelt or misplaced member fails
    // the cold start, not the first event.
    let probe = probe(&Value::Object(block.clone()));
    TaskRequest::deserialize(&probe).map_err(|e| mapping_error(format!("task: {e}")))?;
    let mut task = Vec::with_capacity(block.len());
    for (key, value) in block {
        if let Some(node) = c.node(r, format!("task.{key}"), value)? {
            task.push((key, node));
        }
    }
    check_action(&doc, &task, delay.is_some(), expiry_minutes.is_some())
        .map_err(|m| mapping_error(m.to_string()))?;
    let mut tags = Vec::with_capacity(doc.tags.len());
    for (name, source) in doc.tags {
        let text = c.text(r, &format!("tags.{name}"), source)?;
        tags.push((name, text));
    }
    Ok(Route {
        task,
        delay: c.opt(r, "task.delay", delay)?,
        expiry_minutes: c.opt(r, "task.expiry_minutes", expiry_minutes)?,
        client_token: doc
            .client_token
            .map(|source| c.identity(r, "client_token", source))
            .transpose()?,
        action: doc.action,
        key: doc
            .key
            .map(|source| c.identity(r, "key", source))
            .transpose()?,
        if_missing: doc.if_missing.unwrap_or_default(),
        task_token: c.opt(r, "task_token", doc.task_token)?,
        tags,
        when,
        name: doc.name,
    })
}

/// What each action may say: a route that could not do what it says fails the cold start.
fn check_action(
    doc: &RouteDoc,
    task: &[(String, Node)],
    delay: bool,
    expiry: bool,
) -> Result<(), &'static str> {
    let members: Vec<&str> = task.iter().map(|(k, _)| k.as_str()).collect();
    let only = |allowed: &[&str]| members.iter().all(|m| allowed.contains(m));
    if doc.key.is_some() && doc.client_token.is_some() {
        return Err("give `key` or `client_token`, not both (a key is the task's identity)");
    }
    if doc.action != Action::Start && doc.key.is_none() {
        return Err("update, reschedule, stop and tag find the task by `key`: give one");
    }
    if doc.action == Action::Start && doc.if_missing.is_some() {
        return Err("`if_missing` is for update, reschedule, stop and tag");
    }
    let may_start = doc.action == Action::Start || doc.if_missing == Some(IfMissing::Start);
    if doc.if_missing == Some(IfMissing::Start)
        && !matches!(doc.action, Action::Update | Action::Reschedule)
    {
        return Err("`if_missing: start` is for update and reschedule");
    }
    if doc.task_token.is_some() && !may_start {
        return Err("`task_token` belongs to a route that starts the task");
    }
    if !doc.tags.is_empty() && doc.action != Action::Tag {
        return Err("`tags` are for `action: tag`");
    }
    match doc.action {
        Action::Start => Ok(()),
        Action::Update if may_start => Ok(()),
        Action::Update => {
            if only(&[
                "name",
                "description",
                "references",
                "segment_attributes",
                "attributes",
            ]) && !delay
            {
                Ok(())
            } else {
                Err("an update sets name, description, references, segment_attributes, attributes or expiry_minutes only")
            }
        }
        Action::Reschedule if !(members.contains(&"scheduled_time") || delay) => {
            Err("a reschedule needs task.scheduled_time or task.delay")
        }
        Action::Reschedule if may_start => Ok(()),
        Action::Reschedule => {
            if only(&["scheduled_time"]) && !expiry {
                Ok(())
            } else {
                Err("a reschedule sets scheduled_time (or delay) only")
            }
        }
        Action::Stop | Action::Tag if !members.is_empty() || delay || expiry => {
            Err("stop and tag take no task: block")
        }
        Action::Tag if doc.tags.is_empty() || doc.tags.len() > 6 => {
            Err("`action: tag` needs `tags` (at most 6)")
        }
        Action::Stop | Action::Tag => Ok(()),
    }
}

/// The block with every text that holds template syntax replaced by "0", and numbers and
/// booleans as text (as they are rendered).
fn probe(value: &Value) -> Value {
    match value {
        Value::String(s) if s.contains("{{") || s.contains("{%") => Value::String("0".into()),
        Value::Number(_) | Value::Bool(_) => Value::String(value.to_string()),
        Value::Array(items) => Value::Array(items.iter().map(probe).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), probe(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `when.body` compares event values with values written in YAML; `"42"` in the mapping matches
/// the number 42 in the event, since YAML authors rarely know which one an event carries.
fn same_value(actual: &Value, expected: &Value) -> bool {
    if actual == expected {
        return true;
    }
    match (actual, expected) {
        (Value::String(a), e) if !e.is_string() => a.as_str() == e.to_string().as_str(),
        (a, Value::String(e)) if !a.is_string() && !a.is_object() && !a.is_array() => {
            a.to_string().as_str() == e.as_str()
        }
        _ => false,
    }
}

/// Seconds, or a number with a unit: `90s`, `15m`, `2h`, `1d`.
pub fn parse_delay(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(pos) => text.split_at(pos),
        None => (text, "s"),
    };
    let amount: i64 = digits
        .parse()
        .map_err(|_| "is not a delay (use seconds or 90s, 15m, 2h, 1d)".to_string())?;
    let factor = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err("has an unknown delay unit (use s, m, h or d)".to_string()),
    };
    amount
        .checked_mul(factor)
        .ok_or_else(|| "is too long a delay".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::{open, EnvelopeLimits};
    use crate::task::TaskReference;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;

    fn record(payload: Value) -> Record {
        open(
            payload,
            EnvelopeLimits::default(),
            &crate::webhook_auth::WebhookAuth::None,
            None,
        )
        .unwrap()
        .records
        .into_iter()
        .next()
        .unwrap()
        .unwrap()
    }

    fn eventbridge(detail_type: &str, detail: Value) -> Record {
        record(json!({
            "version": "0", "id": "ev-1", "detail-type": detail_type, "source": "shop.orders",
            "account": "1", "time": "2026-11-24T10:00:00Z", "region": "eu-west-1", "resources": [],
            "detail": detail
        }))
    }

    fn sqs(body: &str, attributes: Value) -> Record {
        record(json!({"Records": [{
            "messageId": "m-1", "body": body, "attributes": {}, "messageAttributes": attributes,
            "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:eu-west-1:1:support-queue"
        }]}))
    }

    fn apply(mapping: &Mapping, r: &Record) -> Result<Routed, BridgeError> {
        mapping.apply(r, r.content().unwrap(), DateTime::from_secs(NOW))
    }

    const ORDERS: &str = r#"
routes:
  - name: big-order-failed
    when:
      source: eventbridge
      event_source: shop.orders
      detail_type: [OrderFailed, PaymentFailed]
      expr: "body.amount > 100"
    task:
      name: "Order {{ body.orderId }} failed"
      description: "{{ body | pretty }}"
      contact_flow_id: flow-orders
      attributes:
        orderId: "{{ body.orderId }}"
        amount: "{{ body.amount }}"
        fixed: 7
      references:
        order: { type: URL, value: "https://shop.example/orders/{{ body.orderId }}" }
      delay: 15m
      expiry_minutes: "{{ 60 * 2 }}"
      previous_contact_id: "{{ body.previousContactId }}"
    client_token: "order-{{ body.orderId }}"
  - name: vip
    when:
      source: sqs
      attributes: { tier: [gold, platinum] }
      body: { "customer.country": "NL", "priority": 1 }
    task:
      name: "VIP {{ body.customer.name | upper }}"
      segment_attributes:
        connect:ContactExpiry: { ValueMap: { ExpiryDuration: { ValueInteger: "{{ 30 }}" } } }
"#;

    /// Templates read the record lazily, through any depth, with the engine's own rules for
    /// spelling values, loops and filters.
    #[test]
    fn templates_see_every_part_they_name() {
        let m = Mapping::parse(
            r#"
routes:
  - name: all
    task:
      name: "{{ event['detail-type'] | lower }} {{ event.account }}"
      description: "{{ meta.source | upper }}/{{ body.orderId }}/{{ body.tags | join(',') }}"
      attributes:
        region: "{{ event.region }}"
        flag: "{{ body.flag }}"
"#,
        )
        .unwrap();
        let r = eventbridge(
            "OrderFailed",
            json!({"orderId": "o-1", "tags": ["a", "b"], "flag": true}),
        );
        let req = apply(&m, &r).unwrap().request;
        assert_eq!(req.name.as_deref(), Some("orderfailed 1"));
        assert_eq!(req.description.as_deref(), Some("SHOP.ORDERS/o-1/a,b"));
        let attrs = req.attributes.unwrap();
        assert_eq!(attrs["region"], "eu-west-1");
        // A boolean is spelt as the engine spells one.
        assert_eq!(attrs["flag"], "True");

        let m = Mapping::parse(
            r#"
routes:
  - name: a
    when: { source: sqs }
    task: { name: "{{ body.orderId | upper }}" }
  - name: b
    task: { name: "{% include 'a/task.name' %}" }
"#,
        )
        .unwrap();
        // An included template sees the whole context.
        let r = eventbridge("OrderFailed", json!({"orderId": "o-1"}));
        assert_eq!(apply(&m, &r).unwrap().request.name.as_deref(), Some("O-1"));
    }

    #[test]
    fn first_matching_route_renders_every_member() {
        let m = Mapping::parse(ORDERS).unwrap();
        let r = eventbridge("OrderFailed", json!({"orderId": "o-9", "amount": 250}));
        let routed = apply(&m, &r).unwrap();
        assert_eq!(routed.route, "big-order-failed");
        assert_eq!(routed.identity, Identity::Key("order-o-9".into()));
        let req = routed.request;
        assert_eq!(req.name.as_deref(), Some("Order o-9 failed"));
        assert_eq!(
            req.description.as_deref(),
            Some("{\n  \"amount\": 250,\n  \"orderId\": \"o-9\"\n}")
        );
        assert_eq!(req.contact_flow_id.as_deref(), Some("flow-orders"));
        let attrs = req.attributes.unwrap();
        assert_eq!(attrs["orderId"], "o-9");
        assert_eq!(attrs["amount"], "250");
        assert_eq!(attrs["fixed"], "7");
        assert_eq!(
            req.references.unwrap()["order"],
            TaskReference {
                value: "https://shop.example/orders/o-9".into(),
                kind: "URL".into(),
                ..Default::default()
            }
        );
        assert_eq!(req.scheduled_time.unwrap().epoch_secs(), NOW + 900);
        assert_eq!(
            req.segment_attributes.unwrap()["connect:ContactExpiry"]
                .value_map
                .as_ref()
                .unwrap()["ExpiryDuration"]
                .value_integer,
            Some(120)
        );
        // An optional field the event lacks leaves the member unset rather than empty.
        assert_eq!(req.previous_contact_id, None);
    }

    #[test]
    fn conditions_that_fail_fall_through_to_no_route() {
        let m = Mapping::parse(ORDERS).unwrap();
        let small = eventbridge("OrderFailed", json!({"orderId": "o-1", "amount": 5}));
        assert!(matches!(
            apply(&m, &small),
            Err(BridgeError::NoRoute {
                source_kind: "eventbridge"
            })
        ));
        let other_type = eventbridge("OrderShipped", json!({"orderId": "o-1", "amount": 500}));
        assert!(apply(&m, &other_type).is_err());
    }

    #[test]
    fn attribute_and_body_path_conditions() {
        let m = Mapping::parse(ORDERS).unwrap();
        let body = r#"{"customer": {"country": "NL", "name": "ada"}, "priority": 1}"#;
        let gold = sqs(
            body,
            json!({"tier": {"stringValue": "gold", "dataType": "String"}}),
        );
        let routed = apply(&m, &gold).unwrap();
        assert_eq!(routed.route, "vip");
        assert_eq!(routed.identity, Identity::Service("m-1".into()));
        assert_eq!(routed.request.name.as_deref(), Some("VIP ADA"));
        let seg = &routed.request.segment_attributes.unwrap()["connect:ContactExpiry"];
        assert_eq!(
            seg.value_map.as_ref().unwrap()["ExpiryDuration"].value_integer,
            Some(30)
        );

        let silver = sqs(
            body,
            json!({"tier": {"stringValue": "silver", "dataType": "String"}}),
        );
        assert!(apply(&m, &silver).is_err());
        let elsewhere = sqs(
            r#"{"customer": {"country": "BE"}, "priority": 1}"#,
            json!({"tier": {"stringValue": "gold", "dataType": "String"}}),
        );
        assert!(apply(&m, &elsewhere).is_err());
    }

    #[test]
    fn a_list_under_when_body_means_any_of_its_values() {
        let m = Mapping::parse(
            "routes:\n  - name: r\n    when: { body: { action: [opened, labeled] } }\n    task: { name: n }\n",
        )
        .unwrap();
        let labeled = sqs(r#"{"action": "labeled"}"#, json!({}));
        assert_eq!(apply(&m, &labeled).unwrap().route, "r");
        let closed = sqs(r#"{"action": "closed"}"#, json!({}));
        assert!(apply(&m, &closed).is_err());
    }

    #[test]
    fn default_mapping_names_tasks_after_the_event() {
        let m = Mapping::default_mapping();
        let routed = apply(&m, &eventbridge("OrderFailed", json!({"a": 1}))).unwrap();
        assert_eq!(routed.route, "default");
        assert_eq!(
            routed.request.name.as_deref(),
            Some("OrderFailed (shop.orders)")
        );
        assert_eq!(
            routed.request.description.as_deref(),
            Some("{\n  \"a\": 1\n}")
        );

        let routed = apply(&m, &sqs("plain <text> & more", json!({}))).unwrap();
        assert_eq!(
            routed.request.name.as_deref(),
            Some("Message from support-queue")
        );
        assert_eq!(
            routed.request.description.as_deref(),
            Some("plain <text> & more")
        );

        let long = "x".repeat(10_000);
        let routed = apply(&m, &sqs(&long, json!({}))).unwrap();
        assert_eq!(routed.request.description.unwrap().chars().count(), 4096);
    }

    #[test]
    fn broken_mappings_fail_at_load_naming_route_and_field() {
        let err = Mapping::parse("routes:\n  - name: r1\n    task:\n      name: \"{{ body.x \"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("r1") && err.contains("task.name"), "{err}");

        let err = Mapping::parse("routes:\n  - name: r1\n    task:\n      nmae: x\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("r1") && err.contains("task.nmae"), "{err}");

        // The block's shape is checked against the request type at load: a reference without
        // its type, an attachment member misspelt, a segment value that is no value at all.
        for block in [
            "references: { order: { value: x } }",
            "attachments: [ { file_name: a, s3url: b } ]",
            "segment_attributes: { 'connect:ContactExpiry': { ValueMaps: {} } }",
            "instance_id: other",
            "client_token: x",
        ] {
            let doc = format!("routes:\n  - name: r1\n    task: {{ {block} }}\n");
            let err = Mapping::parse(&doc).unwrap_err().to_string();
            assert!(err.contains("r1") && err.contains("task"), "{block}: {err}");
        }

        let err =
            Mapping::parse("routes:\n  - name: all\n  - name: never\n    when: {source: sqs}\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("move it last"), "{err}");

        let err = Mapping::parse("routes:\n  - name: a\n    when: {source: kafka}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("kafka"), "{err}");

        let err = Mapping::parse("routes:\n  - name: a\n    when: {expr: \"body.x ==\"}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("when.expr"), "{err}");

        let err = Mapping::parse("routes:\n  - name: a\n    when: {source: sqs}\n  - name: a\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("twice"), "{err}");
    }

    /// A rendered value that does not fit its member fails the record naming the member and
    /// the rule, never the value (event data).
    #[test]
    fn misfits_at_render_time_name_the_member_not_the_value() {
        let m = Mapping::parse(
            r#"
routes:
  - name: r
    task:
      name: n
      segment_attributes:
        connect:ContactExpiry: { ValueMap: { ExpiryDuration: { ValueInteger: "{{ body.minutes }}" } } }
"#,
        )
        .unwrap();
        let r = sqs(r#"{"minutes": "call +44 7700 900123"}"#, json!({}));
        let err = apply(&m, &r).unwrap_err().to_string();
        assert!(err.contains("task.segment_attributes"), "{err}");
        assert!(!err.contains("7700"), "{err}");
        let r = sqs(r#"{"minutes": 30}"#, json!({}));
        let segments = apply(&m, &r).unwrap().request.segment_attributes.unwrap();
        assert_eq!(segments[CONTACT_EXPIRY], SegmentValue::contact_expiry(30));

        let m = Mapping::parse(
            "routes:\n  - name: t\n    task: { scheduled_time: \"{{ body.due }}\" }\n",
        )
        .unwrap();
        let r = sqs(r#"{"due": "next tuesday, 7700"}"#, json!({}));
        let err = apply(&m, &r).unwrap_err().to_string();
        assert!(
            err.contains("task.scheduled_time")
                && err.contains("ISO-8601")
                && !err.contains("7700"),
            "{err}"
        );
    }

    /// What each action may say is checked at load, naming the route.
    #[test]
    fn actions_say_only_what_they_can_do() {
        let route = |body: &str| format!("routes:\n  - name: r1\n{body}");
        for (body, needle) in [
            ("    action: stop\n", "key"),
            (
                "    action: stop\n    key: k{{ id }}\n    task: {name: n}\n",
                "no task",
            ),
            (
                "    action: update\n    key: k{{ id }}\n    task: {contact_flow_id: f}\n",
                "update sets",
            ),
            (
                "    action: reschedule\n    key: k{{ id }}\n",
                "scheduled_time",
            ),
            ("    action: tag\n    key: k{{ id }}\n", "tags"),
            (
                "    key: k{{ id }}\n    client_token: t{{ id }}\n    task: {name: n}\n",
                "not both",
            ),
            ("    if_missing: fail\n    task: {name: n}\n", "if_missing"),
            (
                "    action: stop\n    key: k{{ id }}\n    if_missing: start\n",
                "update and reschedule",
            ),
            (
                "    action: stop\n    key: k{{ id }}\n    task_token: \"{{ id }}\"\n",
                "task_token",
            ),
            ("    tags: {a: b}\n    task: {name: n}\n", "action: tag"),
            (
                "    key: \"literal\"\n    task: {name: n}\n",
                "reads nothing",
            ),
        ] {
            let err = Mapping::parse(&route(body)).unwrap_err().to_string();
            assert!(err.contains("r1") && err.contains(needle), "{body}: {err}");
        }
        let ok = Mapping::parse(&route(
            "    action: reschedule\n    key: k{{ id }}\n    if_missing: start\n    task: {name: n, delay: 1h}\n",
        ));
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn json_documents_are_accepted() {
        let m = Mapping::parse(r#"{"routes": [{"name": "j", "task": {"name": "{{ source }}"}}]}"#)
            .unwrap();
        let routed = apply(&m, &sqs("x", json!({}))).unwrap();
        assert_eq!(routed.request.name.as_deref(), Some("sqs"));
    }

    #[test]
    fn runaway_templates_are_stopped() {
        let m = Mapping::parse(
            "routes:\n  - name: loop\n    task:\n      name: \"{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}\"\n",
        )
        .unwrap();
        let err = apply(&m, &sqs("x", json!({}))).unwrap_err();
        assert!(matches!(err, BridgeError::Render { .. }), "{err}");
        assert!(err.to_string().contains("task.name"), "{err}");
    }

    #[test]
    fn blank_client_token_is_refused() {
        let m = Mapping::parse(
            "routes:\n  - name: t\n    task: {name: n}\n    client_token: \"{{ body.missing }}\"\n",
        )
        .unwrap();
        let err = apply(&m, &sqs("{}", json!({}))).unwrap_err().to_string();
        assert!(err.contains("client_token"), "{err}");
    }

    #[test]
    fn delays() {
        assert_eq!(parse_delay("90").unwrap(), 90);
        assert_eq!(parse_delay("15m").unwrap(), 900);
        assert_eq!(parse_delay("2h").unwrap(), 7200);
        assert_eq!(parse_delay("1d").unwrap(), 86_400);
        assert!(parse_delay("soon").is_err());
        assert!(parse_delay("5w").is_err());
    }
}
