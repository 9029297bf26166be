//! The security- and reliability-relevant properties of template.yaml, read from the file:
//! least-privilege IAM, every failure path ending in a queue, partial batch responses.

use serde_yaml_ng::Value;

fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml");
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn resource<'a>(t: &'a Value, name: &str) -> &'a Value {
    let r = &t["Resources"][name];
    assert!(!r.is_null(), "template has no resource {name}");
    r
}

/// A CloudFormation intrinsic (`!Ref X`, `!GetAtt X.Arn`) as "Ref X" / "GetAtt X.Arn".
fn intrinsic(v: &Value) -> String {
    match v {
        Value::Tagged(t) => format!("{} {}", t.tag, scalar(&t.value)),
        other => scalar(other),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}

/// Every IAM statement in the template, wherever it sits (role policies, queue policies).
fn statements(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Mapping(m) => {
            if let Some(Value::Sequence(list)) = m.get("Statement") {
                for s in list {
                    match s {
                        // `!If [cond, statement, !Ref AWS::NoValue]`
                        Value::Tagged(t) => {
                            if let Value::Sequence(branches) = &t.value {
                                out.extend(branches.iter().filter(|b| b.is_mapping()).cloned());
                            }
                        }
                        other => out.push(other.clone()),
                    }
                }
            }
            for (_, child) in m {
                statements(child, out);
            }
        }
        Value::Sequence(list) => list.iter().for_each(|c| statements(c, out)),
        Value::Tagged(t) => statements(&t.value, out),
        _ => {}
    }
}

fn as_list(v: &Value) -> Vec<Value> {
    match v {
        Value::Sequence(list) => list.clone(),
        Value::Null => vec![],
        other => vec![other.clone()],
    }
}

#[test]
fn no_iam_statement_grants_on_every_resource() {
    let t = template();
    let mut all = Vec::new();
    statements(&t["Resources"], &mut all);
    assert!(all.len() >= 5, "found only {} statements", all.len());
    for s in &all {
        for r in as_list(&s["Resource"]) {
            assert_ne!(scalar(&r), "*", "statement grants on *: {s:?}");
        }
        for a in as_list(&s["Action"]) {
            let a = scalar(&a);
            assert!(!a.ends_with(":*") && a != "*", "wildcard action {a}");
        }
    }
}

/// Connect's operations are granted on the configured instance only: StartTaskContact on its
/// contacts, flows, templates and quick connects; GetTaskTemplate (when a template is used) on
/// its templates; the lifecycle's operations (with EnableLifecycle) on its contacts.
#[test]
fn connect_is_reachable_only_on_the_configured_instance() {
    let t = template();
    let mut all = Vec::new();
    statements(&t["Resources"], &mut all);
    let connect: Vec<&Value> = all
        .iter()
        .filter(|s| {
            as_list(&s["Action"])
                .iter()
                .any(|a| scalar(a).starts_with("connect:"))
        })
        .collect();
    assert_eq!(connect.len(), 3);
    assert_eq!(scalar(&connect[0]["Action"]), "connect:StartTaskContact");
    // Task templates are read (to check requests against them) on the instance's templates.
    assert_eq!(scalar(&connect[1]["Action"]), "connect:GetTaskTemplate");
    let Value::Tagged(sub) = &connect[1]["Resource"] else {
        panic!("GetTaskTemplate's resource is not built from the instance")
    };
    assert_eq!(scalar(&sub.value[0]), "${InstanceArn}/task-template/*");
    let lifecycle: Vec<String> = as_list(&connect[2]["Action"]).iter().map(scalar).collect();
    assert_eq!(
        lifecycle,
        [
            "connect:StopContact",
            "connect:UpdateContact",
            "connect:UpdateContactAttributes",
            "connect:UpdateContactSchedule",
            "connect:TagContact",
            "connect:GetContactAttributes",
            "connect:DescribeContact"
        ]
    );
    for statement in connect {
        for r in as_list(&statement["Resource"]) {
            let Value::Tagged(sub) = &r else {
                panic!("connect resource is not built from the instance: {r:?}")
            };
            assert_eq!(sub.tag.to_string(), "!Sub");
            let pattern = scalar(&sub.value[0]);
            assert!(pattern.starts_with("${InstanceArn}/"), "{pattern}");
            let instance = format!("{:?}", sub.value[1]["InstanceArn"]);
            assert!(instance.contains("ConnectInstanceId"), "{instance}");
        }
    }
    // The lifecycle's grants only on its own contacts.
    assert_eq!(
        scalar(&as_list(&connect_lifecycle_resource(&t))[0]),
        "${InstanceArn}/contact/*"
    );
}

