//! The other way to observe invokes without code changes: a Runtime API proxy between the
//! runtime and Lambda, built on the `aws-lambda-runtime-proxy` crate, passing every request
//! through unchanged. `bench-proxy COMMAND…` starts COMMAND with `AWS_LAMBDA_RUNTIME_API`
//! pointing at the proxy.

use aws_lambda_runtime_proxy::Proxy;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let port = std::env::var("AWS_LAMBDA_RUNTIME_PROXY_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let proxy = match Proxy::default().port(port).spawn().await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("bench-proxy: {e}");
            std::process::exit(1);
        }
    };
    proxy.server.passthrough().await;
}
