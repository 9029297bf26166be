//! `bench --function BINARY [--python PYTHON --peer-dir DIR] [--criterion DIR] [--starts N]
//!        [--events N] [--moto MOTO_SERVER]`
//!
//! The end-to-end benchmarks of `make bench`, printed as one table beside the peer (a Python
//! handler with boto3 under awslambdaric, the same job against the same stand-in and runtime
//! API): cold start to the first poll and to the first answer (median of N starts), an SQS
//! batch of 10 with 50 ms added to every Connect call, peak RSS over N events, package size;
//! plus the per-event CPU criterion measured in process. With `--moto`, a second table: what the
//! pace costs (docs/bursts.md): the first event of a fresh environment paced at Connect's
//! default quota, without a pace table and with one in moto, over an unpaced one, and one
//! booking's round trip (the conditional UpdateItem the shared pace sends) to moto.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use connect_standin::connect::{ConnectStandIn, Faults, Options};
use connect_standin::harness::{peak_rss_mib, worst_case_sqs_batch, LocalFunction};
use connect_standin::runtime_api::Invocation;
use serde_json::{json, Value};

const INSTANCE: &str = "11111111-2222-3333-4444-555555555555";
const FLOW: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const TIMEOUT: Duration = Duration::from_secs(30);

struct Args {
    function: PathBuf,
    python: Option<PathBuf>,
    peer_dir: PathBuf,
    criterion: PathBuf,
    starts: usize,
    events: usize,
    moto: Option<PathBuf>,
}

/// How to start one implementation.
struct Subject {
    name: &'static str,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        function: PathBuf::new(),
        python: None,
        peer_dir: PathBuf::from("bench/peer"),
        criterion: PathBuf::from("target/criterion"),
        starts: 20,
        events: 1000,
        moto: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let n = || {
            v.parse::<usize>()
                .map_err(|_| format!("{flag}: not a number"))
        };
        match flag.as_str() {
            "--function" => a.function = v.clone().into(),
            "--python" => a.python = Some(v.clone().into()),
            "--peer-dir" => a.peer_dir = v.clone().into(),
            "--criterion" => a.criterion = v.clone().into(),
            "--starts" => a.starts = n()?,
            "--events" => a.events = n()?,
            "--moto" => a.moto = Some(v.clone().into()),
            other => return Err(format!("unknown option {other}")),
        }
    }
    if a.function.as_os_str().is_empty() {
        return Err("--function is required".into());
    }
    Ok(a)
}

fn common_env() -> Vec<(String, String)> {
    vec![
        ("CONNECT_INSTANCE_ID".into(), INSTANCE.into()),
        ("CONNECT_CONTACT_FLOW_ID".into(), FLOW.into()),
        ("WEBHOOK_AUTH".into(), "none".into()),
        // Latency and CPU of the function, not the pace (`make test-surge` measures that).
        ("CONNECT_REQUESTS_PER_SECOND".into(), "1000".into()),
        ("CONNECT_BURST".into(), "1000".into()),
    ]
}

fn eventbridge(n: usize) -> Value {
    json!({
        "version": "0", "id": format!("bench-{n}-{}", std::process::id()), "detail-type": "OrderFailed",
        "source": "shop.orders", "account": "111122223333", "time": "2026-11-24T10:00:00Z",
        "region": "eu-west-1", "resources": [],
        "detail": {"orderId": format!("ord-{n}"), "amount": 149.9, "reason": "Payment declined",
                   "notes": "lorem ipsum dolor sit amet ".repeat(50)}
    })
}

