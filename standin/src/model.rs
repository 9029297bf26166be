//! Checks a request body against Connect's model itself: the official model slices
//! (StartTaskContact, and the operations that act on a task afterwards) are embedded and walked
//! shape by shape (required members, unions, enums, lengths, patterns, list
//! sizes, integer ranges). Nothing here is shared with the function's validator, which is written
//! by hand from the same contract: two readings of the model must agree.

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value;

/// The StartTaskContact slice of the Amazon Connect service model (botocore JSON form), as in
/// `../shared/connect/` when this stand-in was written.
pub const MODEL_JSON: &str = include_str!("../model/start-task-contact.model.json");

/// The slice for StopContact, UpdateContact, UpdateContactAttributes, UpdateContactSchedule,
/// GetContactAttributes, TagContact and DescribeContact.
pub const LIFECYCLE_MODEL_JSON: &str = include_str!("../model/task-lifecycle.model.json");

pub struct Model {
    shapes: serde_json::Map<String, Value>,
    input: String,
    /// Input shape by operation (the lifecycle slice).
    inputs: HashMap<String, String>,
    patterns: HashMap<String, Regex>,
}

fn load(text: &str) -> Model {
    let doc: Value = serde_json::from_str(text).expect("the embedded model is JSON");
    let shapes = doc["shapes"].as_object().expect("model has shapes").clone();
    let input = doc["operation"]["input"]["shape"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let inputs = doc["operations"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(op, o)| Some((op.clone(), o["input"]["shape"].as_str()?.to_string())))
        .collect();
    // A pattern the regex crate cannot compile (look-around: a tag key's `^(?!aws:)`) is
    // checked by `rules` instead.
    let patterns = shapes
        .iter()
        .filter_map(|(name, s)| {
            let p = s.get("pattern")?.as_str()?;
            Some((name.clone(), Regex::new(p).ok()?))
        })
        .collect();
    Model {
        shapes,
        input,
        inputs,
        patterns,
    }
}

/// The lifecycle slice.
pub fn lifecycle() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| load(LIFECYCLE_MODEL_JSON))
}

pub fn model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| load(MODEL_JSON))
}

impl Model {
    /// Every violation of the model in `body`, as "path: problem" lines.
    pub fn violations(&self, body: &Value) -> Vec<String> {
        let mut out = Vec::new();
        self.check(&self.input, body, "", &mut out);
        out
    }

    /// As `violations`, for one operation of the lifecycle slice.
    pub fn violations_of(&self, operation: &str, body: &Value) -> Vec<String> {
        let mut out = Vec::new();
        match self.inputs.get(operation) {
            Some(input) => self.check(input, body, "", &mut out),
            None => out.push(format!("{operation}: not in the model")),
        }
        out
    }

    pub fn http_method_and_uri(&self) -> (String, String) {
        let doc: Value = serde_json::from_str(MODEL_JSON).expect("model is JSON");
        (
            doc["operation"]["http"]["method"].as_str().unwrap().into(),
            doc["operation"]["http"]["requestUri"]
                .as_str()
                .unwrap()
                .into(),
        )
    }

