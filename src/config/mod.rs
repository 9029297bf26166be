//! The function's configuration, read from the environment and checked once at cold start.
//!
//! Every variable the function reads is described once, in [`VARIABLES`] (name, default,
//! meaning); the table in docs/configuration.md is generated from it
//! (`connect-task-bridge config --markdown docs/configuration.md`), and tests hold both the
//! readers below and that file to it.

use std::path::PathBuf;

use crate::connect::CallPolicy;
use crate::error::ConfigError;
use crate::mapping::Mapping;
use crate::pace::{PaceSetting, Quotas};
use crate::sources::EnvelopeLimits;
use crate::task::TaskDefaults;
use crate::tls::TlsRoots;
use crate::webhook_auth::WebhookAuthSetting;

mod variables;

pub use variables::{
    variable, variables_markdown, with_variables_table, Group, Variable, Vars, TABLE_BEGIN,
    TABLE_END, VARIABLES,
};

pub const DEFAULT_BATCH_CONCURRENCY: usize = 10;

/// Which member links a task to the contact its record names (a contact flow's caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactLink {
    /// `RelatedContactId`: the task inherits the contact's attributes; no chain limit.
    Related,
    /// `PreviousContactId`: at most 12 tasks may share one (then ServiceQuotaExceeded).
    Previous,
}
pub const MAX_BATCH_CONCURRENCY: usize = 100;

#[derive(Debug)]
pub struct Config {
    pub defaults: TaskDefaults,
    /// The Region of the instance when `CONNECT_INSTANCE_ID` is an ARN: where Connect is called.
    pub connect_region: Option<String>,
    pub mapping: Mapping,
    /// Where the mapping came from, for the cold-start log line.
    pub mapping_source: String,
    pub batch_concurrency: usize,
    pub limits: EnvelopeLimits,
    /// Where EMF metrics go; None: not emitted.
    pub metrics_namespace: Option<String>,
    /// Retries and timeouts of the Connect call.
    pub call_policy: CallPolicy,
    /// How webhook callers are authenticated (`WEBHOOK_AUTH`).
    pub webhook_auth: WebhookAuthSetting,
    /// How a task links to the contact its record names (`CONTACT_FLOW_LINK`).
    pub contact_link: ContactLink,
    /// Connect's quota and how many environments share it (`CONNECT_REQUESTS_PER_SECOND`,
    /// `CONNECT_BURST`, `CONNECT_CALLERS`).
    pub pace: PaceSetting,
    /// The other operations' quotas, the priority share and the pace table (`PACE_TABLE`).
    pub quotas: Quotas,
    /// The task queue (`TASK_QUEUE_URL`): where queued webhooks and throttled direct requests go.
    pub task_queue_url: Option<String>,
    /// The priority queue (`PRIORITY_QUEUE_URL`): what `priority: high` routes queue.
    pub priority_queue_url: Option<String>,
    /// Whether webhooks are queued (202) or call Connect themselves (201) (`WEBHOOK_MODE`).
    pub webhook_mode: WebhookMode,
    /// The task table (`TASK_TABLE`, DynamoDB): business keys held while tasks are open,
    /// actions on open tasks, contact events heard.
    pub task_table: Option<String>,
    /// Where a `Connect Task Completed` event goes when a task ends (`COMPLETION_EVENT_BUS`).
    pub completion_event_bus: Option<String>,
    /// The secret whose key signs what the function queues (`ENVELOPE_SECRET_ID`).
    pub envelope_secret_id: Option<String>,
    /// How long a task template read from Connect is trusted (`TASK_TEMPLATE_REFRESH_SECONDS`).
    pub template_refresh: std::time::Duration,
    /// The first delay of a record held for Connect's exhausted quota (`QUOTA_HOLD_SECONDS`).
    pub quota_hold: std::time::Duration,
}

/// What a webhook waits for (`WEBHOOK_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookMode {
    /// Authenticated and checked at once, then put on the task queue: 202 with the client token.
    Queued,
    /// Calls Connect in the request: 201 with the ContactId, 429 when throttled.
    Sync,
}

