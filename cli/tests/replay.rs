//! `casebridge replay` over the historical mail in `fixtures/replay/mail`
//! (four intents over November 2026, a reply thread, a redelivery, an
//! auto-reply, a mail without a sender and a file that is not a mail),
//! against a scripted agent on loopback: the report and the drafts per
//! intent, resuming after a stop, the recording, and what it refuses.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

/// The scripted agent: the refund agent asks once and resolves on the
/// customer's reply, the order agent resolves at once, the cancel agent
/// cannot resolve. The answer depends on the turn's place in its case, so
/// a turn asked again (after an interrupted run) gets the same answer.
/// Counts every call.
#[derive(Default)]
struct Script {
    calls: AtomicUsize,
    /// Per conversation, the turn ids seen, in order.
    turns: Mutex<HashMap<String, Vec<String>>>,
    /// Each answer waits this long (to catch a replay mid-call).
    delay: Duration,
}

async fn answer(State(script): State<Arc<Script>>, UrlPath(agent): UrlPath<String>, Json(request): Json<Value>) -> Json<Value> {
    script.calls.fetch_add(1, Ordering::SeqCst);
    if !script.delay.is_zero() {
        tokio::time::sleep(script.delay).await;
    }
    let conversation = request["conversationId"].as_str().unwrap_or_default().to_string();
    let turn_id = request["turnId"].as_str().unwrap_or_default().to_string();
    let turn = {
        let mut turns = script.turns.lock().unwrap();
        let seen = turns.entry(conversation).or_default();
        if !seen.contains(&turn_id) {
            seen.push(turn_id.clone());
        }
        seen.iter().position(|t| *t == turn_id).unwrap_or(0) + 1
    };
    Json(match (agent.as_str(), turn) {
        ("refund", 1) => json!({"responseType": "Question", "message": "Which order was it, and how much did you pay?"}),
        ("refund", _) => json!({"responseType": "Resolved", "message": "We have refunded $42.50 to your card."}),
        ("order", _) => json!({"responseType": "Resolved", "message": "Your parcel left our warehouse; tracking TRK123."}),
        _ => json!({"responseType": "UnableToResolve"}),
    })
}

/// Starts the scripted agent on a loopback port; returns its address.
async fn spawn_agent(script: Arc<Script>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/{agent}", post(answer)).with_state(script);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/replay")
}

/// A fresh folder for one test, with the fixture configuration pointing at `agent`.
fn workdir(name: &str, agent: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("casebridge-replay-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("casebridge.toml");
    let text = std::fs::read_to_string(fixtures().join("casebridge.toml")).unwrap();
    std::fs::write(&config, text.replace("AGENT_BASE", agent)).unwrap();
    (dir, config)
}

fn replay_command(store: &Path, config: &Path, input: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_casebridge"));
    command
        .env_remove("CASEBRIDGE_STORE")
        .env_remove("CASEBRIDGE_CONFIG_FILE")
        .arg("--store")
        .arg(format!("sqlite:{}", store.display()))
        .arg("--config")
        .arg(config)
        .arg("replay")
        .arg(input)
        .args(extra);
    command
}

/// Runs the command off the async runtime (the scripted agent answers on it).
async fn run(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().expect("run casebridge"))
        .await
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Replays with `--format json`; returns the parsed output.
async fn replay_json(store: &Path, config: &Path, input: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["--format", "json"];
    args.extend_from_slice(extra);
    let output = run(replay_command(store, config, input, &args)).await;
    assert!(output.status.success(), "replay failed: {}", text(&output));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&output)))
}

/// What a replay's JSON says, without what differs between runs (case ids,
/// which are random, the store path, and the counts of this run alone).
fn comparable(out: &Value) -> Value {
    let mut drafts = Vec::new();
    for (intent, list) in out["drafts"].as_object().expect("drafts by intent") {
        for d in list.as_array().expect("a list of drafts") {
            drafts.push(json!([intent, d["draft"], d["kind"], d["createdAt"], d["excerpt"]]));
        }
    }
    let mut replay = out["replay"].clone();
    for field in ["store", "storedThisRun", "agentCallsThisRun", "stepFailures"] {
        replay.as_object_mut().expect("replay summary").remove(field);
    }
    json!({"report": out["report"], "drafts": drafts, "replay": replay})
}

