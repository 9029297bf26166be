//! Structured JSON logs on stdout, one line per record outcome.
//!
//! Level: `RUST_LOG` when set (full filter syntax), else Lambda's `AWS_LAMBDA_LOG_LEVEL`, else
//! info. Format: JSON, unless Lambda's `AWS_LAMBDA_LOG_FORMAT` is `Text`. The SDK's own chatter
//! is held at warn unless `RUST_LOG` asks for it.

use tracing_subscriber::EnvFilter;

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
    let text = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("text"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stdout);
    if text {
        builder.without_time().init();
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init();
    }
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
}