impl Config {
    /// Reads the configuration through `var`, so tests need not touch the process environment.
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        Config::from_vars(&Vars::new(&var))
    }

    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// One reader per concern, in the order the checks have always run: with two bad
    /// variables, the refusal names the same one.
    fn from_vars(vars: &Vars) -> Result<Config, ConfigError> {
        let (defaults, connect_region) = task_defaults(vars)?;
        let template_refresh = template_refresh(vars)?;
        let (mapping, mapping_source) = mapping(vars)?;
        let (batch_concurrency, limits) = intake(vars)?;
        let call_policy = call_policy(vars)?;
        let metrics_namespace = metrics_namespace(vars);
        let webhook_auth = WebhookAuthSetting::from_vars(&|name| vars.get(name))?;
        let contact_link = contact_link(vars)?;
        let pace = pace_setting(vars)?;
        let quotas = quotas(vars)?;
        let queue = queue(vars, &mapping)?;
        let (task_table, completion_event_bus) = lifecycle(vars, &mapping, &webhook_auth)?;
        warn_of_a_large_inline_mapping(vars);

        Ok(Config {
            connect_region,
            defaults,
            mapping,
            mapping_source,
            batch_concurrency,
            limits,
            metrics_namespace,
            call_policy,
            webhook_auth,
            contact_link,
            pace,
            quotas,
            task_queue_url: queue.url,
            priority_queue_url: queue.priority_url,
            webhook_mode: queue.webhook_mode,
            task_table,
            completion_event_bus,
            envelope_secret_id: queue.envelope_secret_id,
            quota_hold: queue.quota_hold,
            template_refresh,
        })
    }
}

/// How long a task template read from Connect is trusted before it is read again.
fn template_refresh(vars: &Vars) -> Result<std::time::Duration, ConfigError> {
    match vars.get("TASK_TEMPLATE_REFRESH_SECONDS") {
        None => Ok(std::time::Duration::from_secs(300)),
        Some(v) => match v.parse::<u64>() {
            Ok(secs @ 1..=3600) => Ok(std::time::Duration::from_secs(secs)),
            _ => Err(ConfigError::Env {
                name: "TASK_TEMPLATE_REFRESH_SECONDS",
                message: "must be a whole number of seconds from 1 to 3600".into(),
            }),
        },
    }
}

/// The instance (and its Region, from an ARN) and the flow of tasks that name none.
fn task_defaults(vars: &Vars) -> Result<(TaskDefaults, Option<String>), ConfigError> {
    let instance = vars.get("CONNECT_INSTANCE_ID").ok_or(ConfigError::Env {
        name: "CONNECT_INSTANCE_ID",
        message: "is required (the instance ID or ARN of the Amazon Connect instance)".into(),
    })?;
    let instance_id = parse_instance_id(&instance)?;
    let connect_region = instance_region(&instance);

    let flow = vars.get("CONNECT_CONTACT_FLOW_ID");
    let template = vars.get("CONNECT_TASK_TEMPLATE_ID");
    let quick_connect = vars.get("CONNECT_QUICK_CONNECT_ID");
    let set = [&flow, &template, &quick_connect]
        .iter()
        .filter(|v| v.is_some())
        .count();
    if set > 1 {
        return Err(ConfigError::Env {
            name: "CONNECT_CONTACT_FLOW_ID",
            message: "set only one of CONNECT_CONTACT_FLOW_ID, CONNECT_TASK_TEMPLATE_ID and CONNECT_QUICK_CONNECT_ID; Connect refuses a task that names two".into(),
        });
    }
    let defaults = TaskDefaults {
        instance_id,
        contact_flow_id: flow,
        task_template_id: template,
        quick_connect_id: quick_connect,
    };
    Ok((defaults, connect_region))
}

/// The mapping (inline, from a file, or the built-in default) and where it came from.
fn mapping(vars: &Vars) -> Result<(Mapping, String), ConfigError> {
    Ok(
        match (vars.get("TASK_MAPPING"), vars.get("TASK_MAPPING_FILE")) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Env {
                    name: "TASK_MAPPING",
                    message: "set TASK_MAPPING or TASK_MAPPING_FILE, not both".into(),
                })
            }
            (Some(text), None) => (Mapping::parse(&text)?, "TASK_MAPPING".to_string()),
            (None, Some(file)) => {
                let path = resolve(&file, vars.get("LAMBDA_TASK_ROOT"));
                let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::Env {
                    name: "TASK_MAPPING_FILE",
                    message: format!("cannot read {}: {e}", path.display()),
                })?;
                (Mapping::parse(&text)?, path.display().to_string())
            }
            (None, None) => (Mapping::default_mapping(), "built-in default".to_string()),
        },
    )
}

/// How many records of a batch are worked at once, and how large a webhook body may be.
fn intake(vars: &Vars) -> Result<(usize, EnvelopeLimits), ConfigError> {
    let batch_concurrency = number(vars, "BATCH_CONCURRENCY", DEFAULT_BATCH_CONCURRENCY)?;
    if !(1..=MAX_BATCH_CONCURRENCY).contains(&batch_concurrency) {
        return Err(ConfigError::Env {
            name: "BATCH_CONCURRENCY",
            message: format!("must be between 1 and {MAX_BATCH_CONCURRENCY}"),
        });
    }
    let max_body_bytes = number(
        vars,
        "MAX_BODY_BYTES",
        EnvelopeLimits::default().max_body_bytes,
    )?;
    Ok((batch_concurrency, EnvelopeLimits { max_body_bytes }))
}

