//! The `render` command, run as a user runs it: the built binary, the environment, a file.

mod common;

use std::process::Command;

use common::{event_names, expected_requests, root, EXAMPLE_MAPPING, FLOW, INSTANCE};
use serde_json::Value;

fn render(args: &[&str]) -> (i32, Vec<Value>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_connect-task-bridge"))
        .arg("render")
        .args(args)
        .current_dir(root())
        .env_clear()
        .env("CONNECT_INSTANCE_ID", INSTANCE)
        .env("CONNECT_CONTACT_FLOW_ID", FLOW)
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let requests = serde_json::Deserializer::from_str(&stdout)
        .into_iter::<Value>()
        .map(|v| v.expect("render prints JSON documents"))
        .collect();
    (
        out.status.code().unwrap_or(-1),
        requests,
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn render_prints_what_the_handler_would_send() {
    for name in event_names() {
        let path = format!("events/{name}.json");
        let (code, requests, stderr) = render(&[&path, "--mapping", EXAMPLE_MAPPING]);
        assert_eq!(requests, expected_requests(&name), "{name}: {stderr}");
        // The two SQS batch samples each hold a message that asks for a call back in the past.
        if name == "sqs-standard-batch" || name == "sqs-fifo-batch" {
            assert_eq!(code, 1, "{name}");
            assert!(stderr.contains("ScheduledTime"), "{name}: {stderr}");
        } else {
            assert_eq!(code, 0, "{name}: {stderr}");
        }
    }
}

#[test]
fn render_explains_bad_usage_and_bad_files() {
    let (code, _, stderr) = render(&[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("usage:"), "{stderr}");

    let (code, _, stderr) = render(&["events/nope.json"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("nope.json"), "{stderr}");

    let (code, _, stderr) = render(&["Cargo.toml"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("Cargo.toml"), "{stderr}");
}

fn check(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_connect-task-bridge"))
        .arg("check")
        .args(args)
        .current_dir(root())
        .env_clear()
        .env("CONNECT_INSTANCE_ID", INSTANCE)
        .env("CONNECT_CONTACT_FLOW_ID", FLOW)
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn check_lists_the_routes_or_names_what_is_wrong() {
    let (code, out, err) = check(&["--mapping", EXAMPLE_MAPPING], &[]);
    assert_eq!(code, 0, "{err}");
    for route in [
        "order-failed",
        "support-request",
        "github-customer-issue",
        "other",
    ] {
        assert!(out.contains(&format!("route '{route}'")), "{out}");
    }
    assert!(out.contains("sources eventbridge;"), "{out}");
    assert!(out.contains("client_token from body.orderId"), "{out}");

    let broken = std::env::temp_dir().join(format!("ctb-check-{}.yaml", std::process::id()));
    std::fs::write(
        &broken,
        "routes:\n  - name: r\n    task: {name: \"{{ body.x \"}\n",
    )
    .unwrap();
    let (code, _, err) = check(&["--mapping", broken.to_str().unwrap()], &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("route 'r'") && err.contains("task.name"),
        "{err}"
    );
    std::fs::remove_file(broken).unwrap();

    let (code, _, err) = check(&[], &[("BATCH_CONCURRENCY", "0")]);
    assert_eq!(code, 1);
    assert!(err.contains("BATCH_CONCURRENCY"), "{err}");

    // A mapping given with --mapping is held to what the cold start holds it to: lifecycle
    // routes need the task table.
    let lifecycle = ["--mapping", "examples/lifecycle.yaml"];
    let (code, _, err) = check(&lifecycle, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("order-failed") && err.contains("TASK_TABLE"),
        "{err}"
    );
    let (code, out, err) = check(&lifecycle, &[("TASK_TABLE", "tasks")]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("route 'order-recovered'") && out.contains("stop by key from body.orderId"),
        "{out}"
    );
}

/// The schema editors validate mappings with is generated from the types the function reads a
/// mapping into; the shipped file must be what the binary prints.
#[test]
fn the_shipped_schema_is_the_generated_one() {
    let out = Command::new(env!("CARGO_BIN_EXE_connect-task-bridge"))
        .arg("schema")
        .output()
        .expect("the binary runs");
    assert!(out.status.success());
    let generated = String::from_utf8(out.stdout).unwrap();
    let path = root().join("schema/mapping.schema.json");
    let shipped = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        shipped == generated,
        "{} is stale: run `make schema`",
        path.display()
    );
    let schema: Value = serde_json::from_str(&generated).unwrap();
    assert_eq!(schema["required"], serde_json::json!(["routes"]));
    let example = std::fs::read_to_string(root().join(EXAMPLE_MAPPING)).unwrap();
    assert!(example.contains("$schema=../schema/mapping.schema.json"));
}

/// `config --markdown` prints the tables of the variables the function reads, the ones
/// docs/configuration.md shows, and with a file writes them between its markers.
#[test]
fn config_prints_and_writes_the_variable_tables() {
    let config = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_connect-task-bridge"))
            .arg("config")
            .args(args)
            .current_dir(root())
            .env_clear()
            .output()
            .expect("the binary runs")
    };
    let out = config(&["--markdown"]);
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(printed, connect_task_bridge::config::variables_markdown());
    for name in [
        "TASK_TABLE",
        "WEBHOOK_MODE",
        "CONNECT_CALLERS",
        "WEBHOOK_AUTH",
    ] {
        assert!(printed.contains(&format!("| `{name}` |")), "{printed}");
    }
    let doc = std::fs::read_to_string(root().join("docs/configuration.md")).unwrap();
    assert!(
        doc.contains(&printed),
        "docs/configuration.md is stale: run `cargo run -q -- config --markdown docs/configuration.md`"
    );

    let file = std::env::temp_dir().join(format!("ctb-config-{}.md", std::process::id()));
    std::fs::write(
        &file,
        "# t\n<!-- variables:begin -->\nold\n<!-- variables:end -->\nafter\n",
    )
    .unwrap();
    let out = config(&["--markdown", file.to_str().unwrap()]);
    assert!(out.status.success(), "{:?}", out);
    let written = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        written,
        format!("# t\n<!-- variables:begin -->\n\n{printed}\n<!-- variables:end -->\nafter\n")
    );
    std::fs::write(&file, "no markers\n").unwrap();
    let out = config(&["--markdown", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "no markers\n");
    std::fs::remove_file(file).unwrap();

    assert_eq!(config(&[]).status.code(), Some(2));
}

/// `check --task-template`: the example mapping fits the example template; each way of breaking
/// it exits 1 naming the route, the field and the rule (never a value).
#[test]
fn check_holds_a_mapping_to_its_task_template() {
    let dir = std::env::temp_dir().join(format!("ctb-template-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let template = root().join("examples/task-template.json");
    let mapping = std::fs::read_to_string(root().join("examples/task-template.yaml")).unwrap();
    let run = |mapping_text: &str, template_path: &std::path::Path| {
        let path = dir.join("mapping.yaml");
        std::fs::write(&path, mapping_text).unwrap();
        check(
            &[
                "--mapping",
                path.to_str().unwrap(),
                "--task-template",
                template_path.to_str().unwrap(),
            ],
            &[],
        )
    };
    let (code, out, err) = run(&mapping, &template);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("route 'failed-order-form': fits task template"),
        "{out}"
    );
    assert!(
        out.contains("required fields left to the template's defaults: channel"),
        "{out}"
    );

    let broken = [
        (
            mapping.replace(
                "        orderId: { type: STRING, value: \"{{ body.orderId }}\" }\n",
                "",
            ),
            "field orderId: required (TEXT) and not filled",
        ),
        (
            mapping.replace("amount: { type: NUMBER", "amount: { type: STRING"),
            "field amount: a NUMBER field takes a reference of type NUMBER, not STRING",
        ),
        (
            mapping.replace(
                "value: \"{{ 'high' if body.amount > 100 else 'normal' }}\"",
                "value: URGENT-VIP",
            ),
            "field priority: not one of the field's options",
        ),
        (
            mapping.replace(
                "      task_template_id:",
                "      contact_flow_id: aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee\n      task_template_id:",
            ),
            "field TaskTemplateId: a request names exactly one of ContactFlowId",
        ),
    ];
    for (text, expected) in broken {
        assert_ne!(text, mapping, "the replacement found its text: {expected}");
        let (code, out, err) = run(&text, &template);
        assert_eq!(code, 1, "{expected}: {out}{err}");
        assert!(
            err.contains(&format!("route 'failed-order-form', task template 7e1d0c55-3b51-4a6f-9a3c-2f1a4b8c9d01, {expected}")),
            "{expected}: {err}"
        );
        assert!(!err.contains("URGENT-VIP"), "a value was quoted: {err}");
    }

    let inactive = std::fs::read_to_string(&template)
        .unwrap()
        .replace("\"Status\": \"ACTIVE\"", "\"Status\": \"INACTIVE\"");
    let inactive_path = dir.join("inactive.json");
    std::fs::write(&inactive_path, inactive).unwrap();
    let (code, _, err) = run(&mapping, &inactive_path);
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "field Status: the template is INACTIVE: tasks are created only from ACTIVE templates"
        ),
        "{err}"
    );

    // A template the mapping does not name changes nothing; a file that is not one is refused.
    let (code, _, err) = run(&mapping, &root().join("Cargo.toml"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a task template"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// `check --fetch` reads the templates the mapping names from Connect (here the stand-in, with
/// the local keys and Region) instead of files: it passes the example mapping against the
/// template Connect holds, and fails once the template is made inactive there.
#[tokio::test(flavor = "multi_thread")]
async fn check_fetch_reads_the_templates_from_connect() {
    let template: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("examples/task-template.json")).unwrap(),
    )
    .unwrap();
    let mut options = connect_standin::connect::Options::local();
    options.instances = vec![INSTANCE.to_string()];
    options.task_templates = vec![template.clone()];
    let connect = connect_standin::connect::ConnectStandIn::start(options, 0)
        .await
        .unwrap();
    let url = connect.url();
    let run = move |url: String| {
        tokio::task::spawn_blocking(move || {
            check(
                &["--mapping", "examples/task-template.yaml", "--fetch"],
                &[
                    ("AWS_ENDPOINT_URL_CONNECT", url.as_str()),
                    ("AWS_ACCESS_KEY_ID", connect_standin::LOCAL_ACCESS_KEY),
                    ("AWS_SECRET_ACCESS_KEY", connect_standin::LOCAL_SECRET_KEY),
                    ("AWS_REGION", connect_standin::LOCAL_REGION),
                ],
            )
        })
    };
    let (code, out, err) = run(url.clone()).await.unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("fits task template"), "{out}");
    assert!(connect.stats().template_requests >= 1);

    let mut inactive = template;
    inactive["Status"] = serde_json::json!("INACTIVE");
    connect.put_task_template(inactive).unwrap();
    let (code, _, err) = run(url).await.unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("field Status: the template is INACTIVE"),
        "{err}"
    );
    connect.stop().await;
}

/// `check` names the webhook signature scheme in force, so an operator sees which preset runs.
#[test]
fn check_names_the_signature_scheme() {
    let (code, out, err) = check(
        &[],
        &[
            ("WEBHOOK_AUTH", "signature"),
            ("WEBHOOK_SECRET_ID", "hook"),
            ("WEBHOOK_SIGNATURE_SCHEME", "stripe"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("webhook signature scheme: stripe"), "{out}");
    let (_, out, _) = check(&[], &[("WEBHOOK_AUTH", "none")]);
    assert!(!out.contains("signature scheme"), "{out}");
}

#[test]
fn version_prints_cargo_tomls_version() {
    for flag in ["--version", "-V", "version"] {
        let out = Command::new(env!("CARGO_BIN_EXE_connect-task-bridge"))
            .arg(flag)
            .env_clear()
            .output()
            .expect("the binary runs");
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            format!("connect-task-bridge {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}
