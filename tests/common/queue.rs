//! A queue in moto's SQS as the event source mapping hands it to the function: messages sent,
//! then received back as the SQS records of a batch.

use std::time::{Duration, Instant};

/// A queue named `name` whose messages stay hidden `visibility` seconds after a receive: its
/// URL and ARN.
pub async fn create(sqs: &aws_sdk_sqs::Client, name: &str, visibility: u32) -> (String, String) {
    let url = sqs
        .create_queue()
        .queue_name(name)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            visibility.to_string(),
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    (url, connect_standin::surge::queue_arn(name))
}

/// Sends each body to the queue and receives them all back (as the event source mapping would
/// hand them over: up to 10 per batch), as SQS records.
pub async fn through_queue(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    arn: &str,
    bodies: Vec<serde_json::Value>,
) -> Vec<serde_json::Value> {
    for body in &bodies {
        sqs.send_message()
            .queue_url(url)
            .message_body(body.to_string())
            .send()
            .await
            .unwrap();
    }
    received(sqs, url, arn, bodies.len(), Duration::from_secs(5)).await
}

/// Receives until `n` messages came (or `within` passed), as SQS records.
pub async fn received(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    arn: &str,
    n: usize,
    within: Duration,
) -> Vec<serde_json::Value> {
    let until = Instant::now() + within;
    let mut records = Vec::new();
    while records.len() < n && Instant::now() < until {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        records.extend(
            out.messages
                .unwrap_or_default()
                .iter()
                .map(|m| connect_standin::surge::esm_record(m, arn)),
        );
    }
    records
}
