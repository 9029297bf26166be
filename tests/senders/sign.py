"""Signs a webhook body with the sender's own Python library (tests/senders.rs).

Reads {"scheme", "secret", "body", "id", "timestamp"} as JSON on stdin and writes the headers
the sender would send as JSON on stdout. Only the libraries' public signing functions are used;
nothing here computes an HMAC itself.
"""

import json
import sys
from datetime import datetime, timezone

request = json.load(sys.stdin)
scheme, secret, body = request["scheme"], request["secret"], request["body"]
msg_id, timestamp = request.get("id", ""), int(request["timestamp"])
when = datetime.fromtimestamp(timestamp, tz=timezone.utc)

if scheme == "standard-webhooks":
    from standardwebhooks.webhooks import Webhook

    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": Webhook(secret).sign(msg_id, when, body),
    }
elif scheme == "svix":
    from svix.webhooks import Webhook

    headers = {
        "svix-id": msg_id,
        "svix-timestamp": str(timestamp),
        "svix-signature": Webhook(secret).sign(msg_id, when, body),
    }
elif scheme == "slack":
    from slack_sdk.signature import SignatureVerifier

    headers = {
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": SignatureVerifier(secret).generate_signature(
            timestamp=str(timestamp), body=body
        ),
    }
elif scheme == "stripe":
    import stripe

    headers = {
        "Stripe-Signature": stripe.WebhookSignature.generate_signature_header(
            body, secret, timestamp=timestamp
        )
    }
else:
    sys.exit(f"sign.py: no Python signing library for scheme {scheme!r}")

json.dump(headers, sys.stdout)
