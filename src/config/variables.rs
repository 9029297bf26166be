//! Every environment variable the function reads, in one list (`VARIABLES`: name, group,
//! default, doc), the Markdown tables `docs/configuration.md` holds (generated from it), and
//! `Vars`, the only way configuration reads the environment: it answers declared names only.

/// One environment variable the function reads: its name, the value that stands for unset
/// (None: unset means what `doc` says), and what it does. `VARIABLES` lists them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variable {
    pub name: &'static str,
    pub group: Group,
    /// The value that behaves as unset does, as the documentation shows it.
    pub default: Option<&'static str>,
    pub doc: &'static str,
}

/// What a variable is about, for the documentation's sections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Instance,
    Mapping,
    Webhooks,
    Calls,
    Queue,
    Lifecycle,
    Observability,
    Lambda,
}

impl Group {
    pub const ALL: [Group; 8] = [
        Group::Instance,
        Group::Mapping,
        Group::Webhooks,
        Group::Calls,
        Group::Queue,
        Group::Lifecycle,
        Group::Observability,
        Group::Lambda,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Group::Instance => "The instance and the task's defaults",
            Group::Mapping => "The mapping and what a record may be",
            Group::Webhooks => "Webhooks",
            Group::Calls => "Calls to Connect",
            Group::Queue => "The task queue",
            Group::Lifecycle => "The task lifecycle",
            Group::Observability => "Logs and metrics",
            Group::Lambda => "Set by Lambda",
        }
    }
}

