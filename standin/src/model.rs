//! Checks a request body against Connect's model itself: the official model slices
//! (StartTaskContact, the operations that act on a task afterwards, and task templates) are
//! embedded and walked shape by shape (required members, unions, enums, lengths, patterns, list
//! sizes, integer ranges). The slices' HTTP bindings (method, URI, which members travel in the
//! URI and the query string) come from the same text. Nothing here is shared with the function's validator, which is written
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

/// The slice for CreateTaskTemplate, GetTaskTemplate and ListTaskTemplates.
pub const TASK_TEMPLATE_MODEL_JSON: &str = include_str!("../model/task-template.model.json");

pub struct Model {
    shapes: serde_json::Map<String, Value>,
    input: String,
    /// Input shape by operation (the slices with several operations).
    inputs: HashMap<String, String>,
    /// HTTP method and request URI by operation, as the model's `http` trait gives them.
    http: HashMap<String, (String, String)>,
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
    let single = doc["operation"]["name"]
        .as_str()
        .map(|name| (name.to_string(), &doc["operation"]));
    let http = doc["operations"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(op, o)| (op.clone(), o))
        .chain(single)
        .filter_map(|(op, o)| {
            let method = o["http"]["method"].as_str()?.to_string();
            let uri = o["http"]["requestUri"].as_str()?.to_string();
            Some((op, (method, uri)))
        })
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
        http,
        patterns,
    }
}