    fn check(&self, shape_name: &str, value: &Value, path: &str, out: &mut Vec<String>) {
        let shape = &self.shapes[shape_name];
        let at = |p: &str| {
            if p.is_empty() {
                "request".to_string()
            } else {
                p.to_string()
            }
        };
        match shape["type"].as_str().unwrap_or_default() {
            "structure" => {
                let Some(obj) = value.as_object() else {
                    out.push(format!("{}: must be an object", at(path)));
                    return;
                };
                let members = shape["members"].as_object().cloned().unwrap_or_default();
                for req in shape["required"].as_array().into_iter().flatten() {
                    let req = req.as_str().unwrap_or_default();
                    if obj.get(req).is_none_or(Value::is_null) {
                        out.push(format!("{}: member must not be null", join(path, req)));
                    }
                }
                let set: Vec<&String> = obj
                    .iter()
                    .filter(|(k, v)| !v.is_null() && members.contains_key(*k))
                    .map(|(k, _)| k)
                    .collect();
                if shape["union"].as_bool() == Some(true) && set.len() != 1 {
                    out.push(format!(
                        "{}: exactly one member must be set (found {})",
                        at(path),
                        set.len()
                    ));
                }
                for name in set {
                    let target = members[name]["shape"].as_str().unwrap_or_default();
                    self.check(target, &obj[name], &join(path, name), out);
                }
            }
            "string" => {
                let Some(text) = value.as_str() else {
                    out.push(format!("{}: must be a string", at(path)));
                    return;
                };
                if let Some(values) = shape["enum"].as_array() {
                    if !values.iter().any(|v| v == text) {
                        out.push(format!(
                            "{}: member must satisfy enum value set: {}",
                            at(path),
                            values
                                .iter()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                }
                self.length(shape, text.chars().count(), path, "length", out);
                if let Some(re) = self.patterns.get(shape_name) {
                    if !re.is_match(text) {
                        out.push(format!(
                            "{}: member must satisfy regular expression pattern: {}",
                            at(path),
                            re.as_str()
                        ));
                    }
                }
            }
            "map" => {
                let Some(obj) = value.as_object() else {
                    out.push(format!("{}: must be a map", at(path)));
                    return;
                };
                self.length(shape, obj.len(), path, "size", out);
                let key_shape = shape["key"]["shape"].as_str().unwrap_or_default();
                let value_shape = shape["value"]["shape"].as_str().unwrap_or_default();
                for (k, v) in obj {
                    let p = format!("{}.{k}", at(path));
                    self.check(
                        key_shape,
                        &Value::String(k.clone()),
                        &format!("{p}(key)"),
                        out,
                    );
                    self.check(value_shape, v, &p, out);
                }
            }
            "list" => {
                let Some(items) = value.as_array() else {
                    out.push(format!("{}: must be a list", at(path)));
                    return;
                };
                self.length(shape, items.len(), path, "size", out);
                let member = shape["member"]["shape"].as_str().unwrap_or_default();
                for (i, item) in items.iter().enumerate() {
                    self.check(member, item, &format!("{}[{i}]", at(path)), out);
                }
            }
            "integer" => match value.as_i64() {
                Some(n) if i32::try_from(n).is_ok() => {}
                _ => out.push(format!("{}: must be a 32-bit integer", at(path))),
            },
            "timestamp" => {
                if !value.is_number() {
                    out.push(format!("{}: must be epoch seconds", at(path)));
                }
            }
            other => out.push(format!("{}: unsupported shape type {other}", at(path))),
        }
    }

    fn length(&self, shape: &Value, n: usize, path: &str, what: &str, out: &mut Vec<String>) {
        let at = if path.is_empty() { "request" } else { path };
        if let Some(min) = shape["min"].as_u64() {
            if (n as u64) < min {
                out.push(format!(
                    "{at}: member must have {what} greater than or equal to {min}"
                ));
            }
        }
        if let Some(max) = shape["max"].as_u64() {
            if (n as u64) > max {
                out.push(format!(
                    "{at}: member must have {what} less than or equal to {max}"
                ));
            }
        }
    }
}

fn join(path: &str, member: &str) -> String {
    if path.is_empty() {
        member.to_string()
    } else {
        format!("{path}.{member}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_minimal_request_passes() {
        assert!(model()
            .violations(&json!({"InstanceId": "i", "Name": "n"}))
            .is_empty());
    }

    #[test]
    fn the_model_bounds_are_enforced() {
        let v = model().violations(&json!({
            "Name": "x".repeat(1025),
            "Description": "d".repeat(4097),
            "References": {"r": {"Value": "v", "Type": "NOPE"}},
            "Attachments": [],
            "SegmentAttributes": {"s": {"ValueString": "a".repeat(1025)}},
            "ScheduledTime": "tomorrow",
        }));
        let text = v.join("\n");
        for needle in [
            "InstanceId: member must not be null",
            "Name: member must have length less than or equal to 1024",
            "Description: member must have length less than or equal to 4096",
            "References.r.Type: member must satisfy enum value set",
            "Attachments: member must have size greater than or equal to 1",
            "SegmentAttributes.s.ValueString: member must have length less than or equal to 1024",
            "ScheduledTime: must be epoch seconds",
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }

    #[test]
    fn patterns_come_from_the_model() {
        let v = model().violations(&json!({
            "InstanceId": "i", "Name": "n",
            "Attachments": [{"FileName": "bad\u{0007}name", "S3Url": "u"}]
        }));
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].starts_with("Attachments[0].FileName"), "{v:?}");
    }
}