/// Attempts, timeouts, backoff and TLS roots of the Connect call.
fn call_policy(vars: &Vars) -> Result<CallPolicy, ConfigError> {
    let defaults = CallPolicy::default();
    let max_attempts = number(vars, "CONNECT_MAX_ATTEMPTS", defaults.max_attempts as usize)?;
    if !(1..=10).contains(&max_attempts) {
        return Err(ConfigError::Env {
            name: "CONNECT_MAX_ATTEMPTS",
            message: "must be between 1 and 10".into(),
        });
    }
    let attempt_ms = number(
        vars,
        "CONNECT_ATTEMPT_TIMEOUT_MS",
        defaults.attempt_timeout.as_millis() as usize,
    )?;
    let tls_roots = match vars.get("TLS_ROOTS") {
        None => TlsRoots::default(),
        Some(text) => TlsRoots::parse(&text).ok_or_else(|| ConfigError::Env {
            name: "TLS_ROOTS",
            message: format!("'{text}' is neither `amazon` nor `system`"),
        })?,
    };
    let initial_backoff_ms = number(
        vars,
        "CONNECT_INITIAL_BACKOFF_MS",
        defaults.initial_backoff.as_millis() as usize,
    )?;
    let max_backoff_ms = number(
        vars,
        "CONNECT_MAX_BACKOFF_MS",
        defaults.max_backoff.as_millis() as usize,
    )?;
    Ok(CallPolicy {
        max_attempts: max_attempts as u32,
        initial_backoff: std::time::Duration::from_millis(initial_backoff_ms as u64),
        max_backoff: std::time::Duration::from_millis(max_backoff_ms.max(initial_backoff_ms) as u64),
        attempt_timeout: std::time::Duration::from_millis(attempt_ms.max(100) as u64),
        tls_roots,
        ..defaults
    })
}

/// Where EMF metrics go; None: `off`.
fn metrics_namespace(vars: &Vars) -> Option<String> {
    match vars.get("METRICS_NAMESPACE") {
        None => Some(crate::metrics::DEFAULT_NAMESPACE.to_string()),
        Some(off) if off.eq_ignore_ascii_case("off") => None,
        Some(namespace) => Some(namespace),
    }
}

fn contact_link(vars: &Vars) -> Result<ContactLink, ConfigError> {
    match vars
        .get("CONTACT_FLOW_LINK")
        .map(|v| v.to_ascii_lowercase())
    {
        None => Ok(ContactLink::Related),
        Some(v) if v == "related" => Ok(ContactLink::Related),
        Some(v) if v == "previous" => Ok(ContactLink::Previous),
        Some(_) => Err(ConfigError::Env {
            name: "CONTACT_FLOW_LINK",
            message: "must be `related` or `previous`".into(),
        }),
    }
}

/// The task queue and what goes through it.
struct QueueSetting {
    url: Option<String>,
    priority_url: Option<String>,
    webhook_mode: WebhookMode,
    quota_hold: std::time::Duration,
    envelope_secret_id: Option<String>,
}

fn queue(vars: &Vars, mapping: &Mapping) -> Result<QueueSetting, ConfigError> {
    let url = vars.get("TASK_QUEUE_URL");
    let priority_url = vars.get("PRIORITY_QUEUE_URL");
    if priority_url.is_some() && url.is_none() {
        return Err(ConfigError::Env {
            name: "PRIORITY_QUEUE_URL",
            message:
                "needs TASK_QUEUE_URL: the priority queue is a second lane beside the task queue"
                    .into(),
        });
    }
    // What a high-priority route queues must not wait behind the task queue's backlog, and
    // must not be lost: without its own queue the cold start says so.
    if let (Some(_), None, Some(route)) = (&url, &priority_url, mapping.high_priority_route()) {
        return Err(ConfigError::Mapping(format!(
            "route '{route}' says `priority: high`, and with a task queue what it queues needs the priority queue: set PRIORITY_QUEUE_URL (the template creates it)"
        )));
    }
    let webhook_mode = match vars.get("WEBHOOK_MODE").map(|v| v.to_ascii_lowercase()) {
        // Queued needs a queue: without one (local runs, tests) webhooks call Connect.
        None if url.is_some() => WebhookMode::Queued,
        None => WebhookMode::Sync,
        Some(v) if v == "sync" => WebhookMode::Sync,
        Some(v) if v == "queued" && url.is_some() => WebhookMode::Queued,
        Some(v) if v == "queued" => {
            return Err(ConfigError::Env {
                name: "WEBHOOK_MODE",
                message: "`queued` needs TASK_QUEUE_URL (the queue webhooks are put on)".into(),
            })
        }
        Some(_) => {
            return Err(ConfigError::Env {
                name: "WEBHOOK_MODE",
                message: "must be `queued` or `sync`".into(),
            })
        }
    };
    let quota_hold = match vars.get("QUOTA_HOLD_SECONDS") {
        None => std::time::Duration::from_secs(60),
        Some(v) => match v.parse::<u64>() {
            Ok(secs @ 1..=900) => std::time::Duration::from_secs(secs),
            _ => {
                return Err(ConfigError::Env {
                    name: "QUOTA_HOLD_SECONDS",
                    message: "must be a whole number of seconds from 1 to 900".into(),
                })
            }
        },
    };
    Ok(QueueSetting {
        url,
        priority_url,
        webhook_mode,
        quota_hold,
        envelope_secret_id: vars.get("ENVELOPE_SECRET_ID"),
    })
}