/// The task-template slice.
pub fn task_templates() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| load(TASK_TEMPLATE_MODEL_JSON))
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

    /// Every violation of the model in `value`, read as the named shape (an output shape, to
    /// check what a test seeds in the shape of an answer).
    pub fn violations_of_shape(&self, shape: &str, value: &Value) -> Vec<String> {
        let mut out = Vec::new();
        if self.shapes.contains_key(shape) {
            self.check(shape, value, "", &mut out);
        } else {
            out.push(format!("{shape}: not in the model"));
        }
        out
    }

    /// The members of a structure shape, by name.
    pub fn members(&self, shape: &str) -> Vec<&str> {
        self.shapes
            .get(shape)
            .and_then(|s| s["members"].as_object())
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// The operation's HTTP method and request URI (labels as `{Name}`), from the model.
    pub fn http(&self, operation: &str) -> Option<(&str, &str)> {
        self.http
            .get(operation)
            .map(|(m, u)| (m.as_str(), u.as_str()))
    }

    /// The operation's input as restJson1 binds it: the members the model puts in the URI
    /// (`labels`, by locationName) and the query string (`query`, by locationName; an integer
    /// member parsed when it can be) over the body's members. A body member the model binds
    /// elsewhere is not the body's to set.
    pub fn bind(
        &self,
        operation: &str,
        labels: &HashMap<String, String>,
        query: &[(String, String)],
        body: serde_json::Map<String, Value>,
    ) -> Value {
        let mut request = body;
        let Some(input) = self.inputs.get(operation).and_then(|i| self.shapes.get(i)) else {
            return Value::Object(request);
        };
        for (name, member) in input["members"].as_object().into_iter().flatten() {
            let location_name = member["locationName"].as_str().unwrap_or(name);
            let bound = match member["location"].as_str() {
                Some("uri") => labels.get(location_name).cloned(),
                Some("querystring") => query
                    .iter()
                    .find(|(k, _)| k == location_name)
                    .map(|(_, v)| v.clone()),
                _ => continue,
            };
            request.remove(name);
            let Some(text) = bound else { continue };
            let target = member["shape"].as_str().unwrap_or_default();
            let value = match self.shapes.get(target).and_then(|s| s["type"].as_str()) {
                Some("integer") => text.parse::<i64>().map_or(Value::String(text), Value::from),
                _ => Value::String(text),
            };
            request.insert(name.clone(), value);
        }
        Value::Object(request)
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
                Some(n) if i32::try_from(n).is_ok() => {
                    if let Some(min) = shape["min"].as_i64().filter(|min| n < *min) {
                        out.push(format!(
                            "{}: member must have value greater than or equal to {min}",
                            at(path)
                        ));
                    }
                    if let Some(max) = shape["max"].as_i64().filter(|max| n > *max) {
                        out.push(format!(
                            "{}: member must have value less than or equal to {max}",
                            at(path)
                        ));
                    }
                }
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
    #[test]
    fn the_task_template_slice_binds_its_operations() {
        let m = task_templates();
        assert_eq!(
            m.http("CreateTaskTemplate"),
            Some(("PUT", "/instance/{InstanceId}/task/template"))
        );
        assert_eq!(
            m.http("GetTaskTemplate"),
            Some((
                "GET",
                "/instance/{InstanceId}/task/template/{TaskTemplateId}"
            ))
        );
        assert_eq!(
            m.http("ListTaskTemplates"),
            Some(("GET", "/instance/{InstanceId}/task/template"))
        );
        assert_eq!(
            model().http("StartTaskContact"),
            Some(("PUT", "/contact/task"))
        );
    }

    #[test]
    fn labels_and_the_query_string_are_bound_as_the_model_says() {
        let m = task_templates();
        let labels = HashMap::from([("InstanceId".to_string(), "i".to_string())]);
        let query = vec![
            ("maxResults".to_string(), "7".to_string()),
            ("status".to_string(), "ACTIVE".to_string()),
            ("other".to_string(), "x".to_string()),
        ];
        let mut body = serde_json::Map::new();
        body.insert("InstanceId".into(), json!("not the body's"));
        let request = m.bind("ListTaskTemplates", &labels, &query, body);
        assert_eq!(
            request,
            json!({"InstanceId": "i", "MaxResults": 7, "Status": "ACTIVE"})
        );
        assert!(m.violations_of("ListTaskTemplates", &request).is_empty());
        let query = vec![("maxResults".to_string(), "many".to_string())];
        let request = m.bind("ListTaskTemplates", &labels, &query, Default::default());
        assert_eq!(
            m.violations_of("ListTaskTemplates", &request),
            ["MaxResults: must be a 32-bit integer"]
        );
    }

    #[test]
    fn integer_ranges_and_template_shapes_are_enforced() {
        let m = task_templates();
        for (n, needle) in [
            (
                0,
                "MaxResults: member must have value greater than or equal to 1",
            ),
            (
                101,
                "MaxResults: member must have value less than or equal to 100",
            ),
        ] {
            let v = m.violations_of(
                "ListTaskTemplates",
                &json!({"InstanceId": "i", "MaxResults": n}),
            );
            assert_eq!(v, [needle]);
        }
        let v = m
            .violations_of(
                "CreateTaskTemplate",
                &json!({
                    "InstanceId": "i",
                    "Name": "n".repeat(101),
                    "Status": "PAUSED",
                    "Fields": [{"Id": {"Name": "f"}, "Type": "COLOUR"}, {"Type": "TEXT"}],
                }),
            )
            .join("\n");
        for needle in [
            "Name: member must have length less than or equal to 100",
            "Status: member must satisfy enum value set: ACTIVE, INACTIVE",
            "Fields[0].Type: member must satisfy enum value set",
            "Fields[1].Id: member must not be null",
        ] {
            assert!(v.contains(needle), "missing {needle} in\n{v}");
        }
        assert_eq!(
            m.violations_of("CreateTaskTemplate", &json!({"InstanceId": "i"})),
            [
                "Name: member must not be null",
                "Fields: member must not be null"
            ]
        );
        assert!(m
            .violations_of_shape(
                "GetTaskTemplateResponse",
                &json!({"Id": "t", "Arn": "a", "Name": "n", "CreatedTime": 1.5})
            )
            .is_empty());
        let mut members = m.members("TaskTemplateMetadata");
        members.sort_unstable();
        assert_eq!(
            members,
            [
                "Arn",
                "CreatedTime",
                "Description",
                "Id",
                "LastModifiedTime",
                "Name",
                "Status"
            ]
        );
    }
}
