//! Structured JSON logs on stdout, one line per record outcome.
//!
//! Level: `RUST_LOG` when set (full filter syntax), else Lambda's `AWS_LAMBDA_LOG_LEVEL`, else
//! info. Format: JSON, unless Lambda's `AWS_LAMBDA_LOG_FORMAT` is `Text`. The SDK's own chatter
//! is held at warn unless `RUST_LOG` asks for it.
//!
//! Whatever level is asked for, no other crate's TRACE events are written: lambda_runtime logs
//! the raw event at TRACE, and the HTTP and SDK layers log requests there. Only this crate's
//! own events (which never carry event data) may be written at TRACE.

use tracing::Level;
use tracing_subscriber::filter::{filter_fn, EnvFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// The crate whose TRACE events may be written.
const OWN_TARGET: &str = "connect_task_bridge";

/// Whether an event or span passes the cap: other crates' TRACE never does.
pub fn allowed(level: &Level, target: &str) -> bool {
    *level < Level::TRACE || target == OWN_TARGET || target.starts_with("connect_task_bridge::")
}

pub fn filter_directives(rust_log: Option<&str>, lambda_level: Option<&str>) -> String {
    if let Some(directives) = rust_log.filter(|s| !s.trim().is_empty()) {
        return directives.to_string();
    }
    let level = match lambda_level.map(str::to_ascii_uppercase).as_deref() {
        Some("TRACE") => "trace",
        Some("DEBUG") => "debug",
        Some("WARN") => "warn",
        Some("ERROR") | Some("FATAL") => "error",
        _ => "info",
    };
    format!("{level},aws_smithy_runtime=warn,aws_config=warn,hyper_util=warn,h2=warn")
}

pub fn init() {
    let directives = filter_directives(
        std::env::var("RUST_LOG").ok().as_deref(),
        std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref(),
    );
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info"));
    let cap = filter_fn(|meta| allowed(meta.level(), meta.target()));
    let text = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("text"));
    let layer = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_writer(std::io::stdout);
    let layer = if text {
        layer.without_time().boxed()
    } else {
        layer
            .json()
            .flatten_event(true)
            // lambda_runtime's invoke span carries the requestId (and X-Ray trace id): each
            // record's line names its invocation. Only ids live in spans.
            .with_current_span(true)
            .with_span_list(false)
            .boxed()
    };
    tracing_subscriber::registry()
        .with(layer.with_filter(filter).with_filter(cap))
        .init();
}

/// A panic's own message can quote the data it choked on (`byte index 1 is not a char boundary;
/// it is inside 'é' of `+1é2``): the hook logs where it happened, never what it said. The
/// record it happened in fails alone (see `handler`).
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(
            outcome = "panic",
            location,
            "internal error: a panic was caught while handling a record"
        );
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_wins_then_lambda_level() {
        assert_eq!(filter_directives(Some("debug"), Some("ERROR")), "debug");
        assert!(filter_directives(None, Some("ERROR")).starts_with("error,"));
        assert!(filter_directives(None, Some("fatal")).starts_with("error,"));
        assert!(filter_directives(None, None).starts_with("info,"));
    }

    #[test]
    fn other_crates_never_trace() {
        assert!(!allowed(
            &Level::TRACE,
            "lambda_runtime::layers::api_response"
        ));
        assert!(!allowed(&Level::TRACE, "aws_smithy_runtime::client"));
        assert!(!allowed(&Level::TRACE, "connect_task_bridgeX"));
        assert!(allowed(&Level::DEBUG, "lambda_runtime"));
        assert!(allowed(&Level::TRACE, "connect_task_bridge::handler"));
    }
}
