//! The command line: `render` prints the StartTaskContact request(s) an event would produce,
//! through the very code the Lambda runs, without calling anything; `send` runs the event through
//! the handler against Connect (or the local stand-in), the way to replay one event (a whole DLQ
//! goes back with `redrive`, which keeps each message's identity).

use std::io::Write;
use std::time::SystemTime;

use aws_smithy_types::DateTime;
use serde_json::Value;

use crate::config::Config;
use crate::connect::{connect_client, load_sdk_config};
use crate::handler::Bridge;
use crate::mapping::{Mapping, RouteShape, TemplateId};
use crate::prepare::prepare_payload;
use crate::template::book::Book;
use crate::template::TaskTemplate;

pub const USAGE: &str = "\
usage: connect-task-bridge                      run as a Lambda function (AWS_LAMBDA_RUNTIME_API)
       connect-task-bridge render EVENT.json [--mapping FILE]
                                                print the StartTaskContact request(s) for an event,
                                                in the shape of `aws connect start-task-contact
                                                --cli-input-json`, without calling Connect
       connect-task-bridge check [--mapping FILE] [--task-template FILE]... [--fetch]
                                                check the configuration and the mapping as a cold
                                                start would; list the routes and the sources each
                                                can match; with --task-template (what `aws connect
                                                get-task-template --output json` prints) or --fetch
                                                (read from Connect), check every route that uses a
                                                template against it; exit 1 naming what is wrong
       connect-task-bridge schema               print the mapping document's JSON Schema
       connect-task-bridge --version            print the version (Cargo.toml's; the template's
                                                SemanticVersion)
       connect-task-bridge config --markdown [FILE]
                                                print the environment variables the function
                                                reads as Markdown tables; with FILE, write them
                                                between its <!-- variables:begin --> and
                                                <!-- variables:end --> lines
       connect-task-bridge send EVENT.json [--endpoint-url URL] [--mapping FILE]
                                                handle the event as the Lambda would, calling
                                                Connect (credentials and region from the usual AWS
                                                environment), and print the function's answer
       connect-task-bridge redrive --from DLQ_URL [--to QUEUE_URL] [--rate N] [--max N] [--dry-run]
                               [--envelope-secret-id SECRET]
                                                move a dead-letter queue's messages back, each
                                                keeping its identity (`redrive --help`)

Configuration comes from the environment (CONNECT_INSTANCE_ID, CONNECT_CONTACT_FLOW_ID, TASK_MAPPING,
TASK_MAPPING_FILE, ...; see docs/configuration.md or `config --markdown`). --mapping overrides
TASK_MAPPING / TASK_MAPPING_FILE.";

/// The arguments both commands take.
struct EventArgs {
    event_path: String,
    mapping_path: Option<String>,
    endpoint_url: Option<String>,
}

fn parse_args(args: &[String], allow_endpoint: bool) -> Result<EventArgs, String> {
    let mut parsed = EventArgs {
        event_path: String::new(),
        mapping_path: None,
        endpoint_url: None,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--mapping" => {
                parsed.mapping_path = Some(it.next().ok_or("--mapping needs a file")?.clone())
            }
            "--endpoint-url" if allow_endpoint => {
                parsed.endpoint_url = Some(it.next().ok_or("--endpoint-url needs a URL")?.clone())
            }
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
            path if parsed.event_path.is_empty() => parsed.event_path = path.to_string(),
            extra => return Err(format!("unexpected argument {extra}")),
        }
    }
    if parsed.event_path.is_empty() {
        return Err("an EVENT.json is required".into());
    }
    Ok(parsed)
}

