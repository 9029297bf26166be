//! What templates see of a record: minijinja objects over the record's own JSON, read where a
//! template looks and nowhere else. Nothing is converted up front, so a template that reads
//! `body.orderId` costs a walk to that field whatever the size of the body, and there is one
//! template grammar: minijinja's.
//!
//! A context is either lenient (task fields: a missing field renders empty) or strict (a route's
//! `client_token`: nulls and blank strings are hidden, so reading one is an undefined-value
//! error and no event can lend another its identity by leaving a part out).

use std::sync::Arc;

use minijinja::value::{Enumerator, Object, ObjectRepr, Value as Template};
use serde_json::Value;

use crate::record::{Content, Record};

/// The names a template can read at the top level (see `Record::template_context`).
pub(super) const ROOTS: [&str; 7] = [
    "source",
    "id",
    "body",
    "headers",
    "attributes",
    "meta",
    "event",
];

/// A record as one template value. Built once per record and route set, on first need.
#[derive(Debug)]
pub(super) struct RecordContext {
    source: &'static str,
    id: String,
    body: Arc<Value>,
    headers: Arc<Value>,
    attributes: Arc<Value>,
    meta: Arc<Value>,
    event: Arc<Value>,
    strict: bool,
}

impl RecordContext {
    /// `strict` hides nulls and blank strings (identity templates).
    pub(super) fn of(record: &Record, content: &Content, strict: bool) -> Template {
        let map = |m: &std::collections::BTreeMap<String, String>| {
            Arc::new(Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            ))
        };
        Template::from_object(RecordContext {
            source: record.kind.as_str(),
            id: record.id.clone(),
            body: content.body.shared(),
            headers: map(&content.headers),
            attributes: map(&content.attributes),
            meta: Arc::new(content.meta.to_json()),
            event: Arc::clone(&record.event),
            strict,
        })
    }

    fn part(&self, name: &str) -> Option<Template> {
        let root = match name {
            "source" => return Some(Template::from(self.source)),
            "id" => return self.scalar(&Value::String(self.id.clone())),
            "body" => &self.body,
            "headers" => &self.headers,
            "attributes" => &self.attributes,
            "meta" => &self.meta,
            "event" => &self.event,
            _ => return None,
        };
        JsonView::at(Arc::clone(root), Vec::new(), self.strict)
    }

    fn scalar(&self, value: &Value) -> Option<Template> {
        (!(self.strict && blank(value))).then(|| scalar(value))
    }
}

impl Object for RecordContext {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Template) -> Option<Template> {
        self.part(key.as_str()?)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(&ROOTS)
    }
}

/// One step from a JSON value to a child.
#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

/// An object or array inside a record's JSON: the root it belongs to and the way there. The
/// root is shared, never copied; each read walks the (short) path again.
#[derive(Debug)]
struct JsonView {
    root: Arc<Value>,
    path: Vec<Step>,
    strict: bool,
}

impl JsonView {
    /// The template value of what `path` leads to: a view for objects and arrays, the value
    /// itself for scalars; `None` when there is nothing there (or, strict, only a blank).
    fn at(root: Arc<Value>, path: Vec<Step>, strict: bool) -> Option<Template> {
        let value = walk(&root, &path)?;
        match value {
            Value::Object(_) | Value::Array(_) => Some(Template::from_object(JsonView {
                root: Arc::clone(&root),
                path,
                strict,
            })),
            v if strict && blank(v) => None,
            v => Some(scalar(v)),
        }
    }

    fn value(&self) -> &Value {
        walk(&self.root, &self.path).unwrap_or(&Value::Null)
    }

    fn child(&self, step: Step) -> Option<Template> {
        let mut path = self.path.clone();
        path.push(step);
        JsonView::at(Arc::clone(&self.root), path, self.strict)
    }

    /// The keys templates see, sorted (as the engine's own maps are, whatever order the event
    /// was written in).
    fn visible<'a>(&self, map: &'a serde_json::Map<String, Value>) -> Vec<&'a String> {
        let mut keys: Vec<&String> = map
            .iter()
            .filter(|(_, v)| !(self.strict && blank(v)))
            .map(|(k, _)| k)
            .collect();
        keys.sort_unstable();
        keys
    }
}

