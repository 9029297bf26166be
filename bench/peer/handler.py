"""The peer: what a user writes by hand today, in Python with boto3, run under the standard
runtime interface client (awslambdaric). Same job as connect-task-bridge for EventBridge events
and SQS batches: a task per record, a client token from the SHA-256 of the event id, partial
batch failures for SQS."""

import hashlib
import json
import os

import boto3

INSTANCE_ID = os.environ["CONNECT_INSTANCE_ID"]
FLOW_ID = os.environ["CONNECT_CONTACT_FLOW_ID"]
# boto3 reads AWS_ENDPOINT_URL_CONNECT itself, as the Rust SDK does.
connect = boto3.client("connect")


def start_task(identity, name, detail):
    token = hashlib.sha256(f"{INSTANCE_ID}/{identity}".encode()).hexdigest()
    response = connect.start_task_contact(
        InstanceId=INSTANCE_ID,
        ContactFlowId=FLOW_ID,
        Name=name[:1024],
        Description=json.dumps(detail, indent=2, sort_keys=True)[:4096],
        ClientToken=token,
    )
    return {"ContactId": response["ContactId"], "ClientToken": token}


def handler(event, context):
    if "Records" in event:
        failures = []
        for record in event["Records"]:
            try:
                body = json.loads(record["body"])
            except ValueError:
                body = record["body"]
            try:
                start_task(record["messageId"], "Message from queue", body)
            except Exception:  # every failure goes back to the queue
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}
    return start_task(event["id"], event["detail-type"], event["detail"])