/// The configuration a cold start would build, with `--mapping` in place of TASK_MAPPING(_FILE).
fn load_config(mapping_path: Option<&str>) -> Result<Config, String> {
    let mut config = Config::from_env().map_err(|e| format!("configuration: {e}"))?;
    if let Some(path) = mapping_path {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        config.mapping = Mapping::parse(&text).map_err(|e| e.to_string())?;
        crate::config::check_mapping_for(
            &config.mapping,
            &config.webhook_auth,
            config.task_table.as_deref(),
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(config)
}

fn read_event(path: &str) -> Result<Value, String> {
    std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
        .map_err(|e| format!("{path}: {e}"))
}

/// Runs `render`; returns the process exit code (0: every record rendered, 1: some failed,
/// 2: usage or configuration error).
pub fn render(args: &[String], out: &mut impl Write, err: &mut impl Write) -> i32 {
    let args = match parse_args(args, false) {
        Ok(a) => a,
        Err(e) => return usage(err, &e),
    };
    let event_path = args.event_path;
    let (config, payload) = match load_config(args.mapping_path.as_deref())
        .and_then(|c| Ok((c, read_event(&event_path)?)))
    {
        Ok(loaded) => loaded,
        Err(e) => return fail(err, &e),
    };
    let records = match prepare_payload(payload, &config, DateTime::from(SystemTime::now())) {
        Ok(records) => records,
        Err(e) => {
            let _ = writeln!(err, "{event_path}: {e}");
            return 1;
        }
    };
    let mut code = 0;
    for (id, result) in records {
        match result {
            Ok(prepared) => {
                let _ = writeln!(err, "{event_path}: record {id}: route {}", prepared.route);
                let text =
                    serde_json::to_string_pretty(&prepared.request).expect("a request serialises");
                let _ = writeln!(out, "{text}");
            }
            Err(e) => {
                let _ = writeln!(err, "{event_path}: record {id}: {} error: {e}", e.class());
                code = 1;
            }
        }
    }
    code
}

/// Runs `check`: the configuration and mapping a cold start would build (exit 0), or the
/// refusal a cold start would log, naming the variable or the route and field (exit 1).
pub async fn check(args: &[String], out: &mut impl Write, err: &mut impl Write) -> i32 {
    let mut mapping_path = None;
    let mut template_paths = Vec::new();
    let mut fetch = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--mapping" => match it.next() {
                Some(path) => mapping_path = Some(path.clone()),
                None => return usage(err, "--mapping needs a file"),
            },
            "--task-template" => match it.next() {
                Some(path) => template_paths.push(path.clone()),
                None => return usage(err, "--task-template needs a file"),
            },
            "--fetch" => fetch = true,
            other => return usage(err, &format!("unexpected argument {other}")),
        }
    }
    let config = match load_config(mapping_path.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return 1;
        }
    };
    let source = mapping_path.unwrap_or_else(|| config.mapping_source.clone());
    let _ = writeln!(
        out,
        "configuration: ok (instance {})",
        config.defaults.instance_id
    );
    let _ = writeln!(
        out,
        "webhook authentication: {}",
        config.webhook_auth.as_str()
    );
    if let Some(scheme) = config.webhook_auth.scheme() {
        let _ = writeln!(out, "webhook signature scheme: {scheme}");
    }
    let _ = writeln!(out, "mapping: {source}");
    for route in config.mapping.describe_routes() {
        let _ = writeln!(out, "  route {route}");
    }
    let mut templates = Vec::new();
    for path in &template_paths {
        let read = std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<Value>(&t).map_err(|e| e.to_string()))
            .and_then(|v| TaskTemplate::from_json(&v));
        match read {
            Ok(template) => templates.push(template),
            Err(e) => return fail(err, &format!("{path}: not a task template: {e}")),
        }
    }
    let default = config.defaults.task_template_id.clone();
    let shapes = config.mapping.route_shapes(default.as_deref());
    if fetch {
        // Explicit: `check` calls AWS only when asked to.
        let sdk_config = load_sdk_config(config.call_policy, None).await;
        let client = connect_client(&sdk_config, config.connect_region.as_deref());
        let book = Book::new(
            client,
            config.defaults.instance_id.clone(),
            config.call_policy,
            config.pace.callers,
        );
        for id in config.mapping.literal_template_ids(default.as_deref()) {
            match book.get(&id, None).await {
                Some(template) => templates.push(template),
                None => return fail(err, &format!("task template {id} cannot be read")),
            }
        }
    }
    if check_templates(&templates, &shapes, out, err) {
        0
    } else {
        1
    }
}