/// The figures of the fixture history, worked by hand from the mails and the script.
fn assert_fixture_figures(out: &Value) {
    let replay = &out["replay"];
    // 11 files: 10 mails and a text file; Bob's redelivery is a duplicate; the
    // auto-reply and the mail without a sender are rejected with their reason.
    assert_eq!(replay["mailsRead"], 10, "{replay:#}");
    assert_eq!(replay["stored"], 7);
    assert_eq!(replay["duplicates"], 1);
    let rejected: Vec<&str> = replay["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert!(rejected.iter().any(|r| r.contains("auto-submitted")), "{rejected:?}");
    assert!(rejected.iter().any(|r| r.contains("no sender")), "{rejected:?}");
    let bad = replay["badInput"].as_array().unwrap();
    assert_eq!(bad.len(), 1);
    assert!(bad[0]["source"].as_str().unwrap().ends_with("11-notes.txt"));
    // Ann twice (a question, then the resolution on her reply), Bob, Cara, Dan, Eve once.
    assert_eq!(replay["agentTurns"], 6);
    // Shadow mode: nothing sent, the queue notice for Fay's case (no agent) held back.
    assert_eq!(replay["mailSent"], 0);
    assert_eq!(replay["outboxFiles"], 0);
    assert_eq!(replay["queueNoticesNotSent"], 1);
    assert_eq!(replay["notYetReplayed"], 0);
    assert_eq!(replay["stoppedEarly"], false);
    let intents = &replay["byIntent"];
    let row = |name: &str| {
        let r = &intents[name];
        [
            &r["cases"],
            &r["drafts"],
            &r["questions"],
            &r["resolutions"],
            &r["wouldEscalate"],
            &r["wouldClose"],
            &r["heldForRepresentatives"],
        ]
        .map(|v| v.as_u64().unwrap_or(u64::MAX))
    };
    assert_eq!(row("refund"), [2, 3, 2, 1, 0, 0, 0], "{intents:#}");
    assert_eq!(row("order_status"), [2, 2, 0, 2, 0, 0, 0]);
    assert_eq!(row("cancel"), [1, 0, 0, 0, 1, 0, 0]);
    assert_eq!(row("address_change"), [1, 0, 0, 0, 0, 0, 1]);
    // The drafts that would have gone out, per intent, at the mails' own dates.
    let drafts = &out["drafts"];
    let refund: Vec<(&str, &str)> = drafts["refund"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["kind"].as_str().unwrap(), d["createdAt"].as_str().unwrap()))
        .collect();
    assert_eq!(
        refund,
        [
            ("question", "2026-11-02T09:12:00Z"),
            ("resolution", "2026-11-04T08:05:00Z"),
            ("question", "2026-11-20T10:00:00Z")
        ]
    );
    assert_eq!(drafts["refund"][1]["excerpt"], "We have refunded $42.50 to your card.");
    // Ann's reply went to her case: both refund drafts of that case share it.
    assert_eq!(drafts["refund"][0]["case"], drafts["refund"][1]["case"]);
    assert_eq!(drafts["order_status"].as_array().unwrap().len(), 2);
    assert!(drafts.get("cancel").is_none());
    // The report over the same store: six cases over the mails' days, nothing resolved or sent.
    let report = &out["report"];
    assert_eq!(report["period"]["since"], "2026-11-02T00:00:00Z");
    assert_eq!(report["period"]["until"], "2026-11-29T00:00:00Z");
    assert_eq!(report["totals"]["cases"], 6);
    assert_eq!(report["totals"]["ai_mails_sent"], 0);
    assert_eq!(report["totals"]["resolutions"]["automated"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_history_in_shadow_and_prints_the_drafts_per_intent() {
    let script = Arc::new(Script::default());
    let agent = spawn_agent(script.clone()).await;
    let (dir, config) = workdir("shadow", &agent.to_string());
    let store = dir.join("scratch.db");
    let drafts_dir = dir.join("drafts");
    let out = replay_json(
        &store,
        &config,
        &fixtures().join("mail"),
        &["--drafts-dir", drafts_dir.to_str().unwrap()],
    )
    .await;
    assert_fixture_figures(&out);
    assert_eq!(script.calls.load(Ordering::SeqCst), 6, "one agent call per turn");
    assert_eq!(out["replay"]["agentCallsThisRun"], 6);
    // Each draft in full under its intent's folder.
    let refund_files = std::fs::read_dir(drafts_dir.join("refund")).unwrap().count();
    assert_eq!(refund_files, 3);
    let a_file = out["drafts"]["order_status"][0]["file"].as_str().unwrap();
    let full = std::fs::read_to_string(a_file).unwrap();
    assert!(full.contains("Intent: order_status") && full.contains("tracking TRK123"), "{full}");

    // A second run over the same input finds everything stored: no agent is
    // called again and the figures are the same.
    let again = replay_json(&store, &config, &fixtures().join("mail"), &[]).await;
    assert_eq!(script.calls.load(Ordering::SeqCst), 6, "nothing called twice");
    assert_eq!(again["replay"]["storedThisRun"], 0);
    assert_eq!(comparable(&again), comparable(&out));

    // The table names the intents and their drafts.
    let table = run(replay_command(&store, &config, &fixtures().join("mail"), &[])).await;
    assert!(table.status.success(), "{}", text(&table));
    let printed = String::from_utf8_lossy(&table.stdout);
    assert!(printed.contains("drafts that would have gone out: 5"), "{printed}");
    assert!(
        printed.contains("intent refund (3)") && printed.contains("intent order_status (2)"),
        "{printed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_stopped_part_way_resumes_without_counting_twice() {
    let script = Arc::new(Script::default());
    let agent = spawn_agent(script.clone()).await;
    let (dir, config) = workdir("resume", &agent.to_string());
    let reference = replay_json(&dir.join("whole.db"), &config, &fixtures().join("mail"), &[]).await;
    let whole_calls = script.calls.swap(0, Ordering::SeqCst);

    // Stopped after three new mails, then resumed twice (the last run has nothing left).
    let store = dir.join("parts.db");
    let first = replay_json(&store, &config, &fixtures().join("mail"), &["--limit", "3"]).await;
    assert_eq!(first["replay"]["stoppedEarly"], true);
    assert_eq!(first["replay"]["storedThisRun"], 3);
    assert!(first["replay"]["notYetReplayed"].as_u64().unwrap() > 0);
    let second = replay_json(&store, &config, &fixtures().join("mail"), &[]).await;
    assert_eq!(second["replay"]["stoppedEarly"], false);
    assert_eq!(comparable(&second), comparable(&reference));
    assert_eq!(
        script.calls.load(Ordering::SeqCst),
        whole_calls,
        "each turn called once over both runs"
    );
    assert_fixture_figures(&second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_killed_mid_call_resumes_and_ends_as_one_run_would() {
    let script = Arc::new(Script {
        delay: Duration::from_millis(400),
        ..Script::default()
    });
    let agent = spawn_agent(script.clone()).await;
    let (dir, config) = workdir("killed", &agent.to_string());
    let store = dir.join("scratch.db");
    let mut child = replay_command(&store, &config, &fixtures().join("mail"), &["--format", "json"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed (SIGKILL: no chance to tidy up) while the agent holds its second call.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while script.calls.load(Ordering::SeqCst) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the replay never reached its second agent call"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    let _ = child.wait();
    let out = replay_json(&store, &config, &fixtures().join("mail"), &[]).await;
    assert_fixture_figures(&out);
    // The call lost with the process is asked again; none other is.
    assert_eq!(script.calls.load(Ordering::SeqCst), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_replays_the_same_answers_without_any_agent() {
    let script = Arc::new(Script::default());
    let agent = spawn_agent(script.clone()).await;
    let (dir, config) = workdir("recording", &agent.to_string());
    let recording = dir.join("answers.jsonl");
    let live = replay_json(
        &dir.join("live.db"),
        &config,
        &fixtures().join("mail"),
        &["--record", recording.to_str().unwrap()],
    )
    .await;
    let lines = std::fs::read_to_string(&recording).unwrap();
    assert_eq!(lines.lines().count(), 6, "one line per agent call: {lines}");
    assert!(lines.contains("\"case\":\"ann-1@mail.customer.example\",\"turn\":2"), "{lines}");

    // Played back with the agents pointing nowhere: the same figures, no call.
    let (_, offline) = workdir("recording-offline", "127.0.0.1:9");
    let calls = script.calls.load(Ordering::SeqCst);
    let played = replay_json(
        &dir.join("played.db"),
        &offline,
        &fixtures().join("mail"),
        &["--agent-recording", recording.to_str().unwrap()],
    )
    .await;
    assert_eq!(script.calls.load(Ordering::SeqCst), calls);
    assert_eq!(comparable(&played), comparable(&live));

    // A recording that lacks a turn fails that turn (it is not invented); the rest replays.
    let partial = dir.join("partial.jsonl");
    let kept: Vec<&str> = lines.lines().filter(|l| !l.contains("\"turn\":2")).collect();
    std::fs::write(&partial, kept.join("\n")).unwrap();
    let short = replay_json(
        &dir.join("short.db"),
        &offline,
        &fixtures().join("mail"),
        &["--agent-recording", partial.to_str().unwrap()],
    )
    .await;
    assert_eq!(
        short["drafts"]["refund"].as_array().unwrap().len(),
        2,
        "Ann's second draft is missing"
    );
    assert_eq!(short["replay"]["byIntent"]["refund"]["wouldEscalate"], 1, "{:#}", short["replay"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mbox_replays_as_the_folder_does() {
    let script = Arc::new(Script::default());
    let agent = spawn_agent(script.clone()).await;
    let (dir, config) = workdir("mbox", &agent.to_string());
    let folder = replay_json(&dir.join("folder.db"), &config, &fixtures().join("mail"), &[]).await;
    let mut mbox = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(fixtures().join("mail"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for path in names.iter().filter(|p| p.extension().is_some_and(|e| e == "eml")) {
        mbox.extend_from_slice(b"From replay@example Mon Nov  2 00:00:00 2026\n");
        mbox.extend_from_slice(&std::fs::read(path).unwrap().replace_crlf());
        mbox.extend_from_slice(b"\n");
    }
    let input = dir.join("history.mbox");
    std::fs::write(&input, mbox).unwrap();
    let from_mbox = replay_json(&dir.join("mbox.db"), &config, &input, &[]).await;
    let mut expected = comparable(&folder);
    let mut got = comparable(&from_mbox);
    for v in [&mut expected, &mut got] {
        // Sources differ (file names vs mbox positions) and the text file is not in the mbox.
        let replay = v["replay"].as_object_mut().unwrap();
        for field in ["input", "rejected", "badInput"] {
            replay.remove(field);
        }
    }
    assert_eq!(got, expected);
    assert_eq!(from_mbox["replay"]["rejected"].as_array().unwrap().len(), 2);
}

trait ReplaceCrlf {
    fn replace_crlf(self) -> Vec<u8>;
}

impl ReplaceCrlf for Vec<u8> {
    /// mbox lines end in LF.
    fn replace_crlf(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        for (i, b) in self.iter().enumerate() {
            if *b == b'\r' && self.get(i + 1) == Some(&b'\n') {
                continue;
            }
            out.push(*b);
        }
        out
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_refuses_dynamodb_and_any_store_it_did_not_create() {
    let (dir, config) = workdir("refuse", "127.0.0.1:9");
    let input = fixtures().join("mail");
    let mut to_dynamo = Command::new(env!("CARGO_BIN_EXE_casebridge"));
    to_dynamo
        .env_remove("CASEBRIDGE_STORE")
        .args(["--store", "dynamodb:cases", "--config"])
        .arg(&config)
        .arg("replay")
        .arg(&input);
    let dynamo = run(to_dynamo).await;
    assert!(!dynamo.status.success());
    assert!(text(&dynamo).contains("never on DynamoDB"), "{}", text(&dynamo));

    // A live embedded store (made by the pipeline, not by replay) is left untouched.
    let live = dir.join("live.db");
    let ingest = Command::new(env!("CARGO_BIN_EXE_casebridge"))
        .env_remove("CASEBRIDGE_STORE")
        .arg("--store")
        .arg(format!("sqlite:{}", live.display()))
        .arg("--outbox")
        .arg(dir.join("outbox"))
        .arg("--config")
        .arg(&config)
        .arg("ingest")
        .arg(input.join("09-address-fay.eml"))
        .output()
        .unwrap();
    assert!(ingest.status.success(), "{}", text(&ingest));
    let before = std::fs::read(&live).unwrap();
    let refused = run(replay_command(&live, &config, &input, &[])).await;
    assert!(!refused.status.success());
    assert!(text(&refused).contains("refuses to touch"), "{}", text(&refused));
    assert_eq!(std::fs::read(&live).unwrap(), before, "the live store is unchanged");

    // Without a configuration there is nothing to replay against.
    let no_config = Command::new(env!("CARGO_BIN_EXE_casebridge"))
        .env_remove("CASEBRIDGE_CONFIG_FILE")
        .env_remove("CASEBRIDGE_STORE")
        .arg("replay")
        .arg(&input)
        .output()
        .unwrap();
    assert!(!no_config.status.success());
    assert!(text(&no_config).contains("--config"), "{}", text(&no_config));
}