fn connect_lifecycle_resource(t: &Value) -> Value {
    let mut all = Vec::new();
    statements(&t["Resources"], &mut all);
    let statement = all
        .into_iter()
        .find(|s| scalar(&s["Sid"]) == "ActOnThisInstancesTasks")
        .expect("the lifecycle statement");
    match &statement["Resource"] {
        Value::Tagged(sub) => sub.value[0].clone(),
        other => other.clone(),
    }
}

#[test]
fn every_failure_path_ends_in_a_queue() {
    let t = template();
    // SQS: a dead-letter queue behind the task queue, with room for throttled retries.
    let redrive = &resource(&t, "TaskQueue")["Properties"]["RedrivePolicy"];
    assert_eq!(
        intrinsic(&redrive["deadLetterTargetArn"]),
        "!GetAtt TaskDeadLetterQueue.Arn"
    );
    let receives = &t["Parameters"]["SqsMaxReceiveCount"]["Default"];
    assert!(receives.as_u64().unwrap() >= 5, "{receives:?}");
    // Async invocations: bounded retries, then the failure queue.
    let invoke = &resource(&t, "BridgeAsyncConfig")["Properties"];
    assert_eq!(
        intrinsic(&invoke["DestinationConfig"]["OnFailure"]["Destination"]),
        "!GetAtt FailureQueue.Arn"
    );
    assert_eq!(
        intrinsic(&invoke["MaximumRetryAttempts"]),
        "!Ref AsyncMaximumRetryAttempts"
    );
    // EventBridge: retries and its own DLQ on the target.
    let target = &resource(&t, "EventRule")["Properties"]["Targets"][0];
    assert!(target["RetryPolicy"].is_mapping());
    assert_eq!(
        intrinsic(&target["DeadLetterConfig"]["Arn"]),
        "!GetAtt EventRuleDeadLetterQueue.Arn"
    );
    // Each queue where a lost task could sit has an alarm on its depth.
    for (alarm, queue) in [
        ("TaskDeadLetterQueueAlarm", "TaskDeadLetterQueue"),
        ("FailureQueueAlarm", "FailureQueue"),
        ("EventRuleDeadLetterQueueAlarm", "EventRuleDeadLetterQueue"),
        ("PriorityDeadLetterQueueAlarm", "PriorityDeadLetterQueue"),
    ] {
        let dims = &resource(&t, alarm)["Properties"]["Dimensions"][0]["Value"];
        assert_eq!(
            intrinsic(dims),
            format!("!GetAtt {queue}.QueueName"),
            "{alarm}"
        );
    }
}

#[test]
fn the_queue_reports_batch_item_failures_and_waits_long_enough() {
    let t = template();
    let esm = &resource(&t, "QueueEventSource")["Properties"];
    assert_eq!(
        as_list(&esm["FunctionResponseTypes"])
            .iter()
            .map(scalar)
            .collect::<Vec<_>>(),
        ["ReportBatchItemFailures"]
    );
    assert_eq!(
        intrinsic(&esm["ScalingConfig"]["MaximumConcurrency"]),
        "!Ref SqsMaximumConcurrency"
    );
    // Visibility timeout = 6 × the function timeout, for every timeout the template allows.
    let allowed = as_list(&t["Parameters"]["FunctionTimeout"]["AllowedValues"]);
    for timeout in allowed {
        let timeout = scalar(&timeout);
        let visibility = &t["Mappings"]["VisibilityTimeout"][timeout.as_str()]["Seconds"];
        assert_eq!(
            visibility.as_u64(),
            Some(6 * timeout.parse::<u64>().unwrap()),
            "{timeout}"
        );
    }
}