/// `check --task-template`: every route whose requests use one of `templates` checked against
/// it, each broken rule a line naming the route and the field (never a value). True when none.
fn check_templates(
    templates: &[TaskTemplate],
    shapes: &[RouteShape],
    out: &mut impl Write,
    err: &mut impl Write,
) -> bool {
    let mut ok = true;
    for template in templates {
        let _ = writeln!(
            out,
            "task template {} ('{}', {})",
            template.id, template.name, template.status
        );
        let defaulted = template.defaulted();
        if !defaulted.is_empty() {
            let _ = writeln!(
                out,
                "  required fields left to the template's defaults: {}",
                defaulted.join(", ")
            );
        }
    }
    for route in shapes.iter().filter(|r| r.starts) {
        match &route.template {
            TemplateId::None => {}
            TemplateId::PerEvent => {
                let _ = writeln!(
                    out,
                    "  route '{}': its task_template_id is rendered per event: checked before each call",
                    route.route
                );
            }
            TemplateId::Literal(id) => match templates.iter().find(|t| &t.id == id) {
                None => {
                    let _ = writeln!(
                        out,
                        "  route '{}': task template {id} not given (--task-template FILE or --fetch): not checked",
                        route.route
                    );
                }
                Some(template) => {
                    let problems = template.check(&route.shape);
                    if problems.is_empty() {
                        let _ = writeln!(out, "  route '{}': fits task template {id}", route.route);
                    }
                    for problem in problems {
                        ok = false;
                        let _ = writeln!(
                            err,
                            "route '{}', task template {id}, field {}: {}",
                            route.route, problem.field, problem.rule
                        );
                    }
                }
            },
        }
    }
    ok
}

/// Runs `config --markdown [FILE]`: the table of `config::VARIABLES`, printed or written into
/// FILE between its markers (0), or what is wrong (1; 2 for usage).
pub fn config(args: &[String], out: &mut impl Write, err: &mut impl Write) -> i32 {
    let file = match args {
        [flag] if flag == "--markdown" => None,
        [flag, file] if flag == "--markdown" => Some(file),
        _ => return usage(err, "config takes --markdown [FILE]"),
    };
    let Some(file) = file else {
        let _ = write!(out, "{}", crate::config::variables_markdown());
        return 0;
    };
    let written = std::fs::read_to_string(file)
        .map_err(|e| e.to_string())
        .and_then(|doc| {
            crate::config::with_variables_table(&doc).ok_or_else(|| {
                format!(
                    "no {} and {} lines",
                    crate::config::TABLE_BEGIN,
                    crate::config::TABLE_END
                )
            })
        })
        .and_then(|doc| std::fs::write(file, doc).map_err(|e| e.to_string()));
    match written {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(err, "{file}: {e}");
            1
        }
    }
}

/// Runs `send`: the event through the handler, as the Lambda would run it, against the endpoint
/// given (or the SDK's default for the region). Prints the function's answer; returns 0 when
/// every record has its task, 1 when any failed, 2 on usage or configuration errors.
pub async fn send(args: &[String], out: &mut impl Write, err: &mut impl Write) -> i32 {
    let args = match parse_args(args, true) {
        Ok(a) => a,
        Err(e) => return usage(err, &e),
    };
    let (mut config, payload) = match load_config(args.mapping_path.as_deref())
        .and_then(|c| Ok((c, read_event(&args.event_path)?)))
    {
        Ok(loaded) => loaded,
        Err(e) => return fail(err, &e),
    };
    // EMF lines are for CloudWatch; on a terminal the answer is the output.
    config.metrics_namespace = None;
    // `--endpoint-url` is Connect's; the task table and the workflows keep their own (the
    // environment's AWS_ENDPOINT_URL_<SERVICE>, or AWS's).
    let sdk_config = load_sdk_config(config.call_policy, args.endpoint_url.as_deref()).await;
    let client = connect_client(&sdk_config, config.connect_region.as_deref());
    let others = load_sdk_config(config.call_policy, None).await;
    let templates = crate::template::book::for_config(&config, &client).await;
    let mut bridge = Bridge::new(config, client).with_lifecycle_from(&others);
    if let Some(book) = templates {
        bridge = bridge.with_task_templates(book);
    }
    match bridge.handle(payload, None).await {
        Ok(answer) => {
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&answer).expect("JSON")
            );
            if answer_has_failures(&answer) {
                1
            } else {
                0
            }
        }
        Err(e) => {
            let _ = writeln!(
                err,
                "{}: {} error {}: {e}",
                args.event_path,
                e.class(),
                e.code()
            );
            1
        }
    }
}

/// Whether an answer reports a record without its task (SQS failures, webhook error statuses).
fn answer_has_failures(answer: &Value) -> bool {
    let sqs_failed = answer["batchItemFailures"]
        .as_array()
        .is_some_and(|f| !f.is_empty());
    let http_failed = answer["statusCode"].as_i64().is_some_and(|s| s >= 400);
    sqs_failed || http_failed
}

fn usage(err: &mut impl Write, message: &str) -> i32 {
    let _ = writeln!(err, "{message}\n\n{USAGE}");
    2
}

fn fail(err: &mut impl Write, message: &str) -> i32 {
    let _ = writeln!(err, "{message}");
    2
}
