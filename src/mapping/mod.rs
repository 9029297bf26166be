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

use aws_smithy_types::DateTime;
use minijinja::Environment;

mod compile;
mod context;
mod document;
mod engine;
mod matcher;
mod render;
mod shape;

use crate::error::{BridgeError, ConfigError};
use crate::plan::{Action, Plan};
use crate::record::{Content, Record};
use crate::task::TaskRequest;
use crate::token::Identity;
use compile::{compile_route, Compiler, Route};
use document::Document;
use engine::{environment, identity_environment};
use render::Context;

pub use compile::parse_delay;
pub use engine::{MAX_RENDERED_BYTES, RENDER_FUEL};
pub use shape::{RouteShape, TemplateId};

/// The built-in mapping's description: the body, pretty-printed when it is JSON, cut to 4,096
/// characters.
const DEFAULT_DESCRIPTION: &str = r#"{%- if body is string %}{{ body | truncate(length=4096, killwords=true, end="…", leeway=0) }}
{%- else %}{{ body | pretty | truncate(length=4096, killwords=true, end="…", leeway=0) }}{% endif %}"#;

/// The mapping used when none is configured: one catch-all route naming the task after the
/// event (each source's own `task_name`) and putting the pretty-printed body in the description.
pub fn default_mapping_text() -> String {
    serde_json::json!({
        "routes": [{
            "name": "default",
            "task": {
                "name": crate::sources::default_task_name(),
                "description": DEFAULT_DESCRIPTION,
            },
        }],
    })
    .to_string()
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

impl Mapping {
    /// The built-in mapping used when none is configured.
    pub fn default_mapping() -> Mapping {
        Mapping::parse(&default_mapping_text()).expect("the built-in mapping compiles")
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
                let lane = match route.priority {
                    crate::plan::Priority::High => {
                        "; priority high (the priority queue, first in the pace)"
                    }
                    crate::plan::Priority::Normal => "",
                };
                format!(
                    "'{}' ({condition}): sources {}; {token}{lane}",
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

    /// The first route that says `priority: high`.
    pub fn high_priority_route(&self) -> Option<&str> {
        self.routes
            .iter()
            .find(|r| r.priority == crate::plan::Priority::High)
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::{open, EnvelopeLimits};
    use crate::task::TaskReference;
    use crate::task::{SegmentValue, CONTACT_EXPIRY};
    use serde_json::json;
    use serde_json::Value;

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
    fn a_route_says_its_lane_and_normal_is_the_default() {
        let m = Mapping::parse(
            "routes:\n  - name: fraud\n    when: {detail_type: Fraud}\n    priority: high\n    task: {name: n}\n  - name: rest\n    task: {name: n}\n",
        )
        .unwrap();
        let urgent = apply(&m, &eventbridge("Fraud", json!({}))).unwrap();
        assert_eq!(urgent.plan.priority, crate::plan::Priority::High);
        let other = apply(&m, &eventbridge("OrderFailed", json!({}))).unwrap();
        assert_eq!(other.plan.priority, crate::plan::Priority::Normal);
        assert_eq!(m.high_priority_route(), Some("fraud"));
        let described = m.describe_routes();
        assert!(described[0].ends_with("; priority high (the priority queue, first in the pace)"));
        assert!(!described[1].contains("priority"), "{}", described[1]);
        assert_eq!(Mapping::parse(ORDERS).unwrap().high_priority_route(), None);
        let err =
            Mapping::parse("routes:\n  - name: r\n    priority: urgent\n    task: {name: n}\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("priority") || err.contains("urgent"), "{err}");
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