fn sqs_batch(n: usize) -> Value {
    let records: Vec<Value> = (0..10)
        .map(|i| {
            json!({
                "messageId": format!("bench-{n}-{i}-{}", std::process::id()), "receiptHandle": "rh",
                "body": json!({"customer": {"name": "Jan"}, "message": "lorem ipsum ".repeat(100)}).to_string(),
                "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
                "md5OfBody": "x", "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:eu-west-1:111122223333:bench", "awsRegion": "eu-west-1"
            })
        })
        .collect();
    json!({ "Records": records })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

async fn start(s: &Subject, connect: &ConnectStandIn) -> LocalFunction {
    LocalFunction::start_command(&s.program, &s.args, &connect.url(), &s.env)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", s.name))
}

fn expect_ok(name: &str, r: Result<Invocation, connect_standin::runtime_api::InvokeError>) {
    match r {
        Ok(Invocation::Response(v))
            if v["batchItemFailures"].as_array().is_none_or(Vec::is_empty) => {}
        other => panic!("{name}: {other:?}"),
    }
}

/// (ms to the first poll, ms to the first answer), medians over `starts` cold starts.
async fn cold_start(s: &Subject, connect: &ConnectStandIn, starts: usize) -> (f64, f64) {
    let (mut init, mut first) = (Vec::new(), Vec::new());
    for i in 0..starts {
        let t0 = Instant::now();
        let mut f = start(s, connect).await;
        while f.runtime.first_poll().is_none() {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        init.push(f.runtime.first_poll().unwrap().as_secs_f64() * 1000.0);
        expect_ok(s.name, f.invoke(eventbridge(1_000_000 + i), TIMEOUT).await);
        first.push(t0.elapsed().as_secs_f64() * 1000.0);
        f.stop().await;
    }
    (median(init), median(first))
}

/// Median ms per SQS batch of 10 with 50 ms added to each Connect call.
async fn batch_latency(s: &Subject, connect: &ConnectStandIn, batches: usize) -> f64 {
    connect.set_faults(Faults {
        delay_ms: 50,
        ..Faults::default()
    });
    let mut f = start(s, connect).await;
    expect_ok(s.name, f.invoke(sqs_batch(0), TIMEOUT).await); // warm
    let mut times = Vec::new();
    for n in 1..=batches {
        let t0 = Instant::now();
        expect_ok(s.name, f.invoke(sqs_batch(n), TIMEOUT).await);
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    f.stop().await;
    connect.set_faults(Faults::default());
    median(times)
}

/// Peak RSS (MiB) of the process after `events` invocations, and their mean wall time (ms).
async fn memory(s: &Subject, connect: &ConnectStandIn, events: usize) -> (f64, f64) {
    let mut f = start(s, connect).await;
    let t0 = Instant::now();
    for n in 0..events {
        expect_ok(s.name, f.invoke(eventbridge(2_000_000 + n), TIMEOUT).await);
    }
    let per_event = t0.elapsed().as_secs_f64() * 1000.0 / events as f64;
    let rss = peak_rss_mib(f.pid().expect("running")).unwrap_or(f64::NAN);
    f.stop().await;
    (rss, per_event)
}

/// Peak RSS (MiB) of a fresh process after the worst SQS batch, with the built-in mapping.
async fn worst_case_rss(s: &Subject, connect: &ConnectStandIn) -> f64 {
    let mut f = start(s, connect).await;
    expect_ok(s.name, f.invoke(worst_case_sqs_batch(), TIMEOUT).await);
    let rss = peak_rss_mib(f.pid().expect("running")).unwrap_or(f64::NAN);
    f.stop().await;
    rss
}

/// Criterion's median estimates (µs) of the in-process per-event pipeline: the median, because on
/// a shared machine a few descheduled samples drag the mean far from what the code costs.
fn criterion_rows(dir: &Path) -> Vec<(String, f64)> {
    let mut rows = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir.join("per_event")) else {
        return rows;
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n != "report")
        .collect();
    names.sort();
    for name in names {
        let path = dir.join("per_event").join(&name).join("new/estimates.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if let Some(ns) = v["median"]["point_estimate"].as_f64() {
            let per_record = if name == "sqs_batch_10" {
                ns / 10.0
            } else {
                ns
            };
            rows.push((name, per_record / 1000.0));
        }
    }
    rows
}

#[tokio::main]
async fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let ours = Subject {
        name: "connect-task-bridge",
        program: args.function.clone(),
        args: vec![],
        env: common_env(),
    };
    let peer = args.python.as_ref().map(|python| {
        let dir = std::fs::canonicalize(&args.peer_dir).expect("the peer directory exists");
        let mut env = common_env();
        env.push(("PYTHONPATH".into(), dir.display().to_string()));
        env.push(("LAMBDA_TASK_ROOT".into(), dir.display().to_string()));
        env.push(("PYTHONDONTWRITEBYTECODE".into(), "1".into()));
        Subject {
            name: "python-boto3",
            program: python.clone(),
            args: vec!["-m".into(), "awslambdaric".into(), "handler.handler".into()],
            env,
        }
    });
    let connect = ConnectStandIn::start(Options::local(), 0).await.unwrap();

    let subjects: Vec<&Subject> = std::iter::once(&ours).chain(peer.as_ref()).collect();
    let mut measured: Vec<[f64; 5]> = Vec::new();
    for s in &subjects {
        eprintln!("measuring {} ...", s.name);
        let (init, first) = cold_start(s, &connect, args.starts).await;
        let batch = batch_latency(s, &connect, 20).await;
        let (rss, per_event) = memory(s, &connect, args.events).await;
        measured.push([init, first, batch, per_event, rss]);
    }
    let labels = [
        format!(
            "cold start: exec → first poll, median of {} (ms)",
            args.starts
        ),
        "cold start: exec → first answer, median (ms)".to_string(),
        "SQS batch of 10, +50 ms per Connect call: median wall time (ms)".to_string(),
        format!("warm EventBridge event, mean of {} (ms)", args.events),
        format!("peak RSS over {} events (MiB)", args.events),
    ];
    let size = std::fs::metadata(&args.function)
        .map(|m| m.len())
        .unwrap_or(0);

    println!(
        "\n| measure | connect-task-bridge | Python + boto3 (awslambdaric) | ratio (ours / peer) |"
    );
    println!("|---|---|---|---|");
    for (i, label) in labels.iter().enumerate() {
        let ours = measured[0][i];
        match measured.get(1) {
            Some(peer) => println!(
                "| {label} | {ours:.1} | {:.1} | {:.3} |",
                peer[i],
                ours / peer[i]
            ),
            None => println!("| {label} | {ours:.1} | – | – |"),
        }
    }
    let worst = worst_case_rss(&ours, &connect).await;
    println!(
        "| peak RSS, worst input: SQS batch of 10 × 1 MiB nested bodies, built-in mapping (MiB; the function has 128) | {worst:.1} | – | – |"
    );
    println!(
        "| release binary size (MiB) | {:.1} | – | – |",
        size as f64 / 1024.0 / 1024.0
    );
    for (name, us) in criterion_rows(&args.criterion) {
        println!("| per-record CPU in process, {name}, median (µs) | {us:.1} | – | – |");
    }
    if let Some(moto) = &args.moto {
        pace_cost(&ours, &connect, moto, args.starts).await;
    }
    connect.stop().await;
}

/// Median ms from exec to the first answer over `starts` cold starts of `env`, each with an
/// event of its own (`base` apart from other runs: no client token is replayed).
async fn first_answer(
    s: &Subject,
    env: &[(String, String)],
    connect: &ConnectStandIn,
    starts: usize,
    base: usize,
) -> f64 {
    let subject = Subject {
        name: s.name,
        program: s.program.clone(),
        args: s.args.clone(),
        env: env.to_vec(),
    };
    let mut first = Vec::new();
    for i in 0..starts {
        let t0 = Instant::now();
        let mut f = start(&subject, connect).await;
        expect_ok(s.name, f.invoke(eventbridge(base + i), TIMEOUT).await);
        first.push(t0.elapsed().as_secs_f64() * 1000.0);
        f.stop().await;
    }
    median(first)
}

/// What the pace costs: the first event of a fresh environment with and without a pace, and
/// one booking against moto's DynamoDB.
async fn pace_cost(ours: &Subject, connect: &ConnectStandIn, moto_server: &Path, starts: usize) {
    use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
    let moto = connect_standin::moto::Moto::start(moto_server).await;
    moto.create_task_table("bench-pace").await;
    let with = |extra: &[(&str, &str)]| -> Vec<(String, String)> {
        let mut env = common_env();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    };
    // Connect's default quota: the first event finds a token.
    let paced = with(&[("CONNECT_REQUESTS_PER_SECOND", "2"), ("CONNECT_BURST", "5")]);
    let shared = with(&[
        ("CONNECT_REQUESTS_PER_SECOND", "2"),
        ("CONNECT_BURST", "5"),
        ("PACE_TABLE", "bench-pace"),
        ("AWS_ENDPOINT_URL_DYNAMODB", &moto.url),
    ]);
    eprintln!("measuring the pace ...");
    let unpaced_ms = first_answer(ours, &common_env(), connect, starts, 2_000_000).await;
    let paced_ms = first_answer(ours, &paced, connect, starts, 3_000_000).await;
    // Each start books from the shared schedule: 2/s, so the starts are spread past its burst.
    let mut shared_runs = Vec::new();
    for i in 0..starts {
        shared_runs.push(first_answer(ours, &shared, connect, 1, 4_000_000 + i).await);
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    let shared_ms = median(shared_runs);
    // One booking as the shared pace sends it (the busy variant), 200 times.
    let ddb = moto.dynamodb_client();
    let mut rtt = Vec::new();
    for _ in 0..200 {
        let t0 = Instant::now();
        let _ = ddb
            .update_item()
            .table_name("bench-pace")
            .key("pk", AttributeValue::S("pace#Bench".into()))
            .update_expression("SET tat = if_not_exists(tat, :zero) + :i")
            .condition_expression("attribute_not_exists(tat) OR tat BETWEEN :zero AND :limit")
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .expression_attribute_values(":i", AttributeValue::N("500000".into()))
            .expression_attribute_values(":limit", AttributeValue::N(i64::MAX.to_string()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .expect("moto books");
        rtt.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    let booking = median(rtt);
    println!("\n| the pace (median of {starts} cold starts; moto's DynamoDB on loopback) | ms | over unpaced (ms) |");
    println!("|---|---|---|");
    println!("| first event of a fresh environment, unpaced (1000/s) | {unpaced_ms:.1} | – |");
    println!(
        "| first event of a fresh environment, paced at 2/s burst 5, no pace table | {paced_ms:.1} | {:+.1} |",
        paced_ms - unpaced_ms
    );
    println!(
        "| first event of a fresh environment, paced at 2/s burst 5, pace table in moto | {shared_ms:.1} | {:+.1} |",
        shared_ms - unpaced_ms
    );
    println!("| one booking (conditional UpdateItem, ALL_NEW) against moto, median of 200 | {booking:.2} | – |");
}
