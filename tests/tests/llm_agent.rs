//! The example LLM agent (`examples/llm-agent`) worked by the real pipeline
//! on the embedded store, over each agent protocol, against the scripted
//! fake model: the agent reads the case over casebridge's MCP server (the
//! customer's text reaches the model only that way on casebridge's
//! protocol), the model's tool calls run against the order service, and the
//! answer lands as the contract's outcome — a resolution mail, a question
//! and then, for A2A, the same task continued by the customer's reply — and
//! a model that answers badly escalates the case instead of breaking
//! anything.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::Request;
use casebridge::agent_client::HttpAgentClient;
use casebridge::config::{AgentAuth, AgentProtocol, HmacScheme, SecretRef};
use casebridge::ids::CaseId;
use casebridge::model::{CaseStatus, MailKind, TurnResult};
use casebridge::pipeline::inbound::IngestOutcome;
use casebridge::protocol::ResponseType;
use casebridge::secrets::FixedSecrets;
use casebridge_tests::{config, customer_mail, spawn_api_with, unique, Backend, Harness};
use llm_agent::fake_llm::{self, FakeLlm, Script};
use llm_agent::llm::{ChatRequest, Role};
use llm_agent::{AgentSecret, Settings};
use serde_json::Value;
use tower::ServiceExt;

const SECRET_ENV: &str = "LLM_AGENT_SECRET";
const SECRET: &str = "llm-agent-secret-0123456789abcdef0123";

#[derive(Clone, Copy)]
enum Auth {
    Bearer,
    Hmac,
}

/// What went over the wire between casebridge and the agent: (request, reply) bodies.
type Exchanges = Arc<Mutex<Vec<(Value, Value)>>>;

struct Setup {
    h: Harness,
    fake: FakeLlm,
    exchanges: Exchanges,
}

/// The pipeline with its refund agent being the LLM agent over `protocol`,
/// the API (with its MCP server) on loopback, and the fake model.
async fn setup(protocol: AgentProtocol, script: Script, auth: Auth) -> Setup {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let path = match protocol {
        AgentProtocol::Casebridge => "/invoke",
        AgentProtocol::A2a => "/a2a",
    };
    let mut config = config(&format!("http://{addr}{path}"), "fully_autonomous");
    let refund = &mut config.agents[0];
    refund.protocol = protocol;
    refund.max_attempts = 1;
    let secret = SecretRef {
        env: Some(SECRET_ENV.into()),
        secret_arn: None,
    };
    refund.auth = match auth {
        Auth::Bearer => AgentAuth::Bearer { token: secret },
        Auth::Hmac => AgentAuth::Hmac {
            secret,
            scheme: HmacScheme::V2,
            key_id: "k1".into(),
            previous: None,
        },
    };
    let secrets = Arc::new(FixedSecrets(HashMap::from([(SECRET_ENV.to_string(), SECRET.to_string())])));
    let h = Harness::new(Backend::embedded(), config, HttpAgentClient::new(secrets.clone()).unwrap()).await;
    let api = spawn_api_with(h.store.clone(), h.backend.mailer(), "rep-token-0123456789", &h.config, secrets).await;
    let fake = fake_llm::spawn("127.0.0.1:0".parse().unwrap(), script).await.unwrap();
    let agent_auth = match auth {
        Auth::Bearer => AgentSecret::Bearer(SECRET.into()),
        Auth::Hmac => AgentSecret::Hmac {
            key_id: "k1".into(),
            secret: SECRET.into(),
        },
    };
    let settings = Settings::new(
        "refund-agent",
        agent_auth,
        &format!("http://{api}/mcp"),
        &fake.base_url,
        "fake-model",
        Some("sk-test-key".into()),
    );
    let exchanges = serve_recorded(listener, settings);
    Setup { h, fake, exchanges }
}

