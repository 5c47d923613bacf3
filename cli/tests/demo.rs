//! The README's first command keeps working: `casebridge demo` runs the
//! refund scenario and leaves two mails in the outbox.

use std::process::Command;

#[test]
fn demo_runs_the_refund_scenario_to_a_resolved_case() {
    let dir = std::env::temp_dir().join(format!("casebridge-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_casebridge"))
        .arg("demo")
        .current_dir(&dir)
        .output()
        .expect("run casebridge demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "intent refund",
        "agent answered Question",
        "linked to case",
        "agent answered Resolved",
        "is resolved",
        "status_changed",
        "case agent_working → resolved",
    ] {
        assert!(stdout.contains(expected), "demo output lacks {expected:?}:\n{stdout}");
    }
    let mails: Vec<_> = std::fs::read_dir(dir.join("outbox")).unwrap().flatten().collect();
    assert_eq!(mails.len(), 2, "question and resolution in the outbox");
    let _ = std::fs::remove_dir_all(&dir);
}
