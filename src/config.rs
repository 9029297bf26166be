//! The function's configuration, read from the environment and checked once at cold start.
//!
//! | variable | meaning |
//! | --- | --- |
//! | `CONNECT_INSTANCE_ID` | required: the instance ID or the instance ARN |
//! | `CONNECT_CONTACT_FLOW_ID` / `CONNECT_TASK_TEMPLATE_ID` / `CONNECT_QUICK_CONNECT_ID` | default flow for tasks that name none (at most one) |
//! | `TASK_MAPPING` | the mapping document inline (YAML or JSON) |
//! | `TASK_MAPPING_FILE` | or a path to it (relative paths resolve against `LAMBDA_TASK_ROOT` when set) |
//! | `BATCH_CONCURRENCY` | calls in flight for one standard SQS batch (default 10) |
//! | `MAX_BODY_BYTES` | largest webhook body accepted (default 262144) |
//! | `WEBHOOK_AUTH` | `signature`, `iam`, `authorizer` or `none`; unset: webhooks are refused (403) |
//! | `WEBHOOK_SECRET_ID` | Secrets Manager secret (name or ARN) holding the HMAC key, for `signature` |
//! | `WEBHOOK_SIGNATURE_HEADER` / `WEBHOOK_SIGNATURE_PREFIX` | where the signature is (default `X-Signature-256: sha256=<hex>`) |
//! | `WEBHOOK_TIMESTAMP_HEADER` / `WEBHOOK_TOLERANCE_SECONDS` | a signed timestamp header and its window (default 300 s) |
//! | `CONNECT_MAX_ATTEMPTS` / `CONNECT_ATTEMPT_TIMEOUT_MS` | SDK attempts per call (default 3) and the timeout of each (default 4000) |
//! | `TLS_ROOTS` | `amazon` (default: Amazon Trust Services' roots, built in) or `system` (the platform's store) |
//! | `CONTACT_FLOW_LINK` | how a contact flow's task links to the calling contact: `related` (default; inherits its attributes) or `previous` |
//! | `ENVELOPE_SECRET_ID` | Secrets Manager secret (name or ARN) whose key signs what the function queues itself (the template creates it); unset: unsigned envelopes, checked again when read back |
//! | `QUOTA_HOLD_SECONDS` | how long a record waits in the task queue the first time Connect's quota of active tasks is exhausted (default 60; doubled each time, at most 900) |
//! | `METRICS_NAMESPACE` | CloudWatch namespace of the EMF metrics (default ConnectTaskBridge; `off` disables) |

use std::path::PathBuf;

