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
# No signing library is published for these: each follows the sender's documented example
# (Python's hmac, independent of the function's code).
elif scheme == "zendesk":
    # developer.zendesk.com/documentation/webhooks/verifying/:
    # base64(HMACSHA256(TIMESTAMP + BODY)), the timestamp as sent (RFC 3339).
    import base64, hashlib, hmac

    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = hmac.new(secret.encode(), (stamp + body).encode(), hashlib.sha256).digest()
    headers = {
        "X-Zendesk-Webhook-Signature": base64.b64encode(digest).decode(),
        "X-Zendesk-Webhook-Signature-Timestamp": stamp,
        "X-Zendesk-Webhook-Invocation-Id": msg_id,
    }
elif scheme == "shopify":
    # shopify.dev/docs/apps/build/webhooks/verify-deliveries: base64 HMAC-SHA256 of the raw
    # body under the app's client secret.
    import base64, hashlib, hmac

    digest = hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()
    headers = {
        "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
        "X-Shopify-Webhook-Id": msg_id,
        "X-Shopify-Topic": "customers/redact",
    }
elif scheme == "pagerduty":
    # developer.pagerduty.com/docs/webhooks/webhook-signatures: "v1=" + hex HMAC-SHA256 of the
    # raw body, comma-separated when several secrets sign.
    import hashlib, hmac

    digest = hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()
    headers = {"X-PagerDuty-Signature": f"v1={digest}"}
else:
    sys.exit(f"sign.py: no Python signing library for scheme {scheme!r}")

json.dump(headers, sys.stdout)