/// The priority lane is a queue of the function's own, with its own mapping and DLQ, fed by an
/// optional rule; the function may drain it and queue to it, and is told where it is.
#[test]
fn the_priority_lane_has_its_own_queue_mapping_and_dead_letters() {
    let t = template();
    let esm = &resource(&t, "PriorityQueueEventSource")["Properties"];
    assert_eq!(
        intrinsic(&esm["EventSourceArn"]),
        "!GetAtt PriorityQueue.Arn"
    );
    assert_eq!(
        as_list(&esm["FunctionResponseTypes"])
            .iter()
            .map(scalar)
            .collect::<Vec<_>>(),
        ["ReportBatchItemFailures"]
    );
    let queue = &resource(&t, "PriorityQueue")["Properties"];
    assert_eq!(
        intrinsic(&queue["RedrivePolicy"]["deadLetterTargetArn"]),
        "!GetAtt PriorityDeadLetterQueue.Arn"
    );
    assert_eq!(
        intrinsic(&queue["VisibilityTimeout"]),
        intrinsic(&resource(&t, "TaskQueue")["Properties"]["VisibilityTimeout"])
    );
    let env = &resource(&t, "BridgeFunction")["Properties"]["Environment"]["Variables"];
    assert_eq!(intrinsic(&env["PRIORITY_QUEUE_URL"]), "!Ref PriorityQueue");
    let rule = resource(&t, "PriorityEventRule");
    assert_eq!(scalar(&rule["Condition"]), "PriorityRuleEnabled");
    let target = &rule["Properties"]["Targets"][0];
    assert_eq!(intrinsic(&target["Arn"]), "!GetAtt PriorityQueue.Arn");
    assert_eq!(
        intrinsic(&target["DeadLetterConfig"]["Arn"]),
        "!GetAtt EventRuleDeadLetterQueue.Arn"
    );
    // The role drains and feeds both queues, and nothing else of SQS.
    let mut all = Vec::new();
    statements(
        &resource(&t, "BridgeRole")["Properties"]["Policies"],
        &mut all,
    );
    for sid in ["DrainTaskQueue", "QueueRequestsStorageFirst"] {
        let s = all
            .iter()
            .find(|s| scalar(&s["Sid"]) == sid)
            .unwrap_or_else(|| panic!("{sid}"));
        let resources: Vec<String> = as_list(&s["Resource"]).iter().map(intrinsic).collect();
        assert_eq!(
            resources,
            ["!GetAtt TaskQueue.Arn", "!GetAtt PriorityQueue.Arn"],
            "{sid}"
        );
    }
}

#[test]
fn the_function_is_built_by_the_makefile_for_provided_al2023() {
    let t = template();
    let f = resource(&t, "BridgeFunction");
    assert_eq!(scalar(&f["Metadata"]["BuildMethod"]), "makefile");
    assert_eq!(
        scalar(&t["Globals"]["Function"]["Runtime"]),
        "provided.al2023"
    );
    assert_eq!(scalar(&t["Globals"]["Function"]["Handler"]), "bootstrap");
    let makefile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Makefile")).unwrap();
    assert!(
        makefile.contains("\nbuild-BridgeFunction:"),
        "no SAM build target"
    );
}

/// Every action the function's role grants, wherever the statement sits.
fn granted_actions(t: &Value) -> Vec<String> {
    let mut all = Vec::new();
    statements(&t["Resources"], &mut all);
    all.iter()
        .flat_map(|s| as_list(&s["Action"]))
        .map(|a| scalar(&a))
        .collect()
}

#[test]
fn nothing_is_granted_that_the_function_does_not_call() {
    let actions = granted_actions(&template());
    // Each SQS action is one the event source mapping (receive, delete, attributes) or the
    // function's own code (send, change visibility: src/queue.rs) uses.
    let queue_code =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/queue.rs")).unwrap();
    for action in actions.iter().filter(|a| a.starts_with("sqs:")) {
        let used = match action.as_str() {
            "sqs:ReceiveMessage" | "sqs:DeleteMessage" | "sqs:GetQueueAttributes" => true,
            "sqs:SendMessage" => queue_code.contains(".send_message()"),
            "sqs:ChangeMessageVisibility" => {
                queue_code.contains(".change_message_visibility_batch()")
            }
            _ => false,
        };
        assert!(
            used,
            "{action} is granted but nothing calls it: {actions:?}"
        );
    }
}

