//! `casebridge serve` as a runtime, tried as a new user would: an async agent
//! that never answers, a mail provider that is briefly down, an inbox with
//! junk in it, follow-ups within a minute, and kill -9 while mail flows.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "runtime-test-token-0123456789";

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Trial {
    dir: PathBuf,
    port: u16,
    config: PathBuf,
}

impl Trial {
    fn new(name: &str, edit: impl FnOnce(String) -> String) -> Trial {
        let dir = std::env::temp_dir().join(format!("casebridge-runtime-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("inbox")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let demo = std::fs::read_to_string(repo("examples/demo.toml")).unwrap();
        let config = dir.join("casebridge.toml");
        std::fs::write(&config, edit(demo)).unwrap();
        Trial { dir, port, config }
    }

    fn api(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `casebridge` on this trial's store, outbox and configuration.
    fn casebridge(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_casebridge"));
        command
            .arg("--store")
            .arg(format!("sqlite:{}", self.dir.join("cases.db").display()))
            .arg("--outbox")
            .arg(self.dir.join("outbox"))
            .arg("--config")
            .arg(&self.config);
        command
    }

    fn start(&self) -> Serve {
        let child = self
            .casebridge()
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port), "--schedules-every", "1"])
            .arg("--inbox")
            .arg(self.dir.join("inbox"))
            .env("CASEBRIDGE_REPRESENTATIVE_TOKEN", TOKEN)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start serve");
        Serve(child)
    }

    async fn up(&self) {
        let http = reqwest::Client::new();
        wait_for("serve to come up", 20, || async {
            http.get(format!("{}/health", self.api()))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
    }

    /// Drops a mail the way the inbox convention says: written aside, renamed in.
    fn drop_mail(&self, name: &str, raw: &str) {
        let aside = self.dir.join(format!(".{name}.part"));
        std::fs::write(&aside, raw).unwrap();
        std::fs::rename(&aside, self.dir.join("inbox").join(name)).unwrap();
    }

    fn outbox(&self) -> Vec<String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.join("outbox"))
            .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect())
            .unwrap_or_default();
        files.sort();
        files.iter().map(|p| std::fs::read_to_string(p).unwrap_or_default()).collect()
    }

    async fn get(&self, path: &str) -> serde_json::Value {
        let response = reqwest::Client::new()
            .get(format!("{}{path}", self.api()))
            .bearer_auth(TOKEN)
            .send()
            .await;
        match response {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        }
    }
}