/// The task table and the completion bus, and what the mapping needs of them.
fn lifecycle(
    vars: &Vars,
    mapping: &Mapping,
    webhook_auth: &WebhookAuthSetting,
) -> Result<(Option<String>, Option<String>), ConfigError> {
    let task_table = vars.get("TASK_TABLE");
    check_mapping_for(mapping, webhook_auth, task_table.as_deref())?;
    let completion_event_bus = vars.get("COMPLETION_EVENT_BUS");
    if completion_event_bus.is_some() && task_table.is_none() {
        return Err(ConfigError::Env {
            name: "COMPLETION_EVENT_BUS",
            message: "needs TASK_TABLE: completions are known only for tasks in the table".into(),
        });
    }
    Ok((task_table, completion_event_bus))
}

/// Once the configuration holds: an inline mapping near Lambda's limit is worth a warning.
fn warn_of_a_large_inline_mapping(vars: &Vars) {
    if let Some(text) = vars
        .get("TASK_MAPPING")
        .filter(|t| t.len() > TASK_MAPPING_WARN_BYTES)
    {
        tracing::warn!(
            bytes = text.len(),
            "TASK_MAPPING is close to Lambda's 4 KB limit for all environment variables together; ship the mapping as a file (TASK_MAPPING_FILE)"
        );
    }
}

/// What a mapping must satisfy under the configuration in force: with signatures, a webhook's
/// identity may come only from its signed body; routes that act on a task by its key, or wait
/// for it, need the task table.
pub fn check_mapping_for(
    mapping: &Mapping,
    auth: &WebhookAuthSetting,
    task_table: Option<&str>,
) -> Result<(), ConfigError> {
    if task_table.is_none() {
        if let Some(route) = mapping.route_needing_table() {
            return Err(ConfigError::Mapping(format!(
                "route '{route}' updates, reschedules, stops or tags a task by its key, or waits for it (task_token): that needs the task table; set TASK_TABLE (the template's EnableLifecycle creates it)"
            )));
        }
    }
    match auth {
        WebhookAuthSetting::Signature(_) => mapping.check_signed_webhook_identity(),
        _ => Ok(()),
    }
}

fn number(vars: &Vars, name: &'static str, default: usize) -> Result<usize, ConfigError> {
    match vars.get(name) {
        None => Ok(default),
        Some(text) => text.parse().map_err(|_| ConfigError::Env {
            name,
            message: format!("'{text}' is not a whole number"),
        }),
    }
}

fn resolve(file: &str, task_root: Option<String>) -> PathBuf {
    let path = PathBuf::from(file);
    match task_root {
        Some(root) if path.is_relative() => PathBuf::from(root).join(path),
        _ => path,
    }
}

/// Connect's quota as the deployment states it. The defaults are Connect's default quota
/// shared by two environments (the queue's smallest maximum concurrency).
fn pace_setting(vars: &Vars) -> Result<PaceSetting, ConfigError> {
    let defaults = PaceSetting::default();
    let rate = positive(vars, "CONNECT_REQUESTS_PER_SECOND", defaults.rate)?;
    let burst = positive(vars, "CONNECT_BURST", defaults.burst)?;
    let callers = number(vars, "CONNECT_CALLERS", defaults.callers as usize)?;
    if !(1..=1000).contains(&callers) {
        return Err(ConfigError::Env {
            name: "CONNECT_CALLERS",
            message: "must be between 1 and 1000".into(),
        });
    }
    Ok(PaceSetting {
        rate,
        burst,
        callers: callers as u32,
    })
}

/// A quota's rate or burst: a number above 0.
fn positive(vars: &Vars, name: &'static str, default: f64) -> Result<f64, ConfigError> {
    match vars.get(name) {
        None => Ok(default),
        Some(text) => text
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v > 0.0)
            .ok_or(ConfigError::Env {
                name,
                message: "must be a number above 0".into(),
            }),
    }
}

