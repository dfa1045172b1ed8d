//! A buffered function on the real `lambda_runtime` crate (hyper on tokio: edge-triggered
//! epoll). The test event protocol is the one in tests/functions/python.

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::time::Duration;

/// The connection the "calls" action keeps, as a function keeps its SDK client's.
static KEPT: Mutex<Option<TcpStream>> = Mutex::new(None);

/// `calls` request/answer turns of 64 bytes each to an echo server on 127.0.0.1:`port`, on one
/// connection kept across invokes (blocking I/O: `make bench` counts its instructions).
fn calls(port: u16, calls: u64) -> std::io::Result<u64> {
    let mut kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
    if kept.is_none() {
        *kept = Some(TcpStream::connect(("127.0.0.1", port))?);
    }
    let Some(conn) = kept.as_mut() else {
        return Ok(0);
    };
    let mut answer = [0u8; 64];
    for _ in 0..calls {
        conn.write_all(&[b'x'; 64])?;
        conn.read_exact(&mut answer)?;
    }
    Ok(calls)
}

async fn handler(event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    let p = event.payload;
    match p["action"].as_str().unwrap_or("ok") {
        "ok" => Ok(json!({"ok": true})),
        "sleep" => {
            let ms = p["ms"].as_u64().unwrap_or(50);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(json!({"slept_ms": ms}))
        }
        "fail" => Err(Diagnostic {
            error_type: p["type"].as_str().unwrap_or("Error").to_string(),
            error_message: "failing on purpose".to_string(),
        }),
        "big" => Ok(Value::String(
            "x".repeat(p["bytes"].as_u64().unwrap_or(300_000) as usize),
        )),
        "echo" => Ok(json!({"size": p.to_string().len()})),
        "calls" => {
            let port = p["port"].as_u64().unwrap_or(0) as u16;
            match calls(port, p["calls"].as_u64().unwrap_or(1)) {
                Ok(n) => Ok(json!({"calls": n})),
                Err(e) => Err(Diagnostic {
                    error_type: "CallFailed".to_string(),
                    error_message: e.to_string(),
                }),
            }
        }
        "rss" => {
            let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            let kb = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok());
            // Resident KiB of lambda-meter's own mappings (its file's pages, and those it wrote).
            let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
            let mut library_kb = 0u64;
            let mut ours = false;
            for line in smaps.lines() {
                let first = line.split_whitespace().next().unwrap_or_default();
                if first.contains('-') && !first.ends_with(':') {
                    ours = line.contains("liblambda_meter");
                } else if ours && first == "Rss:" {
                    library_kb += line
                        .split_whitespace()
                        .nth(1)
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0);
                }
            }
            Ok(json!({"rssKb": kb, "libraryKb": library_kb}))
        }
        // Ends the process mid-invoke (`make bench` ends its callgrind runs this way).
        "exit" => std::process::exit(p["code"].as_i64().unwrap_or(3) as i32),
        other => Err(Diagnostic {
            error_type: "UnknownAction".to_string(),
            error_message: format!("unknown action {other}"),
        }),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(handler)).await
}
