//! The SQS side of `redrive`: where the messages go (`--to`, else the DLQ's source queue),
//! receiving, sending before deleting, at most `--rate` a second, and the progress shown (a bar
//! on a terminal, a line per message otherwise).

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Map, Value};

use super::{plan, Args, DlqMessage, Refusal, Summary, Target};
use crate::connect::{load_sdk_config, CallPolicy};
use crate::error::Failure;
use crate::queue::EnvelopeKeys;

async fn arn_of(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String, RedriveError> {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(call("GetQueueAttributes"))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| RedriveError::Usage("a queue without an ARN".into()))
}

fn digest(body: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(body.as_bytes()).into()
}

/// A setup failure: nothing was moved.
#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    #[error("{0}")]
    Usage(String),
    #[error("{op} failed: {reason}")]
    Call { op: &'static str, reason: String },
    #[error("the envelope key: {0}")]
    Key(#[from] crate::error::ConfigError),
}

/// What a failed SQS call says, without anything of the request: the code SQS answered, or how
/// the call failed without an answer.
fn reason<E, R>(err: aws_sdk_sqs::error::SdkError<E, R>) -> String
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error,
    R: std::fmt::Debug,
{
    match Failure::of(err) {
        Failure::Answered { code, .. } => code,
        Failure::Timeout => "no answer in time".into(),
        Failure::Dispatch(_) => "no connection".into(),
        Failure::Response(_) => "an unreadable answer".into(),
        Failure::Construction(_) => "the request could not be built (region, credentials)".into(),
    }
}

fn call<E, R>(op: &'static str) -> impl FnOnce(aws_sdk_sqs::error::SdkError<E, R>) -> RedriveError
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error,
    R: std::fmt::Debug,
{
    move |e| RedriveError::Call {
        op,
        reason: reason(e),
    }
}

/// A redrive, set up: the queues, the client and the envelope key.
pub struct Redrive {
    pub sqs: aws_sdk_sqs::Client,
    pub from: String,
    pub to: String,
    pub target: Target,
    pub keys: Option<EnvelopeKeys>,
}

impl Redrive {
    /// Finds `--to` (the DLQ's source queue when not given) and its ARN.
    pub async fn set_up(
        args: &Args,
        sqs: aws_sdk_sqs::Client,
        keys: Option<EnvelopeKeys>,
    ) -> Result<Redrive, RedriveError> {
        // The queues whose DLQ this is: the default target, and whether a body shaped like a
        // Lambda destination record is one (the failure queue is no queue's DLQ) or a
        // producer's message (a queue's DLQ holds only what the function read from the queue).
        let sources = sqs
            .list_dead_letter_source_queues()
            .queue_url(&args.from)
            .send()
            .await
            .map_err(call("ListDeadLetterSourceQueues"))?
            .queue_urls;
        let to = match (&args.to, sources.as_slice()) {
            (Some(to), _) => to.clone(),
            (None, [one]) => one.clone(),
            (None, []) => {
                return Err(RedriveError::Usage(
                    "no queue names this one as its dead-letter queue (the failure queue \
                     and the EventBridge rule's DLQ have no source queue): give --to, \
                     the stack's TaskQueueUrl"
                        .into(),
                ))
            }
            (None, many) => {
                return Err(RedriveError::Usage(format!(
                    "{} queues name this one as their dead-letter queue: give --to",
                    many.len()
                )))
            }
        };
        let arn = arn_of(&sqs, &to).await?;
        // Into itself, every moved message would be received again as a new one, for ever.
        if arn_of(&sqs, &args.from).await? == arn {
            return Err(RedriveError::Usage(
                "--to names the dead-letter queue itself".into(),
            ));
        }
        let target = Target {
            fifo: arn.ends_with(".fifo"),
            region: arn.split(':').nth(3).unwrap_or_default().to_string(),
            arn,
            dlq_of_a_queue: !sources.is_empty(),
        };
        Ok(Redrive {
            sqs,
            from: args.from.clone(),
            to,
            target,
            keys,
        })
    }

    /// Whether `body` is one this run sent: a message that failed again and came back to the
    /// DLQ while the run lasted (redriving it again would go round while the fault lasts).
    fn came_back(sent: &HashSet<[u8; 32]>, body: &str) -> bool {
        sent.contains(&digest(body))
    }

    /// How many messages the DLQ holds (for the bar's length; an estimate, as SQS says).
    async fn backlog(&self) -> Option<u64> {
        self.sqs
            .get_queue_attributes()
            .queue_url(&self.from)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .ok()?
            .attributes?
            .get(&QueueAttributeName::ApproximateNumberOfMessages)?
            .parse()
            .ok()
    }
}

/// The progress a run shows on stderr.
enum Progress {
    Bar(ProgressBar),
    Lines { total: Option<u64> },
}

impl Progress {
    fn new(total: Option<u64>, terminal: bool) -> Progress {
        if !terminal {
            return Progress::Lines { total };
        }
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} messages, {msg}",
            )
            .expect("a valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress::Bar(bar)
    }

    /// Shows `outcome` for a message; `first` is when the first message was handled (the rate
    /// is counted from it, not from the setup's calls).
    fn record(&self, summary: &Summary, message_id: &str, outcome: &str, first: Instant) {
        let handled = summary.handled();
        let secs = first.elapsed().as_secs_f64();
        let rate = if handled > 1 && secs > 0.0 {
            format!("{:.1}/s", (handled - 1) as f64 / secs)
        } else {
            "-/s".to_string()
        };
        match self {
            Progress::Bar(bar) => {
                if bar.length().is_some_and(|len| handled > len) {
                    bar.set_length(handled);
                }
                bar.set_position(handled);
                bar.set_message(format!(
                    "{rate}, moved {} skipped {} failed {}",
                    Summary::total(&summary.moved),
                    Summary::total(&summary.skipped),
                    Summary::total(&summary.failed)
                ));
            }
            Progress::Lines { total } => {
                let of = total.map_or(String::new(), |t| format!("/{}", t.max(handled)));
                // Only the messageId (SQS's, no business data) and what became of it.
                eprintln!("{handled}{of} {rate} message {message_id}: {outcome}");
            }
        }
    }

    fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish();
            // The bar stays as it ended, on a line of its own.
            eprintln!();
        }
    }
}