/// Every operation the function's code calls (`Op::ALL`, the list its error classification
/// walks) is granted by the template: moto's services do not enforce IAM, so a missing grant
/// would pass every other test and fail in AWS (DescribeContact was nearly one).
#[test]
fn every_operation_the_function_calls_is_granted() {
    let actions = granted_actions(&template());
    for op in connect_task_bridge::error::Op::ALL {
        let action = op.iam_action();
        assert!(
            actions.contains(&action),
            "{action} is called ({op:?}) but not granted: {actions:?}"
        );
    }
}

/// GetTaskTemplate is granted only when a task template is used: by the default parameter or by
/// the mapping's routes (MappingUsesTaskTemplates), on the instance's templates alone.
#[test]
fn task_templates_are_read_only_when_a_template_is_used() {
    let t = template();
    let policy = format!("{:?}", resource(&t, "BridgeRole")["Properties"]["Policies"]);
    let grant = policy
        .find("connect:GetTaskTemplate")
        .expect("GetTaskTemplate is granted");
    let before = &policy[..grant];
    let condition = before
        .rfind("ReadsTaskTemplates")
        .expect("under a condition");
    assert_eq!(
        before[condition..].matches("Sid").count(),
        1,
        "the GetTaskTemplate statement is the one under ReadsTaskTemplates"
    );
    assert!(policy[grant..].contains("/task-template/*"));
    let defined = format!("{:?}", t["Conditions"]["ReadsTaskTemplates"]);
    for part in ["TaskTemplateId", "MappingUsesTaskTemplates"] {
        assert!(defined.contains(part), "{part}: {defined}");
    }
    assert_eq!(
        scalar(&t["Parameters"]["MappingUsesTaskTemplates"]["Default"]),
        "false"
    );
}

/// The function refuses webhooks unless WEBHOOK_AUTH says how they are authenticated; the
/// template must say it whenever it deploys a webhook, and must never deploy an open one or a
/// signed one without its key by accident.
#[test]
fn webhooks_fail_closed_in_the_template() {
    let t = template();
    let vars = &resource(&t, "BridgeFunction")["Properties"]["Environment"]["Variables"];
    for name in [
        "WEBHOOK_AUTH",
        "WEBHOOK_SECRET_ID",
        "WEBHOOK_TIMESTAMP_HEADER",
        "WEBHOOK_TOLERANCE_SECONDS",
    ] {
        assert!(!vars[name].is_null(), "the function gets no {name}");
    }
    let mode = format!("{:?}", vars["WEBHOOK_AUTH"]);
    for value in ["iam", "none", "signature", "AnyWebhook"] {
        assert!(
            mode.contains(value),
            "WEBHOOK_AUTH never becomes {value}: {mode}"
        );
    }
    assert_eq!(
        scalar(&t["Parameters"]["WebhookAuth"]["Default"]),
        "SIGNATURE"
    );
    assert_eq!(
        scalar(&t["Parameters"]["AllowUnauthenticatedWebhooks"]["Default"]),
        "false"
    );
    let rules = &t["Rules"];
    let text = |name: &str| format!("{:?}", rules[name]);
    let secret = text("SignedWebhooksNeedASecret");
    assert!(
        secret.contains("SIGNATURE") && secret.contains("WebhookSecretArn"),
        "{secret}"
    );
    let open = text("NoUnauthenticatedWebhookByAccident");
    assert!(
        open.contains("NONE") && open.contains("AllowUnauthenticatedWebhooks"),
        "{open}"
    );
    for param in ["WebhookTimestampHeader", "WebhookToleranceSeconds"] {
        assert!(!t["Parameters"][param].is_null(), "no parameter {param}");
    }
}