/// Every environment variable the function reads at cold start: the one place they are
/// described. `Vars` answers only these names (reading another one is a bug, caught by a debug
/// assertion), a test holds what `Config::from_lookup` reads to this list, and
/// docs/configuration.md is generated from it (`connect-task-bridge config --markdown`).
pub const VARIABLES: &[Variable] = &[
    // The instance and the task's defaults.
    Variable {
        name: "CONNECT_INSTANCE_ID",
        group: Group::Instance,
        default: None,
        doc: "Required: the instance ID, or the instance ARN (`arn:aws:connect:REGION:ACCOUNT:instance/ID`; Connect is then called in that Region)",
    },
    Variable {
        name: "CONNECT_CONTACT_FLOW_ID",
        group: Group::Instance,
        default: None,
        doc: "The contact flow of tasks that name none (set at most one of this, `CONNECT_TASK_TEMPLATE_ID` and `CONNECT_QUICK_CONNECT_ID`)",
    },
    Variable {
        name: "CONNECT_TASK_TEMPLATE_ID",
        group: Group::Instance,
        default: None,
        doc: "Or the task template of tasks that name no flow",
    },
    Variable {
        name: "CONNECT_QUICK_CONNECT_ID",
        group: Group::Instance,
        default: None,
        doc: "Or the quick connect of tasks that name no flow",
    },
    Variable {
        name: "TASK_TEMPLATE_REFRESH_SECONDS",
        group: Group::Instance,
        default: Some("300"),
        doc: "How long a task template read from Connect is trusted before it is read again, 1 to 3600 (docs/templates.md)",
    },
    Variable {
        name: "CONTACT_FLOW_LINK",
        group: Group::Instance,
        default: Some("related"),
        doc: "How a contact flow's task links to the calling contact: `related` (`RelatedContactId`: inherits its attributes) or `previous` (`PreviousContactId`: at most 12 tasks per contact)",
    },
    // The mapping and what a record may be.
    Variable {
        name: "TASK_MAPPING",
        group: Group::Mapping,
        default: None,
        doc: "The mapping document inline (YAML or JSON); unset, and no `TASK_MAPPING_FILE`: the built-in default mapping. Lambda holds all variables to 4 KB together: past 3 KB a warning suggests a file",
    },
    Variable {
        name: "TASK_MAPPING_FILE",
        group: Group::Mapping,
        default: None,
        doc: "Or the path of a mapping file shipped with the function (a relative path resolves against `LAMBDA_TASK_ROOT` when set); not both",
    },
    Variable {
        name: "BATCH_CONCURRENCY",
        group: Group::Mapping,
        default: Some("10"),
        doc: "Calls in flight for one standard SQS batch, 1 to 100",
    },
    Variable {
        name: "MAX_BODY_BYTES",
        group: Group::Mapping,
        default: Some("262144"),
        doc: "The largest webhook body accepted, in bytes after base64 decoding",
    },
    // Webhooks.
    Variable {
        name: "WEBHOOK_AUTH",
        group: Group::Webhooks,
        default: None,
        doc: "How webhook callers are authenticated: `signature`, `iam`, `authorizer` or `none`; unset: webhooks are refused (403), other sources are unaffected",
    },
    Variable {
        name: "WEBHOOK_SECRET_ID",
        group: Group::Webhooks,
        default: None,
        doc: "With `WEBHOOK_AUTH=signature` (and only then): the Secrets Manager secret (name or ARN) holding the HMAC key",
    },
    Variable {
        name: "WEBHOOK_SIGNATURE_SCHEME",
        group: Group::Webhooks,
        default: Some("hmac-sha256"),
        doc: "Whose signatures: `hmac-sha256` (the header, prefix and timestamp below), or a sender's preset that fixes them and names deliveries by the sender's id: `github`, `stripe`, `standard-webhooks`, `svix`, `slack`, `zendesk`, `shopify`, `pagerduty` (docs/senders.md); a preset beside the header, prefix or timestamp settings stops the cold start",
    },
    Variable {
        name: "WEBHOOK_SIGNATURE_HEADER",
        group: Group::Webhooks,
        default: Some("X-Signature-256"),
        doc: "The header carrying the signature (any case)",
    },
    Variable {
        name: "WEBHOOK_SIGNATURE_PREFIX",
        group: Group::Webhooks,
        default: Some("sha256="),
        doc: "The text before the hex digest in that header",
    },
    Variable {
        name: "WEBHOOK_TIMESTAMP_HEADER",
        group: Group::Webhooks,
        default: None,
        doc: "A header carrying a Unix timestamp signed with the body (`timestamp.body`), checked against `WEBHOOK_TOLERANCE_SECONDS` to stop replays; unset: the body alone is signed",
    },
    Variable {
        name: "WEBHOOK_TOLERANCE_SECONDS",
        group: Group::Webhooks,
        default: Some("300"),
        doc: "How far a signed timestamp may be from now, in whole seconds (a preset that signs a timestamp defaults to its sender's documented tolerance, 300 s for every one today)",
    },
    Variable {
        name: "WEBHOOK_MODE",
        group: Group::Webhooks,
        default: None,
        doc: "`queued` (202 with the client token; the task follows from the task queue; needs `TASK_QUEUE_URL`) or `sync` (201 with the ContactId, 429 when throttled); unset: `queued` with a task queue, else `sync`",
    },
    // Calls to Connect.
    Variable {
        name: "CONNECT_REQUESTS_PER_SECOND",
        group: Group::Calls,
        default: Some("2"),
        doc: "StartTaskContact's quota for the account and Region, calls per second (a number above 0; Connect's default): the pace of calls",
    },
    Variable {
        name: "CONNECT_BURST",
        group: Group::Calls,
        default: Some("5"),
        doc: "That quota's burst (a number above 0; Connect's default)",
    },
    Variable {
        name: "CONNECT_CALLERS",
        group: Group::Calls,
        default: Some("2"),
        doc: "How many execution environments share that quota, 1 to 1000 (the template sets the queue's maximum concurrency)",
    },
    Variable {
        name: "PACE_TABLE",
        group: Group::Calls,
        default: None,
        doc: "The pace table (DynamoDB, partition key `pk`): every environment of every stack that names it books its calls from one schedule per operation quota ([bursts.md](bursts.md)); unset: each environment paces alone on its `CONNECT_CALLERS` share",
    },
    Variable {
        name: "CONNECT_SCHEDULE_RATE",
        group: Group::Calls,
        default: Some("2"),
        doc: "UpdateContactSchedule's quota, calls per second (a number above 0)",
    },
    Variable {
        name: "CONNECT_SCHEDULE_BURST",
        group: Group::Calls,
        default: Some("5"),
        doc: "Its burst",
    },
    Variable {
        name: "CONNECT_CONTACT_RATE",
        group: Group::Calls,
        default: Some("10"),
        doc: "The quota of each of StopContact, UpdateContact, UpdateContactAttributes, GetContactAttributes and DescribeContact, calls per second",
    },
    Variable {
        name: "CONNECT_CONTACT_BURST",
        group: Group::Calls,
        default: Some("15"),
        doc: "Their burst",
    },
    Variable {
        name: "CONNECT_TAG_RATE",
        group: Group::Calls,
        default: Some("20"),
        doc: "TagContact's quota, calls per second",
    },
    Variable {
        name: "CONNECT_TAG_BURST",
        group: Group::Calls,
        default: Some("25"),
        doc: "Its burst",
    },
    Variable {
        name: "CONNECT_NORMAL_SHARE",
        group: Group::Calls,
        default: Some("0.25"),
        doc: "With a pace table: the share of each quota normal calls keep whatever `priority: high` calls ask, 0 to 1",
    },
    Variable {
        name: "CONNECT_MAX_ATTEMPTS",
        group: Group::Calls,
        default: Some("3"),
        doc: "Attempts per record within an invocation, each through the pace, 1 to 10",
    },
    Variable {
        name: "CONNECT_ATTEMPT_TIMEOUT_MS",
        group: Group::Calls,
        default: Some("4000"),
        doc: "The timeout of one attempt, in milliseconds (at least 100)",
    },
    Variable {
        name: "CONNECT_INITIAL_BACKOFF_MS",
        group: Group::Calls,
        default: Some("200"),
        doc: "The first backoff after a fault, in milliseconds (doubled each attempt, with full jitter)",
    },
    Variable {
        name: "CONNECT_MAX_BACKOFF_MS",
        group: Group::Calls,
        default: Some("2000"),
        doc: "The longest backoff, in milliseconds (at least `CONNECT_INITIAL_BACKOFF_MS`)",
    },
    Variable {
        name: "TLS_ROOTS",
        group: Group::Calls,
        default: Some("amazon"),
        doc: "The roots the HTTPS client trusts: `amazon` (Amazon Trust Services' roots, built in) or `system` (the platform's store, `SSL_CERT_FILE`, `SSL_CERT_DIR`), for an endpoint with another CA",
    },
    // The task queue.
    Variable {
        name: "TASK_QUEUE_URL",
        group: Group::Queue,
        default: None,
        doc: "The task queue (SQS): where queued webhooks and throttled direct requests go; unset: nothing is queued",
    },
    Variable {
        name: "PRIORITY_QUEUE_URL",
        group: Group::Queue,
        default: None,
        doc: "The priority queue (SQS, with its own event source mapping): where what `priority: high` routes queue goes, so that no backlog on the task queue holds it back; needed (with TASK_QUEUE_URL) when a route says `priority: high`",
    },
    Variable {
        name: "QUOTA_HOLD_SECONDS",
        group: Group::Queue,
        default: Some("60"),
        doc: "How long a record waits in the task queue the first time Connect's quota of active tasks is exhausted, 1 to 900 seconds (doubled each time, at most 900)",
    },
    Variable {
        name: "ENVELOPE_SECRET_ID",
        group: Group::Queue,
        default: None,
        doc: "The Secrets Manager secret (name or ARN) whose key signs what the function queues itself (the template creates it); unset: unsigned envelopes, checked again when read back",
    },
    // The task lifecycle.
    Variable {
        name: "TASK_TABLE",
        group: Group::Lifecycle,
        default: None,
        doc: "The task table (DynamoDB): business keys held while tasks are open, routes that update, reschedule, stop or tag a task or wait for it, contact events heard; unset: routes that need it stop the cold start",
    },
    Variable {
        name: "COMPLETION_EVENT_BUS",
        group: Group::Lifecycle,
        default: None,
        doc: "With `TASK_TABLE`: the EventBridge bus that gets a `Connect Task Completed` event when a task in the table ends",
    },
    // Logs and metrics.
    Variable {
        name: "METRICS_NAMESPACE",
        group: Group::Observability,
        default: Some("ConnectTaskBridge"),
        doc: "The CloudWatch namespace of the EMF metrics; `off`: none are written",
    },
    Variable {
        name: "RUST_LOG",
        group: Group::Observability,
        default: None,
        doc: "The log filter (tracing's directive syntax); it wins over `AWS_LAMBDA_LOG_LEVEL`. No other crate's TRACE events are written whatever it asks",
    },
    // Set by Lambda.
    Variable {
        name: "AWS_LAMBDA_LOG_LEVEL",
        group: Group::Lambda,
        default: Some("INFO"),
        doc: "The log level when `RUST_LOG` is unset (the function's `ApplicationLogLevel`): `TRACE`, `DEBUG`, `INFO`, `WARN`, `ERROR` or `FATAL`",
    },
    Variable {
        name: "AWS_LAMBDA_LOG_FORMAT",
        group: Group::Lambda,
        default: None,
        doc: "The log format (the function's `LogFormat`): `Text` writes plain lines; anything else, JSON lines",
    },
    Variable {
        name: "LAMBDA_TASK_ROOT",
        group: Group::Lambda,
        default: None,
        doc: "The function's package directory, against which a relative `TASK_MAPPING_FILE` resolves",
    },
];

