"""Deploys template.yaml as AWS would take it, into moto's CloudFormation on loopback.

Run by `make sam-check` (so by CI): for each parameter set, the SAM translator (aws-sam-translator)
turns template.yaml into plain CloudFormation, a placeholder package is uploaded to moto's S3, and
the stack is created in moto's CloudFormation. What moto deploys is then read back through the
services' own APIs and checked: the stack completes; the queues' redrive policies and visibility
timeouts; the event source mapping's ReportBatchItemFailures, batch window and scaling; every IAM
statement's actions and resources (no `*` resource, nothing the function does not call); the
function's environment. Resource types moto does not deploy (API Gateway v2, function URLs and
their permissions, event invoke configs, queue policies, alarms) are checked in the translated
template instead, and so are the Rules, which CloudFormation evaluates before creating anything
and moto does not: a small evaluator applies them to each parameter set.

Workarounds for moto, each said where it is made: outputs naming attributes of types moto does not
model are dropped before the stack is created (it cannot resolve them), and the EventBridge
rule's pattern is compared after decoding as many times as moto encoded it.
"""

import ast
import io
import json
import os
import socket
import subprocess
import sys
import time
import zipfile

import boto3
from samcli.yamlhelper import yaml_parse
from samtranslator.public.translator import ManagedPolicyLoader
from samtranslator.translator.transform import transform

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REGION = "eu-central-1"
ACCOUNT = "123456789012"  # moto's default account
INSTANCE_ID = "11111111-2222-3333-4444-555555555555"
INSTANCE_ARN = f"arn:aws:connect:{REGION}:{ACCOUNT}:instance/{INSTANCE_ID}"

# The actions the function calls, by service: anything else granted is a finding.
CALLED = {
    "connect:StartTaskContact",
    # Task templates read to check requests against them (TaskTemplateId or
    # MappingUsesTaskTemplates).
    "connect:GetTaskTemplate",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "sqs:SendMessage",
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:ChangeMessageVisibility",
    "secretsmanager:GetSecretValue",
    "kms:Decrypt",
    # The task lifecycle (EnableLifecycle).
    "connect:StopContact",
    "connect:UpdateContact",
    "connect:UpdateContactAttributes",
    "connect:UpdateContactSchedule",
    "connect:TagContact",
    "connect:GetContactAttributes",
    "connect:DescribeContact",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "states:SendTaskSuccess",
    "states:SendTaskFailure",
    "events:PutEvents",
}

PARAMETER_SETS = {
    "defaults": {"ConnectInstanceId": INSTANCE_ID},
    "every optional feature": {
        "ConnectInstanceId": INSTANCE_ARN,
        "ContactFlowId": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        "TaskMappingFile": "examples/mapping.yaml",
        "MappingUsesTaskTemplates": "true",
        "EnableWebhook": "true",
        "WebhookAuth": "SIGNATURE",
        "WebhookSecretArn": "connect-task-bridge/webhook",
        "WebhookSecretKmsKeyArn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0b6e1a4c-0000-4000-8000-000000000001",
        "WebhookTimestampHeader": "X-Signature-Timestamp",
        "EnableFunctionUrl": "true",
        "FunctionUrlAuth": "NONE",
        "SqsBatchSize": "50",
        "AlarmTopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:alarms",
        "EnableLifecycle": "true",
        "CompletionEventBusName": "default",
        "WaitingStateMachineArns": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:orders",
        "PriorityEventPattern": '{"source": ["shop.fraud"]}',
    },
    "signed webhooks, secret as a full ARN": {
        "ConnectInstanceId": INSTANCE_ID,
        "TaskTemplateId": "7e1d0c55-3b51-4a6f-9a3c-2f1a4b8c9d01",
        "EnableWebhook": "true",
        "WebhookSecretArn": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:ctb/webhook-AbCdEf",
        "SqsBatchSize": "10",
        "SqsBatchingWindowSeconds": "5",
    },
    "iam webhooks": {
        "ConnectInstanceId": INSTANCE_ID,
        # A pace table another stack created: shared, not created.
        "PaceTableName": "shared-pace",
        "EnableWebhook": "true",
        "WebhookAuth": "AWS_IAM",
        "EnableFunctionUrl": "true",
        "FunctionUrlAuth": "AWS_IAM",
        "EnableEventBridge": "false",
        "WebhookMode": "SYNC",
        # The urgent rule alone still has its dead letters.
        "PriorityEventPattern": '{"source": ["shop.fraud"], "detail-type": ["FraudSuspected"]}',
    },
    "a sender's preset (Stripe)": {
        "ConnectInstanceId": INSTANCE_ID,
        # No pace table: each environment paces alone.
        "PaceTableName": "NONE",
        "EnableWebhook": "true",
        "WebhookSecretArn": "connect-task-bridge/stripe",
        "WebhookSignatureScheme": "stripe",
    },
    "no dashboard": {
        "ConnectInstanceId": INSTANCE_ID,
        "EnableDashboard": "false",
        "EnableEventBridge": "false",
    },
    "a preset that signs no timestamp (GitHub)": {
        "ConnectInstanceId": INSTANCE_ID,
        "EnableWebhook": "true",
        "WebhookSecretArn": "connect-task-bridge/github",
        "WebhookSignatureScheme": "github",
        "EnableEventBridge": "false",
    },
}

