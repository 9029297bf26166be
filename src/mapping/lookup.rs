//! Templates that are only literal text and plain lookups (`order-{{ body.orderId }}`,
//! `{{ headers['x-github-delivery'] }}`), rendered straight from the record without the template
//! engine. Most fields of a mapping look like that, and the engine's per-render setup (and the
//! conversion of the whole record into its values) costs several times the lookup itself.
//!
//! The grammar accepted here is deliberately narrow; anything else — filters, tests, whitespace
//! control, numbers as keys, a trailing newline — is left to the engine. At render time a lookup
//! that ends on anything but a string or an integer (the engine spells booleans `True`), or that walks through a value that
//! is not an object, also hands the whole template back to the engine, so the output is always
//! the engine's (the tests below check it against the engine).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::record::Record;

/// A template made of literal text and lookups only.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Lookups {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Lookup { root: Root, path: Vec<String> },
}

/// The template context's top-level names (see `Record::template_context`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Root {
    Source,
    Id,
    Body,
    Headers,
    Attributes,
    Meta,
    Event,
}

impl Root {
    fn parse(name: &str) -> Option<Root> {
        Some(match name {
            "source" => Root::Source,
            "id" => Root::Id,
            "body" => Root::Body,
            "headers" => Root::Headers,
            "attributes" => Root::Attributes,
            "meta" => Root::Meta,
            "event" => Root::Event,
            _ => return None,
        })
    }
}

/// What a lookup found.
enum Found<'a> {
    /// Renders as this text.
    Text(&'a str),
    Integer(String),
    /// Undefined: renders empty (the environment's undefined behavior is chainable).
    Missing,
    /// Anything whose rendering is the engine's business.
    Other,
}

impl Lookups {
    /// The template as parts, or `None` when it needs the engine.
    pub(super) fn parse(source: &str) -> Option<Lookups> {
        // The engine drops one trailing newline; not worth imitating.
        if source.ends_with('\n') || source.contains("{%") || source.contains("{#") {
            return None;
        }
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let end = after.find("}}")?;
            parts.push(parse_lookup(&after[..end])?);
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        parts
            .iter()
            .any(|p| matches!(p, Part::Lookup { .. }))
            .then_some(Lookups { parts })
    }

    /// The rendered text, or `None` when a value found needs the engine to render it.
    pub(super) fn render(&self, record: &Record) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Lookup { root, path } => match find(record, *root, path) {
                    Found::Text(text) => out.push_str(text),
                    Found::Integer(text) => out.push_str(&text),
                    Found::Missing => {}
                    Found::Other => return None,
                },
            }
        }
        Some(out)
    }
}

/// `name(.key | ['key'] | ["key"])*` with optional spaces around it, the name one of the
/// context's roots.
fn parse_lookup(expr: &str) -> Option<Part> {
    // `{{-` / `-}}` trim whitespace: left to the engine.
    if !expr.starts_with(' ') || !expr.ends_with(' ') {
        return None;
    }
    let expr = expr.trim_matches(' ');
    let (name, mut rest) = split_ident(expr)?;
    let root = Root::parse(name)?;
    let mut path = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let (key, tail) = split_ident(after)?;
            path.push(key.to_string());
            rest = tail;
        } else if let Some(after) = rest.strip_prefix('[') {
            let quote = after.chars().next().filter(|c| *c == '\'' || *c == '"')?;
            let body = &after[1..];
            let close = body.find(quote)?;
            let key = &body[..close];
            if key.contains('\\') {
                return None;
            }
            rest = body[close + 1..].strip_prefix(']')?;
            path.push(key.to_string());
        } else {
            return None;
        }
    }
    Some(Part::Lookup { root, path })
}

/// An identifier at the start of `text`, and what follows it.
fn split_ident(text: &str) -> Option<(&str, &str)> {
    let first = text.chars().next()?;
    if !(first.is_ascii_alphabetic() || first == '_') {
        return None;
    }
    let len = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    Some(text.split_at(len))
}

fn find<'a>(record: &'a Record, root: Root, path: &[String]) -> Found<'a> {
    match root {
        Root::Source => text_leaf(record.kind.as_str(), path),
        Root::Id => text_leaf(&record.id, path),
        Root::Body => walk(record.body.get(), path),
        Root::Event => walk(&record.event, path),
        Root::Headers => string_map(&record.headers, path),
        Root::Attributes => string_map(&record.attributes, path),
        Root::Meta => match path.split_first() {
            None => Found::Other,
            Some((key, rest)) => match record.meta.get(key) {
                None => Found::Missing,
                Some(value) => walk(value, rest),
            },
        },
    }
}

fn text_leaf<'a>(text: &'a str, path: &[String]) -> Found<'a> {
    if path.is_empty() {
        Found::Text(text)
    } else {
        Found::Other
    }
}

fn string_map<'a>(map: &'a BTreeMap<String, String>, path: &[String]) -> Found<'a> {
    match path.split_first() {
        None => Found::Other,
        Some((key, rest)) => match map.get(key) {
            None => Found::Missing,
            Some(value) => text_leaf(value, rest),
        },
    }
}

