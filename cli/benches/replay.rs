//! `casebridge replay` throughput: 2,000 historical mails (1,000 new cases
//! over four weeks, refund and order-status, each followed by the
//! customer's reply in its thread) through the whole pipeline in shadow
//! mode, against a loopback agent that answers at once. Each sample is one
//! run of the real binary on a fresh scratch store, process start,
//! classifier training and the report included. The target is 500 mails/s.
//!
//! `cargo bench -p casebridge-cli --bench replay`

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use axum::extract::Path as UrlPath;
use axum::routing::post;
use axum::{Json, Router};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::{json, Value};

/// New cases; each gets one reply, so the input holds twice as many mails.
const CASES: usize = 1_000;
const MAILS: usize = 2 * CASES;

async fn answer(UrlPath(agent): UrlPath<String>, Json(_request): Json<Value>) -> Json<Value> {
    Json(match agent.as_str() {
        "refund" => json!({"responseType": "Question", "message": "Which order was it, and how much did you pay?"}),
        _ => json!({"responseType": "Resolved", "message": "Your parcel left our warehouse; tracking TRK123."}),
    })
}

/// One new-case mail or one reply, dated `minutes` after 2026-11-02 08:00 UTC.
fn mail(case: usize, reply: bool, minutes: usize) -> String {
    let base = 1_793_606_400i64; // 2026-11-02T08:00:00Z
    let minutes = i64::try_from(minutes).unwrap_or(0);
    let date = chrono::DateTime::from_timestamp(base + minutes * 60, 0).unwrap_or_default();
    let (subject, body) = if case.is_multiple_of(2) {
        ("Refund for my order", "My order arrived damaged and I would like a refund, please.")
    } else {
        ("Where is my order?", "My parcel has not arrived yet. What is the tracking number?")
    };
    let thread = if reply {
        format!(
            "Subject: Re: {subject}\r\nMessage-ID: <c{case}-2@customer.example>\r\nIn-Reply-To: <support-{case}@shop.example>\r\nReferences: <c{case}-1@customer.example> <support-{case}@shop.example>\r\n"
        )
    } else {
        format!("Subject: {subject}\r\nMessage-ID: <c{case}-1@customer.example>\r\n")
    };
    let text = if reply { "It was order #1234, I paid $42.50." } else { body };
    format!(
        "From: Customer {case} <c{case}@customer.example>\r\nTo: support@shop.example\r\n{thread}Date: {}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n",
        date.to_rfc2822()
    )
}

fn write_input(dir: &Path) -> PathBuf {
    let input = dir.join("mail");
    std::fs::create_dir_all(&input).expect("create the input folder");
    for case in 0..CASES {
        // New cases every 40 minutes over four weeks, each reply a day later.
        let at = case * 40;
        std::fs::write(input.join(format!("{case:05}-1.eml")), mail(case, false, at)).expect("write a mail");
        std::fs::write(input.join(format!("{case:05}-2.eml")), mail(case, true, at + 24 * 60)).expect("write a mail");
    }
    input
}

fn write_config(dir: &Path, agent: std::net::SocketAddr) -> PathBuf {
    let config = dir.join("casebridge.toml");
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/replay/casebridge.toml"))
        .expect("read the fixture configuration");
    std::fs::write(&config, text.replace("AGENT_BASE", &agent.to_string())).expect("write the configuration");
    config
}

fn replay(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let agent = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the agent");
        let addr = listener.local_addr().expect("agent address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, Router::new().route("/{agent}", post(answer))).await;
        });
        addr
    });
    let dir = std::env::temp_dir().join(format!("casebridge-replay-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the bench folder");
    let input = write_input(&dir);
    let config = write_config(&dir, agent);

    let mut run = 0usize;
    let mut rates = Vec::new();
    let mut group = c.benchmark_group("replay");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements(MAILS as u64));
    group.bench_function(format!("{MAILS}_mails_loopback_agent"), |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                run += 1;
                let store = dir.join(format!("scratch-{run}.db"));
                let start = Instant::now();
                let output = Command::new(env!("CARGO_BIN_EXE_casebridge"))
                    .env_remove("CASEBRIDGE_STORE")
                    .arg("--store")
                    .arg(&store)
                    .arg("--config")
                    .arg(&config)
                    .args(["replay", "--format", "json"])
                    .arg(&input)
                    .output()
                    .expect("run casebridge replay");
                let elapsed = start.elapsed();
                assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
                let out: Value = serde_json::from_slice(&output.stdout).expect("replay prints JSON");
                assert_eq!(out["replay"]["stored"], MAILS, "every mail stored");
                assert_eq!(out["replay"]["agentTurns"], MAILS, "one agent turn per mail");
                assert_eq!(out["replay"]["mailSent"], 0, "nothing sent");
                rates.push(MAILS as f64 / elapsed.as_secs_f64());
                total += elapsed;
                let _ = std::fs::remove_file(&store);
                let _ = std::fs::remove_file(store.with_extension("db-wal"));
                let _ = std::fs::remove_file(store.with_extension("db-shm"));
            }
            total
        });
    });
    group.finish();
    rates.sort_by(f64::total_cmp);
    if let Some(median) = rates.get(rates.len() / 2) {
        println!(
            "replay: median {median:.0} mails/s over {} run(s) of {MAILS} mails (target 500 mails/s)",
            rates.len()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, replay);
criterion_main!(benches);
