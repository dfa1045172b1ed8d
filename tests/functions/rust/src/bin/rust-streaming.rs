//! A streaming function on the real `lambda_runtime` crate: chunked results, and a failure
//! after the first bytes reported as `Lambda-Runtime-Function-Error-*` trailers
//! (`Runtime.StreamError`).

use lambda_runtime::streaming::{Body, Response, channel};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;

async fn handler(event: LambdaEvent<Value>) -> Result<Response<Body>, Diagnostic> {
    let p = event.payload;
    let (mut tx, rx) = channel();
    tokio::spawn(async move {
        if tx.send_data("first part;".into()).await.is_err() {
            return;
        }
        match p["action"].as_str().unwrap_or("ok") {
            "fail" => tx.send_error(lambda_runtime_api_client::Error::new("failing mid-stream")),
            action => {
                let size = if action == "big" {
                    p["bytes"].as_u64().unwrap_or(300_000)
                } else {
                    100
                };
                let _ = tx.send_data("y".repeat(size as usize).into()).await;
            }
        }
    });
    Ok(Response::from(rx))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(handler)).await
}