/// The variable `name` in `VARIABLES`.
pub fn variable(name: &str) -> Option<&'static Variable> {
    VARIABLES.iter().find(|v| v.name == name)
}

/// The lines between which docs/configuration.md holds the generated table.
pub const TABLE_BEGIN: &str = "<!-- variables:begin -->";
pub const TABLE_END: &str = "<!-- variables:end -->";

/// `VARIABLES` as Markdown: a section per group, a row per variable.
pub fn variables_markdown() -> String {
    let mut out = String::new();
    for group in Group::ALL {
        let rows: Vec<&Variable> = VARIABLES.iter().filter(|v| v.group == group).collect();
        if rows.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!("## {}\n\n", group.title()));
        out.push_str("| variable | default | meaning |\n| --- | --- | --- |\n");
        for v in rows {
            let default = v.default.map_or("—".to_string(), |d| format!("`{d}`"));
            out.push_str(&format!("| `{}` | {default} | {} |\n", v.name, v.doc));
        }
    }
    out
}

/// `doc` with the generated table between its `TABLE_BEGIN` and `TABLE_END` lines; None
/// without them.
pub fn with_variables_table(doc: &str) -> Option<String> {
    let start = doc.find(TABLE_BEGIN)? + TABLE_BEGIN.len();
    let end = start + doc[start..].find(TABLE_END)?;
    Some(format!(
        "{}\n\n{}\n{}",
        &doc[..start],
        variables_markdown(),
        &doc[end..]
    ))
}

/// The environment as configuration reads it: a value trimmed, an empty one as unset, and only
/// for a name in `VARIABLES` (any other is a bug, refused by a debug assertion).
pub struct Vars<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Vars<'a> {
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Vars<'a> {
        Vars { lookup }
    }

    pub fn get(&self, name: &str) -> Option<String> {
        debug_assert!(
            variable(name).is_some(),
            "{name} is read but not declared in config::VARIABLES"
        );
        (self.lookup)(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }
}
