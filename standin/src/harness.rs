//! The function binary run as Lambda runs it: a process with the Lambda environment, polling a
//! local Runtime API, calling the Connect stand-in through `AWS_ENDPOINT_URL_CONNECT` with dummy
//! credentials. Used by the integration tests, the demo and the benchmarks; everything it starts
//! it stops (the process is killed on drop).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::connect::ConnectStandIn;
use crate::runtime_api::{Invocation, InvokeError, RuntimeApi};
use crate::{LOCAL_ACCESS_KEY, LOCAL_REGION, LOCAL_SECRET_KEY};

/// One function process and the Runtime API it polls.
pub struct LocalFunction {
    pub runtime: RuntimeApi,
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
    exit: Option<String>,
}

impl LocalFunction {
    /// Starts `binary` as a cold start would, talking to `connect_url`. `env` adds the
    /// function's own configuration (CONNECT_INSTANCE_ID, TASK_MAPPING_FILE, ...).
    pub async fn start(
        binary: &Path,
        connect_url: &str,
        env: &[(String, String)],
    ) -> std::io::Result<LocalFunction> {
        Self::start_command(binary, &[], connect_url, env).await
    }

    /// As `start`, for a runtime that needs arguments (a Python runtime interface client).
    pub async fn start_command(
        program: &Path,
        args: &[String],
        connect_url: &str,
        env: &[(String, String)],
    ) -> std::io::Result<LocalFunction> {
        let runtime = RuntimeApi::start().await?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", runtime.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", "connect-task-bridge")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                "/aws/lambda/connect-task-bridge",
            )
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
            .env("AWS_REGION", LOCAL_REGION)
            .env("AWS_DEFAULT_REGION", LOCAL_REGION)
            .env("AWS_ACCESS_KEY_ID", LOCAL_ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", LOCAL_SECRET_KEY)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ENDPOINT_URL_CONNECT", connect_url)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn()?;
        let logs = Arc::new(Mutex::new(Vec::new()));
        let echo = std::env::var_os("CTB_ECHO_LOGS").is_some();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ]
        .into_iter()
        .flatten()
        {
            let logs = Arc::clone(&logs);
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if echo {
                        eprintln!("[function] {line}");
                    }
                    logs.lock().unwrap().push(line);
                }
            });
        }
        Ok(LocalFunction {
            runtime,
            child,
            logs,
            exit: None,
        })
    }

    /// One invocation with `timeout` as the function's timeout.
    pub async fn invoke(
        &mut self,
        payload: Value,
        timeout: Duration,
    ) -> Result<Invocation, InvokeError> {
        if let Some(exit) = &self.exit {
            return Err(InvokeError::Exited(exit.clone()));
        }
        let result = tokio::select! {
            r = self.runtime.invoke(payload, timeout) => r,
            status = self.child.wait() => {
                let status = status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                self.exit = Some(status.clone());
                Err(InvokeError::Exited(status))
            }
        };
        if matches!(result, Err(InvokeError::TimedOut)) {
            // Lambda ends a timed-out sandbox; the next invocation is a cold start.
            let _ = self.child.kill().await;
            self.exit = Some("killed after a timeout".into());
        }
        result
    }

    /// See `RuntimeApi::report_deadline`.
    pub fn report_deadline(&self, deadline: Option<std::time::SystemTime>) {
        self.runtime.report_deadline(deadline);
    }

    /// The process id, while it runs (for reading its memory use).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Every line the process wrote to stdout and stderr so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// The log lines that parse as JSON objects.
    pub fn json_logs(&self) -> Vec<Value> {
        self.logs()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(Value::is_object)
            .collect()
    }

    /// Waits for the process to exit (a refused cold start) and returns its status.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<String> {
        if let Some(exit) = &self.exit {
            return Some(exit.clone());
        }
        let status = tokio::time::timeout(timeout, self.child.wait())
            .await
            .ok()?;
        let status = status
            .map(|s| s.to_string())
            .unwrap_or_else(|e| e.to_string());
        self.exit = Some(status.clone());
        Some(status)
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
        // Let the log readers drain what the process wrote before it was stopped.
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.runtime.stop().await;
    }
}

/// The stand-in plus one function process: the whole local path.
pub struct LocalStack {
    pub connect: ConnectStandIn,
    pub function: LocalFunction,
    binary: PathBuf,
    env: Vec<(String, String)>,
}

impl LocalStack {
    pub async fn start(
        binary: &Path,
        connect: ConnectStandIn,
        env: &[(String, String)],
    ) -> std::io::Result<LocalStack> {
        let function = LocalFunction::start(binary, &connect.url(), env).await?;
        Ok(LocalStack {
            connect,
            function,
            binary: binary.to_path_buf(),
            env: env.to_vec(),
        })
    }

    /// Replaces the function process with a new one: the next invocation is a cold start.
    pub async fn cold_start(&mut self) -> std::io::Result<()> {
        let fresh = LocalFunction::start(&self.binary, &self.connect.url(), &self.env).await?;
        let old = std::mem::replace(&mut self.function, fresh);
        old.stop().await;
        Ok(())
    }

    pub async fn invoke(
        &mut self,
        payload: Value,
        timeout: Duration,
    ) -> Result<Invocation, InvokeError> {
        if self.function.exit.as_deref() == Some("killed after a timeout") {
            self.cold_start()
                .await
                .map_err(|e| InvokeError::Exited(e.to_string()))?;
        }
        self.function.invoke(payload, timeout).await
    }

    pub async fn stop(self) {
        self.function.stop().await;
        self.connect.stop().await;
    }
}

/// The worst SQS batch for the function's memory that SQS can deliver: ten messages of ~1 MiB,
/// each JSON nested 100 deep around half a million one-byte numbers. The built-in mapping
/// pretty-prints bodies into the description, which indents every leaf by 200 spaces (a 100-fold
/// growth), and each body parses into half a million values. `make bench` reports the peak RSS
/// it causes; tests/security.rs holds it under the function's 128 MB.
pub fn worst_case_sqs_batch() -> Value {
    let mut leaves = String::with_capacity(1 << 20);
    leaves.push('[');
    while leaves.len() < 1_000_000 {
        leaves.push_str("0,");
    }
    leaves.push_str("0]");
    let depth = 100;
    let body = format!("{}{leaves}{}", "[".repeat(depth), "]".repeat(depth));
    let records: Vec<Value> = (0..10)
        .map(|i| {
            serde_json::json!({
                "messageId": format!("worst-{i}"),
                "receiptHandle": format!("handle-{i}"),
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1795500000000"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:eu-west-1:111122223333:bulk",
                "awsRegion": "eu-west-1"
            })
        })
        .collect();
    serde_json::json!({ "Records": records })
}

/// Peak resident memory (VmHWM) of a process, in MiB.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())?;
    Some(kib / 1024.0)
}
