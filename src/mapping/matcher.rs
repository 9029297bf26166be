//! Which route a record takes: a route's `when` against the record (its source, EventBridge
//! source and detail type, headers, attributes, body values and expression).

use serde_json::Value;

use super::compile::{Route, When};
use super::render::Context;
use super::Mapping;
use crate::error::BridgeError;

impl Mapping {
    pub(super) fn matches(
        &self,
        route: &Route,
        when: &When,
        ctx: &Context<'_>,
    ) -> Result<bool, BridgeError> {
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