fn walk<'a>(mut value: &'a Value, path: &[String]) -> Found<'a> {
    for key in path {
        match value {
            Value::Object(map) => match map.get(key) {
                Some(inner) => value = inner,
                None => return Found::Missing,
            },
            _ => return Found::Other,
        }
    }
    match value {
        Value::String(text) => Found::Text(text),
        Value::Number(n) if n.is_i64() || n.is_u64() => Found::Integer(n.to_string()),
        _ => Found::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::SourceKind;
    use minijinja::{Environment, UndefinedBehavior};
    use proptest::prelude::*;
    use serde_json::json;

    fn record(body: Value) -> Record {
        Record {
            kind: SourceKind::ApiGatewayHttp,
            id: "req-1".into(),
            identity: crate::token::Identity::Service("req-1".into()),
            body: crate::record::Body::value(body.clone()),
            raw_body: None,
            headers: BTreeMap::from([("x-github-delivery".into(), "d-1".into())]),
            attributes: BTreeMap::from([("kind".into(), "support".into())]),
            meta: json!({"method": "POST", "nested": {"n": 7}})
                .as_object()
                .unwrap()
                .clone(),
            event: json!({"body": body}),
            direct: None,
            order_key: None,
            linked_contact: None,
            queue_message: None,
        }
    }

    /// What the mapping's environment renders for this template and record.
    fn engine(source: &str, record: &Record) -> String {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.render_str(source, record.template_context()).unwrap()
    }

    #[test]
    fn accepts_text_and_lookups_only() {
        for source in [
            "{{ body.orderId }}",
            "order-{{ body.orderId }}",
            "{{ headers['x-github-delivery'] }}",
            r#"{{ body["a b"].c }} and {{ meta.method }}"#,
            "https://x/{{ body.order_id }}/{{ id }}?s={{ source }}",
        ] {
            assert!(Lookups::parse(source).is_some(), "{source}");
        }
        for source in [
            "plain text",
            "{{ body.a | upper }}",
            "{{body.a}}",
            "{{- body.a }}",
            "{{ body.items[0] }}",
            "{{ body.items.0 }}",
            "{{ range }}",
            "{{ body.a }}\n",
            "{{ body.a }}{% if x %}{% endif %}",
            "{{ body['a\\'b'] }}",
            "{{ body.a ",
            "{{ body.a + 1 }}",
            "{{ body.a() }}",
        ] {
            assert!(Lookups::parse(source).is_none(), "{source}");
        }
    }

    #[test]
    fn renders_what_the_engine_renders() {
        let r = record(json!({
            "orderId": "o-1", "n": 42, "big": u64::MAX, "neg": -3, "yes": true, "no": false,
            "a b": {"c": "spaced"}, "customer": {"id": "c-9", "tier": "gold"}
        }));
        for source in [
            "order-{{ body.orderId }}",
            "{{ body.n }}/{{ body.big }}/{{ body.neg }}",
            r#"{{ body["a b"].c }}"#,
            "{{ body.customer.id }}:{{ body.customer.tier }}",
            "[{{ body.missing }}][{{ body.missing.deeper }}][{{ headers.nope }}][{{ meta.nope.x }}]",
            "{{ headers['x-github-delivery'] }} {{ attributes.kind }} {{ meta.method }}",
            "{{ meta.nested.n }} {{ id }} {{ source }} {{ event.body.orderId }}",
        ] {
            let fast = Lookups::parse(source).unwrap().render(&r);
            assert_eq!(fast.as_deref(), Some(engine(source, &r).as_str()), "{source}");
        }
    }

    #[test]
    fn values_the_engine_formats_are_handed_back() {
        let r = record(
            json!({"yes": true, "f": 1.5, "null": null, "obj": {"a": 1}, "list": [1], "s": "x"}),
        );
        for source in [
            "{{ body.yes }}",
            "{{ body.f }}",
            "{{ body.null }}",
            "{{ body.obj }}",
            "{{ body.list }}",
            "{{ body.s.len }}",
            "{{ body.null.x }}",
            "{{ headers }}",
            "{{ source.x }}",
        ] {
            assert_eq!(Lookups::parse(source).unwrap().render(&r), None, "{source}");
        }
    }

    fn json_leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
            "[a-z {}%#'\"\\\\]{0,12}".prop_map(Value::from),
            Just(Value::Null),
            (-1e6f64..1e6).prop_map(Value::from),
        ]
    }

    fn json_tree() -> impl Strategy<Value = Value> {
        json_leaf().prop_recursive(3, 24, 4, |inner| {
            prop::collection::btree_map("[abc]", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect()))
        })
    }

    proptest! {
        /// Wherever the fast path answers, it answers what the engine does.
        #[test]
        fn agrees_with_the_engine(
            body in json_tree(),
            path in prop::collection::vec("[abc]", 0..4),
            prefix in "[a-z/: ]{0,5}",
        ) {
            let r = record(body);
            let source = format!("{prefix}{{{{ body.{} }}}}!", path.join("."))
                .replace("body. ", "body ");
            let lookups = Lookups::parse(&source).unwrap();
            if let Some(fast) = lookups.render(&r) {
                prop_assert_eq!(fast, engine(&source, &r));
            }
        }
    }
}