# Parameter values the parameters' own constraints must refuse.
REFUSED_VALUES = [
    # Lambda holds all of a function's environment variables to 4 KB together.
    ("TaskMapping", "routes:\n" + "  - name: r\n    task: {name: x}\n" * 120),
]

# Regions where Amazon Connect runs (its endpoints page): where samconfig.toml may deploy.
CONNECT_REGIONS = {"us-east-1", "us-west-2", "ca-central-1", "eu-central-1", "eu-west-2",
                   "af-south-1", "ap-southeast-1", "ap-southeast-2", "ap-northeast-1",
                   "ap-northeast-2", "us-gov-west-1"}

# Parameter sets the Rules must refuse, with the rule that refuses each.
REFUSED = [
    ({"ConnectInstanceId": INSTANCE_ID, "EnableWebhook": "true", "WebhookAuth": "SIGNATURE"},
     "SignedWebhooksNeedASecret"),
    ({"ConnectInstanceId": INSTANCE_ID, "EnableWebhook": "true", "WebhookAuth": "NONE"},
     "NoUnauthenticatedWebhookByAccident"),
    ({"ConnectInstanceId": INSTANCE_ID, "EnableFunctionUrl": "true", "FunctionUrlAuth": "NONE",
      "WebhookAuth": "AWS_IAM"}, "IamWebhooksNeedIamFunctionUrl"),
    ({"ConnectInstanceId": INSTANCE_ID, "EnableWebhook": "true", "WebhookSecretArn": "s",
      "WebhookSignatureScheme": "slack", "WebhookTimestampHeader": "X-Timestamp"},
     "PresetsFixTheirTimestamp"),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto():
    port = free_port()
    server = os.path.join(os.path.dirname(sys.executable), "moto_server")
    proc = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto_server did not start")


def client(name, url):
    return boto3.client(name, region_name=REGION, endpoint_url=url or None,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def load_template():
    with open(os.path.join(ROOT, "template.yaml")) as f:
        return yaml_parse(f.read())


def parameters_with_defaults(template, given):
    values = {k: str(v.get("Default", "")) for k, v in template["Parameters"].items()}
    values.update(given)
    return values


# --- The Rules, evaluated as CloudFormation does before creating anything -----------------------

def evaluate(expr, params):
    if isinstance(expr, dict) and len(expr) == 1:
        (fn, arg), = expr.items()
        if fn == "Ref":
            return params[arg]
        if fn == "Fn::Equals":
            return str(evaluate(arg[0], params)) == str(evaluate(arg[1], params))
        if fn == "Fn::Not":
            return not evaluate(arg[0], params)
        if fn == "Fn::And":
            return all(evaluate(a, params) for a in arg)
        if fn == "Fn::Or":
            return any(evaluate(a, params) for a in arg)
        if fn == "Fn::Contains":
            return str(evaluate(arg[1], params)) in [str(evaluate(a, params)) for a in arg[0]]
        raise AssertionError(f"rule function {fn} is not evaluated here")
    return expr


def refused_by(template, params):
    failed = []
    for name, rule in template.get("Rules", {}).items():
        if "RuleCondition" in rule and not evaluate(rule["RuleCondition"], params):
            continue
        if not all(evaluate(a["Assert"], params) for a in rule["Assertions"]):
            failed.append(name)
    return failed


# --- Deploying -----------------------------------------------------------------------------------

def translate(template, params, iam, bucket):
    t = json.loads(json.dumps(template))
    # What `sam package` does: the code is an S3 object.
    t["Resources"]["BridgeFunction"]["Properties"]["CodeUri"] = f"s3://{bucket}/bootstrap.zip"
    return transform(t, params, ManagedPolicyLoader(iam))


# The translator reads the Region (and credentials) from the environment, as `sam` does.
os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
os.environ["AWS_REGION"] = REGION
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")


# moto cannot resolve attributes of resource types it does not deploy; the outputs that name
# them are dropped before creating the stack (their targets are checked statically instead).
UNMODELLED_OUTPUTS = {"WebhookUrl", "FunctionUrl"}


def deploy(name, template, params, url):
    s3, iam, cfn = client("s3", url), client("iam", url), client("cloudformation", url)
    bucket = "ctb-artifacts"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    package = io.BytesIO()
    with zipfile.ZipFile(package, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\n# placeholder: moto never runs it\n")
    s3.put_object(Bucket=bucket, Key="bootstrap.zip", Body=package.getvalue())
    translated = translate(template, params, iam, bucket)
    deployable = json.loads(json.dumps(translated))
    for output in UNMODELLED_OUTPUTS:
        deployable.get("Outputs", {}).pop(output, None)
    deployable.pop("Rules", None)
    # moto json-encodes a string EventPattern a second time and then fails to read it back as a
    # pattern; CloudFormation takes a string or an object, so the parameter's JSON is inlined as
    # an object here (the pattern is compared with the parameter after deployment).
    for logical, param in (("EventRule", "EventPattern"), ("PriorityEventRule", "PriorityEventPattern")):
        rule = deployable["Resources"].get(logical)
        if rule and params[param] and rule["Properties"].get("EventPattern") == {"Ref": param}:
            rule["Properties"]["EventPattern"] = json.loads(params[param])
    stack = "ctb-" + "".join(c if c.isalnum() else "-" for c in name)[:40]
    cfn.create_stack(
        StackName=stack,
        TemplateBody=json.dumps(deployable),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()
                    if k in deployable.get("Parameters", {})],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    status = cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
    assert status == "CREATE_COMPLETE", f"{name}: {status}"
    resources = {r["LogicalResourceId"]: r for r in
                 cfn.list_stack_resources(StackName=stack)["StackResourceSummaries"]}
    return translated, resources


# --- Checks of what was deployed -----------------------------------------------------------------

def check_queues(url, resources, params, name):
    sqs = client("sqs", url)
    queue_url = lambda logical: sqs.get_queue_url(
        QueueName=resources[logical]["PhysicalResourceId"].rsplit("/", 1)[-1])["QueueUrl"]
    timeout = int(params["FunctionTimeout"])
    task = sqs.get_queue_attributes(QueueUrl=queue_url("TaskQueue"), AttributeNames=["All"])["Attributes"]
    assert int(task["VisibilityTimeout"]) == 6 * timeout, f"{name}: visibility {task['VisibilityTimeout']}"
    redrive = json.loads(task["RedrivePolicy"])
    assert int(redrive["maxReceiveCount"]) == int(params["SqsMaxReceiveCount"]), redrive
    dlq = sqs.get_queue_attributes(QueueUrl=queue_url("TaskDeadLetterQueue"),
                                   AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert redrive["deadLetterTargetArn"] == dlq, redrive
    return task["QueueArn"]


def check_event_source(url, resources, params, queue_arn, name):
    lam = client("lambda", url)
    mapping = lam.get_event_source_mapping(UUID=resources["QueueEventSource"]["PhysicalResourceId"])
    assert mapping["EventSourceArn"] == queue_arn
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"], mapping
    assert mapping["BatchSize"] == int(params["SqsBatchSize"]), mapping
    window = mapping.get("MaximumBatchingWindowInSeconds", 0)
    if int(params["SqsBatchSize"]) > 10:
        assert window >= 1, f"{name}: a batch over 10 needs a window of 1 s at least, got {window}"
    scaling = mapping.get("ScalingConfig", {}).get("MaximumConcurrency")
    assert scaling == int(params["SqsMaximumConcurrency"]), mapping


def check_iam(url, resources, params, name):
    iam = client("iam", url)
    role = resources["BridgeRole"]["PhysicalResourceId"]
    statements = []
    for policy in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        doc = iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"]
        if isinstance(doc, str):
            # moto stores a policy written inline in the template as the Python repr of the
            # parsed document rather than JSON.
            try:
                doc = json.loads(doc)
            except json.JSONDecodeError:
                doc = ast.literal_eval(doc)
        # moto leaves `!If [cond, statement, !Ref AWS::NoValue]` as a null where CloudFormation
        # removes the entry.
        statements += [st for st in doc["Statement"] if st is not None]
    assert statements, f"{name}: the role has no statements"
    granted = set()
    # moto's CloudFormation does not create AWS::SecretsManager::Secret (it skips the resource
    # and resolves its Ref to nothing): the envelope key's grant and variable are then checked
    # statically (tests/template.rs), here only that nothing else lacks a resource.
    moto_skipped_key = "EnvelopeKey" not in resources
    for s in statements:
        if moto_skipped_key and s.get("Sid") == "ReadEnvelopeKey" and "Resource" not in s:
            continue
        assert "Resource" in s, f"{name}: a statement without a resource: {s}"
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        targets = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
        granted.update(actions)
        for r in targets:
            assert r != "*", f"{name}: {s['Sid']} grants on *"
        if "connect:StartTaskContact" in actions:
            for r in targets:
                assert f"instance/{INSTANCE_ID}/" in r, f"{name}: connect on {r}"
                region = r.split(":")[3]
                want = INSTANCE_ARN.split(":")[3] if params["ConnectInstanceId"].startswith("arn:") else REGION
                assert region == want, f"{name}: {r}"
        if "connect:GetTaskTemplate" in actions:
            assert targets and all(
                r.endswith(f"instance/{INSTANCE_ID}/task-template/*") for r in targets
            ), f"{name}: task templates read on {targets}"
        if "secretsmanager:GetSecretValue" in actions and s["Sid"] == "ReadEnvelopeKey":
            envelope_key = resources["EnvelopeKey"]["PhysicalResourceId"]
            assert targets == [envelope_key], f"{name}: envelope key granted on {targets}"
        elif "secretsmanager:GetSecretValue" in actions:
            secret = params["WebhookSecretArn"]
            expected = (f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{secret}-??????"
                        if not secret.startswith("arn:") else secret)
            assert expected in targets, f"{name}: secret granted on {targets}"
        if "kms:Decrypt" in actions:
            assert targets == [params["WebhookSecretKmsKeyArn"]], targets
            assert s["Condition"]["StringEquals"]["kms:ViaService"] == f"secretsmanager.{REGION}.amazonaws.com"
    extra = granted - CALLED
    assert not extra, f"{name}: grants what the function never calls: {extra}"
    signed = params["EnableWebhook"] == "true" or params["EnableFunctionUrl"] == "true"
    signed = signed and params["WebhookAuth"] == "SIGNATURE"
    sids = {s.get("Sid") for s in statements}
    assert ("ReadWebhookSecret" in sids) == signed, f"{name}: {sids}"
    assert "ReadEnvelopeKey" in sids, f"{name}: {sids}"
    reads_templates = params["TaskTemplateId"] != "" or params["MappingUsesTaskTemplates"] == "true"
    assert ("connect:GetTaskTemplate" in granted) == reads_templates, f"{name}: {granted}"
    assert ("kms:Decrypt" in granted) == (signed and params["WebhookSecretKmsKeyArn"] != "")


def check_function(url, resources, params, name):
    lam = client("lambda", url)
    conf = lam.get_function_configuration(FunctionName=resources["BridgeFunction"]["PhysicalResourceId"])
    # moto keeps `!Ref AWS::NoValue` as a null and numbers as numbers; Lambda has neither.
    env = {k: str(v) for k, v in conf["Environment"]["Variables"].items() if v is not None}
    assert env["CONNECT_INSTANCE_ID"] == params["ConnectInstanceId"], env
    assert conf["Runtime"] == "provided.al2023" and conf["Handler"] == "bootstrap", conf
    assert conf["MemorySize"] == int(params["MemorySize"]) and conf["Timeout"] == int(params["FunctionTimeout"])
    webhooks = params["EnableWebhook"] == "true" or params["EnableFunctionUrl"] == "true"
    mode = {"SIGNATURE": "signature", "AWS_IAM": "iam", "NONE": "none"}[params["WebhookAuth"]]
    assert env.get("WEBHOOK_AUTH") == (mode if webhooks else None), f"{name}: {env}"
    if mode == "signature" and webhooks:
        assert env["WEBHOOK_SECRET_ID"] == params["WebhookSecretArn"], env
    else:
        assert "WEBHOOK_SECRET_ID" not in env, env
    # The envelope key: a secret of the stack's own, generated, named to the function (where
    # moto's CloudFormation creates it: see check_iam).
    if "EnvelopeKey" in resources:
        envelope_key = resources["EnvelopeKey"]["PhysicalResourceId"]
        assert env["ENVELOPE_SECRET_ID"] == envelope_key, env
        key = client("secretsmanager", url).get_secret_value(SecretId=envelope_key)["SecretString"]
        assert len(key) == 64, f"{name}: the generated envelope key has {len(key)} characters"
    if params["WebhookTimestampHeader"]:
        assert env["WEBHOOK_TIMESTAMP_HEADER"] == params["WebhookTimestampHeader"], env
    # The signature scheme: with signed webhooks only; beside a preset, no header of the
    # configurable check (it would stop the cold start), the tolerance only where it applies.
    scheme = params["WebhookSignatureScheme"]
    if mode == "signature" and webhooks:
        assert env["WEBHOOK_SIGNATURE_SCHEME"] == scheme, env
    else:
        assert "WEBHOOK_SIGNATURE_SCHEME" not in env, env
    if scheme == "hmac-sha256":
        assert env["WEBHOOK_SIGNATURE_HEADER"] == params["WebhookSignatureHeader"], env
        assert env["WEBHOOK_TOLERANCE_SECONDS"] == str(params["WebhookToleranceSeconds"]), env
    else:
        assert "WEBHOOK_SIGNATURE_HEADER" not in env, env
        timestamped = scheme in {"stripe", "standard-webhooks", "svix", "slack", "zendesk"}
        assert ("WEBHOOK_TOLERANCE_SECONDS" in env) == timestamped, env
    # Storage-first and the pace: the queue's URL, the quota and the environments sharing it.
    assert env["WEBHOOK_MODE"] == params["WebhookMode"].lower(), env
    assert env["TASK_QUEUE_URL"].endswith(resources["TaskQueue"]["PhysicalResourceId"].rsplit("/", 1)[-1]), env
    assert env["CONNECT_CALLERS"] == str(params["SqsMaximumConcurrency"]), env
    assert float(env["CONNECT_REQUESTS_PER_SECOND"]) == float(params["ConnectRequestsPerSecond"]), env
    # Lambda caps all of a function's variables at 4 KB together.
    size = sum(len(k) + len(v) for k, v in env.items())
    assert size < 4096, f"{name}: environment is {size} bytes"


def check_event_rule(url, resources, params, name):
    events = client("events", url)
    rule = resources["EventRule"]["PhysicalResourceId"].split("|")[-1]
    described = events.describe_rule(Name=rule, EventBusName=params["EventBusName"])
    pattern = described["EventPattern"]
    while isinstance(pattern, str):  # moto's own encoding, as many times as it applied it
        pattern = json.loads(pattern)
    assert pattern == json.loads(params["EventPattern"]), f"{name}: {pattern}"
    targets = events.list_targets_by_rule(Rule=rule, EventBusName=params["EventBusName"])["Targets"]
    assert len(targets) == 1 and "DeadLetterConfig" in targets[0], f"{name}: {targets}"
    # Storage-first: the rule delivers into the task queue, not to the function.
    assert targets[0]["Arn"].split(":")[2] == "sqs", f"{name}: {targets}"


def check_priority_lane(url, resources, params, name):
    """The priority lane: its queue dead-letters to its own DLQ, its own mapping drains it, the
    function is told where it is, and the urgent rule (when a pattern is given) feeds it and
    dead-letters undeliverable events."""
    sqs, lam = client("sqs", url), client("lambda", url)
    queue_url = lambda logical: sqs.get_queue_url(
        QueueName=resources[logical]["PhysicalResourceId"].rsplit("/", 1)[-1])["QueueUrl"]
    attrs = lambda logical: sqs.get_queue_attributes(
        QueueUrl=queue_url(logical), AttributeNames=["All"])["Attributes"]
    lane, dlq = attrs("PriorityQueue"), attrs("PriorityDeadLetterQueue")
    assert json.loads(lane["RedrivePolicy"])["deadLetterTargetArn"] == dlq["QueueArn"], f"{name}: {lane}"
    mapping = lam.get_event_source_mapping(UUID=resources["PriorityQueueEventSource"]["PhysicalResourceId"])
    assert mapping["EventSourceArn"] == lane["QueueArn"], f"{name}: {mapping}"
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"], mapping
    function = resources["BridgeFunction"]["PhysicalResourceId"]
    env = lam.get_function_configuration(FunctionName=function)["Environment"]["Variables"]
    assert env["PRIORITY_QUEUE_URL"].endswith(lane["QueueArn"].rsplit(":", 1)[-1]), env
    if not params["PriorityEventPattern"]:
        assert "PriorityEventRule" not in resources, f"{name}: an urgent rule nobody asked for"
        return
    events = client("events", url)
    rule = resources["PriorityEventRule"]["PhysicalResourceId"].split("|")[-1]
    pattern = events.describe_rule(Name=rule, EventBusName=params["EventBusName"])["EventPattern"]
    while isinstance(pattern, str):
        pattern = json.loads(pattern)
    assert pattern == json.loads(params["PriorityEventPattern"]), f"{name}: {pattern}"
    targets = events.list_targets_by_rule(Rule=rule, EventBusName=params["EventBusName"])["Targets"]
    assert [t["Arn"] for t in targets] == [lane["QueueArn"]], f"{name}: {targets}"
    assert "DeadLetterConfig" in targets[0] and "EventRuleDeadLetterQueue" in resources, f"{name}: {targets}"


def resolve(value, params, conditions):
    """The template's intrinsics that matter here, as CloudFormation resolves them for a
    parameter set: conditions, `Fn::If`, parameter `Ref`s, and the string functions the
    conditions use. Anything else is left as written."""
    if isinstance(value, list):
        return [resolve(v, params, conditions) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (fn, arg), = value.items()
        if fn == "Ref" and arg in params:
            return params[arg]
        if fn == "Condition":
            return condition(arg, params, conditions)
        if fn == "Fn::If":
            branch = arg[1] if condition(arg[0], params, conditions) else arg[2]
            return resolve(branch, params, conditions)
        if fn == "Fn::Equals":
            a, b = (resolve(x, params, conditions) for x in arg)
            return str(a) == str(b)
        if fn == "Fn::Not":
            return not resolve(arg[0], params, conditions)
        if fn == "Fn::And":
            return all(resolve(a, params, conditions) for a in arg)
        if fn == "Fn::Or":
            return any(resolve(a, params, conditions) for a in arg)
        if fn == "Fn::Join":
            parts = resolve(arg[1], params, conditions)
            if all(isinstance(p, str) for p in parts):
                return arg[0].join(parts)
        if fn == "Fn::Split":
            text = resolve(arg[1], params, conditions)
            if isinstance(text, str):
                return text.split(arg[0])
        if fn == "Fn::Select":
            items = resolve(arg[1], params, conditions)
            if isinstance(items, list):
                return items[int(arg[0])]
    out = {k: resolve(v, params, conditions) for k, v in value.items()}
    return {k: v for k, v in out.items() if v != {"Ref": "AWS::NoValue"}}


def condition(name, params, conditions):
    return bool(resolve(conditions[name], params, conditions))


def check_task_table(url, resources, params, name, translated):
    """The table's shape is the function's interface: `pk` (string) only, TTL on `expires_at`,
    on demand, point-in-time recovery; the function finds it by TASK_TABLE. (moto's
    CloudFormation does not apply TTL or point-in-time recovery: those are read from the
    template as deployed.)"""
    props = translated["Resources"]["TaskTable"]["Properties"]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}, props
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}, props
    table = resources["TaskTable"]["PhysicalResourceId"]
    ddb = client("dynamodb", url)
    described = ddb.describe_table(TableName=table)["Table"]
    assert described["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}], described
    assert described["AttributeDefinitions"] == [{"AttributeName": "pk", "AttributeType": "S"}]
    assert described.get("BillingModeSummary", {}).get("BillingMode") == "PAY_PER_REQUEST", described
    function = resources["BridgeFunction"]["PhysicalResourceId"]
    env = client("lambda", url).get_function_configuration(FunctionName=function)["Environment"]["Variables"]
    assert env.get("TASK_TABLE") == table, env
    assert env.get("COMPLETION_EVENT_BUS") == params["CompletionEventBusName"], env


def check_dashboard(url, resources, params, name):
    """The dashboard moto's CloudFormation created: its body is JSON with every `${...}`
    resolved, naming this stack's queues and function (tests/template.rs checks the widgets and
    the metric names against what the function emits)."""
    if params["EnableDashboard"] != "true":
        assert "Dashboard" not in resources, f"{name}: a dashboard nobody asked for"
        return
    cw = client("cloudwatch", url)
    dashboard = resources["Dashboard"]["PhysicalResourceId"]
    body = cw.get_dashboard(DashboardName=dashboard)["DashboardBody"]
    assert "${" not in body, f"{name}: unresolved in the dashboard: {body}"
    parsed = json.loads(body)
    assert parsed["widgets"], f"{name}: no widgets"
    sqs = client("sqs", url)
    for queue in ["TaskQueue", "TaskDeadLetterQueue", "FailureQueue", "PriorityQueue", "PriorityDeadLetterQueue"]:
        queue_name = resources[queue]["PhysicalResourceId"].rsplit("/", 1)[-1]
        assert f'"{queue_name}"' in body, f"{name}: the dashboard does not show {queue}"
    function = resources["BridgeFunction"]["PhysicalResourceId"]
    assert f'"{function}"' in body, f"{name}: the dashboard does not show the function"
    rule_dlq = resources.get("EventRuleDeadLetterQueue")
    if rule_dlq:
        assert rule_dlq["PhysicalResourceId"].rsplit("/", 1)[-1] in body, name


def check_pace_table(url, resources, params, name, statements):
    """The pace table: created on demand by default (partition key `pk`, string, time to live
    on `ttl` for reserved turns), an existing one when named (shared with other stacks), none
    with NONE; the function finds it by PACE_TABLE and may call exactly dynamodb:UpdateItem on
    it (bookings, reserved turns written and taken), nothing else."""
    given = params["PaceTableName"]
    function = resources["BridgeFunction"]["PhysicalResourceId"]
    env = client("lambda", url).get_function_configuration(FunctionName=function)["Environment"]["Variables"]
    grants = [s for s in statements if s.get("Sid") == "BookThePace"]
    if given == "NONE":
        assert "PaceTable" not in resources and "PACE_TABLE" not in env and not grants, f"{name}: {env}"
        return
    if given:
        assert "PaceTable" not in resources, f"{name}: a pace table created beside the named one"
        table = given
    else:
        table = resources["PaceTable"]["PhysicalResourceId"]
        described = client("dynamodb", url).describe_table(TableName=table)["Table"]
        assert described["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}], described
        assert described.get("BillingModeSummary", {}).get("BillingMode") == "PAY_PER_REQUEST", described
        # Its time to live on `ttl` (reserved turns) is checked in tests/template.rs: moto's
        # CloudFormation creates the table without applying TimeToLiveSpecification.
    assert env.get("PACE_TABLE") == table, f"{name}: {env}"
    assert len(grants) == 1, f"{name}: {grants}"
    actions = grants[0]["Action"] if isinstance(grants[0]["Action"], list) else [grants[0]["Action"]]
    targets = grants[0]["Resource"] if isinstance(grants[0]["Resource"], list) else [grants[0]["Resource"]]
    assert actions == ["dynamodb:UpdateItem"], f"{name}: {actions}"
    assert targets == [f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}"], f"{name}: {targets}"
    # Only the pace table is written outside the task table.
    for s in statements:
        acts = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        if any(a.startswith("dynamodb:") for a in acts) and s.get("Sid") != "BookThePace":
            assert s.get("Sid") == "OwnTaskTable", f"{name}: {s}"


def role_statements(url, resources):
    iam = client("iam", url)
    role = resources["BridgeRole"]["PhysicalResourceId"]
    statements = []
    for policy in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        doc = iam.get_role_policy(RoleName=role, PolicyName=policy)["PolicyDocument"]
        if isinstance(doc, str):
            try:
                doc = json.loads(doc)
            except json.JSONDecodeError:
                doc = ast.literal_eval(doc)
        statements += [st for st in doc["Statement"] if st is not None]
    return statements


def check_statically(translated, params, name):
    """What moto does not deploy, read from the translated template as resolved for `params`."""
    conditions = translated.get("Conditions", {})
    res = {
        k: resolve(r, params, conditions)
        for k, r in translated["Resources"].items()
        if "Condition" not in r or condition(r["Condition"], params, conditions)
    }
    url_public = params["EnableFunctionUrl"] == "true" and params["FunctionUrlAuth"] == "NONE"
    perms = [r["Properties"] for r in res.values() if r["Type"] == "AWS::Lambda::Permission"]
    url_invoke = [p for p in perms if p.get("InvokedViaFunctionUrl") is True]
    url_invoke_url = [p for p in perms if p.get("Action") == "lambda:InvokeFunctionUrl"]
    if url_public:
        assert url_invoke and url_invoke[0]["Action"] == "lambda:InvokeFunction", perms
        assert url_invoke_url and url_invoke_url[0]["FunctionUrlAuthType"] == "NONE", perms
    else:
        assert not url_invoke and not url_invoke_url, perms
    if params["EnableWebhook"] == "true":
        route = res["WebhookRoute"]["Properties"]
        want = "AWS_IAM" if params["WebhookAuth"] == "AWS_IAM" else "NONE"
        assert route["AuthorizationType"] == want, route
    invoke = res["BridgeAsyncConfig"]["Properties"]
    assert invoke["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": ["FailureQueue", "Arn"]}
    alarms = [k for k, r in res.items() if r["Type"] == "AWS::CloudWatch::Alarm"]
    assert "TaskDeadLetterQueueAlarm" in alarms and "FailureQueueAlarm" in alarms, alarms


def violates_constraints(template, name, value):
    p = template["Parameters"][name]
    return ("MaxLength" in p and len(value) > int(p["MaxLength"])) or (
        "AllowedValues" in p and value not in [str(v) for v in p["AllowedValues"]])


def samconfig_region():
    import tomllib
    with open(os.path.join(ROOT, "samconfig.toml"), "rb") as f:
        return tomllib.load(f)["default"]["deploy"]["parameters"]["region"]


def main():
    template = load_template()
    moto, url = start_moto()
    failures = []
    try:
        region = samconfig_region()
        if region not in CONNECT_REGIONS:
            failures.append(f"samconfig.toml deploys to {region}, where Amazon Connect does not run")
        for param, value in REFUSED_VALUES:
            if not violates_constraints(template, param, value):
                failures.append(f"{param} accepts {len(value)} characters")
        for given, rule in REFUSED:
            params = parameters_with_defaults(template, given)
            refused = refused_by(template, params)
            if rule not in refused:
                failures.append(f"Rules let through {given} (expected {rule}, got {refused})")
        for name, given in PARAMETER_SETS.items():
            params = parameters_with_defaults(template, given)
            try:
                assert not refused_by(template, params), f"{name}: refused by {refused_by(template, params)}"
                requests = __import__("urllib.request").request
                requests.urlopen(requests.Request(f"{url}/moto-api/reset", method="POST")).read()
                translated, resources = deploy(name, template, params, url)
                queue_arn = check_queues(url, resources, params, name)
                check_event_source(url, resources, params, queue_arn, name)
                if params["EnableEventBridge"] == "true":
                    check_event_rule(url, resources, params, name)
                check_priority_lane(url, resources, params, name)
                check_iam(url, resources, params, name)
                check_function(url, resources, params, name)
                if params["EnableLifecycle"] == "true":
                    check_task_table(url, resources, params, name, translated)
                else:
                    assert "TaskTable" not in resources, f"{name}: a table nobody asked for"
                check_dashboard(url, resources, params, name)
                check_pace_table(url, resources, params, name, role_statements(url, resources))
                check_statically(translated, params, name)
                print(f"deployed into moto: {name}: CREATE_COMPLETE, {len(resources)} resources; checks passed")
            except AssertionError as e:
                failures.append(str(e))
    finally:
        moto.terminate()
    for f in failures:
        print("FAILED:", f)
    total = len(PARAMETER_SETS) + len(REFUSED) + len(REFUSED_VALUES) + 1
    print(f"{total - len(failures)} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
