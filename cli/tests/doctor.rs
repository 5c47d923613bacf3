//! `casebridge doctor` as an operator runs it: a good configuration and
//! store pass (exit 0, only ok and WARN lines); a closed agent port and an
//! empty bearer token fail (non-zero exit), each named with its agent.

use std::path::{Path, PathBuf};
use std::process::Command;

struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("casebridge-doctor-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn demo_config() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo.toml")).unwrap()
}

/// Runs doctor on DIR/cases.db, DIR/outbox and DIR/inbox; (success, stdout, stderr).
fn doctor(dir: &Path, config: &Path, env: &[(&str, &str)]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_casebridge"))
        .arg("--store")
        .arg(format!("sqlite:{}", dir.join("cases.db").display()))
        .arg("--outbox")
        .arg(dir.join("outbox"))
        .arg("--config")
        .arg(config)
        .arg("doctor")
        .arg("--inbox")
        .arg(dir.join("inbox"))
        .envs(env.iter().copied())
        .env_remove("CASEBRIDGE_STORE")
        .output()
        .expect("run casebridge doctor");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_good_configuration_and_store_pass() {
    let dir = TempDir::new("good");
    std::fs::create_dir_all(dir.0.join("outbox")).unwrap();
    std::fs::create_dir_all(dir.0.join("inbox")).unwrap();
    // An agent that accepts connections: the listen backlog answers the
    // connect, so nothing needs to accept.
    let agent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/invoke?token=do-not-print", agent.local_addr().unwrap());
    let config = dir.0.join("casebridge.toml");
    let text = demo_config().replace("http://127.0.0.1:8080/invoke", &url);
    assert!(text.contains(&url), "the agent URL was replaced");
    std::fs::write(&config, text).unwrap();

    // First with no database yet, then with one the CLI created.
    for round in ["no database yet", "existing database"] {
        let (ok, out, err) = doctor(&dir.0, &config, &[]);
        assert!(ok, "{round}: doctor failed:\n{out}{err}");
        for line in out.lines() {
            assert!(line.starts_with("ok ") || line.starts_with("WARN "), "{round}: {line}");
        }
        for check in [
            "config:",
            "agent refund-agent:",
            "intent refund:",
            "store sqlite:",
            "outbox ",
            "inbox ",
        ] {
            assert!(out.contains(check), "{round}: no {check} line:\n{out}");
        }
        assert!(out.contains("reachable"), "{out}");
        assert!(
            out.lines().any(|l| l.starts_with("WARN") && l.contains("intent order_status")),
            "an intent without an agent is a warning:\n{out}"
        );
        assert!(
            !out.contains("do-not-print") && !err.contains("do-not-print"),
            "the query string was printed:\n{out}"
        );
        let (ok, text) = create_store(&dir.0, &config);
        assert!(ok, "{text}");
    }
    assert!(
        std::fs::read_dir(dir.0.join("outbox")).unwrap().next().is_none(),
        "the outbox probe was removed"
    );
}

fn create_store(dir: &Path, config: &Path) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_casebridge"))
        .arg("--store")
        .arg(format!("sqlite:{}", dir.join("cases.db").display()))
        .arg("--outbox")
        .arg(dir.join("outbox"))
        .arg("--config")
        .arg(config)
        .args(["case", "show", "CB-0000000000"])
        .output()
        .expect("run casebridge");
    // The case does not exist; what matters is that the store was created.
    let text = String::from_utf8_lossy(&output.stderr).into_owned();
    (dir.join("cases.db").exists(), text)
}

#[test]
fn a_closed_port_and_an_empty_token_fail_and_name_their_agents() {
    let dir = TempDir::new("bad");
    std::fs::create_dir_all(dir.0.join("outbox")).unwrap();
    std::fs::create_dir_all(dir.0.join("inbox")).unwrap();
    // A port that was just free: bound, then closed.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let text = demo_config().replace("http://127.0.0.1:8080/invoke", &format!("http://{closed}/invoke"));
    let text = format!(
        "{text}\n[[agents]]\nname = \"billing-agent\"\nurl = \"http://{}/billing\"\n\
         [agents.auth]\ntype = \"bearer\"\ntoken = {{ env = \"CB_DOCTOR_EMPTY_TOKEN\" }}\n",
        open.local_addr().unwrap()
    );
    let config = dir.0.join("casebridge.toml");
    std::fs::write(&config, text).unwrap();

    let (ok, out, err) = doctor(&dir.0, &config, &[("CB_DOCTOR_EMPTY_TOKEN", "")]);
    assert!(!ok, "doctor passed:\n{out}");
    assert!(err.contains("2 check(s) failed"), "{err}");
    let fail = |agent: &str| {
        out.lines()
            .filter(|l| l.starts_with("FAIL") && l.contains(agent))
            .collect::<Vec<_>>()
    };
    let refund = fail("refund-agent");
    assert!(
        refund.len() == 1 && refund[0].contains(&format!("http://{closed}/invoke")) && refund[0].contains("not reachable"),
        "{out}"
    );
    let billing = fail("billing-agent");
    assert!(
        billing.len() == 1 && billing[0].contains("CB_DOCTOR_EMPTY_TOKEN") && billing[0].contains("at least 16"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("ok") && l.contains("agent billing-agent") && l.contains("reachable")),
        "the reachable agent is ok:\n{out}"
    );
    assert!(out.lines().any(|l| l.starts_with("ok") && l.contains("store sqlite:")), "{out}");
}

#[test]
fn a_missing_inbox_and_an_unloadable_configuration_fail() {
    let dir = TempDir::new("missing");
    let config = dir.0.join("casebridge.toml");
    std::fs::write(&config, "[mail]\nfrom_address = \"support@shop.example\"\nunknown_key = 1\n").unwrap();
    let (ok, out, _) = doctor(&dir.0, &config, &[]);
    assert!(!ok, "{out}");
    assert!(out.lines().any(|l| l.starts_with("FAIL") && l.contains("config:")), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("FAIL") && l.contains("inbox") && l.contains("does not exist")),
        "{out}"
    );
    // Nothing was created by looking.
    assert!(!dir.0.join("inbox").exists() && !dir.0.join("outbox").exists() && !dir.0.join("cases.db").exists());
}
