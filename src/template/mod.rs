//! Task templates as part of the contract: what a template (`GetTaskTemplate`) asks of a task,
//! and the check of a request against it — a rendered request before every call, or a route's
//! compiled request in `check --task-template` — naming the field and the rule, never a value.
//!
//! The rules are Connect's (`../shared/connect/README.md`, "Task templates"; the API reference's
//! UpdateContactTaskTemplate page): a template creates tasks only while `ACTIVE`; a request names
//! exactly one of ContactFlowId, QuickConnectId and TaskTemplateId, so a template is usable alone
//! only with a flow of its own; a required field is filled (NAME, DESCRIPTION, SCHEDULED_TIME and
//! EXPIRY_DURATION by the request's own members, custom fields by a reference of the field's
//! name) unless the template gives it a default; a reference that names a field has the field's
//! reference type (TEXT, TEXT_AREA, BOOLEAN, SINGLE_SELECT → STRING; NUMBER → NUMBER; DATE_TIME →
//! DATE; URL → URL; EMAIL → EMAIL); TEXT values are fewer than 512 characters, TEXT_AREA fewer
//! than 4,096, BOOLEAN `true` or `false`, a single select one of its options. No AWS here: the
//! book that fetches templates is `book`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::task::{TaskRequest, CONTACT_EXPIRY};

pub mod book;

/// A task template as `aws connect get-task-template --output json` prints it (and as the SDK
/// reads it), as far as the check needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskTemplate {
    pub id: String,
    pub name: String,
    /// `ACTIVE` or `INACTIVE`.
    pub status: String,
    pub contact_flow_id: Option<String>,
    pub fields: Vec<Field>,
    /// Names of the required fields.
    pub required: BTreeSet<String>,
    /// Names of the fields the template gives a default value.
    pub defaults: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    /// NAME, DESCRIPTION, SCHEDULED_TIME, QUICK_CONNECT, URL, NUMBER, TEXT, TEXT_AREA, DATE_TIME,
    /// BOOLEAN, SINGLE_SELECT, EMAIL, SELF_ASSIGN, EXPIRY_DURATION.
    pub kind: String,
    pub options: Vec<String>,
}

/// A field the request breaks, and the rule it breaks (never the request's value).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub field: String,
    pub rule: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.rule)
    }
}

