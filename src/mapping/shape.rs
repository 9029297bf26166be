//! What each route's requests say before any event, as far as a task template reads it: which
//! members a route fills, its references (their type and value where they are literal), and the
//! task template it names. `check --task-template` checks these against the template; a value
//! or a template id rendered per event is checked before each call instead (`template::book`).

use super::compile::{Node, Route, Text};
use super::Mapping;
use crate::plan::{Action, IfMissing};
use crate::template::{Shape, ShapeReference};

/// Which task template a route's requests name.
#[derive(Debug, Clone, PartialEq)]
pub enum TemplateId {
    /// None: the route names a flow or quick connect, or nothing and no default template is set.
    None,
    Literal(String),
    /// Rendered per event: checked before each call.
    PerEvent,
}

/// A route's requests as a task template sees them.
#[derive(Debug, Clone)]
pub struct RouteShape {
    pub route: String,
    /// Whether the route's requests may create a task (a start, or `if_missing: start`): a
    /// template is read only then.
    pub starts: bool,
    pub template: TemplateId,
    pub shape: Shape,
}

fn member<'a>(route: &'a Route, name: &str) -> Option<&'a Node> {
    route
        .task
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, node)| node)
}

fn literal(node: &Node) -> Option<&str> {
    match node {
        Node::Text {
            text: Text::Literal(s),
            ..
        } => Some(s),
        _ => None,
    }
}

fn entry<'a>(entries: &'a [(String, Node)], names: [&str; 2]) -> Option<&'a Node> {
    entries
        .iter()
        .find(|(k, _)| names.contains(&k.as_str()))
        .map(|(_, n)| n)
}

impl Mapping {
    /// Every route's requests as a task template sees them; `default_template` is
    /// `CONNECT_TASK_TEMPLATE_ID`, which a route that names no flow gets.
    pub fn route_shapes(&self, default_template: Option<&str>) -> Vec<RouteShape> {
        self.routes
            .iter()
            .map(|route| {
                let has = |name: &str| member(route, name).is_some();
                let flow = has("contact_flow_id");
                let quick_connect = has("quick_connect_id");
                let template = match member(route, "task_template_id") {
                    Some(node) => match literal(node) {
                        Some(id) => TemplateId::Literal(id.to_string()),
                        None => TemplateId::PerEvent,
                    },
                    None if !flow && !quick_connect => default_template
                        .map_or(TemplateId::None, |id| TemplateId::Literal(id.to_string())),
                    None => TemplateId::None,
                };
                let references = match member(route, "references") {
                    Some(Node::Map(entries)) => entries
                        .iter()
                        .map(|(key, node)| {
                            let (kind, value) = match node {
                                Node::Map(parts) => (
                                    entry(parts, ["type", "Type"]).and_then(literal),
                                    entry(parts, ["value", "Value"]).and_then(literal),
                                ),
                                _ => (None, None),
                            };
                            (
                                key.clone(),
                                ShapeReference {
                                    kind: kind.map(str::to_string),
                                    value: value.map(str::to_string),
                                },
                            )
                        })
                        .collect(),
                    _ => Default::default(),
                };
                let expiry_in_segments = match member(route, "segment_attributes") {
                    Some(Node::Map(entries)) => entries
                        .iter()
                        .any(|(k, _)| k == crate::task::CONTACT_EXPIRY),
                    _ => false,
                };
                RouteShape {
                    route: route.name.clone(),
                    starts: route.action == Action::Start || route.if_missing == IfMissing::Start,
                    template,
                    shape: Shape {
                        name: has("name"),
                        description: has("description"),
                        scheduled_time: has("scheduled_time") || route.delay.is_some(),
                        expiry: route.expiry_minutes.is_some() || expiry_in_segments,
                        contact_flow: flow,
                        quick_connect,
                        references,
                    },
                }
            })
            .collect()
    }

    /// The task templates the mapping's routes (or the default) name literally: what a cold
    /// start reads ahead.
    pub fn literal_template_ids(&self, default_template: Option<&str>) -> Vec<String> {
        let mut ids: Vec<String> = self
            .route_shapes(default_template)
            .into_iter()
            .filter_map(|r| match r.template {
                TemplateId::Literal(id) => Some(id),
                _ => None,
            })
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}
