//! `local-run --function BINARY [--events DIR] [--mapping FILE] [--instance ID] [--flow ID]
//!  [--moto MOTO_SERVER --lifecycle MAPPING]`
//!
//! The local demo: starts the Connect stand-in, runs the function binary under a local Lambda
//! Runtime API, sends every event in DIR through it, prints a table (event → ContactId(s) or
//! error), delivers every event a second time to show that no second task appears, prints the
//! tasks the stand-in holds, and stops everything it started. With `--moto` and `--lifecycle`,
//! then a task's life: the task table in moto's DynamoDB, an order that fails (a task), fails
//! again (no second task) and recovers (the task stopped), and another order's task that an
//! agent completes (its Step Functions workflow told, a completion event put on the bus).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use connect_standin::connect::{ConnectStandIn, Options};
use connect_standin::harness::LocalStack;
use connect_standin::moto::Moto;
use connect_standin::runtime_api::Invocation;
use serde_json::{json, Value};

const DEFAULT_INSTANCE: &str = "11111111-2222-3333-4444-555555555555";
const DEFAULT_FLOW: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const TIMEOUT: Duration = Duration::from_secs(15);

struct Args {
    function: PathBuf,
    events: PathBuf,
    mapping: Option<PathBuf>,
    instance: String,
    flow: String,
    moto: Option<PathBuf>,
    lifecycle: Option<PathBuf>,
    /// A task template (what `aws connect get-task-template` prints) and the mapping that fills
    /// it: a task created from the template, and a request refused before the call.
    task_template: Option<(PathBuf, PathBuf)>,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        function: PathBuf::new(),
        events: PathBuf::from("events"),
        mapping: None,
        instance: DEFAULT_INSTANCE.into(),
        flow: DEFAULT_FLOW.into(),
        moto: None,
        lifecycle: None,
        task_template: None,
    };
    let mut template_file = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--function" => args.function = value.into(),
            "--events" => args.events = value.into(),
            "--mapping" => args.mapping = Some(value.into()),
            "--instance" => args.instance = value,
            "--flow" => args.flow = value,
            "--moto" => args.moto = Some(value.into()),
            "--lifecycle" => args.lifecycle = Some(value.into()),
            "--task-template" => template_file = Some(PathBuf::from(value)),
            "--template-mapping" => {
                let file = template_file
                    .take()
                    .ok_or("--template-mapping follows --task-template")?;
                args.task_template = Some((file, value.into()));
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    if args.function.as_os_str().is_empty() {
        return Err("--function BINARY is required".into());
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}\n\nusage: local-run --function BINARY [--events DIR] [--mapping FILE] [--instance ID] [--flow ID]");
            return std::process::ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("local-run: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(&args.events)
        .map_err(|e| format!("{}: {e}", args.events.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();

    let mut options = Options::local();
    options.instances = vec![args.instance.clone()];
    let connect = ConnectStandIn::start(options, 0)
        .await
        .map_err(|e| format!("stand-in: {e}"))?;
    println!("Connect stand-in listening on {}", connect.url());
    let mut env = vec![
        ("CONNECT_INSTANCE_ID".to_string(), args.instance.clone()),
        ("CONNECT_CONTACT_FLOW_ID".to_string(), args.flow.clone()),
        // A local demo: the sample webhooks are unsigned. A deployment must choose signature,
        // iam or authorizer (docs/security.md).
        ("WEBHOOK_AUTH".to_string(), "none".to_string()),
        // The demo's stand-in models no quota; a deployment paces to Connect's (docs/bursts.md).
        ("CONNECT_REQUESTS_PER_SECOND".to_string(), "50".to_string()),
        ("CONNECT_BURST".to_string(), "50".to_string()),
    ];
    if let Some(m) = &args.mapping {
        let abs = std::fs::canonicalize(m).map_err(|e| format!("{}: {e}", m.display()))?;
        env.push(("TASK_MAPPING_FILE".into(), abs.display().to_string()));
        println!("mapping: {}", m.display());
    }
    let mut stack = LocalStack::start(&args.function, connect, &env)
        .await
        .map_err(|e| format!("cannot start {}: {e}", args.function.display()))?;

    for round in [
        "first delivery",
        "second delivery (redelivered: same client tokens)",
    ] {
        println!("\n== {round}");
        println!("{:<30} {:>7}  result", "event", "ms");
        for file in &files {
            let name = file
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(file).map_err(|e| format!("{name}: {e}"))?;
            let payload: Value = serde_json::from_str(&text).map_err(|e| format!("{name}: {e}"))?;
            let logs_before = stack.function.json_logs().len();
            let started = Instant::now();
            let result = stack.invoke(payload, TIMEOUT).await;
            let ms = started.elapsed().as_millis();
            // Give the log reader a moment to catch the lines written with the response.
            tokio::time::sleep(Duration::from_millis(30)).await;
            let outcomes: Vec<Value> = stack.function.json_logs().split_off(logs_before);
            let summary = match result {
                Ok(inv) => summarise(&inv, &outcomes),
                Err(e) => format!("invocation failed: {e}"),
            };
            let mut lines = summary.lines();
            println!("{name:<30} {ms:>7}  {}", lines.next().unwrap_or_default());
            for line in lines {
                println!("{:<30} {:>7}  {line}", "", "");
            }
        }
    }

    let tasks = stack.connect.tasks();
    let stats = stack.connect.stats();
    println!("\n== tasks held by the stand-in: {}", tasks.len());
    println!("{:<36}  {:<50}  client token", "ContactId", "Name");
    for t in &tasks {
        let name: String = t.request["Name"]
            .as_str()
            .unwrap_or_default()
            .chars()
            .take(50)
            .collect();
        println!(
            "{:<36}  {name:<50}  {}",
            t.contact_id,
            t.client_token.as_deref().unwrap_or("-")
        );
    }
    println!(
        "\nstand-in: {} requests, {} tasks created, {} answered from an existing client token, {} refused as invalid",
        stats.requests, stats.created, stats.replayed, stats.invalid
    );
    stack.stop().await;
    if let Some((template, mapping)) = &args.task_template {
        task_template(&args, template, mapping, &env).await?;
    }
    if let (Some(moto), Some(mapping)) = (&args.moto, &args.lifecycle) {
        lifecycle(&args, moto, mapping, &env).await?;
    }
    Ok(())
}

/// A task created from a task template, and a request that does not fit it, refused by the
/// function before any call (docs/templates.md).
async fn task_template(
    args: &Args,
    template: &std::path::Path,
    mapping: &std::path::Path,
    base_env: &[(String, String)],
) -> Result<(), String> {
    println!(
        "\n== a task from a task template ({}, mapping {})",
        template.display(),
        mapping.display()
    );
    let text =
        std::fs::read_to_string(template).map_err(|e| format!("{}: {e}", template.display()))?;
    let template: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", template.display()))?;
    let mut options = Options::local();
    options.instances = vec![args.instance.clone()];
    options.task_templates = vec![template];
    let connect = ConnectStandIn::start(options, 0)
        .await
        .map_err(|e| format!("stand-in: {e}"))?;
    let abs = std::fs::canonicalize(mapping).map_err(|e| format!("{}: {e}", mapping.display()))?;
    let mut env = base_env.to_vec();
    env.push(("TASK_MAPPING_FILE".into(), abs.display().to_string()));
    let mut stack = LocalStack::start(&args.function, connect, &env)
        .await
        .map_err(|e| format!("cannot start {}: {e}", args.function.display()))?;
    let order = |id: &str, email: &str| {
        serde_json::json!({
            "version": "0", "id": format!("demo-template-{id}"), "detail-type": "OrderFailed",
            "source": "shop.orders", "account": "111122223333", "time": "2026-11-24T09:14:03Z",
            "region": "eu-west-1", "resources": [],
            "detail": {"orderId": id, "amount": 149.9, "reason": "Payment declined by issuer",
                       "customer": {"email": email}},
        })
    };
    for (label, event) in [
        ("order o-7", order("o-7", "maria.lopez@example.com")),
        (
            "order o-8, no e-mail address (EMAIL field)",
            order("o-8", "unknown"),
        ),
    ] {
        let answer = match stack.invoke(event, TIMEOUT).await {
            Ok(Invocation::Response(v)) => {
                format!("ContactId {}", v["ContactId"].as_str().unwrap_or("?"))
            }
            Ok(Invocation::Error {
                error_type,
                message,
            }) => format!("refused: {error_type}: {message}"),
            Err(e) => format!("invocation failed: {e}"),
        };
        println!("{label:<40} {answer}");
    }
    for t in stack.connect.tasks() {
        let fields: Vec<String> = t.request["References"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k} ({})", v["Type"].as_str().unwrap_or_default()))
            .collect();
        println!(
            "  {}  template {}  fields: {}",
            t.contact_id,
            t.request["TaskTemplateId"].as_str().unwrap_or("-"),
            fields.join(", ")
        );
    }
    let stats = stack.connect.stats();
    println!(
        "stand-in: {} StartTaskContact requests, {} tasks created, {} refused as invalid (the refused order never reached it)",
        stats.requests, stats.created, stats.invalid
    );
    stack.stop().await;
    Ok(())
}

/// A task's life, through the function with the task table (moto) and the lifecycle mapping.
async fn lifecycle(
    args: &Args,
    moto_server: &std::path::Path,
    mapping: &std::path::Path,
    base_env: &[(String, String)],
) -> Result<(), String> {
    println!(
        "
== a task's life (mapping {}, task table in moto)",
        mapping.display()
    );
    let moto = Moto::start(moto_server).await;
    moto.create_task_table("tasks").await;
    let mut options = Options::local();
    options.instances = vec![args.instance.clone()];
    let connect = ConnectStandIn::start(options, 0)
        .await
        .map_err(|e| format!("stand-in: {e}"))?;
    let abs = std::fs::canonicalize(mapping).map_err(|e| format!("{}: {e}", mapping.display()))?;
    let mut env = base_env.to_vec();
    for (k, v) in [
        ("TASK_MAPPING_FILE", abs.display().to_string()),
        ("TASK_TABLE", "tasks".into()),
        ("COMPLETION_EVENT_BUS", "default".into()),
        ("AWS_ENDPOINT_URL_DYNAMODB", moto.url.clone()),
        ("AWS_ENDPOINT_URL_SFN", moto.url.clone()),
        ("AWS_ENDPOINT_URL_EVENTBRIDGE", moto.url.clone()),
    ] {
        env.push((k.to_string(), v));
    }
    let mut stack = LocalStack::start(&args.function, connect, &env)
        .await
        .map_err(|e| format!("cannot start {}: {e}", args.function.display()))?;
    let order = |id: &str, detail_type: &str, detail: Value| {
        json!({
            "version": "0", "id": id, "detail-type": detail_type, "source": "shop.orders",
            "account": connect_standin::ACCOUNT, "time": "2026-11-25T10:00:00Z",
            "region": connect_standin::LOCAL_REGION, "resources": [], "detail": detail
        })
    };
    let steps = [
        (
            "order o-1 fails",
            order(
                "ev-1",
                "OrderFailed",
                json!({"orderId": "o-1", "reason": "card declined"}),
            ),
        ),
        (
            "order o-1 fails again",
            order(
                "ev-2",
                "OrderFailed",
                json!({"orderId": "o-1", "reason": "card declined again"}),
            ),
        ),
        (
            "the customer adds a note",
            order(
                "ev-3",
                "OrderNoteAdded",
                json!({"orderId": "o-1", "note": "will call back at 5"}),
            ),
        ),
        (
            "o-1's payment succeeds",
            order("ev-4", "PaymentSucceeded", json!({"orderId": "o-1"})),
        ),
        (
            "order o-2 fails; a workflow waits",
            order(
                "ev-5",
                "OrderFailed",
                json!({"orderId": "o-2", "reason": "address", "taskToken": "demo-task-token"}),
            ),
        ),
    ];
    println!("{:<40}  result", "step");
    let mut waiting = None;
    for (step, event) in steps {
        let answer = stack.invoke(event, TIMEOUT).await;
        println!("{step:<40}  {}", describe(&answer));
        if step.contains("waits") {
            if let Ok(Invocation::Response(v)) = &answer {
                waiting = v["ContactId"].as_str().map(str::to_string);
            }
        }
    }
    let contact = waiting.ok_or("the awaited task did not start")?;
    let events = stack.connect.agent(
        &contact,
        "complete",
        json!({"resolution": "address corrected"}),
    )?;
    println!(
        "{:<40}  {} contact events",
        "an agent completes o-2's task",
        events.len()
    );
    for event in events {
        let kind = event["detail"]["eventType"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let answer = stack.invoke(event, TIMEOUT).await;
        println!(
            "{:<40}  {}",
            format!("  Connect's {kind} event"),
            describe(&answer)
        );
    }
    for (target, what) in [
        (
            "AWSStepFunctions.SendTaskSuccess",
            "Step Functions told (SendTaskSuccess)",
        ),
        (
            "AWSStepFunctions.SendTaskFailure",
            "Step Functions told (SendTaskFailure)",
        ),
        ("AWSEvents.PutEvents", "completion events on the bus"),
    ] {
        let sent: Vec<Value> = moto
            .recorded()
            .into_iter()
            .filter(|(t, _)| t == target)
            .map(|(_, body)| body)
            .collect();
        let detail = sent
            .first()
            .and_then(|b| b["output"].as_str().or(b["Entries"][0]["Detail"].as_str()))
            .unwrap_or("");
        println!("{what:<40}  {} {detail}", sent.len());
    }
    let tasks = stack.connect.tasks();
    println!(
        "
stand-in: {} tasks",
        tasks.len()
    );
    for t in &tasks {
        println!(
            "  {}  {:<45}  {} (ended: {})",
            t.contact_id,
            t.request["Name"].as_str().unwrap_or_default(),
            t.state,
            t.disconnect_reason.as_deref().unwrap_or("-")
        );
    }
    stack.stop().await;
    Ok(())
}

/// An answer in a few words.
fn describe(answer: &Result<Invocation, connect_standin::runtime_api::InvokeError>) -> String {
    match answer {
        Ok(Invocation::Response(v)) => {
            let outcome = v["Outcome"].as_str().unwrap_or("started");
            match v["ContactId"].as_str() {
                Some(id) => format!("{outcome}: ContactId {id}"),
                None => outcome.to_string(),
            }
        }
        Ok(Invocation::Error { error_type, .. }) => format!("failed: {error_type}"),
        Err(e) => format!("invocation failed: {e}"),
    }
}

/// One line per record: the ContactId, or the error class and code, from the answer and the
/// function's own outcome log lines.
fn summarise(inv: &Invocation, logs: &[Value]) -> String {
    let per_record: Vec<String> = logs
        .iter()
        .filter_map(|l| {
            let f = l.get("fields").unwrap_or(l);
            let record = f["record_id"].as_str()?;
            let short: String = record.chars().take(12).collect();
            Some(match f["outcome"].as_str()? {
                "started" => format!(
                    "{short}…  ContactId {}",
                    f["contact_id"].as_str().unwrap_or("?")
                ),
                _ => format!(
                    "{short}…  failed: {} {}",
                    f["error_class"].as_str().unwrap_or("?"),
                    f["error_code"].as_str().unwrap_or("?")
                ),
            })
        })
        .collect();
    match inv {
        Invocation::Response(v) if v.get("batchItemFailures").is_some() => {
            let failed = v["batchItemFailures"].as_array().map_or(0, Vec::len);
            // The source the records' log lines name (SQS, Kinesis, DynamoDB Streams, a pipe).
            let source = logs
                .iter()
                .find_map(|l| l.get("fields").unwrap_or(l)["source"].as_str())
                .unwrap_or("record");
            let mut out = vec![format!(
                "{source} batch: {failed} reported in batchItemFailures"
            )];
            out.extend(per_record);
            out.join("\n")
        }
        Invocation::Response(v) if v.get("statusCode").is_some() => {
            let body: Value = v["body"]
                .as_str()
                .and_then(|b| serde_json::from_str(b).ok())
                .unwrap_or(Value::Null);
            match body.get("contactId").and_then(Value::as_str) {
                Some(id) => format!("HTTP {} ContactId {id}", v["statusCode"]),
                None => format!(
                    "HTTP {} {}",
                    v["statusCode"],
                    body["message"].as_str().unwrap_or("")
                ),
            }
        }
        Invocation::Response(v) => match v.get("ContactId").and_then(Value::as_str) {
            Some(id) => format!("ContactId {id}"),
            None => v.to_string(),
        },
        Invocation::Error {
            error_type,
            message,
        } => format!("error {error_type}: {message}"),
    }
}