impl TaskTemplate {
    /// Reads a template from GetTaskTemplate's answer (PascalCase members, as the CLI prints it).
    pub fn from_json(value: &Value) -> Result<TaskTemplate, String> {
        let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
        let names = |list: Option<&Value>| -> BTreeSet<String> {
            list.and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|item| item.pointer("/Id/Name").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        };
        let id = text(value, "Id").ok_or("a task template has an Id")?;
        let fields = match value.get("Fields") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(fields)) => fields
                .iter()
                .map(|field| {
                    let options = match field.get("SingleSelectOptions") {
                        None | Some(Value::Null) => Vec::new(),
                        Some(Value::Array(options)) => options
                            .iter()
                            .map(|o| o.as_str().map(str::to_string))
                            .collect::<Option<Vec<String>>>()
                            .ok_or("SingleSelectOptions are texts")?,
                        Some(_) => return Err("SingleSelectOptions is a list".to_string()),
                    };
                    Ok(Field {
                        name: field
                            .pointer("/Id/Name")
                            .and_then(Value::as_str)
                            .ok_or("every field has Id.Name")?
                            .to_string(),
                        kind: text(field, "Type").ok_or("every field has a Type")?,
                        options,
                    })
                })
                .collect::<Result<Vec<Field>, String>>()?,
            Some(_) => return Err("Fields is a list".into()),
        };
        let mut seen = BTreeSet::new();
        if let Some(twice) = fields.iter().find(|f| !seen.insert(f.name.as_str())) {
            return Err(format!("field '{}' is defined twice", twice.name));
        }
        // A default that is empty fills nothing (Connect refuses the task).
        let defaults = value
            .pointer("/Defaults/DefaultFieldValues")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|d| {
                d.get("DefaultValue")
                    .and_then(Value::as_str)
                    .is_some_and(|v| !v.is_empty())
            })
            .filter_map(|d| d.pointer("/Id/Name").and_then(Value::as_str))
            .map(str::to_string)
            .collect();
        Ok(TaskTemplate {
            id,
            name: text(value, "Name").unwrap_or_default(),
            status: text(value, "Status").unwrap_or_else(|| "ACTIVE".into()),
            contact_flow_id: text(value, "ContactFlowId").filter(|f| !f.is_empty()),
            fields,
            required: names(value.pointer("/Constraints/RequiredFields")),
            defaults,
        })
    }

    fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The required fields the request may leave to the template's defaults.
    pub fn defaulted(&self) -> Vec<&str> {
        self.required
            .iter()
            .filter(|name| self.defaults.contains(*name))
            .map(String::as_str)
            .collect()
    }

    /// Every rule `shape` breaks, in field order.
    pub fn check(&self, shape: &Shape) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut problem = |field: &str, rule: String| {
            problems.push(Problem {
                field: field.to_string(),
                rule,
            })
        };
        if self.status != "ACTIVE" {
            problem(
                "Status",
                format!(
                    "the template is {}: tasks are created only from ACTIVE templates",
                    self.status
                ),
            );
        }
        if shape.contact_flow || shape.quick_connect {
            problem(
                "TaskTemplateId",
                "a request names exactly one of ContactFlowId, QuickConnectId and TaskTemplateId"
                    .into(),
            );
        } else if self.contact_flow_id.is_none() {
            problem(
                "TaskTemplateId",
                "the template has no flow of its own (ContactFlowId), and a request may name only one of ContactFlowId, QuickConnectId and TaskTemplateId".into(),
            );
        }
        for field in &self.fields {
            if !self.required.contains(&field.name) || self.defaults.contains(&field.name) {
                continue;
            }
            let filled = match field.kind.as_str() {
                "NAME" => Some(shape.name),
                "DESCRIPTION" => Some(shape.description),
                "SCHEDULED_TIME" => Some(shape.scheduled_time),
                "EXPIRY_DURATION" => Some(shape.expiry),
                "QUICK_CONNECT" | "SELF_ASSIGN" => None,
                // A reference with an empty value fills nothing.
                _ => Some(
                    shape
                        .references
                        .get(&field.name)
                        .is_some_and(|r| r.value.as_deref() != Some("")),
                ),
            };
            match filled {
                Some(true) => {}
                Some(false) => problem(&field.name, format!("required ({}) and not filled: {}", field.kind, filler(&field.kind))),
                None => problem(
                    &field.name,
                    format!(
                        "required ({}) without a default, and no StartTaskContact member can fill it",
                        field.kind
                    ),
                ),
            }
        }
        for (key, reference) in &shape.references {
            let Some(field) = self.field(key) else {
                continue;
            };
            let Some(wanted) = reference_type(&field.kind) else {
                continue;
            };
            if let Some(kind) = &reference.kind {
                if kind != wanted {
                    problem(
                        key,
                        format!(
                            "a {} field takes a reference of type {wanted}, not {kind}",
                            field.kind
                        ),
                    );
                    continue;
                }
            }
            // An empty value leaves an optional field empty (a required one is said above).
            if let Some(value) = reference.value.as_deref().filter(|v| !v.is_empty()) {
                if let Some(rule) = value_rule(field, value) {
                    problem(key, rule);
                }
            }
        }
        problems
    }
}

/// What fills a field of `kind`, for the message that says it is missing.
fn filler(kind: &str) -> &'static str {
    match kind {
        "NAME" => "the task's name",
        "DESCRIPTION" => "the task's description",
        "SCHEDULED_TIME" => "scheduled_time or delay",
        "EXPIRY_DURATION" => "expiry_minutes (connect:ContactExpiry)",
        _ => "a reference of that name",
    }
}