/// `WebhookSignatureScheme` offers exactly the function's schemes, defaults to `hmac-sha256`,
/// reaches the function only with signed webhooks, and beside a preset the configurable check's
/// header (and, where no timestamp is signed, the tolerance) stays unset: the function stops its
/// cold start when a preset meets them.
#[test]
fn the_signature_scheme_parameter_is_the_functions_list() {
    use connect_task_bridge::senders::Scheme;
    let t = template();
    let param = &t["Parameters"]["WebhookSignatureScheme"];
    assert_eq!(scalar(&param["Default"]), "hmac-sha256");
    let allowed: Vec<String> = param["AllowedValues"]
        .as_sequence()
        .expect("AllowedValues")
        .iter()
        .map(scalar)
        .collect();
    let schemes: Vec<String> = Scheme::ALL.iter().map(|s| s.as_str().to_string()).collect();
    assert_eq!(allowed, schemes);
    let vars = &resource(&t, "BridgeFunction")["Properties"]["Environment"]["Variables"];
    let scheme = format!("{:?}", vars["WEBHOOK_SIGNATURE_SCHEME"]);
    assert!(scheme.contains("SignedWebhooks"), "{scheme}");
    let header = format!("{:?}", vars["WEBHOOK_SIGNATURE_HEADER"]);
    assert!(header.contains("HmacSignatures"), "{header}");
    let tolerance = format!("{:?}", vars["WEBHOOK_TOLERANCE_SECONDS"]);
    assert!(tolerance.contains("ToleranceApplies"), "{tolerance}");
    let applies = format!("{:?}", t["Conditions"]["ToleranceApplies"]);
    for scheme in Scheme::ALL.iter().filter(|s| s.is_preset()) {
        assert_eq!(
            applies.contains(&format!("\"{}\"", scheme.as_str())),
            scheme.signs_timestamp(),
            "ToleranceApplies and {scheme:?}: {applies}"
        );
    }
}

#[test]
fn events_are_stored_first_and_the_pace_follows_the_quota() {
    let t = template();
    // EventBridge delivers into the task queue (only this rule may send), not to the function.
    let target = &resource(&t, "EventRule")["Properties"]["Targets"][0];
    assert_eq!(intrinsic(&target["Arn"]), "!GetAtt TaskQueue.Arn");
    assert!(t["Resources"]["EventRulePermission"].is_null());
    let mut policy = Vec::new();
    statements(&resource(&t, "TaskQueuePolicy")["Properties"], &mut policy);
    let policy = &policy[0];
    assert_eq!(
        scalar(&policy["Principal"]["Service"]),
        "events.amazonaws.com"
    );
    assert_eq!(
        intrinsic(&policy["Condition"]["ArnEquals"]["aws:SourceArn"]),
        "!GetAtt EventRule.Arn"
    );
    // The pace: the account quota, shared by the queue's concurrent environments; webhooks and
    // throttled direct requests are queued.
    let vars = &resource(&t, "BridgeFunction")["Properties"]["Environment"]["Variables"];
    for (var, value) in [
        (
            "CONNECT_REQUESTS_PER_SECOND",
            "!Ref ConnectRequestsPerSecond",
        ),
        ("CONNECT_BURST", "!Ref ConnectBurst"),
        ("CONNECT_CALLERS", "!Ref SqsMaximumConcurrency"),
        ("TASK_QUEUE_URL", "!Ref TaskQueue"),
        ("CONNECT_SCHEDULE_RATE", "!Ref ConnectScheduleRate"),
        ("CONNECT_SCHEDULE_BURST", "!Ref ConnectScheduleBurst"),
        ("CONNECT_CONTACT_RATE", "!Ref ConnectContactRate"),
        ("CONNECT_CONTACT_BURST", "!Ref ConnectContactBurst"),
        ("CONNECT_TAG_RATE", "!Ref ConnectTagRate"),
        ("CONNECT_TAG_BURST", "!Ref ConnectTagBurst"),
        ("CONNECT_NORMAL_SHARE", "!Ref ConnectNormalShare"),
    ] {
        assert_eq!(intrinsic(&vars[var]), value, "{var}");
    }
    let statements = format!("{:?}", resource(&t, "BridgeRole")["Properties"]["Policies"]);
    for action in ["sqs:SendMessage", "sqs:ChangeMessageVisibility"] {
        assert!(statements.contains(action), "{action}");
    }
    // The defaults hold together (docs/bursts.md): a batch fits the function timeout even at
    // the pace's floor (40 % of an environment's share), with the response margin kept.
    let default = |p: &str| {
        scalar(&t["Parameters"][p]["Default"])
            .parse::<f64>()
            .unwrap()
    };
    let share = default("ConnectRequestsPerSecond") / default("SqsMaximumConcurrency");
    let timeout = default("FunctionTimeout");
    let batch = default("SqsBatchSize");
    assert!(
        batch <= share * 0.4 * (timeout - 0.5),
        "a batch of {batch} does not fit {timeout} s at the floor pace"
    );
    // Each operation's quota defaults to Connect's documented one (the function's defaults).
    let quotas = connect_task_bridge::pace::Quotas::default();
    for (param, value) in [
        ("ConnectScheduleRate", quotas.schedule.0),
        ("ConnectScheduleBurst", quotas.schedule.1),
        ("ConnectContactRate", quotas.contact.0),
        ("ConnectContactBurst", quotas.contact.1),
        ("ConnectTagRate", quotas.tag.0),
        ("ConnectTagBurst", quotas.tag.1),
        ("ConnectNormalShare", quotas.normal_share),
    ] {
        assert_eq!(default(param), value, "{param}");
    }
    // The pace table: created by default, on demand, keyed as the function books it, reserved
    // turns expiring on `ttl`; granted exactly UpdateItem (the pace never reads, and a reserved
    // turn is written and taken by UpdateItem too).
    assert_eq!(scalar(&t["Parameters"]["PaceTableName"]["Default"]), "");
    let table = &resource(&t, "PaceTable")["Properties"];
    assert_eq!(scalar(&table["BillingMode"]), "PAY_PER_REQUEST");
    assert_eq!(scalar(&table["KeySchema"][0]["AttributeName"]), "pk");
    assert_eq!(
        scalar(&table["TimeToLiveSpecification"]["AttributeName"]),
        "ttl"
    );
    assert_eq!(scalar(&table["TimeToLiveSpecification"]["Enabled"]), "true");
    let mut role = Vec::new();
    self::statements(&resource(&t, "BridgeRole")["Properties"], &mut role);
    let pace = role
        .iter()
        .find(|s| scalar(&s["Sid"]) == "BookThePace")
        .expect("the pace's grant");
    assert_eq!(as_list(&pace["Action"]).len(), 1);
    assert_eq!(scalar(&pace["Action"]), "dynamodb:UpdateItem");
    assert!(intrinsic(&vars["PACE_TABLE"]).contains("PaceTable"));
    // A stuck queue, not a burst, raises the backlog alarm.
    let alarm = &resource(&t, "TaskQueueBacklogAlarm")["Properties"];
    assert_eq!(
        scalar(&alarm["MetricName"]),
        "ApproximateAgeOfOldestMessage"
    );
    assert_eq!(intrinsic(&alarm["Threshold"]), "!Ref BacklogAlarmSeconds");
    let burst_drain = 300.0 / default("ConnectRequestsPerSecond");
    assert!(default("BacklogAlarmSeconds") > burst_drain);
}

