//! `casebridge demo --llm-agent [casebridge|a2a]` plays the refund scenario
//! with the example LLM agent and its scripted fake model, over each
//! protocol, to a resolved case with a question and a resolution in the outbox.

use std::process::Command;

fn demo_with(protocol: &str) {
    let dir = std::env::temp_dir().join(format!("casebridge-demo-llm-{protocol}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_casebridge"))
        .args(["demo", "--llm-agent", protocol])
        .current_dir(&dir)
        .output()
        .expect("run casebridge demo --llm-agent");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "the LLM example agent",
        "reading the case over MCP",
        "agent answered Question",
        "linked to case",
        "agent answered Resolved",
        "is resolved",
    ] {
        assert!(stdout.contains(expected), "demo output lacks {expected:?}:\n{stdout}");
    }
    let mails: Vec<_> = std::fs::read_dir(dir.join("outbox")).unwrap().flatten().collect();
    assert_eq!(mails.len(), 2, "question and resolution in the outbox");
    let resolution = mails
        .iter()
        .map(|m| std::fs::read_to_string(m.path()).unwrap())
        .find(|m| m.contains("refunded $42.50"))
        .expect("the resolution names the refund");
    assert!(resolution.contains("order 1234"), "{resolution}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_llm_agent_demo_over_casebridges_protocol() {
    demo_with("casebridge");
}

#[test]
fn the_llm_agent_demo_over_a2a() {
    demo_with("a2a");
}