/// The reference type a field of `kind` takes; None for fields no reference fills.
pub fn reference_type(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "TEXT" | "TEXT_AREA" | "BOOLEAN" | "SINGLE_SELECT" => "STRING",
        "NUMBER" => "NUMBER",
        "DATE_TIME" => "DATE",
        "URL" => "URL",
        "EMAIL" => "EMAIL",
        _ => return None,
    })
}

/// The rule a value breaks for its field, if any.
fn value_rule(field: &Field, value: &str) -> Option<String> {
    let chars = value.chars().count();
    let ok = match field.kind.as_str() {
        "TEXT" => chars < 512,
        "TEXT_AREA" => chars < 4096,
        "BOOLEAN" => value == "true" || value == "false",
        "SINGLE_SELECT" => field.options.iter().any(|o| o == value),
        "NUMBER" => value.parse::<f64>().is_ok_and(f64::is_finite),
        "DATE_TIME" => {
            let (whole, fraction) = value.split_once('.').unwrap_or((value, "0"));
            !whole.is_empty()
                && whole.bytes().all(|b| b.is_ascii_digit())
                && fraction.bytes().all(|b| b.is_ascii_digit())
        }
        "EMAIL" => {
            !value.contains(char::is_whitespace)
                && value.split_once('@').is_some_and(|(local, domain)| {
                    !local.is_empty() && !domain.is_empty() && !domain.contains('@')
                })
        }
        "URL" => {
            let lower = value.to_ascii_lowercase();
            let rest = lower
                .strip_prefix("https://")
                .or_else(|| lower.strip_prefix("http://"));
            rest.is_some_and(|r| !r.is_empty()) && !value.contains(char::is_whitespace)
        }
        _ => true,
    };
    (!ok).then(|| {
        match field.kind.as_str() {
            "TEXT" => "a TEXT field takes fewer than 512 characters",
            "TEXT_AREA" => "a TEXT_AREA field takes fewer than 4,096 characters",
            "BOOLEAN" => "a BOOLEAN field takes true or false",
            "SINGLE_SELECT" => "not one of the field's options",
            "NUMBER" => "a NUMBER field takes a number",
            "DATE_TIME" => "a DATE_TIME field takes an epoch timestamp",
            "EMAIL" => "an EMAIL field takes an e-mail address",
            _ => "a URL field takes an http(s) URL",
        }
        .to_string()
    })
}

/// A reference as the check sees it: its type and value, None where they are rendered per
/// event (a route's template), known where they are literal or rendered already.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShapeReference {
    pub kind: Option<String>,
    pub value: Option<String>,
}

/// What a request says, as far as a task template reads it: which members it fills and its
/// references.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shape {
    pub name: bool,
    pub description: bool,
    pub scheduled_time: bool,
    pub expiry: bool,
    pub contact_flow: bool,
    pub quick_connect: bool,
    pub references: BTreeMap<String, ShapeReference>,
}

impl Shape {
    /// A rendered request's shape: every value known.
    pub fn of(request: &TaskRequest) -> Shape {
        let filled = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.trim().is_empty());
        Shape {
            name: filled(&request.name),
            description: filled(&request.description),
            scheduled_time: request.scheduled_time.is_some(),
            expiry: request
                .segment_attributes
                .as_ref()
                .is_some_and(|s| s.contains_key(CONTACT_EXPIRY)),
            contact_flow: filled(&request.contact_flow_id),
            quick_connect: filled(&request.quick_connect_id),
            references: request
                .references
                .iter()
                .flatten()
                .map(|(key, r)| {
                    (
                        key.clone(),
                        ShapeReference {
                            kind: Some(r.kind.clone()),
                            value: Some(r.value.clone()),
                        },
                    )
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests;