/// The envelope key: generated by the stack, kept when the stack or the resource goes (a message
/// it signed may still wait in a queue or a DLQ), named to the function, readable by its role
/// only (checked here: moto's CloudFormation does not create Secrets Manager secrets).
#[test]
fn the_envelope_key_is_the_stacks_own_and_outlives_it() {
    let t = template();
    let key = resource(&t, "EnvelopeKey");
    assert_eq!(scalar(&key["Type"]), "AWS::SecretsManager::Secret");
    assert_eq!(scalar(&key["DeletionPolicy"]), "Retain");
    assert_eq!(scalar(&key["UpdateReplacePolicy"]), "Retain");
    let generated = &key["Properties"]["GenerateSecretString"];
    assert!(generated["PasswordLength"].as_u64().unwrap() >= 32);
    let function = resource(&t, "BridgeFunction");
    let env = &function["Properties"]["Environment"]["Variables"];
    assert_eq!(intrinsic(&env["ENVELOPE_SECRET_ID"]), "!Ref EnvelopeKey");
    let mut all = Vec::new();
    statements(&t["Resources"], &mut all);
    let read: Vec<&Value> = all
        .iter()
        .filter(|s| scalar(&s["Sid"]) == "ReadEnvelopeKey")
        .collect();
    assert_eq!(read.len(), 1);
    assert_eq!(scalar(&read[0]["Action"]), "secretsmanager:GetSecretValue");
    assert_eq!(intrinsic(&read[0]["Resource"]), "!Ref EnvelopeKey");
    // Records held for Connect's quota are alarmed on.
    let alarm = &resource(&t, "TasksHeldAlarm")["Properties"];
    assert_eq!(scalar(&alarm["MetricName"]), "TasksHeld");
}

