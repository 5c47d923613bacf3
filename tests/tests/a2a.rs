//! casebridge's A2A client against an agent built on the protocol's
//! reference SDK (Python `a2a-sdk`, protocol 1.0, JSON-RPC binding;
//! `tests/interop/a2a_agent.py`), through the real agent and outcome steps
//! on the embedded backend: a question continues the same task with the
//! customer's reply, task states become the contract's answers, the bearer
//! token is checked by the agent, `needsReview` comes through the case
//! extension. The agent logs what it received; the tests read that log.
//!
//! Needs the interop venv (`infra/local-stack.sh install`, exported as
//! `CASEBRIDGE_INTEROP_PYTHON`); skips without it unless
//! `CASEBRIDGE_REQUIRE_STACK=1`, as in CI, where that is a failure.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use casebridge::agent_client::HttpAgentClient;
use casebridge::config::{AgentAuth, AgentProtocol, SecretRef};
use casebridge::ids::CaseId;
use casebridge::model::{CaseStatus, DraftStatus, MailKind, ResolutionKind};
use casebridge::pipeline::inbound::IngestOutcome;
use casebridge::secrets::FixedSecrets;
use casebridge_tests::{config, customer_mail, unique, Backend, Harness};
use serde_json::{json, Value};

const TOKEN_ENV: &str = "A2A_AGENT_TOKEN";
const TOKEN: &str = "a2a-agent-token-0123456789";

