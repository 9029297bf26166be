//! `connect-standin [--port N] [--instance ID]... [--task-template FILE]... [--throttle 0.3]
//!  [--internal 0.1] [--latency-ms N] [--delay-ms N] [--hang 0.1 --hang-ms N] [--rate R --burst B]
//!  [--seed N]`
//!
//! Serves Connect's StartTaskContact, the lifecycle operations and the task-template operations
//! on 127.0.0.1 (an ephemeral port unless --port), prints `listening on http://ADDR` and the
//! `export` lines a shell needs to reach it (endpoint, keys, Region), and runs until
//! SIGINT/SIGTERM. Requests must be SigV4-signed with
//! the local credentials (AKIDLOCALSTANDIN0001 / local-secret-key-for-the-connect-stand-in,
//! region eu-west-1). Admin: GET /admin/tasks, GET /admin/stats, GET|PUT /admin/faults,
//! GET|PUT /admin/task-templates, POST /admin/reset.
//!
//! `--task-template FILE` seeds task templates: the file holds one in GetTaskTemplate's answer
//! shape (what `aws connect get-task-template --output json` prints), or a JSON list of them.

use connect_standin::connect::{ConnectStandIn, Options};

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse(&args) {
        Ok((options, port)) => {
            let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
            rt.block_on(run(options, port))
        }
        Err(message) => {
            eprintln!("{message}\n\nusage: connect-standin [--port N] [--instance ID]... [--task-template FILE]... [--throttle SHARE] [--internal SHARE] [--latency-ms N] [--delay-ms N] [--hang SHARE --hang-ms N] [--rate PER_SEC --burst N] [--seed N]");
            std::process::ExitCode::from(2)
        }
    }
}

fn parse(args: &[String]) -> Result<(Options, u16), String> {
    let mut options = Options::local();
    let mut port = 0u16;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        let num = |v: String| {
            v.parse::<f64>()
                .map_err(|_| format!("{flag}: '{v}' is not a number"))
        };
        let int = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: '{v}' is not a whole number"))
        };
        let f = &mut options.faults;
        match flag.as_str() {
            "--port" => port = int(value()?)? as u16,
            "--instance" => options.instances.push(value()?),
            "--task-template" => options.task_templates.extend(templates_in(&value()?)?),
            "--throttle" => f.throttle = num(value()?)?,
            "--internal" => f.internal = num(value()?)?,
            "--latency-ms" => f.latency_ms = int(value()?)?,
            "--delay-ms" => f.delay_ms = int(value()?)?,
            "--hang" => f.hang = num(value()?)?,
            "--hang-ms" => f.hang_ms = int(value()?)?,
            "--rate" => f.rate = Some(num(value()?)?),
            "--burst" => f.burst = Some(int(value()?)? as u32),
            "--seed" => options.seed = int(value()?)?,
            "-h" | "--help" => {
                return Err("connect-standin: a local Amazon Connect StartTaskContact".into())
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok((options, port))
}

/// The task templates a `--task-template` file holds: one object, or a list of them.
fn templates_in(path: &str) -> Result<Vec<serde_json::Value>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("--task-template {path}: {e}"))?;
    match serde_json::from_str(&text) {
        Ok(serde_json::Value::Array(templates)) => Ok(templates),
        Ok(template @ serde_json::Value::Object(_)) => Ok(vec![template]),
        Ok(_) => Err(format!(
            "--task-template {path}: neither a task template nor a list of them"
        )),
        Err(e) => Err(format!("--task-template {path}: not JSON ({e})")),
    }
}

async fn run(options: Options, port: u16) -> std::process::ExitCode {
    let standin = match ConnectStandIn::start(options, port).await {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("cannot listen: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("listening on {}", standin.url());
    // What a shell needs to point the function, `cargo lambda` or the AWS CLI at it: the only
    // keys and Region the stand-in's SigV4 check accepts (docs/standin.md, the local loop).
    println!("export AWS_ENDPOINT_URL_CONNECT={}", standin.url());
    println!(
        "export AWS_ACCESS_KEY_ID={}",
        connect_standin::LOCAL_ACCESS_KEY
    );
    println!(
        "export AWS_SECRET_ACCESS_KEY={}",
        connect_standin::LOCAL_SECRET_KEY
    );
    println!("export AWS_REGION={}", connect_standin::LOCAL_REGION);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    let stats = standin.stats();
    standin.stop().await;
    eprintln!(
        "stopped: {} requests, {} tasks created, {} replayed by client token",
        stats.requests, stats.created, stats.replayed
    );
    std::process::ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_template_files_seed_templates() {
        let dir = std::env::temp_dir().join(format!("connect-standin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let one = dir.join("one.json");
        let two = dir.join("two.json");
        let bad = dir.join("bad.json");
        std::fs::write(&one, r#"{"Id": "a", "InstanceId": "i", "Name": "A"}"#).unwrap();
        std::fs::write(&two, r#"[{"Id": "b"}, {"Id": "c"}]"#).unwrap();
        std::fs::write(&bad, "42").unwrap();
        let arg = |p: &std::path::Path| p.to_str().unwrap().to_string();
        let args = [
            "--task-template".to_string(),
            arg(&one),
            "--task-template".to_string(),
            arg(&two),
        ];
        let (options, _) = parse(&args).unwrap();
        let ids: Vec<&str> = options
            .task_templates
            .iter()
            .map(|t| t["Id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["a", "b", "c"]);
        let err = parse(&["--task-template".to_string(), arg(&bad)]).unwrap_err();
        assert!(err.contains("neither a task template nor a list"), "{err}");
        let err = parse(&["--task-template".to_string(), arg(&dir.join("none"))]).unwrap_err();
        assert!(err.starts_with("--task-template"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
