//! The HTTPS client's roots of trust (`TLS_ROOTS`), through the real binary (`send`) against a
//! local TLS endpoint whose certificate was issued by a test CA (tests/fixtures/tls). With the
//! default (Amazon Trust Services' roots only) the handshake is refused and no request leaves the
//! function; with `TLS_ROOTS=system` and `SSL_CERT_FILE` naming the test CA, the handshake
//! completes and the request arrives.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::{root, FLOW, INSTANCE};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");

/// Counts completed handshakes and answers each request with a Connect error that names this
/// endpoint, so the client's output shows the request got through.
struct TlsEndpoint {
    url: String,
    handshakes: Arc<AtomicUsize>,
}

async fn tls_endpoint() -> TlsEndpoint {
    let certs = CertificateDer::pem_file_iter(format!("{FIXTURES}/localhost.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(format!("{FIXTURES}/localhost.key")).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let handshakes = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&handshakes);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                let mut buf = vec![0u8; 64 * 1024];
                let _ = tls.read(&mut buf).await;
                let body = r#"{"message":"answered by the TLS test endpoint"}"#;
                let answer = format!(
                    "HTTP/1.1 400 Bad Request\r\nX-Amzn-Errortype: InvalidRequestException\r\n\
                     Content-Type: application/json\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    TlsEndpoint { url, handshakes }
}

/// `connect-task-bridge send` of the direct sample against `url`, with extra environment.
fn send(url: &str, env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_connect-task-bridge"));
    cmd.args([
        "send",
        "events/direct-cli-skeleton.json",
        "--endpoint-url",
        url,
    ])
    .current_dir(root())
    .env_clear()
    .env("PATH", std::env::var("PATH").unwrap_or_default())
    .env("HOME", std::env::temp_dir())
    .env("AWS_ACCESS_KEY_ID", connect_standin::LOCAL_ACCESS_KEY)
    .env("AWS_SECRET_ACCESS_KEY", connect_standin::LOCAL_SECRET_KEY)
    .env("AWS_REGION", connect_standin::LOCAL_REGION)
    .env("CONNECT_INSTANCE_ID", INSTANCE)
    .env("CONNECT_CONTACT_FLOW_ID", FLOW)
    // One attempt: the refusal is not worth retrying, and the test should not wait for backoff.
    .env("CONNECT_MAX_ATTEMPTS", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread")]
async fn by_default_only_amazon_roots_are_trusted() {
    let endpoint = tls_endpoint().await;
    let url = endpoint.url.clone();
    // Even with the test CA in the platform store, the default ignores the platform store.
    let ca = format!("{FIXTURES}/ca.pem");
    let (code, text) =
        tokio::task::spawn_blocking(move || send(&url, &[("SSL_CERT_FILE", ca.as_str())]))
            .await
            .unwrap();
    assert_eq!(code, 1, "{text}");
    assert_eq!(endpoint.handshakes.load(Ordering::SeqCst), 0, "{text}");
    assert!(
        !text.contains("answered by the TLS test endpoint"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn system_roots_trust_the_platform_store() {
    let endpoint = tls_endpoint().await;
    let url = endpoint.url.clone();
    let ca = format!("{FIXTURES}/ca.pem");
    let (code, text) = tokio::task::spawn_blocking(move || {
        send(
            &url,
            &[
                ("TLS_ROOTS", "system"),
                ("SSL_CERT_FILE", ca.as_str()),
                ("SSL_CERT_DIR", "/nonexistent"),
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 1, "{text}");
    assert!(endpoint.handshakes.load(Ordering::SeqCst) >= 1, "{text}");
    assert!(text.contains("InvalidRequestException"), "{text}");
}
