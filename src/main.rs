use std::sync::Arc;

use connect_task_bridge::cli;
use connect_task_bridge::config::Config;
use connect_task_bridge::connect::{connect_client, load_sdk_config};
use connect_task_bridge::handler::{plausible_deadline, Bridge};
use connect_task_bridge::logging;
use connect_task_bridge::queue::{EnvelopeKeys, TaskQueue};
use connect_task_bridge::webhook_auth::{SignatureCheck, WebhookAuthSetting};
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::value::RawValue;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None => run_lambda().await,
        Some("render") => {
            let code = cli::render(&args[1..], &mut std::io::stdout(), &mut std::io::stderr());
            std::process::exit(code);
        }
        Some("schema") => {
            print!("{}", connect_task_bridge::mapping::Mapping::json_schema());
            Ok(())
        }
        Some("config") => {
            let code = cli::config(&args[1..], &mut std::io::stdout(), &mut std::io::stderr());
            std::process::exit(code);
        }
        Some("check") => {
            let code = cli::check(&args[1..], &mut std::io::stdout(), &mut std::io::stderr()).await;
            std::process::exit(code);
        }
        Some("send") => {
            let code = cli::send(&args[1..], &mut std::io::stdout(), &mut std::io::stderr()).await;
            std::process::exit(code);
        }
        Some("-V" | "--version" | "version") => {
            println!("connect-task-bridge {}", connect_task_bridge::VERSION);
            Ok(())
        }
        Some("redrive") => {
            let code = connect_task_bridge::redrive::command(
                &args[1..],
                &mut std::io::stdout(),
                &mut std::io::stderr(),
            )
            .await;
            std::process::exit(code);
        }
        Some("-h" | "--help" | "help") => {
            println!("{}", cli::USAGE);
            Ok(())
        }
        Some(other) => {
            eprintln!("unknown command {other}\n\n{}", cli::USAGE);
            std::process::exit(2);
        }
    }
}

/// Cold start builds the configuration and the client once; a bad configuration stops the init,
/// so a broken deployment fails loudly instead of failing every event.
async fn run_lambda() -> Result<(), lambda_runtime::Error> {
    let process_start = std::time::SystemTime::now();
    logging::init();
    logging::install_panic_hook();
    let config =
        Config::from_env().inspect_err(|e| tracing::error!(error = %e, "configuration refused"))?;
    let sdk_config = load_sdk_config(config.call_policy, None).await;
    let client = connect_client(&sdk_config, config.connect_region.as_deref());
    tracing::info!(
        version = connect_task_bridge::VERSION,
        instance_id = %config.defaults.instance_id,
        mapping = %config.mapping_source,
        routes = ?config.mapping.route_names().collect::<Vec<_>>(),
        batch_concurrency = config.batch_concurrency,
        webhook_auth = config.webhook_auth.as_str(),
        webhook_signature_scheme = config.webhook_auth.scheme(),
        webhook_mode = ?config.webhook_mode,
        connect_requests_per_second = config.pace.rate,
        connect_burst = config.pace.burst,
        connect_callers = config.pace.callers,
        "cold start"
    );
    let signature = match &config.webhook_auth {
        WebhookAuthSetting::Signature(settings) => {
            let secrets = aws_sdk_secretsmanager::Client::new(&sdk_config);
            let check = SignatureCheck::fetch(settings.clone(), &secrets)
                .await
                .inspect_err(|e| tracing::error!(error = %e, "configuration refused"))?;
            Some((check, secrets))
        }
        WebhookAuthSetting::None => {
            tracing::warn!(
                webhook_auth = "none",
                "webhooks are not authenticated: anyone who can reach the endpoint can create tasks"
            );
            None
        }
        _ => None,
    };
    let queue = TaskQueue::new(
        aws_sdk_sqs::Client::new(&sdk_config),
        config.task_queue_url.clone(),
    )
    .with_priority_queue(config.priority_queue_url.clone())
    .with_hold_base(config.quota_hold);
    // The envelope key: a cold start that cannot read it stops, as for the webhook key.
    let envelope = match &config.envelope_secret_id {
        Some(id) => Some(
            EnvelopeKeys::fetch(id, &aws_sdk_secretsmanager::Client::new(&sdk_config))
                .await
                .inspect_err(|e| tracing::error!(error = %e, "configuration refused"))?,
        ),
        None => None,
    };
    // Task templates: read ahead when the configuration names them, so each request is
    // checked against its template before any call.
    let templates = connect_task_bridge::template::book::for_config(&config, &client).await;
    let mut bridge = Bridge::new(config, client)
        .with_queue(queue)
        .with_envelope_keys(envelope)
        .with_lifecycle_from(&sdk_config);
    if let Some((check, secrets)) = signature {
        bridge = bridge.with_signature_check(check, Some(secrets));
    }
    if let Some(book) = templates {
        bridge = bridge.with_task_templates(book);
    }
    let bridge = Arc::new(bridge);
    // The payload as text: the runtime would otherwise build the whole tree before any check.
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Box<RawValue>>| {
        let bridge = Arc::clone(&bridge);
        async move {
            bridge
                .handle_raw(
                    event.payload,
                    plausible_deadline(event.context.deadline(), process_start),
                )
                .await
        }
    }))
    .await
}
