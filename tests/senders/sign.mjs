// Signs a webhook body with the sender's own npm library (tests/senders.rs).
// Reads {"scheme", "secret", "body", "timestamp"} as JSON on stdin, writes the headers the sender
// would send as JSON on stdout. Only the libraries' public signing functions are used.
import { readFileSync } from "node:fs";
import Stripe from "stripe";
import { sign } from "@octokit/webhooks-methods";

const request = JSON.parse(readFileSync(0, "utf8"));
const { scheme, secret, body, timestamp } = request;
let headers;
if (scheme === "stripe") {
  const stripe = new Stripe("sk_test_not_used_for_signing");
  headers = {
    "Stripe-Signature": stripe.webhooks.generateTestHeaderString({
      payload: body,
      secret,
      timestamp: Number(timestamp),
    }),
  };
} else if (scheme === "github") {
  headers = { "X-Hub-Signature-256": await sign(secret, body) };
} else {
  console.error(`sign.mjs: no npm signing library for scheme ${scheme}`);
  process.exit(2);
}
process.stdout.write(JSON.stringify(headers));