/// Why a FIFO message is left: an earlier one of its group is.
const BEHIND_IN_GROUP: &str = "left behind an earlier message of its FIFO group left in place";

/// Why an event is left with --rule-arn: another rule's (or none named).
const ANOTHER_RULE: &str = "not the --rule-arn rule's event (RULE_ARN)";

/// SQS's most per receive.
const BATCH: i32 = 10;

/// Moves the messages, as `args` says; progress on stderr (a bar when `terminal`).
/// Stops between two messages once `stop` is set (Ctrl-C): what was received and not moved
/// stays in the DLQ.
pub async fn redrive(
    redrive: &Redrive,
    args: &Args,
    terminal: bool,
    stop: &AtomicBool,
) -> Result<Summary, RedriveError> {
    let started = Instant::now();
    let mut summary = Summary {
        dry_run: args.dry_run,
        ..Summary::default()
    };
    let backlog = redrive.backlog().await;
    let total = match (backlog, args.max) {
        (Some(b), Some(m)) => Some(b.min(m)),
        (b, m) => b.or(m),
    };
    let progress = Progress::new(total, terminal);
    let interval = args.rate.map(|r| Duration::from_secs_f64(1.0 / r));
    // At a slow pace, no more per receive than about two seconds' worth: what a stopped run had
    // received comes back to the DLQ soon, when the visibility below ends.
    let batch = args
        .rate
        .map_or(BATCH, |r| ((r * 2.0).ceil() as i32).clamp(1, BATCH));
    // Held invisible long enough for the batch at the pace, and a margin for SQS's answers.
    let visibility = interval.map_or(30, |i| 5 + (i * batch as u32).as_secs_f64().ceil() as i32);
    let mut next_send = Instant::now();
    let mut seen = HashSet::new();
    let mut sent_bodies = HashSet::new();
    // FIFO groups with a message left in place in this run.
    let mut waiting_groups: HashSet<String> = HashSet::new();
    // Received and not moved (refused, failed, a dry run): visible again at the end.
    let mut left = Vec::new();
    let mut empty = 0;
    let mut first: Option<Instant> = None;
    loop {
        if stop.load(Ordering::Relaxed) {
            summary.stopped = true;
            break;
        }
        let remaining = args.max.map(|m| m.saturating_sub(summary.handled()));
        if remaining == Some(0) {
            break;
        }
        let want = remaining.map_or(batch, |r| r.min(batch as u64) as i32);
        let received = redrive
            .sqs
            .receive_message()
            .queue_url(&redrive.from)
            .max_number_of_messages(want)
            .wait_time_seconds(1)
            .visibility_timeout(visibility)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await;
        // A failure after some moves ends the run with its summary, not without one.
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                summary.broken = Some(format!("ReceiveMessage failed ({})", reason(e)));
                break;
            }
        };
        if messages.is_empty() {
            // Twice: a short answer can be empty while messages wait on other servers.
            empty += 1;
            if empty >= 2 {
                break;
            }
            continue;
        }
        empty = 0;
        let first = *first.get_or_insert_with(Instant::now);
        for m in messages {
            let handle = m.receipt_handle.clone().unwrap_or_default();
            let message = dlq_message(&m);
            if args.max.is_some_and(|max| summary.handled() >= max) || stop.load(Ordering::Relaxed)
            {
                left.push(handle);
                continue;
            }
            // Handled already in this run (left in place, its visibility since ended; or moved
            // and not deleted): one message, counted once and not again against --max.
            if !seen.insert(message.message_id.clone()) {
                left.push(handle);
                continue;
            }
            // FIFO: behind a message of its group left in place, a message is left too (moved,
            // it would overtake it: the function would handle the group out of order).
            if message.group().is_some_and(|g| waiting_groups.contains(g)) {
                bump(&mut summary.skipped, BEHIND_IN_GROUP);
                progress.record(&summary, &message.message_id, BEHIND_IN_GROUP, first);
                left.push(handle);
                continue;
            }
            // Another rule's event (--rule-arn): left for its own run, to its own lane.
            if args
                .rule_arn
                .as_deref()
                .is_some_and(|rule| message.rule_arn() != Some(rule))
            {
                bump(&mut summary.skipped, ANOTHER_RULE);
                progress.record(&summary, &message.message_id, ANOTHER_RULE, first);
                left.push(handle);
                continue;
            }
            let outcome = match plan(&message, redrive.keys.as_ref(), &redrive.target) {
                Err(refusal) => {
                    left.push(handle);
                    Err(refusal)
                }
                Ok(planned)
                    if planned
                        .bodies
                        .iter()
                        .any(|b| Redrive::came_back(&sent_bodies, &b.body)) =>
                {
                    waiting_groups.extend(message.group().map(str::to_string));
                    bump(
                        &mut summary.skipped,
                        "back in the DLQ during this run (failed again)",
                    );
                    progress.record(&summary, &message.message_id, "came back", first);
                    left.push(handle);
                    continue;
                }
                Ok(planned) if args.dry_run => {
                    left.push(handle);
                    Ok(planned.kind.describe().to_string())
                }
                Ok(planned) => {
                    let mut sent = Ok(());
                    for out in &planned.bodies {
                        if let Some(i) = interval {
                            tokio::time::sleep_until(next_send.into()).await;
                            next_send = next_send.max(Instant::now()) + i;
                        }
                        let mut send = redrive
                            .sqs
                            .send_message()
                            .queue_url(&redrive.to)
                            .message_body(&out.body);
                        if redrive.target.fifo {
                            send = send
                                .set_message_group_id(message.group().map(str::to_string))
                                .message_deduplication_id(&out.deduplication_id);
                        }
                        if let Err(e) = send.send().await {
                            sent = Err(Refusal::SendFailed(reason(e)));
                            break;
                        }
                        sent_bodies.insert(digest(&out.body));
                    }
                    match sent {
                        // Sent: only now deleted. A stop before this line leaves the message
                        // in both queues, a duplicate its kept identity makes harmless.
                        Ok(()) => {
                            let deleted = redrive
                                .sqs
                                .delete_message()
                                .queue_url(&redrive.from)
                                .receipt_handle(&handle)
                                .send()
                                .await;
                            Ok(match deleted {
                                Ok(_) => planned.kind.describe().to_string(),
                                Err(e) => format!(
                                    "{}; not deleted ({}): a harmless duplicate stays in the DLQ",
                                    planned.kind.describe(),
                                    reason(e)
                                ),
                            })
                        }
                        Err(refusal) => {
                            left.push(handle);
                            Err(refusal)
                        }
                    }
                }
            };
            let shown = match outcome {
                Ok(kind) => {
                    bump(&mut summary.moved, &kind);
                    format!(
                        "{} ({kind})",
                        if args.dry_run { "would move" } else { "moved" }
                    )
                }
                Err(refusal) => {
                    waiting_groups.extend(message.group().map(str::to_string));
                    let reason = refusal.to_string();
                    bump(&mut summary.failed, &reason);
                    format!("left in place: {reason}")
                }
            };
            progress.record(&summary, &message.message_id, &shown, first);
        }
    }
    // What stays in the DLQ is visible again at once, not after the receive's timeout.
    for handle in left.iter().filter(|h| !h.is_empty()) {
        let _ = redrive
            .sqs
            .change_message_visibility()
            .queue_url(&redrive.from)
            .receipt_handle(handle)
            .visibility_timeout(0)
            .send()
            .await;
    }
    progress.finish();
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