/// Serves the agent's router behind a recorder of each request and reply body.
fn serve_recorded(listener: tokio::net::TcpListener, settings: Settings) -> Exchanges {
    let agent = llm_agent::router(settings).unwrap();
    let exchanges: Exchanges = Arc::default();
    let log = exchanges.clone();
    let app = axum::Router::new().fallback(move |request: Request| {
        let (agent, log) = (agent.clone(), log.clone());
        async move {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
            let response = agent.oneshot(Request::from_parts(parts, Body::from(body.clone()))).await.unwrap();
            let (parts, reply) = response.into_parts();
            let reply = axum::body::to_bytes(reply, 1 << 20).await.unwrap();
            let json = |b: &[u8]| serde_json::from_slice(b).unwrap_or(Value::Null);
            log.lock().unwrap().push((json(&body), json(&reply)));
            axum::response::Response::from_parts(parts, Body::from(reply))
        }
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    exchanges
}

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

/// The text of the user messages the model was sent in a request.
fn user_text(request: &ChatRequest) -> String {
    request
        .messages
        .iter()
        .filter(|m| m.role == Role::User)
        .filter_map(|m| m.content.clone())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The order tools the model called in the last conversation, in order
/// (its calls as the agent sent them back; the final answer_customer is the
/// model's last reply, not sent back).
fn tools_called(received: &[ChatRequest]) -> Vec<String> {
    received
        .last()
        .map(|r| {
            r.messages
                .iter()
                .filter_map(|m| m.tool_calls.as_ref())
                .flatten()
                .map(|c| c.function.name.clone())
                .collect()
        })
        .unwrap_or_default()
}

fn answered(result: &Option<TurnResult>) -> Option<ResponseType> {
    match result {
        Some(TurnResult::Answered { response }) => Some(response.response_type),
        _ => None,
    }
}

async fn refund_resolved_in_one_turn(auth: Auth) {
    let Setup { mut h, fake, .. } = setup(AgentProtocol::Casebridge, Script::Refund, auth).await;
    let case = case_saying(&h, "Hello, the mugs arrived broken. I want a refund for order 1234.").await;
    let (turn, after) = h.one_turn(&case).await;
    assert_eq!(answered(&turn.result), Some(ResponseType::Resolved), "{turn:?}");
    assert_eq!(after.status, CaseStatus::Resolved);
    let mails = h.outbound(&case).await;
    let resolution = mails.iter().find(|m| m.kind == MailKind::Resolution).expect("a resolution mail");
    assert!(
        resolution.body.contains("We have refunded $42.50 for order 1234"),
        "{}",
        resolution.body
    );

    // The model saw the customer's mail, which this protocol's request does
    // not carry: the agent read it over MCP.
    let received = fake.received();
    assert_eq!(received.len(), 3, "lookup, refund, answer");
    assert!(
        user_text(&received[0]).contains("I want a refund for order 1234."),
        "{}",
        user_text(&received[0])
    );
    assert!(user_text(&received[0]).contains(&case.to_string()));
    let declared: Vec<&str> = received[0].tools.iter().map(|t| t.function.name.as_str()).collect();
    assert_eq!(declared, ["lookup_order", "issue_refund", "answer_customer"]);
    assert_eq!(received[0].tool_choice.as_deref(), Some("required"));
    assert_eq!(tools_called(&received), ["lookup_order", "issue_refund"]);
    let lookup = received[1]
        .messages
        .iter()
        .find(|m| m.role == Role::Tool)
        .and_then(|m| m.content.clone())
        .unwrap();
    let lookup: Value = serde_json::from_str(&lookup).unwrap();
    assert_eq!(lookup["orderId"], "1234");
    assert_eq!(lookup["status"], "delivered");
}

#[tokio::test(flavor = "multi_thread")]
async fn over_casebridges_protocol_the_agent_reads_the_case_over_mcp_refunds_and_resolves() {
    refund_resolved_in_one_turn(Auth::Bearer).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_hmac_both_the_call_and_the_mcp_reads_are_signed() {
    refund_resolved_in_one_turn(Auth::Hmac).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn over_a2a_a_question_continues_the_task_and_the_customers_reply_resolves_it() {
    let Setup { mut h, fake, exchanges } = setup(AgentProtocol::A2a, Script::Refund, Auth::Bearer).await;
    let case = case_saying(&h, "My mugs arrived broken and I want a refund.").await;
    let (turn, after) = h.one_turn(&case).await;
    assert_eq!(answered(&turn.result), Some(ResponseType::Question), "{turn:?}");
    assert_eq!(after.status, CaseStatus::WaitingOnCustomer);
    let question = h.outbound(&case).await;
    assert_eq!(question.len(), 1, "{question:?}");
    assert_eq!(question[0].kind, MailKind::Question);
    assert!(
        question[0].body.contains("Could you tell us the order number"),
        "{}",
        question[0].body
    );
    let task = turn.remote_task.clone().expect("the input-required task is kept on the turn");
    assert!(tools_called(&fake.received()).is_empty(), "no order to look up yet");
    assert_eq!(fake.received().len(), 1, "the question straight away");

    match h.customer_writes(&case, "Sorry, it was order 1234.").await {
        IngestOutcome::Stored { work_item: Some(_), .. } => {}
        other => panic!("{other:?}"),
    }
    let (second, after) = h.one_turn(&case).await;
    assert_eq!(answered(&second.result), Some(ResponseType::Resolved), "{second:?}");
    assert_eq!(after.status, CaseStatus::Resolved);
    let mails = h.outbound(&case).await;
    let resolution = mails.iter().find(|m| m.kind == MailKind::Resolution).expect("a resolution mail");
    assert!(resolution.body.contains("$42.50"), "{}", resolution.body);

    // On the wire: the first reply is an input-required task, the customer's
    // reply is sent on that task, and the agent completes that same task.
    let exchanges = exchanges.lock().unwrap().clone();
    assert_eq!(exchanges.len(), 2, "{exchanges:?}");
    let (first_request, first_reply) = &exchanges[0];
    assert_eq!(first_request["method"], "SendMessage");
    assert_eq!(first_reply["result"]["task"]["status"]["state"], "TASK_STATE_INPUT_REQUIRED");
    assert_eq!(first_reply["result"]["task"]["id"], task.as_str());
    assert_eq!(first_reply["result"]["task"]["contextId"], after.conversation_id.as_str());
    let (second_request, second_reply) = &exchanges[1];
    assert_eq!(second_request["params"]["message"]["taskId"], task.as_str());
    assert_eq!(second_reply["result"]["task"]["id"], task.as_str());
    assert_eq!(second_reply["result"]["task"]["status"]["state"], "TASK_STATE_COMPLETED");
    assert!(second_reply["result"]["task"]["artifacts"][0]["parts"][0]["text"]
        .as_str()
        .is_some_and(|t| t.contains("$42.50")));

    // The model saw the whole thread, read over MCP: the first mail, our question, the reply.
    let last = fake.received().last().cloned().unwrap();
    let text = user_text(&last);
    for expected in ["I want a refund.", "Could you tell us the order number", "it was order 1234."] {
        assert!(text.contains(expected), "{expected:?} in {text}");
    }
    assert_eq!(tools_called(&fake.received()), ["lookup_order", "issue_refund"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_model_that_does_not_call_the_answer_tool_escalates_the_case() {
    let Setup { mut h, fake, .. } = setup(AgentProtocol::Casebridge, Script::NoToolCall, Auth::Bearer).await;
    let case = case_saying(&h, "I want a refund for order 1234.").await;
    let (turn, after) = h.one_turn(&case).await;
    let Some(TurnResult::Answered { response }) = &turn.result else {
        panic!("{turn:?}")
    };
    assert_eq!(response.response_type, ResponseType::UnableToResolve);
    assert!(
        response
            .message
            .as_deref()
            .is_some_and(|m| m.contains("without calling answer_customer")),
        "{response:?}"
    );
    assert_eq!(after.status, CaseStatus::Escalated);
    assert!(h.outbound(&case).await.iter().all(|m| m.kind != MailKind::Resolution));
    assert_eq!(fake.received().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn over_a2a_an_answer_that_is_not_json_fails_the_task_and_escalates() {
    let Setup { mut h, exchanges, .. } = setup(AgentProtocol::A2a, Script::BadAnswer, Auth::Bearer).await;
    let case = case_saying(&h, "I want a refund for order 1234.").await;
    let (turn, after) = h.one_turn(&case).await;
    assert_eq!(answered(&turn.result), Some(ResponseType::UnableToResolve), "{turn:?}");
    assert_eq!(after.status, CaseStatus::Escalated);
    let exchanges = exchanges.lock().unwrap().clone();
    assert_eq!(exchanges[0].1["result"]["task"]["status"]["state"], "TASK_STATE_FAILED");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_without_casebridges_credentials_is_refused() {
    let Setup { h, fake, .. } = setup(AgentProtocol::Casebridge, Script::Refund, Auth::Bearer).await;
    let url = &h.config.agents[0].url;
    let status = reqwest::Client::new()
        .post(url.as_str())
        .header("authorization", "Bearer not-the-token-0123456789")
        .json(&serde_json::json!({"caseId": "CB-0000000000", "conversationId": "c"}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 401);
    assert!(fake.received().is_empty(), "the model was not asked");
}
