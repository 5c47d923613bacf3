//! Cold start of each function's release binary, next to a hello-world
//! lambda_runtime binary built the same way, in the same run.
//!
//! A small Lambda Runtime API on loopback starts each binary as Lambda would
//! (`AWS_LAMBDA_RUNTIME_API` and the usual variables), and measures the time
//! from exec to the binary's first request for work (its init), serves it one
//! sample event (DynamoDB, S3 and SES on the local stack), and reads its peak
//! RSS once it has answered and asks for more.
//!
//! ```text
//! cargo build --release -p casebridge-inbound-email -p casebridge-agent-invocation \
//!     -p casebridge-outcome-actions -p casebridge-http-api -p hello-runtime
//! cargo bench -p casebridge-tests --bench cold_start -- [--runs 20] [--bin-dir target/release]
//! ```
//! Needs the local stack (`infra/local-stack.sh start` and its `env`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use serde_json::{json, Value};

#[derive(Default)]
struct Probe {
    event: Value,
    asked: Mutex<Vec<Instant>>,
    answered: Mutex<Option<(Instant, bool, String)>>,
}

async fn next(State(probe): State<Arc<Probe>>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let first = {
        let mut asked = probe.asked.lock().unwrap();
        asked.push(Instant::now());
        asked.len() == 1
    };
    if !first {
        // One invocation per start: later requests wait until the process is stopped.
        std::future::pending::<()>().await;
    }
    let deadline = (chrono::Utc::now() + chrono::Duration::seconds(30)).timestamp_millis();
    let mut headers = HeaderMap::new();
    headers.insert("lambda-runtime-aws-request-id", "req-1".parse().unwrap());
    headers.insert("lambda-runtime-deadline-ms", deadline.to_string().parse().unwrap());
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:bench".parse().unwrap(),
    );
    headers.insert(
        "lambda-runtime-trace-id",
        "Root=1-00000000-000000000000000000000000".parse().unwrap(),
    );
    (headers, axum::Json(probe.event.clone())).into_response()
}

async fn response(State(probe): State<Arc<Probe>>, body: String) -> &'static str {
    *probe.answered.lock().unwrap() = Some((Instant::now(), true, body));
    "ok"
}

async fn error(State(probe): State<Arc<Probe>>, body: String) -> &'static str {
    *probe.answered.lock().unwrap() = Some((Instant::now(), false, body));
    "ok"
}

struct Sample {
    init: Duration,
    invoke: Duration,
    peak_rss_kb: u64,
}

fn peak_rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

async fn start_once(binary: &Path, event: Value, env: &[(String, String)]) -> Result<Sample, String> {
    let probe = Arc::new(Probe { event, ..Probe::default() });
    let app = axum::Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/response", post(response))
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(error))
        .with_state(probe.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let started = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .env_clear()
        .envs(env.iter().cloned())
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    let pid = child.id().unwrap_or(0);
    let wait_until = started + Duration::from_secs(20);
    let outcome = loop {
        if let Some(answer) = probe.answered.lock().unwrap().clone() {
            if probe.asked.lock().unwrap().len() >= 2 || !answer.1 {
                break Ok(answer);
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            break Err(format!("exited with {status} before answering"));
        }
        if Instant::now() > wait_until {
            break Err("no answer within 20 s".to_string());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let rss = peak_rss_kb(pid);
    let _ = child.kill().await;
    server.abort();
    let (answered_at, ok, body) = outcome?;
    if !ok {
        return Err(format!("the invocation failed: {body}"));
    }
    let first_ask = probe.asked.lock().unwrap()[0];
    Ok(Sample {
        init: first_ask - started,
        invoke: answered_at - first_ask,
        peak_rss_kb: rss,
    })
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.windows(2).find(|w| w[0] == name).map(|w| w[1].clone())
}

fn sample_event(name: &str) -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/events");
    let read =
        |file: &str| -> Value { serde_json::from_str(&std::fs::read_to_string(root.join(file)).expect("sample event")).expect("json") };
    match name {
        "inbound-email" => read("inbound-ses-receipt.json"),
        "agent-invocation" => read("agent-sweep.json"),
        "outcome-actions" => read("outcome-follow-up.json"),
        "http-api" => read("http-api-context.json"),
        _ => json!({"hello": "world"}),
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let runs: usize = arg(&args, "--runs").and_then(|v| v.parse().ok()).unwrap_or(20);
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin_dir = arg(&args, "--bin-dir")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target/release"));
    let Some(stack) = casebridge_tests::stack().await else { return };
    let store = stack.table().await;
    let (_, bucket, _) = stack.bucket().await;

    let mut env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("AWS_") || k.starts_with("SSL_CERT") || k == "PATH" || k == "HOME")
        .filter(|(k, _)| k != "AWS_LAMBDA_RUNTIME_API")
        .collect();
    env.extend(
        [
            ("AWS_LAMBDA_FUNCTION_NAME", "bench"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench"),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "bench"),
            ("AWS_REGION", "us-east-1"),
            ("TABLE_NAME", store.table()),
            ("MAIL_BUCKET", &bucket),
            ("MAIL_PREFIX", "inbound/"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let config = workspace.join("examples/demo.toml").canonicalize().expect("demo config");
    env.push(("CASEBRIDGE_CONFIG_FILE".into(), config.display().to_string()));

    println!("{runs} starts each, binaries from {}", bin_dir.display());
    let mut baseline = None;
    let mut failed = false;
    for name in ["hello-runtime", "inbound-email", "agent-invocation", "outcome-actions", "http-api"] {
        let binary = bin_dir.join(name);
        let size = std::fs::metadata(&binary).map(|m| m.len()).unwrap_or(0);
        let mut samples = Vec::new();
        for _ in 0..runs {
            match start_once(&binary, sample_event(name), &env).await {
                Ok(sample) => samples.push(sample),
                Err(e) => {
                    eprintln!("{name}: {e}");
                    failed = true;
                    break;
                }
            }
        }
        if samples.is_empty() {
            continue;
        }
        let init = median(samples.iter().map(|s| s.init).collect());
        let invoke = median(samples.iter().map(|s| s.invoke).collect());
        let rss = samples.iter().map(|s| s.peak_rss_kb).max().unwrap_or(0);
        let ratio = baseline.map(|b: Duration| init.as_secs_f64() / b.as_secs_f64());
        if name == "hello-runtime" {
            baseline = Some(init);
        }
        println!(
            "{name:<17} init {:>6.2} ms{}  first invocation {:>6.2} ms  peak RSS {:>6.1} MB  binary {:>5.1} MB",
            init.as_secs_f64() * 1000.0,
            ratio
                .map(|r| format!(" ({r:.2}× hello)"))
                .unwrap_or_else(|| "              ".into()),
            invoke.as_secs_f64() * 1000.0,
            rss as f64 / 1024.0,
            size as f64 / 1_048_576.0
        );
    }
    if failed {
        std::process::exit(1);
    }
}