fn bump(map: &mut std::collections::BTreeMap<String, u64>, reason: &str) {
    *map.entry(reason.to_string()).or_default() += 1;
}

/// A received message as the plan reads it, its attributes in the shape Lambda delivers them.
fn dlq_message(m: &aws_sdk_sqs::types::Message) -> DlqMessage {
    let message_attributes: Map<String, Value> = m
        .message_attributes
        .iter()
        .flatten()
        .map(|(name, v)| {
            let mut attr = json!({ "dataType": v.data_type() });
            if let Some(s) = v.string_value() {
                attr["stringValue"] = json!(s);
            }
            if let Some(b) = v.binary_value() {
                use base64::Engine;
                attr["binaryValue"] =
                    json!(base64::engine::general_purpose::STANDARD.encode(b.as_ref()));
            }
            (name.clone(), attr)
        })
        .collect();
    DlqMessage {
        message_id: m.message_id.clone().unwrap_or_default(),
        body: m.body.clone().unwrap_or_default(),
        attributes: m
            .attributes
            .iter()
            .flatten()
            .map(|(k, v)| (k.as_str().to_string(), v.clone()))
            .collect(),
        message_attributes,
        md5_of_body: m.md5_of_body.clone(),
    }
}

/// `connect-task-bridge redrive ...`: the exit code.
pub async fn command(args: &[String], out: &mut impl Write, err: &mut impl Write) -> i32 {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        let _ = writeln!(out, "{}", super::USAGE);
        return 0;
    }
    let args = match Args::parse(args, |name| std::env::var(name).ok()) {
        Ok(args) => args,
        Err(e) => {
            let _ = writeln!(err, "redrive: {e}\n\n{}", super::USAGE);
            return 2;
        }
    };
    let sdk_config = load_sdk_config(CallPolicy::default(), None).await;
    let keys = match &args.envelope_secret_id {
        Some(id) => {
            let secrets = aws_sdk_secretsmanager::Client::new(&sdk_config);
            match EnvelopeKeys::fetch(id, &secrets).await {
                Ok(keys) => Some(keys),
                Err(e) => {
                    let _ = writeln!(err, "redrive: {}", RedriveError::Key(e));
                    return 2;
                }
            }
        }
        None => None,
    };
    let sqs = aws_sdk_sqs::Client::new(&sdk_config);
    let set_up = match Redrive::set_up(&args, sqs, keys).await {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(err, "redrive: {e}");
            return 2;
        }
    };
    let _ = writeln!(
        err,
        "redrive{}: from {} to {}{}{}",
        if args.dry_run { " (dry run)" } else { "" },
        set_up.from,
        set_up.to,
        args.rate.map_or(String::new(), |r| format!(", {r}/s")),
        if set_up.keys.is_some() {
            ", envelope key read"
        } else {
            ", no envelope key (raw messages stay)"
        },
    );
    // Ctrl-C: stop between two messages (never between a send and its delete), with the
    // summary; a second one stops at once (a duplicate at worst, never a loss).
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            flag.store(true, Ordering::Relaxed);
            eprintln!("\nredrive: stopping after this message (Ctrl-C again: at once)");
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    match redrive(&set_up, &args, std::io::stderr().is_terminal(), &stop).await {
        Ok(summary) => {
            let _ = write!(out, "{}", summary.render());
            if summary.stopped {
                130
            } else {
                i32::from(Summary::total(&summary.failed) > 0 || summary.broken.is_some())
            }
        }
        Err(e) => {
            let _ = writeln!(err, "redrive: {e}");
            2
        }
    }
}