/// The dashboard's body as CloudFormation's `!Sub` makes it for the template's defaults: each
/// `${Name}` a parameter's default, a resource attribute a name of its own.
fn dashboard_body(t: &Value) -> serde_json::Value {
    let dashboard = resource(t, "Dashboard");
    assert_eq!(scalar(&dashboard["Condition"]), "DashboardEnabled");
    let Value::Tagged(sub) = &dashboard["Properties"]["DashboardBody"] else {
        panic!("DashboardBody is not a !Sub");
    };
    assert_eq!(sub.tag, "!Sub");
    let text = match &sub.value {
        Value::Sequence(parts) => scalar(&parts[0]),
        other => scalar(other),
    };
    let mut body = String::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("${") {
        body.push_str(&rest[..at]);
        let end = rest[at..].find('}').expect("a closed ${") + at;
        let name = &rest[at + 2..end];
        let default = &t["Parameters"][name]["Default"];
        body.push_str(&match default {
            Value::Null => format!("{}-name", name.replace(['.', ':'], "-")),
            other => scalar(other),
        });
        rest = &rest[end + 1..];
    }
    body.push_str(rest);
    serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("the dashboard body is not JSON: {e}\n{body}"))
}

/// The dashboard body follows CloudWatch's dashboard body structure (widgets on the 24-column
/// grid, a metric widget's region and metrics arrays, expression ids that exist), and every
/// metric it names is one the function emits with one of its dimension sets
/// (`metrics::METRICS`), or an AWS namespace's; every record outcome has its line.
#[test]
fn the_dashboard_is_a_valid_body_of_metrics_the_function_emits() {
    use connect_task_bridge::metrics::{Counted, METRICS};
    let t = template();
    assert_eq!(
        scalar(&t["Parameters"]["EnableDashboard"]["Default"]),
        "true"
    );
    let body = dashboard_body(&t);
    let widgets = body["widgets"].as_array().expect("a widgets array");
    assert!(!widgets.is_empty() && widgets.len() <= 500);
    let mut named: Vec<(String, String, Vec<String>)> = Vec::new();
    for w in widgets {
        let (x, y, width, height) = (
            w["x"].as_u64().unwrap(),
            w["y"].as_u64().unwrap(),
            w["width"].as_u64().unwrap(),
            w["height"].as_u64().unwrap(),
        );
        assert!(x + width <= 24 && (1..=24).contains(&width), "{w}");
        assert!((1..=1000).contains(&height) && y < 1000, "{w}");
        let p = &w["properties"];
        match w["type"].as_str().unwrap() {
            "text" => assert!(p["markdown"].is_string()),
            "metric" => {
                assert!(p["region"].is_string() && p["title"].is_string(), "{w}");
                let metrics = p["metrics"].as_array().expect("metrics");
                let ids: Vec<&str> = metrics
                    .iter()
                    .filter_map(|m| m.as_array()?.last()?["id"].as_str())
                    .collect();
                for m in metrics {
                    let m = m.as_array().expect("each metric is an array");
                    if let Some(expression) = m[0]["expression"].as_str() {
                        if let Some(search) = expression.strip_prefix("SEARCH('{") {
                            let (schema, query) = search.split_once('}').unwrap();
                            let mut schema = schema.split(',').map(str::to_string);
                            let namespace = schema.next().unwrap();
                            let name = query.split('"').nth(1).expect("MetricName=\"...\"");
                            named.push((namespace, name.to_string(), schema.collect()));
                        } else {
                            // Metric math over the widget's own ids.
                            let words = expression
                                .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                                .filter(|w| w.starts_with(|c: char| c.is_ascii_lowercase()));
                            for word in words {
                                assert!(ids.contains(&word), "{expression}: no id {word}");
                            }
                        }
                        continue;
                    }
                    let strings: Vec<String> = m
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect();
                    assert!(strings.len() >= 2 && strings.len() % 2 == 0, "{m:?}");
                    let dimensions = strings[2..].iter().step_by(2).cloned().collect();
                    named.push((strings[0].clone(), strings[1].clone(), dimensions));
                }
            }
            other => panic!("a widget type this dashboard does not use: {other}"),
        }
    }
    for (namespace, name, dimensions) in &named {
        if namespace.starts_with("AWS/") {
            continue;
        }
        assert_eq!(namespace, "ConnectTaskBridge");
        let metric = METRICS.iter().find(|m| m.name == name).unwrap_or_else(|| {
            panic!("the dashboard names {name}, which the function does not emit")
        });
        assert!(
            metric.dimensions.iter().any(|set| set
                .iter()
                .copied()
                .eq(dimensions.iter().map(String::as_str))),
            "{name} by {dimensions:?}: not one of its dimension sets {:?}",
            metric.dimensions
        );
    }
    for counted in Counted::ALL {
        assert!(
            named.iter().any(|(_, name, _)| name == counted.metric()),
            "no line for {counted:?}"
        );
    }
    for name in ["ConnectThrottles", "PacedWaitMs", "Failures", "HandBacks"] {
        assert!(named.iter().any(|(_, n, _)| n == name), "{name}");
    }
}