/// The reference agent on a loopback port, stopped when dropped.
struct ReferenceAgent {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Drop for ReferenceAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

impl ReferenceAgent {
    /// The messages it received, in order.
    fn received(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }
}

async fn reference_agent() -> Option<ReferenceAgent> {
    let Some(python) = std::env::var_os("CASEBRIDGE_INTEROP_PYTHON") else {
        if std::env::var("CASEBRIDGE_REQUIRE_STACK").is_ok_and(|v| v == "1") {
            panic!("CASEBRIDGE_REQUIRE_STACK=1 but CASEBRIDGE_INTEROP_PYTHON is not set: run infra/test.sh");
        }
        eprintln!(
            "skipped: CASEBRIDGE_INTEROP_PYTHON is not set (eval \"$(infra/local-stack.sh env)\" after infra/local-stack.sh install)"
        );
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = std::env::temp_dir().join(format!("{}.jsonl", unique("a2a-agent")));
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop/a2a_agent.py");
    let child = Command::new(python)
        .arg(script)
        .arg(port.to_string())
        .arg(&log)
        .arg(TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the reference A2A agent");
    let agent = ReferenceAgent {
        child,
        url: format!("http://127.0.0.1:{port}/a2a"),
        log,
    };
    let card = format!("http://127.0.0.1:{port}/.well-known/agent-card.json");
    for _ in 0..150 {
        if let Ok(response) = reqwest::get(&card).await {
            if response.status().is_success() {
                let card: Value = response.json().await.expect("an agent card");
                assert_eq!(card["supportedInterfaces"][0]["protocolBinding"], "JSONRPC");
                return Some(agent);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the reference A2A agent did not start");
}

/// A harness whose refund agent is the reference agent, speaking A2A with a bearer token.
async fn harness(agent: &ReferenceAgent, token: &str, mode: &str) -> Harness {
    harness_at(&agent.url, None, token, mode).await
}

/// The same, the agent named by `url` or found through its agent card.
async fn harness_at(url: &str, card_url: Option<String>, token: &str, mode: &str) -> Harness {
    let mut config = config(url, mode);
    let refund = &mut config.agents[0];
    if card_url.is_some() {
        refund.url.clear();
        refund.card_url = card_url;
    }
    refund.protocol = AgentProtocol::A2a;
    refund.max_attempts = 1;
    refund.auth = AgentAuth::Bearer {
        token: SecretRef {
            env: Some(TOKEN_ENV.into()),
            secret_arn: None,
        },
    };
    let secrets = Arc::new(FixedSecrets(HashMap::from([(TOKEN_ENV.to_string(), token.to_string())])));
    Harness::new(Backend::embedded(), config, HttpAgentClient::new(secrets).unwrap()).await
}

/// A new case from a new customer with this text.
async fn case_saying(h: &Harness, text: &str) -> CaseId {
    let raw = customer_mail(
        &format!("{}@customer.example", unique("c")),
        "Refund please",
        &format!("{}@c.example", unique("m")),
        None,
        text,
    );
    match h.ingest(&raw).await {
        IngestOutcome::Stored {
            case_id,
            work_item: Some(_),
            ..
        } => case_id,
        other => panic!("no case with a turn: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_question_continues_the_task_and_the_customers_reply_resolves_it() {
    let Some(agent) = reference_agent().await else { return };
    let mut h = harness(&agent, TOKEN, "fully_autonomous").await;
    let case = case_saying(&h, "Hello, my order arrived broken and I want a refund for order 1234.").await;
    let (turn, after) = h.one_turn(&case).await;
    let question = h.outbound(&case).await;
    assert_eq!(question.len(), 1, "{question:?}");
    assert_eq!(question[0].kind, MailKind::Question);
    assert!(
        question[0].body.contains("Which order was it, and how much did you pay?"),
        "{}",
        question[0].body
    );
    assert_eq!(after.status, CaseStatus::WaitingOnCustomer);
    let task = turn.remote_task.clone().expect("the input-required task is kept on the turn");

    match h.customer_writes(&case, "It was order 1234, I paid $42.50.").await {
        IngestOutcome::Stored { work_item: Some(_), .. } => {}
        other => panic!("{other:?}"),
    }
    let (second, after) = h.one_turn(&case).await;
    assert_eq!(second.remote_task, None, "a completed task is not continued");
    let mails = h.outbound(&case).await;
    let resolution = mails.iter().find(|m| m.kind == MailKind::Resolution).expect("a resolution mail");
    assert!(
        resolution.body.contains("We have refunded $42.50 to your card."),
        "{}",
        resolution.body
    );
    assert_eq!(after.status, CaseStatus::Resolved);

    // What the agent received: the conversation as the context, the case data
    // part, the customer's new text each time, and the same task the second time.
    let received = agent.received();
    assert_eq!(received.len(), 2, "{received:?}");
    let (first, reply) = (&received[0], &received[1]);
    assert_eq!(first["contextId"], after.conversation_id.as_str());
    assert_eq!(first["continuing"], false);
    assert_eq!(first["taskId"], task.as_str());
    assert!(
        first["text"].as_str().unwrap().contains("I want a refund for order 1234."),
        "{first}"
    );
    assert!(
        !first["text"].as_str().unwrap().contains("Customer <"),
        "headers are not text: {first}"
    );
    assert_eq!(
        first["data"],
        json!([{"caseId": case.to_string(), "turnId": turn.public_id(&case), "intent": "refund"}])
    );
    assert_eq!(first["extensions"], json!([casebridge::a2a::CASE_EXTENSION]));
    assert_eq!(reply["continuing"], true);
    assert_eq!(reply["messageTaskId"], task.as_str());
    assert_eq!(reply["contextId"], after.conversation_id.as_str());
    assert_eq!(reply["text"], "It was order 1234, I paid $42.50.");
}

#[tokio::test(flavor = "multi_thread")]
async fn task_states_become_the_contracts_answers() {
    let Some(agent) = reference_agent().await else { return };
    let mut h = harness(&agent, TOKEN, "fully_autonomous").await;

    // Completed with the case extension's closeCase: the agent closed the case.
    let closed = case_saying(&h, "Please refund my last order and close my account.").await;
    let (_, after) = h.one_turn(&closed).await;
    assert_eq!(after.status, CaseStatus::Closed, "{after:?}");
    assert_eq!(after.resolution.map(|r| r.kind), Some(ResolutionKind::ClosedByAgent));

    // Failed: UnableToResolve, the case goes to a representative.
    let failed = case_saying(&h, "I want a refund for order 999, it will fail.").await;
    let (turn, after) = h.one_turn(&failed).await;
    assert_eq!(after.status, CaseStatus::Escalated, "{after:?}");
    assert!(
        matches!(&turn.result, Some(casebridge::model::TurnResult::Answered { response }) if response.response_type == casebridge::protocol::ResponseType::UnableToResolve),
        "{turn:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn needs_review_in_the_case_extension_holds_the_mail_as_a_draft() {
    let Some(agent) = reference_agent().await else { return };
    let mut h = harness(&agent, TOKEN, "fully_autonomous").await;
    let case = case_saying(&h, "I want a refund; a person should review the answer.").await;
    h.one_turn(&case).await;
    assert!(h.outbound(&case).await.iter().all(|m| m.kind != MailKind::Question), "nothing sent");
    let drafts = h.drafts(&case).await;
    assert_eq!(drafts.len(), 1, "{drafts:?}");
    assert_eq!(drafts[0].status, DraftStatus::PendingReview);
    assert!(drafts[0].body.contains("Which order was it"), "{}", drafts[0].body);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_token_is_refused_by_the_agent_and_the_case_escalates() {
    let Some(agent) = reference_agent().await else { return };
    let mut h = harness(&agent, "not-the-agents-token-000", "fully_autonomous").await;
    let case = case_saying(&h, "I want a refund for order 1234.").await;
    let (turn, after) = h.one_turn(&case).await;
    assert_eq!(after.status, CaseStatus::Escalated);
    let Some(casebridge::model::TurnResult::Failed { reason }) = &turn.result else {
        panic!("{turn:?}")
    };
    assert!(reason.contains("HTTP 401"), "{reason}");
    assert!(agent.received().is_empty(), "the agent executed nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_found_through_its_card_works_the_refund_case() {
    let Some(agent) = reference_agent().await else { return };
    let card = agent.url.replace("/a2a", "/.well-known/agent-card.json");
    // The configured url is empty: the endpoint can only come from the card.
    let mut h = harness_at("http://127.0.0.1:9/unused", Some(card), TOKEN, "fully_autonomous").await;
    let case = case_saying(&h, "My order arrived broken and I want a refund for order 1234.").await;
    let (turn, after) = h.one_turn(&case).await;
    assert_eq!(after.status, CaseStatus::WaitingOnCustomer, "{turn:?}");
    assert!(turn.remote_task.is_some());
    h.customer_writes(&case, "It was order 1234, I paid $42.50.").await;
    let (_, after) = h.one_turn(&case).await;
    assert_eq!(after.status, CaseStatus::Resolved);
    let kinds: Vec<MailKind> = h.outbound(&case).await.iter().map(|m| m.kind).collect();
    assert_eq!(kinds, vec![MailKind::Question, MailKind::Resolution]);
    assert_eq!(agent.received().len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_card_demanding_bearer_is_not_met_without_a_token_and_nothing_is_sent() {
    let Some(agent) = reference_agent().await else { return };
    let card = agent.url.replace("/a2a", "/.well-known/agent-card.json");
    let mut config = config("http://127.0.0.1:9/unused", "fully_autonomous");
    let refund = &mut config.agents[0];
    refund.protocol = AgentProtocol::A2a;
    refund.max_attempts = 1;
    refund.url.clear();
    refund.card_url = Some(card);
    let secrets = Arc::new(FixedSecrets(HashMap::new()));
    let mut h = Harness::new(Backend::embedded(), config, HttpAgentClient::new(secrets).unwrap()).await;
    let case = case_saying(&h, "I want a refund for order 1234.").await;
    let (turn, after) = h.one_turn(&case).await;
    assert_eq!(after.status, CaseStatus::Escalated);
    let Some(casebridge::model::TurnResult::Failed { reason }) = &turn.result else {
        panic!("{turn:?}")
    };
    assert!(
        reason.contains("demands authentication") && reason.contains("HTTP bearer"),
        "{reason}"
    );
    assert!(agent.received().is_empty(), "no message reached the agent");
}

/// A card served on loopback: OAuth 2.0 client credentials required, and an
/// interface list without JSON-RPC for `/grpc-only`.
async fn card_server() -> std::net::SocketAddr {
    use axum::routing::get;
    let oauth = json!({
        "name": "oauth-agent",
        "supportedInterfaces": [{"url": "http://127.0.0.1:9/a2a", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}],
        "securitySchemes": {"corp": {"oauth2SecurityScheme": {"flows": {"clientCredentials": {"tokenUrl": "http://127.0.0.1:9/token"}}}}},
        "securityRequirements": [{"schemes": {"corp": {"list": ["agents"]}}}]
    });
    let grpc = json!({
        "name": "grpc-agent",
        "supportedInterfaces": [{"url": "http://127.0.0.1:9", "protocolBinding": "GRPC", "protocolVersion": "1.0"}]
    });
    let app = axum::Router::new()
        .route("/oauth", get(move || async move { axum::Json(oauth) }))
        .route("/grpc-only", get(move || async move { axum::Json(grpc) }))
        .route("/moved", get(|| async { axum::response::Redirect::temporary("/oauth") }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

#[tokio::test(flavor = "multi_thread")]
async fn cards_casebridge_cannot_follow_fail_the_turn_with_the_reason() {
    let server = card_server().await;
    for (path, expected) in [
        ("oauth", "OAuth 2.0, which casebridge does not speak yet"),
        ("grpc-only", "names no JSONRPC interface of protocol 1.x (it names: GRPC 1.0)"),
        ("moved", "redirect"),
    ] {
        let mut config = config("http://127.0.0.1:9/unused", "fully_autonomous");
        let refund = &mut config.agents[0];
        refund.protocol = AgentProtocol::A2a;
        refund.max_attempts = 1;
        refund.url.clear();
        refund.card_url = Some(format!("http://{server}/{path}"));
        refund.auth = AgentAuth::Bearer {
            token: SecretRef {
                env: Some(TOKEN_ENV.into()),
                secret_arn: None,
            },
        };
        let secrets = Arc::new(FixedSecrets(HashMap::from([(TOKEN_ENV.to_string(), TOKEN.to_string())])));
        let mut h = Harness::new(Backend::embedded(), config, HttpAgentClient::new(secrets).unwrap()).await;
        let case = case_saying(&h, "I want a refund for order 1234.").await;
        let (turn, after) = h.one_turn(&case).await;
        assert_eq!(after.status, CaseStatus::Escalated, "{path}");
        let Some(casebridge::model::TurnResult::Failed { reason }) = &turn.result else {
            panic!("{path}: {turn:?}")
        };
        assert!(reason.contains(expected), "{path}: {reason}");
    }
}
