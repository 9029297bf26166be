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
    // The pace table: created by default, on demand, keyed as the function books it; granted
    // exactly UpdateItem (the pace never reads).
    assert_eq!(scalar(&t["Parameters"]["PaceTableName"]["Default"]), "");
    let table = &resource(&t, "PaceTable")["Properties"];
    assert_eq!(scalar(&table["BillingMode"]), "PAY_PER_REQUEST");
    assert_eq!(scalar(&table["KeySchema"][0]["AttributeName"]), "pk");
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
