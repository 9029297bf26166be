//! Rendering a routed record: the task tree into the request (blank optional members left
//! unset, the shorthands applied), the identity templates strictly, and every text through the
//! bounded writer. Errors name the route and field, never the event's values.

use std::collections::BTreeMap;

use aws_smithy_types::DateTime;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::compile::{parse_delay, IdentityTemplate, Node, Route, Text};
use super::context::RecordContext;
use super::engine::{describe_render, Bounded, MAX_RENDERED_BYTES};
use super::{Mapping, Routed};
use crate::error::BridgeError;
use crate::plan::Plan;
use crate::record::{Content, Record};
use crate::task::{ScheduledTime, SegmentValue, TaskRequest, CONTACT_EXPIRY};
use crate::token::Identity;

/// A record as templates see it, built on first need: a route whose fields are all literal
/// never builds it.
pub(super) struct Context<'a> {
    pub(super) record: &'a Record,
    pub(super) content: &'a Content,
    pub(super) engine: std::cell::OnceCell<minijinja::Value>,
}

impl<'a> Context<'a> {
    pub(super) fn new(record: &'a Record, content: &'a Content) -> Context<'a> {
        Context {
            record,
            content,
            engine: std::cell::OnceCell::new(),
        }
    }

    pub(super) fn engine(&self) -> &minijinja::Value {
        self.engine
            .get_or_init(|| RecordContext::of(self.record, self.content, false))
    }
}

impl Mapping {
    pub(super) fn render(
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

    pub(super) fn render_route(
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
                priority: route.priority,
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
}
