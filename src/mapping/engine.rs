//! The template engine: the environments templates compile into (lenient for task text, strict
//! for identities), the filters whose output could outgrow their input, and the bounded writer
//! every render goes through. Nothing here knows routes or records.

use minijinja::{Environment, UndefinedBehavior};

/// Instructions one template render may execute; a loop over a huge range runs out long before
/// it could hold up the invocation.
pub const RENDER_FUEL: u64 = 100_000;
/// Longest text one template may produce. Connect's largest single field is 32,767 characters;
/// anything longer is a runaway template.
pub const MAX_RENDERED_BYTES: usize = 64 * 1024;

pub(super) fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    minijinja_contrib::add_to_environment(&mut env);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    // Optional event fields are the norm: `body.customer.tier` on an event without a customer
    // renders empty instead of failing, and `is defined` still tells them apart.
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env.set_fuel(Some(RENDER_FUEL));
    env.set_recursion_limit(64);
    // Task text is not HTML: never escape it.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    // The filters whose output can outgrow their input (indentation: a 1 MiB body nested 100
    // deep pretty-prints to over 100 MiB) write into a bounded buffer and stop at a field's limit.
    env.add_filter("pretty", pretty);
    env.add_filter("pprint", pretty);
    env.add_filter("tojson", tojson);
    env
}

/// The environment identity templates render in. A template that leaves a part out would merge
/// different events into one task (`order-{{ body.orderId }}` rendering `order-` for every event
/// without an orderId), so here nothing may be missing: undefined values fail (strict), nulls and
/// blank strings are taken out of the context before rendering (so `~` cannot hide them), and
/// printing a null or blank value fails too.
pub(super) fn identity_environment() -> Environment<'static> {
    let mut env = environment();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_formatter(|out, state, value| {
        let blank = value.is_undefined()
            || value.is_none()
            || value.as_str().is_some_and(|s| s.trim().is_empty());
        if blank {
            return Err(minijinja::Error::new(
                minijinja::ErrorKind::UndefinedError,
                "an identity part is missing, null or empty",
            ));
        }
        minijinja::escape_formatter(out, state, value)
    });
    env
}

/// A writer that keeps the first `limit` bytes and refuses the rest, so that no filter or
/// template can hold more than a field's worth of output, whatever the event.
pub(super) struct Bounded {
    buf: Vec<u8>,
    limit: usize,
    pub(super) full: bool,
}

impl Bounded {
    pub(super) fn new(limit: usize) -> Bounded {
        Bounded {
            buf: Vec::new(),
            limit,
            full: false,
        }
    }

    /// What was written, cut back to whole characters when the limit fell inside one.
    pub(super) fn into_string(self) -> String {
        let mut buf = self.buf;
        if let Err(e) = std::str::from_utf8(&buf) {
            buf.truncate(e.valid_up_to());
        }
        String::from_utf8(buf).expect("cut to valid UTF-8")
    }
}

impl std::io::Write for Bounded {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let room = self.limit - self.buf.len();
        if data.len() > room {
            self.buf.extend_from_slice(&data[..room]);
            self.full = true;
            return Err(std::io::Error::other("output limit reached"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Serialises `value` as JSON (indented by `indent` spaces, or compact) into at most
/// `MAX_RENDERED_BYTES`: longer output is cut there, and the field check reports it if the
/// template does not truncate it further.
fn bounded_json(
    value: &minijinja::Value,
    indent: Option<usize>,
) -> Result<String, minijinja::Error> {
    let mut out = Bounded::new(MAX_RENDERED_BYTES);
    let result = match indent {
        Some(width) => {
            let spaces = vec![b' '; width.min(16)];
            let formatter = serde_json::ser::PrettyFormatter::with_indent(&spaces);
            let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
            serde::Serialize::serialize(value, &mut ser)
        }
        None => serde::Serialize::serialize(value, &mut serde_json::Serializer::new(&mut out)),
    };
    match result {
        Err(_) if out.full => Ok(out.into_string()),
        // serde's message can quote a map key from the event: name the rule only.
        Err(_) => Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            "value cannot be written as JSON",
        )),
        Ok(()) => Ok(out.into_string()),
    }
}

/// `{{ body | pretty }}`: indented JSON, without the HTML escaping that `tojson` applies.
fn pretty(value: minijinja::Value) -> Result<String, minijinja::Error> {
    bounded_json(&value, Some(2))
}

/// `{{ value | tojson }}` / `tojson(indent=2)`: as minijinja's own (HTML-safe: `<`, `>`, `&` and
/// `'` escaped), but bounded.
fn tojson(
    value: minijinja::Value,
    indent: Option<minijinja::Value>,
    kwargs: minijinja::value::Kwargs,
) -> Result<minijinja::Value, minijinja::Error> {
    let indent = match indent.or(kwargs.get::<Option<minijinja::Value>>("indent")?) {
        Some(i) if i.is_true() => Some(usize::try_from(i).map_err(|_| {
            minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                "indent must be a whole number",
            )
        })?),
        _ => None,
    };
    kwargs.assert_all_used()?;
    let text = bounded_json(&value, indent)?
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\'', "\\u0027");
    Ok(minijinja::Value::from_safe_string(text))
}

/// A render-time error as it may be logged: the kind and the place in the template, never the
/// error's own text, which can quote event values (`cannot convert 'call me on +44…'`).
pub(super) fn describe_render(err: &minijinja::Error) -> String {
    match err.line() {
        Some(line) => format!("{} (template line {line})", err.kind()),
        None => err.kind().to_string(),
    }
}

pub(super) fn describe(err: &minijinja::Error) -> String {
    let mut message = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        message.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    message
}