/// The other operations' quotas (accounts with raised quotas), the share normal calls keep
/// against high-priority ones, and the pace table.
fn quotas(vars: &Vars) -> Result<Quotas, ConfigError> {
    let d = Quotas::default();
    let pair = |rate, burst, (r, b): (f64, f64)| -> Result<(f64, f64), ConfigError> {
        Ok((positive(vars, rate, r)?, positive(vars, burst, b)?))
    };
    let normal_share = match vars.get("CONNECT_NORMAL_SHARE") {
        None => d.normal_share,
        Some(text) => text
            .parse::<f64>()
            .ok()
            .filter(|v| (0.0..=1.0).contains(v))
            .ok_or(ConfigError::Env {
                name: "CONNECT_NORMAL_SHARE",
                message: "must be a number from 0 to 1".into(),
            })?,
    };
    Ok(Quotas {
        schedule: pair(
            "CONNECT_SCHEDULE_RATE",
            "CONNECT_SCHEDULE_BURST",
            d.schedule,
        )?,
        contact: pair("CONNECT_CONTACT_RATE", "CONNECT_CONTACT_BURST", d.contact)?,
        tag: pair("CONNECT_TAG_RATE", "CONNECT_TAG_BURST", d.tag)?,
        normal_share,
        table: vars.get("PACE_TABLE").filter(|t| !t.is_empty()),
    })
}

/// Lambda holds all of a function's environment variables to 4 KB together; an inline mapping
/// this large leaves little room for the others.
const TASK_MAPPING_WARN_BYTES: usize = 3 * 1024;

/// The Region an instance ARN names (`arn:aws:connect:REGION:…`); None for a bare ID.
pub fn instance_region(text: &str) -> Option<String> {
    let region = text.strip_prefix("arn:")?.split(':').nth(2)?;
    (!region.is_empty()).then(|| region.to_string())
}

