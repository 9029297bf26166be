//! moto's server on a loopback port: the AWS services the function uses besides Connect
//! (Secrets Manager, SQS, DynamoDB, Step Functions, EventBridge) as the tests, the demo and the
//! surge simulation need them. Found at MOTO_SERVER, else in the venv `make test` prepares;
//! stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

pub struct Moto {
    child: Child,
    pub url: String,
    recording: PathBuf,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.recording);
    }
}

/// The moto_server executable: MOTO_SERVER, else `<root>/.venv/bin/moto_server`.
pub fn moto_server(root: &Path) -> PathBuf {
    let path = std::env::var_os("MOTO_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv/bin/moto_server"));
    assert!(
        path.exists(),
        "{} is missing: run `make test`, which installs moto[server] into .venv, or set MOTO_SERVER",
        path.display()
    );
    path
}

impl Moto {
    /// Starts `server` on an ephemeral loopback port and waits until it listens.
    pub async fn start(server: &Path) -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // Each server records into a file of its own (tests run side by side).
        let recording = std::env::temp_dir().join(format!(
            "moto-recording-{}-{port}.jsonl",
            std::process::id()
        ));
        let child = Command::new(server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_RECORDER_FILEPATH", &recording)
            .env("MOTO_ENABLE_RECORDING", "true")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        // Owned by the guard from here on, so a failed start still stops the process.
        let moto = Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
            recording,
        };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return moto;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("moto_server did not listen on {}", moto.url);
    }

    /// The server's process id: a test freezes it (SIGSTOP) to make a table that hangs rather
    /// than refuses.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The requests the server has received (moto's recorder, on from the start): the
    /// `X-Amz-Target` (or the URL) and the JSON body of each.
    pub fn recorded(&self) -> Vec<(String, serde_json::Value)> {
        let text = std::fs::read_to_string(&self.recording).unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .map(|entry| {
                let headers = &entry["headers"];
                let target = headers["X-Amz-Target"]
                    .as_str()
                    .or(headers["x-amz-target"].as_str())
                    .or(entry["url"].as_str())
                    .unwrap_or_default()
                    .to_string();
                let body = entry["body"].as_str().unwrap_or_default();
                let body = if entry["body_encoded"] == true {
                    BASE64
                        .decode(body)
                        .ok()
                        .and_then(|b| String::from_utf8(b).ok())
                } else {
                    Some(body.to_string())
                };
                let body = body
                    .and_then(|b| serde_json::from_str(&b).ok())
                    .unwrap_or(serde_json::Value::Null);
                (target, body)
            })
            .collect()
    }

    /// Creates the task table as the template does: a string partition key `pk`, nothing else.
    pub async fn create_task_table(&self, name: &str) {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        self.dynamodb_client()
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("pk")
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .expect("a complete attribute definition"),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name("pk")
                    .key_type(KeyType::Hash)
                    .build()
                    .expect("a complete key schema"),
            )
            .send()
            .await
            .expect("moto creates the table");
    }

    /// A DynamoDB client for this server, with the local credentials and region.
    pub fn dynamodb_client(&self) -> aws_sdk_dynamodb::Client {
        let creds = aws_sdk_dynamodb::config::Credentials::new(
            crate::LOCAL_ACCESS_KEY,
            crate::LOCAL_SECRET_KEY,
            None,
            None,
            "local",
        );
        let conf = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new(crate::LOCAL_REGION))
            .credentials_provider(creds)
            .endpoint_url(&self.url)
            .build();
        aws_sdk_dynamodb::Client::from_conf(conf)
    }

    /// A Secrets Manager client for this server, with the local credentials and region.
    pub fn secrets_client(&self) -> aws_sdk_secretsmanager::Client {
        let creds = aws_sdk_secretsmanager::config::Credentials::new(
            crate::LOCAL_ACCESS_KEY,
            crate::LOCAL_SECRET_KEY,
            None,
            None,
            "local",
        );
        let conf = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
            .region(aws_sdk_secretsmanager::config::Region::new(
                crate::LOCAL_REGION,
            ))
            .credentials_provider(creds)
            .endpoint_url(&self.url)
            .build();
        aws_sdk_secretsmanager::Client::from_conf(conf)
    }

    /// An SQS client for this server, with the local credentials and region.
    pub fn sqs_client(&self) -> aws_sdk_sqs::Client {
        let creds = aws_sdk_sqs::config::Credentials::new(
            crate::LOCAL_ACCESS_KEY,
            crate::LOCAL_SECRET_KEY,
            None,
            None,
            "local",
        );
        let conf = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(aws_sdk_sqs::config::Region::new(crate::LOCAL_REGION))
            .credentials_provider(creds)
            .endpoint_url(&self.url)
            .build();
        aws_sdk_sqs::Client::from_conf(conf)
    }
}
