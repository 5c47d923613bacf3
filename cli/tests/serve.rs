//! `casebridge serve` on loopback with the example agent: dropped mail is
//! ingested and answered, the API answers; then the operator verbs
//! (`reprocess`, `case show`, `drafts list`, `replay-failed`) on the same store.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Serve(std::process::Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cli(dir: &Path, config: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_casebridge"))
        .args([
            "--store",
            &format!("sqlite:{}", dir.join("cases.db").display()),
            "--outbox",
            &dir.join("outbox").display().to_string(),
        ])
        .args(["--config", &config.display().to_string()])
        .args(args)
        .output()
        .expect("run casebridge");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn outbox_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("outbox"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < Duration::from_secs(20), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_then_operator_verbs_on_the_embedded_store() {
    let dir = std::env::temp_dir().join(format!("casebridge-serve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("inbox")).unwrap();

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let api = format!("http://127.0.0.1:{port}");
    let settings = refund_agent::AgentSettings {
        casebridge_api: api.clone(),
        agent_name: "refund-agent".into(),
        auth: refund_agent::AgentSecret::None,
    };
    let agent = refund_agent::spawn("127.0.0.1:0".parse().unwrap(), settings).await.unwrap();
    let config = dir.join("casebridge.toml");
    let demo = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo.toml")).unwrap();
    std::fs::write(
        &config,
        demo.replace("http://127.0.0.1:8080/invoke", &format!("http://{agent}/invoke")),
    )
    .unwrap();

    let child = Command::new(env!("CARGO_BIN_EXE_casebridge"))
        .args([
            "--store",
            &format!("sqlite:{}", dir.join("cases.db").display()),
            "--outbox",
            &dir.join("outbox").display().to_string(),
        ])
        .args([
            "--config",
            &config.display().to_string(),
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["--inbox", &dir.join("inbox").display().to_string()])
        // From the environment, as an operator would give it: never printed.
        .env("CASEBRIDGE_REPRESENTATIVE_TOKEN", REP_TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start serve");
    let mut serve = Serve(child);
    let printed = read_in_background(serve.0.stdout.take());
    let http = reqwest::Client::new();
    let start = Instant::now();
    loop {
        if http
            .get(format!("{api}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "serve did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/mail/refund-request.eml"),
        dir.join("inbox/refund.eml"),
    )
    .unwrap();
    wait_until("the question in the outbox", || outbox_files(&dir).len() == 1).await;
    let question = std::fs::read_to_string(&outbox_files(&dir)[0]).unwrap();
    let subject = question.lines().find(|l| l.starts_with("Subject:")).unwrap_or_default().to_string();
    let case = casebridge::ids::CaseId::find_in_subject(&subject)
        .expect("case reference in the subject")
        .to_string();
    // The reply is written while the mail is processed; the mail is moved aside after.
    wait_until("ingested mail moved aside", || dir.join("inbox/done/refund.eml").exists()).await;
    assert!(!dir.join("inbox/refund.eml").exists(), "and is no longer in the inbox");

    let escalations = http.get(format!("{api}/escalations")).bearer_auth(REP_TOKEN).send().await.unwrap();
    assert_eq!(escalations.status().as_u16(), 200);
    assert!(escalations.json::<serde_json::Value>().await.unwrap()["cases"]
        .as_array()
        .unwrap()
        .is_empty());
    let refused = http.get(format!("{api}/drafts")).send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 401);

    // The operator asks the agent again: a second question goes out.
    let (ok, text) = cli(&dir, &config, &["reprocess", &case, "--from", "agent"]);
    assert!(ok, "{text}");
    assert_eq!(outbox_files(&dir).len(), 2, "{text}");
    let (ok, text) = cli(&dir, &config, &["case", "show", &case]);
    assert!(ok && text.contains("reprocessed") && text.contains("waiting_on_customer"), "{text}");
    let (ok, text) = cli(&dir, &config, &["drafts", "list"]);
    assert!(ok && text.contains("no drafts"), "{text}");
    let (ok, text) = cli(&dir, &config, &["replay-failed"]);
    assert!(ok && text.contains("0 mail(s) re-sent"), "{text}");
    let (ok, text) = cli(&dir, &config, &["reprocess", "CB-0000000000", "--from", "agent"]);
    assert!(!ok && text.contains("does not exist"), "{text}");
    let (ok, text) = cli(&dir, &config, &["reprocess", &case, "--from", "sideways"]);
    assert!(!ok && text.contains("unknown step"), "{text}");
    drop(serve);
    let printed = printed.join().unwrap_or_default();
    assert!(printed.contains("casebridge API on"), "{printed}");
    assert!(!printed.contains(REP_TOKEN), "the operator's token was printed: {printed}");
    let _ = std::fs::remove_dir_all(&dir);
}

const REP_TOKEN: &str = "rep-secret-0123456789";

fn read_in_background(stdout: Option<std::process::ChildStdout>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut stdout) = stdout {
            let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
        }
        text
    })
}

#[test]
fn serve_refuses_a_short_representative_token() {
    let dir = std::env::temp_dir().join(format!("casebridge-short-token-{}", std::process::id()));
    let output = Command::new(env!("CARGO_BIN_EXE_casebridge"))
        .arg("--store")
        .arg(format!("sqlite:{}", dir.join("cases.db").display()))
        .args(["--outbox"])
        .arg(dir.join("outbox"))
        .arg("--config")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo.toml"))
        .args(["serve", "--listen", "127.0.0.1:0", "--representative-token", "short"])
        .output()
        .expect("run casebridge");
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && text.contains("at least 16"), "{text}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("short"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_empty_agent_secret_stops_the_cli() {
    let dir = std::env::temp_dir().join(format!("casebridge-empty-secret-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let demo = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo.toml")).unwrap();
    let config = dir.join("casebridge.toml");
    let with_auth = demo.replacen(
        "mode = \"sync\"\n",
        "mode = \"sync\"\n[agents.auth]\ntype = \"bearer\"\ntoken = { env = \"CB_TEST_EMPTY_TOKEN\" }\n",
        1,
    );
    assert_ne!(with_auth, demo, "the agent got its auth");
    std::fs::write(&config, with_auth).unwrap();
    let mail = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/mail/refund-request.eml");
    let output = Command::new(env!("CARGO_BIN_EXE_casebridge"))
        .arg("--store")
        .arg(format!("sqlite:{}", dir.join("cases.db").display()))
        .arg("--outbox")
        .arg(dir.join("outbox"))
        .arg("--config")
        .arg(&config)
        .arg("ingest")
        .arg(&mail)
        .env("CB_TEST_EMPTY_TOKEN", "")
        .output()
        .expect("run casebridge");
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("refund-agent") && text.contains("CB_TEST_EMPTY_TOKEN"), "{text}");
    assert!(!dir.join("outbox").exists() || outbox_files(&dir).is_empty(), "nothing was sent");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_verb_has_help() {
    for verb in [
        vec![],
        vec!["demo"],
        vec!["ingest"],
        vec!["case", "show"],
        vec!["drafts", "list"],
        vec!["drafts", "send"],
        vec!["drafts", "discard"],
        vec!["reprocess"],
        vec!["replay-failed"],
        vec!["serve"],
        vec!["doctor"],
        vec!["report"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_casebridge"))
            .args(&verb)
            .arg("--help")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success() && text.contains("Usage:"), "{verb:?}: {text}");
    }
}