/// Accepts `arn:aws:connect:REGION:ACCOUNT:instance/ID` or the bare ID.
pub fn parse_instance_id(text: &str) -> Result<String, ConfigError> {
    let id = if text.starts_with("arn:") {
        let resource = text.splitn(6, ':').nth(5).unwrap_or_default();
        resource
            .strip_prefix("instance/")
            .filter(|id| !id.is_empty() && !id.contains('/'))
            .ok_or_else(|| ConfigError::Env {
                name: "CONNECT_INSTANCE_ID",
                message: format!(
                    "'{text}' is not an instance ARN (arn:aws:connect:REGION:ACCOUNT:instance/ID)"
                ),
            })?
    } else {
        text
    };
    if id.chars().count() > crate::validate::MAX_INSTANCE_ID {
        return Err(ConfigError::Env {
            name: "CONNECT_INSTANCE_ID",
            message: "the instance ID is longer than 100 characters".into(),
        });
    }
    Ok(id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    /// Without a task table, everything works as before, and a mapping that needs one is
    /// refused at cold start with a message that says so.
    /// Read by `logging`, with the process environment, before the configuration is.
    const READ_ELSEWHERE: &[&str] = &["RUST_LOG", "AWS_LAMBDA_LOG_LEVEL", "AWS_LAMBDA_LOG_FORMAT"];

    /// Everything the configuration holds but the mapping (whose Debug text is not stable),
    /// named field by field so that a new field must be added here.
    fn settled(c: &Config) -> String {
        let Config {
            defaults,
            connect_region,
            mapping: _,
            mapping_source,
            batch_concurrency,
            limits,
            metrics_namespace,
            call_policy,
            webhook_auth,
            contact_link,
            pace,
            quotas,
            task_queue_url,
            priority_queue_url,
            webhook_mode,
            task_table,
            completion_event_bus,
            envelope_secret_id,
            quota_hold,
            template_refresh,
        } = c;
        format!(
            "{defaults:?} {connect_region:?} {mapping_source:?} {batch_concurrency:?} {limits:?} \
             {metrics_namespace:?} {call_policy:?} {webhook_auth:?} {contact_link:?} {pace:?} \
             {quotas:?} {task_queue_url:?} {priority_queue_url:?} {webhook_mode:?} {task_table:?} {completion_event_bus:?} \
             {envelope_secret_id:?} {quota_hold:?} {template_refresh:?}"
        )
    }

    #[test]
    fn variables_are_declared_once() {
        let mut names: Vec<&str> = VARIABLES.iter().map(|v| v.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), VARIABLES.len(), "a variable is declared twice");
        for v in VARIABLES {
            assert!(
                v.name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
                "{}",
                v.name
            );
            assert!(!v.doc.is_empty() && !v.doc.contains('|'), "{}", v.name);
            assert!(
                v.default
                    .is_none_or(|d| !d.contains('|') && !d.contains('`')),
                "{}",
                v.name
            );
        }
        for name in READ_ELSEWHERE {
            assert!(variable(name).is_some(), "{name} is not declared");
        }
    }

    /// What the configuration reads, over full environments (every declared variable set in
    /// one of them, each a valid configuration), is exactly what `VARIABLES` declares, but for
    /// what `logging` reads: the table and the code cannot drift apart.
    #[test]
    fn the_configuration_reads_every_declared_variable_and_no_other() {
        let dir = std::env::temp_dir().join(format!("ctb-config-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let route = "routes:\n  - name: only\n    task: {name: x}\n";
        std::fs::write(dir.join("m.yaml"), route).unwrap();
        let common: &[(&str, &str)] = &[
            (
                "CONNECT_INSTANCE_ID",
                "arn:aws:connect:eu-west-1:123456789012:instance/i",
            ),
            ("CONTACT_FLOW_LINK", "previous"),
            ("BATCH_CONCURRENCY", "20"),
            ("MAX_BODY_BYTES", "1000"),
            ("WEBHOOK_AUTH", "signature"),
            ("WEBHOOK_SECRET_ID", "hook"),
            ("WEBHOOK_SIGNATURE_SCHEME", "hmac-sha256"),
            ("WEBHOOK_SIGNATURE_HEADER", "X-Hub-Signature"),
            ("WEBHOOK_SIGNATURE_PREFIX", "v1="),
            ("WEBHOOK_TIMESTAMP_HEADER", "X-Timestamp"),
            ("WEBHOOK_TOLERANCE_SECONDS", "60"),
            ("WEBHOOK_MODE", "queued"),
            ("CONNECT_REQUESTS_PER_SECOND", "10"),
            ("CONNECT_BURST", "20"),
            ("CONNECT_CALLERS", "4"),
            ("PACE_TABLE", "pace"),
            ("CONNECT_SCHEDULE_RATE", "4"),
            ("CONNECT_SCHEDULE_BURST", "8"),
            ("CONNECT_CONTACT_RATE", "30"),
            ("CONNECT_CONTACT_BURST", "40"),
            ("CONNECT_TAG_RATE", "50"),
            ("CONNECT_TAG_BURST", "60"),
            ("CONNECT_NORMAL_SHARE", "0.5"),
            ("CONNECT_MAX_ATTEMPTS", "5"),
            ("CONNECT_ATTEMPT_TIMEOUT_MS", "1000"),
            ("CONNECT_INITIAL_BACKOFF_MS", "50"),
            ("CONNECT_MAX_BACKOFF_MS", "500"),
            ("TLS_ROOTS", "system"),
            (
                "TASK_QUEUE_URL",
                "https://sqs.eu-west-1.amazonaws.com/1/tasks",
            ),
            (
                "PRIORITY_QUEUE_URL",
                "https://sqs.eu-west-1.amazonaws.com/1/urgent",
            ),
            ("QUOTA_HOLD_SECONDS", "120"),
            ("TASK_TEMPLATE_REFRESH_SECONDS", "60"),
            ("ENVELOPE_SECRET_ID", "envelope"),
            ("TASK_TABLE", "tasks"),
            ("COMPLETION_EVENT_BUS", "default"),
            ("METRICS_NAMESPACE", "off"),
        ];
        let root = dir.to_str().unwrap();
        // The variables that exclude one another, one environment each.
        let alternatives: [&[(&str, &str)]; 3] = [
            &[
                ("CONNECT_CONTACT_FLOW_ID", "flow"),
                ("TASK_MAPPING_FILE", "m.yaml"),
                ("LAMBDA_TASK_ROOT", root),
            ],
            &[
                ("CONNECT_TASK_TEMPLATE_ID", "template"),
                ("TASK_MAPPING", route),
            ],
            &[("CONNECT_QUICK_CONNECT_ID", "quick")],
        ];
        let mut set = std::collections::BTreeSet::new();
        let read = std::cell::RefCell::new(std::collections::BTreeSet::new());
        for alternative in alternatives {
            let map: HashMap<&str, &str> = common.iter().chain(alternative).copied().collect();
            set.extend(map.keys().map(|k| k.to_string()));
            let c = Config::from_lookup(|k| {
                read.borrow_mut().insert(k.to_string());
                map.get(k).map(|v| v.to_string())
            })
            .unwrap_or_else(|e| panic!("{alternative:?}: {e}"));
            assert_eq!(c.pace.callers, 4);
            assert_eq!(c.quotas.schedule, (4.0, 8.0));
            assert_eq!(c.quotas.contact, (30.0, 40.0));
            assert_eq!(c.quotas.tag, (50.0, 60.0));
            assert_eq!(c.quotas.normal_share, 0.5);
            assert_eq!(c.quotas.table.as_deref(), Some("pace"));
            assert_eq!(c.webhook_mode, WebhookMode::Queued);
        }
        std::fs::remove_dir_all(dir).unwrap();
        let declared: std::collections::BTreeSet<String> = VARIABLES
            .iter()
            .map(|v| v.name)
            .filter(|n| !READ_ELSEWHERE.contains(n))
            .map(str::to_string)
            .collect();
        assert_eq!(
            read.into_inner(),
            declared,
            "what Config::from_lookup reads and what config::VARIABLES declares"
        );
        assert_eq!(set, declared, "the test sets every declared variable");
    }

    /// A documented default is what unset means: setting a variable to it changes nothing.
    #[test]
    fn documented_defaults_are_the_defaults() {
        let base = [
            ("CONNECT_INSTANCE_ID", "i"),
            (
                "TASK_MAPPING",
                "routes:\n  - name: only\n    task: {name: x}\n",
            ),
            // So that the signature's variables are read.
            ("WEBHOOK_AUTH", "signature"),
            ("WEBHOOK_SECRET_ID", "hook"),
        ];
        let unset = settled(&config(&base).unwrap());
        for v in VARIABLES {
            let Some(default) = v.default else { continue };
            match v.name {
                "AWS_LAMBDA_LOG_LEVEL" => assert_eq!(
                    crate::logging::filter_directives(None, Some(default)),
                    crate::logging::filter_directives(None, None)
                ),
                name => {
                    assert!(
                        !READ_ELSEWHERE.contains(&name),
                        "{name}'s default is unchecked"
                    );
                    let mut vars = base.to_vec();
                    vars.push((name, default));
                    let set = config(&vars).unwrap_or_else(|e| panic!("{name}={default}: {e}"));
                    assert_eq!(settled(&set), unset, "{name}={default} is not its default");
                }
            }
        }
    }

    /// A variable read without its row in `VARIABLES` stops a debug build (and every test).
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "not declared in config::VARIABLES")]
    fn reading_an_undeclared_variable_is_a_bug() {
        let lookup = |_: &str| None;
        Vars::new(&lookup).get("CONNECT_UNDECLARED");
    }

    /// Whatever reads the process environment itself (the logging set-up) reads only declared
    /// variables: no `env::var` call in the sources names one `VARIABLES` lacks.
    #[test]
    fn no_module_reads_an_undeclared_variable_from_the_environment() {
        // Not the function's configuration: the protocol model's size, in its own test.
        const NOT_CONFIGURATION: &[&str] = &["CTB_MODEL"];
        fn sources(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    sources(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    out.push(path);
                }
            }
        }
        let mut files = Vec::new();
        sources(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        let mut seen = 0;
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for call in ["env::var(\"", "env::var_os(\""] {
                for (at, _) in text.match_indices(call) {
                    let rest = &text[at + call.len()..];
                    let name = &rest[..rest.find('"').unwrap()];
                    seen += 1;
                    assert!(
                        variable(name).is_some() || NOT_CONFIGURATION.contains(&name),
                        "{} reads {name}, which config::VARIABLES does not declare",
                        file.display()
                    );
                }
            }
        }
        assert!(seen >= READ_ELSEWHERE.len(), "the scan found {seen} reads");
    }

    /// docs/configuration.md shows what `VARIABLES` says, every variable of it.
    #[test]
    fn the_shipped_variable_table_is_the_generated_one() {
        let generated = variables_markdown();
        for v in VARIABLES {
            assert!(
                generated.contains(&format!("| `{}` |", v.name)),
                "{}",
                v.name
            );
        }
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md");
        let shipped = std::fs::read_to_string(&path).unwrap_or_default();
        let expected = with_variables_table(&shipped);
        assert!(
            expected.is_some(),
            "{} lacks the lines {TABLE_BEGIN} and {TABLE_END}",
            path.display()
        );
        assert!(
            expected.as_deref() == Some(shipped.as_str()),
            "{} is stale: run `cargo run -q -- config --markdown docs/configuration.md`",
            path.display()
        );
    }

    #[test]
    fn lifecycle_routes_need_the_task_table() {
        let stop = "routes:\n  - name: recovered\n    when: {detail_type: OrderRecovered}\n    action: stop\n    key: \"order-{{ body.orderId }}\"\n  - name: rest\n    task: {name: n}\n";
        let base = [
            ("CONNECT_INSTANCE_ID", "i"),
            ("CONNECT_CONTACT_FLOW_ID", "f"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut vars = base.to_vec();
            vars.extend_from_slice(extra);
            config(&vars)
        };
        let err = with(&[("TASK_MAPPING", stop)]).unwrap_err().to_string();
        assert!(
            err.contains("recovered") && err.contains("TASK_TABLE"),
            "{err}"
        );
        assert!(with(&[("TASK_MAPPING", stop), ("TASK_TABLE", "tasks")]).is_ok());
        // A keyed start works without the table (Connect's token window holds the key).
        let keyed = "routes:\n  - name: k\n    key: \"{{ id }}\"\n    task: {name: n}\n";
        assert!(with(&[("TASK_MAPPING", keyed)]).is_ok());
        let err = with(&[("COMPLETION_EVENT_BUS", "default")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("TASK_TABLE"), "{err}");
    }

    #[test]
    fn a_high_priority_route_that_queues_needs_the_priority_queue() {
        let urgent = "routes:\n  - name: fraud\n    when: {detail_type: Fraud}\n    priority: high\n    task: {name: n}\n  - name: rest\n    task: {name: n}\n";
        let base = [
            ("CONNECT_INSTANCE_ID", "i"),
            ("CONNECT_CONTACT_FLOW_ID", "f"),
            ("TASK_MAPPING", urgent),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut vars = base.to_vec();
            vars.extend_from_slice(extra);
            config(&vars)
        };
        // Nothing queued (no task queue): the lane is the pace's alone.
        assert!(with(&[]).is_ok());
        let tasks = (
            "TASK_QUEUE_URL",
            "https://sqs.eu-west-1.amazonaws.com/1/tasks",
        );
        let err = with(&[tasks]).unwrap_err().to_string();
        assert!(
            err.contains("fraud") && err.contains("PRIORITY_QUEUE_URL"),
            "{err}"
        );
        let urgent_queue = (
            "PRIORITY_QUEUE_URL",
            "https://sqs.eu-west-1.amazonaws.com/1/urgent",
        );
        let c = with(&[tasks, urgent_queue]).unwrap();
        assert_eq!(c.priority_queue_url.as_deref(), Some(urgent_queue.1));
        let err = with(&[urgent_queue]).unwrap_err().to_string();
        assert!(err.contains("needs TASK_QUEUE_URL"), "{err}");
    }

    #[test]
    fn instance_arn_or_id() {
        let arn =
            "arn:aws:connect:eu-west-1:123456789012:instance/11111111-2222-3333-4444-555555555555";
        assert_eq!(
            parse_instance_id(arn).unwrap(),
            "11111111-2222-3333-4444-555555555555"
        );
        assert_eq!(parse_instance_id("abc").unwrap(), "abc");
        assert!(
            parse_instance_id("arn:aws:connect:eu-west-1:1:instance/x/contact-flow/y").is_err()
        );
        assert!(parse_instance_id("arn:aws:s3:::bucket").is_err());
        assert_eq!(instance_region(arn).as_deref(), Some("eu-west-1"));
        assert_eq!(
            instance_region("11111111-2222-3333-4444-555555555555"),
            None
        );
        let c = config(&[("CONNECT_INSTANCE_ID", arn)]).unwrap();
        assert_eq!(c.connect_region.as_deref(), Some("eu-west-1"));
    }

    #[test]
    fn minimal_configuration_uses_the_default_mapping() {
        let c = config(&[
            ("CONNECT_INSTANCE_ID", "inst"),
            ("CONNECT_CONTACT_FLOW_ID", "flow"),
        ])
        .unwrap();
        assert_eq!(c.defaults.instance_id, "inst");
        assert_eq!(c.defaults.contact_flow_id.as_deref(), Some("flow"));
        assert_eq!(c.batch_concurrency, 10);
        assert_eq!(c.mapping_source, "built-in default");
    }

    #[test]
    fn refusals_name_the_variable() {
        let err = config(&[]).unwrap_err().to_string();
        assert!(err.contains("CONNECT_INSTANCE_ID"), "{err}");
        let err = config(&[
            ("CONNECT_INSTANCE_ID", "i"),
            ("CONNECT_CONTACT_FLOW_ID", "f"),
            ("CONNECT_TASK_TEMPLATE_ID", "t"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("only one"), "{err}");
        let err = config(&[("CONNECT_INSTANCE_ID", "i"), ("BATCH_CONCURRENCY", "0")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("BATCH_CONCURRENCY"), "{err}");
        let err = config(&[
            ("CONNECT_INSTANCE_ID", "i"),
            ("TASK_MAPPING_FILE", "/nonexistent.yaml"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.contains("/nonexistent.yaml"), "{err}");
        let err = config(&[("CONNECT_INSTANCE_ID", "i"), ("TASK_MAPPING", "routes: []")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least one route"), "{err}");
        let err = config(&[("CONNECT_INSTANCE_ID", "i"), ("TLS_ROOTS", "none")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("TLS_ROOTS"), "{err}");
    }

    #[test]
    fn tls_roots_default_to_amazon() {
        let c = config(&[("CONNECT_INSTANCE_ID", "i")]).unwrap();
        assert_eq!(c.call_policy.tls_roots, TlsRoots::Amazon);
        let c = config(&[("CONNECT_INSTANCE_ID", "i"), ("TLS_ROOTS", "system")]).unwrap();
        assert_eq!(c.call_policy.tls_roots, TlsRoots::System);
    }

    #[test]
    fn mapping_file_resolves_against_the_task_root() {
        let dir = std::env::temp_dir().join(format!("ctb-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("m.yaml"),
            "routes:\n  - name: only\n    task: {name: x}\n",
        )
        .unwrap();
        let c = config(&[
            ("CONNECT_INSTANCE_ID", "i"),
            ("TASK_MAPPING_FILE", "m.yaml"),
            ("LAMBDA_TASK_ROOT", dir.to_str().unwrap()),
        ])
        .unwrap();
        assert_eq!(c.mapping.route_names().collect::<Vec<_>>(), vec!["only"]);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