impl Drop for Trial {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

async fn wait_for<F, Fut>(what: &str, seconds: u64, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < Duration::from_secs(seconds), "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn mail(n: usize, body: &str) -> String {
    format!(
        "From: Customer {n} <customer{n}@customer.example>\r\nTo: support@shop.example\r\nSubject: Refund for order {n}\r\nMessage-ID: <refund-{n}@customer.example>\r\nDate: Tue, 24 Nov 2026 09:00:00 +0000\r\n\r\n{body}\r\n"
    )
}

/// An agent on loopback; the refund example, or one that answers 202 and never calls back.
async fn refund_agent(api: &str) -> String {
    let settings = refund_agent::AgentSettings {
        casebridge_api: api.to_string(),
        agent_name: "refund-agent".into(),
        auth: refund_agent::AgentSecret::None,
    };
    let addr = refund_agent::spawn("127.0.0.1:0".parse().unwrap(), settings).await.unwrap();
    format!("http://{addr}/invoke")
}

async fn silent_async_agent() -> String {
    let app = axum::Router::new().route("/invoke", axum::routing::post(|| async { axum::http::StatusCode::ACCEPTED }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/invoke")
}

fn pointing_at(url: &str) -> impl FnOnce(String) -> String + '_ {
    move |demo: String| demo.replace("http://127.0.0.1:8080/invoke", url)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_async_agent_that_never_answers_is_escalated() {
    let url = silent_async_agent().await;
    let trial = Trial::new("async", |demo| {
        pointing_at(&url)(demo).replace("mode = \"sync\"", "mode = \"async\"\nasync_answer_within_secs = 2")
    });
    let _serve = trial.start();
    trial.up().await;
    trial.drop_mail("a.eml", &mail(1, "I want a refund for order 1, please."));
    wait_for("the silent turn to be swept and the case escalated", 30, || async {
        trial.get("/escalations").await["cases"].as_array().is_some_and(|c| c.len() == 1)
    })
    .await;
    let escalations = trial.get("/escalations").await;
    let reason = escalations["cases"][0]["reason"].as_str().unwrap_or_default().to_string();
    assert!(reason.contains("sent no answer"), "{reason}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mail_provider_briefly_down_stops_nothing_and_the_mail_goes_out_once() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = refund_agent(&format!("http://127.0.0.1:{port}")).await;
    let mut trial = Trial::new("outbox", pointing_at(&url));
    trial.port = port;
    let _serve = trial.start();
    trial.up().await;
    // The outbox is "down": a file where its folder should be.
    let outbox = trial.dir.join("outbox");
    std::fs::remove_dir_all(&outbox).unwrap();
    std::fs::write(&outbox, "not a folder").unwrap();
    trial.drop_mail("a.eml", &mail(2, "I want a refund for order 2."));
    wait_for("the mail to be stored", 20, || async {
        trial.dir.join("inbox/done/a.eml").exists()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let health = reqwest::get(format!("{}/health", trial.api())).await;
    assert!(health.is_ok_and(|r| r.status().is_success()), "serve is still running");
    // The provider comes back: the question goes out, once.
    std::fs::remove_file(&outbox).unwrap();
    std::fs::create_dir_all(&outbox).unwrap();
    wait_for("the question to be sent after all", 30, || async { trial.outbox().len() == 1 }).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(trial.outbox().len(), 1, "sent once");
    assert!(trial.outbox()[0].contains("To: <customer2@customer.example>") || trial.outbox()[0].contains("customer2@customer.example"));
}

#[tokio::test(flavor = "multi_thread")]
async fn junk_in_the_inbox_never_wedges_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = refund_agent(&format!("http://127.0.0.1:{port}")).await;
    let mut trial = Trial::new("inbox", pointing_at(&url));
    trial.port = port;
    let inbox = trial.dir.join("inbox");
    std::fs::create_dir_all(inbox.join("folder.eml")).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(trial.dir.join("nowhere"), inbox.join("dangling.eml")).unwrap();
    std::fs::write(inbox.join("garbage.eml"), [0u8, 159, 146, 150, 0, 1, 2]).unwrap();
    // Two starts: junk must not make it a crash loop.
    for _ in 0..2 {
        let _serve = trial.start();
        trial.up().await;
    }
    let _serve = trial.start();
    trial.up().await;
    trial.drop_mail("good.eml", &mail(3, "Refund please, order 3."));
    wait_for("the good mail to be answered", 20, || async { trial.outbox().len() == 1 }).await;
    wait_for("the junk to be moved aside with reasons", 10, || async {
        inbox.join("failed/folder.eml").exists() && inbox.join("failed/folder.eml.reason").exists()
    })
    .await;
    #[cfg(unix)]
    assert!(!inbox.join("dangling.eml").exists() && std::fs::symlink_metadata(inbox.join("failed/dangling.eml")).is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn reminders_and_auto_close_within_a_minute() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = refund_agent(&format!("http://127.0.0.1:{port}")).await;
    let mut trial = Trial::new("follow-up", |demo| {
        let demo = pointing_at(&url)(demo);
        // A follow-up policy in seconds on the default workflow.
        demo.replacen(
            "[workflow]\n",
            "[workflow]\nfollow_up = { reminders = 1, interval_hours = 0, close_after_hours = 0, interval_secs = 2, close_after_secs = 2 }\n",
            1,
        )
    });
    trial.port = port;
    assert!(std::fs::read_to_string(&trial.config).unwrap().contains("interval_secs = 2"));
    let _serve = trial.start();
    trial.up().await;
    // The amount is in the first mail: the agent resolves at once.
    trial.drop_mail("a.eml", &mail(4, "Please refund order 4, I paid $42.50."));
    wait_for("the resolution, then a reminder", 40, || async { trial.outbox().len() >= 2 }).await;
    let outbox = trial.outbox();
    assert!(outbox[0].contains("42.50"), "the resolution first");
    assert!(outbox[1].contains("check that our last answer"), "then the reminder: {}", outbox[1]);
    let case = casebridge::ids::CaseId::find_in_subject(outbox[0].lines().find(|l| l.starts_with("Subject:")).unwrap_or_default())
        .expect("case reference");
    wait_for("the case to close on its own", 40, || async {
        trial.get(&format!("/cases/{case}/timeline")).await["status"] == "closed"
    })
    .await;
}

/// kill -9 at random moments while mail flows, restart on the same store:
/// every case settles, each mail is stored once and each reply sent at most once.
#[tokio::test(flavor = "multi_thread")]
async fn kill_minus_nine_while_mail_flows_then_every_case_settles() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = refund_agent(&format!("http://127.0.0.1:{port}")).await;
    let mut trial = Trial::new("kill", |demo| {
        // A short budget for a call lost with the process: the sweep finds it sooner.
        pointing_at(&url)(demo).replace("timeout_ms = 5000\nmax_attempts = 3", "timeout_ms = 1000\nmax_attempts = 1")
    });
    trial.port = port;
    let mails = 12;
    // Kills at moments spread over the run, from the clock (no RNG dependency).
    let jitter = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_millis(),
    );
    for round in 0..4 {
        let mut serve = trial.start();
        trial.up().await;
        for n in 0..3 {
            let i = round * 3 + n;
            trial.drop_mail(&format!("m{i}.eml"), &mail(100 + i, &format!("Refund for order {i} please.")));
        }
        tokio::time::sleep(Duration::from_millis(50 + (jitter * (round as u64 + 1)) % 400)).await;
        let _ = serve.0.kill(); // SIGKILL
        let _ = serve.0.wait();
    }
    let _serve = trial.start();
    trial.up().await;
    let db = trial.dir.join("cases.db");
    wait_for("every mail stored and every case settled", 150, || async {
        let done = (0..mails)
            .filter(|i| trial.dir.join(format!("inbox/done/m{i}.eml")).exists())
            .count();
        done == mails && settled(&db).is_some_and(|(cases, unsettled)| cases == mails && unsettled == 0)
    })
    .await;
    // Each outbox mail is a distinct Message-ID: nothing was sent twice.
    let ids: Vec<String> = trial
        .outbox()
        .iter()
        .filter_map(|m| {
            m.lines()
                .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))
                .map(str::to_string)
        })
        .collect();
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "a mail was sent twice: {ids:?}");
    assert!(ids.len() <= mails, "at most one question per case");
}

/// (cases, cases still waiting on casebridge) from the embedded store, read
/// through the CLI so the test knows nothing of the schema.
fn settled(db: &Path) -> Option<(usize, usize)> {
    let output = Command::new(env!("CARGO_BIN_EXE_casebridge"))
        .arg("--store")
        .arg(format!("sqlite:{}", db.display()))
        .args(["case", "list"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let statuses: Vec<&str> = text.lines().filter_map(|l| l.split_whitespace().nth(1)).collect();
    let unsettled = statuses.iter().filter(|s| matches!(**s, "new" | "agent_working")).count();
    Some((statuses.len(), unsettled))
}

/// `run-schedules` once, as cron would run it: an overdue async turn is swept.
#[tokio::test(flavor = "multi_thread")]
async fn run_schedules_once_sweeps_an_overdue_turn() {
    let url = silent_async_agent().await;
    let trial = Trial::new("run-schedules", |demo| {
        pointing_at(&url)(demo).replace("mode = \"sync\"", "mode = \"async\"\nasync_answer_within_secs = 1")
    });
    let cli = |args: &[&str]| {
        let output = trial.casebridge().args(args).output().expect("run casebridge");
        (output.status.success(), String::from_utf8_lossy(&output.stdout).to_string())
    };
    let file = trial.dir.join("m.eml");
    std::fs::write(&file, mail(7, "Refund for order 7, please.")).unwrap();
    let (ok, text) = cli(&["ingest", &file.display().to_string()]);
    assert!(ok, "{text}");
    let (_, listed) = cli(&["case", "list"]);
    assert!(listed.contains("agent_working"), "{listed}");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (ok, text) = cli(&["run-schedules"]);
    assert!(ok && text.contains("sweep: 1 step(s)"), "{text}");
    let (_, listed) = cli(&["case", "list"]);
    assert!(listed.contains("escalated"), "{listed}");
}
