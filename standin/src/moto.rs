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
    /// Starts `server` on an ephemeral loopback port and waits until it answers as moto. The
    /// port is free when picked but not held: another test's server may take it before moto
    /// binds it (CI saw a CreateQueue answered 404 with an empty body by such a neighbour), so
    /// a listener is believed only when moto's own API answers, and a moto that exited (its
    /// port taken) is started again on another port.
    pub async fn start(server: &Path) -> Moto {
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            if let Some(moto) = Self::start_on(server, port).await {
                return moto;
            }
        }
        panic!("moto_server did not start on five ports in a row");
    }

    /// moto on `port`, or None if it exited before answering (the port was taken).
    async fn start_on(server: &Path, port: u16) -> Option<Moto> {
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
        let mut moto = Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
            recording,
        };
        for _ in 0..100 {
            if moto.child.try_wait().ok().flatten().is_some() {
                return None;
            }
            if answers_as_moto(port).await {
                return Some(moto);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("moto_server did not answer on {}", moto.url);
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

/// Whether the server on `port` is moto: its own API (`/moto-api/data.json`) answers 200.
async fn answers_as_moto(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let request =
        "GET /moto-api/data.json HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    match tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut head)).await {
        Ok(Ok(_)) => head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.0 200"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port another server took between the pick and moto's bind: its answers are not
    /// moto's. Before, any listener on the port was taken for moto, and the test that started
    /// it sent its requests to the neighbour.
    #[tokio::test]
    async fn a_neighbour_on_the_port_is_not_taken_for_moto() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let neighbour = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = neighbour.local_addr().unwrap().port();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            while let Ok((mut stream, _)) = neighbour.accept().await {
                let _ = stream
                    .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                    .await;
            }
        });
        assert!(!answers_as_moto(port).await);
        assert!(Moto::start_on(&moto_server(&root), port).await.is_none());
        // On a port of its own it answers as moto.
        let moto = Moto::start(&moto_server(&root)).await;
        let port: u16 = moto.url.rsplit(':').next().unwrap().parse().unwrap();
        assert!(answers_as_moto(port).await);
    }
}
