//! Compiling a document into routes: every template registered once in the engine, every
//! field's shape checked against the request type, what each action may say, and the rule that
//! keeps a signed webhook's identity within what its signature covers. Every error is found at
//! cold start and names the route and field.

use minijinja::Environment;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::document::{task_members, OneOrMany, RouteDoc, SHORTHANDS};
use super::engine::describe;
use super::Mapping;
use crate::error::ConfigError;
use crate::plan::{Action, IfMissing, Priority};
use crate::record::SourceKind;
use crate::task::TaskRequest;

/// A field's text: a literal needs no rendering, which keeps the per-event cost of plain routes low.
#[derive(Debug, Clone)]
pub(super) enum Text {
    Literal(String),
    /// Registered in the environment under `key`.
    Template {
        key: String,
    },
}

#[derive(Debug)]
pub(super) struct When {
    pub(super) sources: Vec<SourceKind>,
    pub(super) event_sources: Vec<String>,
    pub(super) detail_types: Vec<String>,
    pub(super) headers: Vec<(String, Vec<String>)>,
    pub(super) attributes: Vec<(String, Vec<String>)>,
    pub(super) body: Vec<(Vec<String>, Vec<Value>)>,
    pub(super) expr: Option<Text>,
}

#[derive(Debug)]
pub(super) struct Route {
    pub(super) name: String,
    pub(super) when: Option<When>,
    /// The request's members (snake_case), as one tree of templates.
    pub(super) task: Vec<(String, Node)>,
    pub(super) delay: Option<Text>,
    pub(super) expiry_minutes: Option<Text>,
    pub(super) client_token: Option<IdentityTemplate>,
    pub(super) action: Action,
    pub(super) key: Option<IdentityTemplate>,
    pub(super) if_missing: IfMissing,
    pub(super) task_token: Option<Text>,
    pub(super) tags: Vec<(String, Text)>,
    pub(super) priority: Priority,
}

/// A `task:` block compiled: its structure, with a template at every text leaf.
#[derive(Debug)]
pub(super) enum Node {
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
pub(super) struct IdentityTemplate {
    pub(super) key: String,
    /// `client_token` or `key`.
    pub(super) field: &'static str,
    /// Every variable path it reads (`body.orderId`), for the error that names them.
    pub(super) variables: Vec<String>,
    /// The top-level names it reads (`body`, `headers`), for the signature rule.
    pub(super) roots: std::collections::BTreeSet<String>,
}

/// Compiles one document field: literal text stays literal, anything with template syntax is
/// registered under a name that says where it came from.
pub(super) struct Compiler {
    pub(super) env: Environment<'static>,
    pub(super) identity_env: Environment<'static>,
}

impl Compiler {
    /// A `client_token` template: compiled into the strict identity environment, with the
    /// variables it reads (for the error that names them) and the record parts it needs.
    pub(super) fn identity(
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

impl Mapping {
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

pub(super) fn compile_route(c: &mut Compiler, mut doc: RouteDoc) -> Result<Route, ConfigError> {
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
        priority: doc.priority,
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