/// Resource types of the template missing from the list as last published in the SAR guide's
/// source (tests/fixtures/sar-supported-resources.txt), each used here on purpose; the live list
/// must be checked for them before `sam publish` (docs/deploy.md#publishing-to-the-serverless-application-repository).
/// A new type outside the list fails the test below until it is checked and named here.
const NOT_ON_THE_ARCHIVED_SAR_LIST: [&str; 2] = [
    // The optional function URL (EnableFunctionUrl).
    "AWS::Lambda::Url",
    // The envelope key (the function's own signing key, generated by the stack).
    "AWS::SecretsManager::Secret",
];

/// `AWS::ServerlessRepo::Application` held to the Serverless Application Repository's
/// documented rules (the SAM developer guide's "Metadata section properties"): required fields,
/// lengths and patterns, an SPDX id equal to Cargo.toml's, local LICENSE and README files
/// (`sam package` uploads them) under SAR's 5 MB, at most 10 labels of the allowed characters,
/// SemanticVersion equal to Cargo.toml's version, no intrinsic function; and every resource type
/// of the template one SAR accepts.
#[test]
fn the_serverless_application_repository_metadata_follows_its_documented_rules() {
    let t = template();
    let app = &t["Metadata"]["AWS::ServerlessRepo::Application"];
    let text = |key: &str| match &app[key] {
        Value::String(s) => s.clone(),
        other => panic!("{key} must be a plain string (no intrinsic function): {other:?}"),
    };
    let name = text("Name");
    assert!((1..=140).contains(&name.len()));
    assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    assert!((1..=256).contains(&text("Description").len()));
    // ^[a-z0-9](([a-z0-9]|-(?!-))*[a-z0-9])?$
    let author = text("Author");
    assert!((1..=127).contains(&author.len()));
    assert!(author
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
    assert!(!author.starts_with('-') && !author.ends_with('-') && !author.contains("--"));
    assert_eq!(text("SpdxLicenseId"), env!("CARGO_PKG_LICENSE"));
    for (key, must_contain) in [
        ("LicenseUrl", "MIT No Attribution"),
        ("ReadmeUrl", "# connect-task-bridge"),
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(text(key));
        let body = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert!(
            body.len() < 5 * 1024 * 1024 && body.contains(must_contain),
            "{key}"
        );
    }
    let Value::Sequence(labels) = &app["Labels"] else {
        panic!("Labels is a list")
    };
    assert!(labels.len() <= 10);
    for label in labels {
        let label = scalar(label);
        assert!((1..=127).contains(&label.len()), "{label}");
        assert!(
            label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-_:/@".contains(c)),
            "{label}"
        );
    }
    assert_eq!(text("SemanticVersion"), env!("CARGO_PKG_VERSION"));
    let known = [
        "Name",
        "Description",
        "Author",
        "SpdxLicenseId",
        "LicenseUrl",
        "ReadmeUrl",
        "Labels",
        "HomePageUrl",
        "SemanticVersion",
        "SourceCodeUrl",
    ];
    for (key, _) in app.as_mapping().unwrap() {
        assert!(known.contains(&scalar(key).as_str()), "{key:?}");
    }

    let listed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/sar-supported-resources.txt"
    ))
    .unwrap();
    let listed: Vec<&str> = listed
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    let mut unlisted: Vec<String> = t["Resources"]
        .as_mapping()
        .unwrap()
        .values()
        .map(|r| scalar(&r["Type"]))
        .filter(|ty| !listed.contains(&ty.as_str()))
        .collect();
    unlisted.sort();
    unlisted.dedup();
    assert_eq!(
        unlisted, NOT_ON_THE_ARCHIVED_SAR_LIST,
        "resource types SAR's documented list does not name"
    );
}