impl Object for JsonView {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        match self.value() {
            Value::Array(_) => ObjectRepr::Seq,
            _ => ObjectRepr::Map,
        }
    }

    fn get_value(self: &Arc<Self>, key: &Template) -> Option<Template> {
        match self.value() {
            Value::Object(_) => self.child(Step::Key(key.as_str()?.to_string())),
            Value::Array(_) => self.child(Step::Index(key.as_usize()?)),
            _ => None,
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        match self.value() {
            Value::Object(map) => Enumerator::Values(
                self.visible(map)
                    .into_iter()
                    .map(|k| Template::from(k.as_str()))
                    .collect(),
            ),
            Value::Array(items) => Enumerator::Seq(items.len()),
            _ => Enumerator::Empty,
        }
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        match self.value() {
            Value::Object(map) => Some(self.visible(map).len()),
            Value::Array(items) => Some(items.len()),
            _ => Some(0),
        }
    }
}

fn walk<'a>(root: &'a Value, path: &[Step]) -> Option<&'a Value> {
    path.iter().try_fold(root, |v, step| match step {
        Step::Key(k) => v.as_object()?.get(k),
        Step::Index(i) => v.as_array()?.get(*i),
    })
}

fn blank(value: &Value) -> bool {
    value.is_null() || value.as_str().is_some_and(|s| s.trim().is_empty())
}

/// A JSON scalar as the template engine would have converted it.
fn scalar(value: &Value) -> Template {
    match value {
        Value::Null => Template::from(()),
        Value::Bool(b) => Template::from(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Template::from(i)
            } else if let Some(u) = n.as_u64() {
                Template::from(u)
            } else {
                Template::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => Template::from(s.as_str()),
        Value::Array(_) | Value::Object(_) => Template::from_serialize(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The lazy view renders exactly as the engine's own conversion of the same JSON would: the
    /// same spelling of every kind of value, the same key order, loops, filters and tests.
    #[test]
    fn renders_as_the_engines_own_values() {
        let body = json!({
            "orderId": "o-1", "amount": 250, "ratio": 0.5, "big": 18446744073709551615u64,
            "flag": true, "none": null, "blank": " ", "tags": ["b", "a", {"x": [1, 2]}],
            "z": {"b": 2, "a": 1}, "a b": {"c": "spaced"}, "empty": {}, "list": []
        });
        let mut env = minijinja::Environment::new();
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        let lazy = Template::from_object(JsonView {
            root: Arc::new(body.clone()),
            path: Vec::new(),
            strict: false,
        });
        let eager = Template::from_serialize(&body);
        for source in [
            "{{ body.orderId }}-{{ body.amount }}-{{ body.ratio }}-{{ body.big }}-{{ body.flag }}",
            "[{{ body.none }}][{{ body.blank }}][{{ body.missing }}][{{ body.missing.deeper }}]",
            "{{ body }}",
            "{{ body.tags }} {{ body.tags[1] }} {{ body.tags[2].x[1] }} {{ body.tags | last }}",
            "{{ body.tags | length }} {{ body | length }} {{ body.z | length }} {{ body.list | length }}",
            "{% for k, v in body.z | items %}{{ k }}={{ v }};{% endfor %}",
            "{% for k in body %}{{ k }},{% endfor %}",
            "{{ body | tojson }}",
            "{{ body.z | tojson(indent=2) }}",
            "{{ body['a b'].c }} {{ body['a b']['c'] }}",
            "{{ body.missing is defined }} {{ body.orderId is defined }} {{ body.none is none }}",
            "{{ 'orderId' in body }} {{ 'nope' in body }} {{ 'a' in body.tags }}",
            "{{ body.z.keys() | list }} {{ body.z | dictsort }} {{ body.tags | sort | join(',') }}",
            "{{ body.empty }} {{ body.list }} {{ body.empty is mapping }} {{ body.list is sequence }}",
            "{% if body.amount > 100 and body.flag %}big{% endif %}",
        ] {
            let render = |value: &Template| {
                env.render_str(source, minijinja::context! { body => value.clone() })
                    .map_err(|e| e.kind())
            };
            assert_eq!(render(&lazy), render(&eager), "{source}");
        }
    }

    #[test]
    fn strict_views_hide_nulls_and_blanks() {
        let view = JsonView::at(
            Arc::new(json!({"a": null, "b": " ", "c": "x", "d": {"e": ""}})),
            Vec::new(),
            true,
        )
        .unwrap();
        let env = minijinja::Environment::new();
        let out = env
            .render_str(
                "{{ v | list }} {{ v.a is defined }} {{ v.b is defined }} {{ v.d | length }}",
                minijinja::context! { v => view },
            )
            .unwrap();
        assert_eq!(out, r#"["c", "d"] False False 0"#);
    }
}