use crate::connect::CallPolicy;
use crate::error::ConfigError;
use crate::mapping::Mapping;
use crate::pace::PaceSetting;
use crate::sources::EnvelopeLimits;
use crate::task::TaskDefaults;
use crate::tls::TlsRoots;
use crate::webhook_auth::WebhookAuthSetting;

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
    /// The task queue (`TASK_QUEUE_URL`): where queued webhooks and throttled direct requests go.
    pub task_queue_url: Option<String>,
    /// Whether webhooks are queued (202) or call Connect themselves (201) (`WEBHOOK_MODE`).
    pub webhook_mode: WebhookMode,
    /// The task table (`TASK_TABLE`, DynamoDB): business keys held while tasks are open,
    /// actions on open tasks, contact events heard.
    pub task_table: Option<String>,
    /// Where a `Connect Task Completed` event goes when a task ends (`COMPLETION_EVENT_BUS`).
    pub completion_event_bus: Option<String>,
    /// The secret whose key signs what the function queues (`ENVELOPE_SECRET_ID`).
    pub envelope_secret_id: Option<String>,
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
        let get = |name: &str| {
            var(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };

        let instance = get("CONNECT_INSTANCE_ID").ok_or(ConfigError::Env {
            name: "CONNECT_INSTANCE_ID",
            message: "is required (the instance ID or ARN of the Amazon Connect instance)".into(),
        })?;
        let instance_id = parse_instance_id(&instance)?;
        let connect_region = instance_region(&instance);

        let flow = get("CONNECT_CONTACT_FLOW_ID");
        let template = get("CONNECT_TASK_TEMPLATE_ID");
        let quick_connect = get("CONNECT_QUICK_CONNECT_ID");
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

        let (mapping, mapping_source) = match (get("TASK_MAPPING"), get("TASK_MAPPING_FILE")) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Env {
                    name: "TASK_MAPPING",
                    message: "set TASK_MAPPING or TASK_MAPPING_FILE, not both".into(),
                })
            }
            (Some(text), None) => (Mapping::parse(&text)?, "TASK_MAPPING".to_string()),
            (None, Some(file)) => {
                let path = resolve(&file, get("LAMBDA_TASK_ROOT"));
                let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::Env {
                    name: "TASK_MAPPING_FILE",
                    message: format!("cannot read {}: {e}", path.display()),
                })?;
                (Mapping::parse(&text)?, path.display().to_string())
            }
            (None, None) => (Mapping::default_mapping(), "built-in default".to_string()),
        };

        let batch_concurrency = number(&get, "BATCH_CONCURRENCY", DEFAULT_BATCH_CONCURRENCY)?;
        if !(1..=MAX_BATCH_CONCURRENCY).contains(&batch_concurrency) {
            return Err(ConfigError::Env {
                name: "BATCH_CONCURRENCY",
                message: format!("must be between 1 and {MAX_BATCH_CONCURRENCY}"),
            });
        }
        let max_body_bytes = number(
            &get,
            "MAX_BODY_BYTES",
            EnvelopeLimits::default().max_body_bytes,
        )?;

        let defaults = CallPolicy::default();
        let max_attempts = number(&get, "CONNECT_MAX_ATTEMPTS", defaults.max_attempts as usize)?;
        if !(1..=10).contains(&max_attempts) {
            return Err(ConfigError::Env {
                name: "CONNECT_MAX_ATTEMPTS",
                message: "must be between 1 and 10".into(),
            });
        }
        let attempt_ms = number(
            &get,
            "CONNECT_ATTEMPT_TIMEOUT_MS",
            defaults.attempt_timeout.as_millis() as usize,
        )?;
        let tls_roots = match get("TLS_ROOTS") {
            None => TlsRoots::default(),
            Some(text) => TlsRoots::parse(&text).ok_or_else(|| ConfigError::Env {
                name: "TLS_ROOTS",
                message: format!("'{text}' is neither `amazon` nor `system`"),
            })?,
        };
        let initial_backoff_ms = number(
            &get,
            "CONNECT_INITIAL_BACKOFF_MS",
            defaults.initial_backoff.as_millis() as usize,
        )?;
        let max_backoff_ms = number(
            &get,
            "CONNECT_MAX_BACKOFF_MS",
            defaults.max_backoff.as_millis() as usize,
        )?;
        let call_policy = CallPolicy {
            max_attempts: max_attempts as u32,
            initial_backoff: std::time::Duration::from_millis(initial_backoff_ms as u64),
            max_backoff: std::time::Duration::from_millis(
                max_backoff_ms.max(initial_backoff_ms) as u64
            ),
            attempt_timeout: std::time::Duration::from_millis(attempt_ms.max(100) as u64),
            tls_roots,
            ..defaults
        };

        let metrics_namespace = match get("METRICS_NAMESPACE") {
            None => Some(crate::metrics::DEFAULT_NAMESPACE.to_string()),
            Some(off) if off.eq_ignore_ascii_case("off") => None,
            Some(namespace) => Some(namespace),
        };

        let webhook_auth = WebhookAuthSetting::from_lookup(&get)?;
        let contact_link = match get("CONTACT_FLOW_LINK").map(|v| v.to_ascii_lowercase()) {
            None => ContactLink::Related,
            Some(v) if v == "related" => ContactLink::Related,
            Some(v) if v == "previous" => ContactLink::Previous,
            Some(_) => {
                return Err(ConfigError::Env {
                    name: "CONTACT_FLOW_LINK",
                    message: "must be `related` or `previous`".into(),
                })
            }
        };

        let pace = pace_setting(&get)?;
        let task_queue_url = get("TASK_QUEUE_URL");
        let webhook_mode = match get("WEBHOOK_MODE").map(|v| v.to_ascii_lowercase()) {
            // Queued needs a queue: without one (local runs, tests) webhooks call Connect.
            None if task_queue_url.is_some() => WebhookMode::Queued,
            None => WebhookMode::Sync,
            Some(v) if v == "sync" => WebhookMode::Sync,
            Some(v) if v == "queued" && task_queue_url.is_some() => WebhookMode::Queued,
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

        let quota_hold = match get("QUOTA_HOLD_SECONDS") {
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
        let task_table = get("TASK_TABLE");
        check_mapping_for(&mapping, &webhook_auth, task_table.as_deref())?;
        let completion_event_bus = get("COMPLETION_EVENT_BUS");
        if completion_event_bus.is_some() && task_table.is_none() {
            return Err(ConfigError::Env {
                name: "COMPLETION_EVENT_BUS",
                message: "needs TASK_TABLE: completions are known only for tasks in the table"
                    .into(),
            });
        }

        if let Some(text) = get("TASK_MAPPING").filter(|t| t.len() > TASK_MAPPING_WARN_BYTES) {
            tracing::warn!(
                bytes = text.len(),
                "TASK_MAPPING is close to Lambda's 4 KB limit for all environment variables together; ship the mapping as a file (TASK_MAPPING_FILE)"
            );
        }

        Ok(Config {
            connect_region,
            defaults: TaskDefaults {
                instance_id,
                contact_flow_id: flow,
                task_template_id: template,
                quick_connect_id: quick_connect,
            },
            mapping,
            mapping_source,
            batch_concurrency,
            limits: EnvelopeLimits { max_body_bytes },
            metrics_namespace,
            call_policy,
            webhook_auth,
            contact_link,
            pace,
            task_queue_url,
            webhook_mode,
            task_table,
            completion_event_bus,
            envelope_secret_id: get("ENVELOPE_SECRET_ID"),
            quota_hold,
        })
    }

    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
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

fn number(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: usize,
) -> Result<usize, ConfigError> {
    match get(name) {
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
fn pace_setting(get: &impl Fn(&str) -> Option<String>) -> Result<PaceSetting, ConfigError> {
    let defaults = PaceSetting::default();
    let positive = |name: &'static str, default: f64| -> Result<f64, ConfigError> {
        match get(name) {
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
    };
    let rate = positive("CONNECT_REQUESTS_PER_SECOND", defaults.rate)?;
    let burst = positive("CONNECT_BURST", defaults.burst)?;
    let callers = number(get, "CONNECT_CALLERS", defaults.callers as usize)?;
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
