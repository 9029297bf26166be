//! Everything connect-task-bridge needs to run for real without AWS: a stand-in for Amazon
//! Connect's StartTaskContact and task templates (`connect`), checked against the embedded
//! model (`model`) and Connect's documented rules (`rules`) and guarded by SigV4 (`sigv4`); a
//! local Lambda Runtime API (`runtime_api`); and the harness that runs the function binary
//! under both (`harness`).
//! A development and test tool: it is never part of the Lambda package.

pub mod connect;
pub mod harness;
pub mod lifecycle;
pub mod model;
pub mod moto;
pub mod rules;
pub mod runtime_api;
pub mod sigv4;
pub mod state;
pub mod surge;

/// Dummy credentials and region the stand-in accepts and the harness gives the function.
pub const LOCAL_ACCESS_KEY: &str = "AKIDLOCALSTANDIN0001";
pub const LOCAL_SECRET_KEY: &str = "local-secret-key-for-the-connect-stand-in";
pub const LOCAL_REGION: &str = "eu-west-1";
/// The account the local services pretend to be.
pub const ACCOUNT: &str = "123456789012";

/// Serves `app` on `listener` in a task of its own until the sender fires or is dropped; the
/// handle ends once in-flight requests are answered.
pub(crate) fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let join = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    (stop, join)
}
