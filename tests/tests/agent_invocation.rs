//! Agent invocation against real agents on 127.0.0.1: answers, retries,
//! failures, authentication, async callbacks, the sweep, duplicate stream
//! records and mail arriving during a turn. Each test feeds the agent and
//! outcome functions the stream records the previous step wrote, and asserts
//! the stored turn and the case state; each runs on the embedded store and
//! again on moto when the local stack is up (`on_every_backend!`). Only the
//! Secrets Manager test is stack-only: the secret lives in moto.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use casebridge::agent_client::HttpAgentClient;
use casebridge::config::{AgentAuth, AgentMode, SecretRef};
use casebridge::model::{AgentTurn, CaseStatus, RecordKind, TurnResult, TurnStatus};
use casebridge::pipeline::inbound::IngestOutcome;
use casebridge::store::Store;
use casebridge_agent_invocation::AgentFunction;
use casebridge_tests::*;
use serde_json::{json, Value};

const HMAC_ENV: &str = "REFUND_AGENT_HMAC";
const RIGHT_SECRET: &str = "the-right-secret-of-32-bytes-min";

fn secrets(value: &str) -> Arc<casebridge::secrets::FixedSecrets> {
    Arc::new(casebridge::secrets::FixedSecrets(HashMap::from([(
        HMAC_ENV.to_string(),
        value.to_string(),
    )])))
}

/// A harness whose single agent is at `url`, tuned by `tune`.
async fn harness(backend: Backend, url: &str, secret: &str, tune: impl FnOnce(&mut casebridge::config::AgentConfig)) -> Harness {
    let mut config = config(url, "fully_autonomous");
    let agent = &mut config.agents[0];
    agent.timeout_ms = 2_000;
    agent.max_attempts = 3;
    tune(agent);
    let agents = HttpAgentClient::new(secrets(secret))
        .unwrap()
        .with_base_backoff(Duration::from_millis(20));
    Harness::new(backend, config, agents).await
}

fn hmac(agent: &mut casebridge::config::AgentConfig) {
    agent.auth = hmac_auth(SecretRef {
        env: Some(HMAC_ENV.into()),
        secret_arn: None,
    });
}

fn hmac_auth(secret: SecretRef) -> AgentAuth {
    AgentAuth::Hmac {
        secret,
        scheme: casebridge::config::HmacScheme::V2,
        key_id: "k1".into(),
        previous: None,
    }
}

fn failure(turn: &AgentTurn) -> String {
    match &turn.result {
        Some(TurnResult::Failed { reason }) => reason.clone(),
        other => panic!("turn did not fail: {other:?}"),
    }
}

async fn each_answer_type_is_stored_and_carried_out(backend: Backend) {
    for (answer, status) in [
        (
            json!({"responseType": "Question", "message": "Which order?"}),
            CaseStatus::WaitingOnCustomer,
        ),
        (json!({"responseType": "Resolved", "message": "Refunded."}), CaseStatus::Resolved),
        (json!({"responseType": "UnableToResolve"}), CaseStatus::Escalated),
        (json!({"responseType": "NoAction"}), CaseStatus::Idle),
        (json!({"responseType": "ResolveCase"}), CaseStatus::Closed),
    ] {
        let agent = spawn_scripted_agent(vec![Behaviour::answer(answer.clone())], None).await;
        let mut h = harness(backend.clone(), &agent.url, RIGHT_SECRET, |_| {}).await;
        let case = h.new_case().await;
        let (turn, after) = h.one_turn(&case).await;
        assert_eq!(turn.status, TurnStatus::Done, "{answer}");
        match &turn.result {
            Some(TurnResult::Answered { response }) => {
                assert_eq!(json!(response.response_type), answer["responseType"])
            }
            other => panic!("{answer}: {other:?}"),
        }
        assert_eq!(after.status, status, "{answer}");
        let calls = agent.calls();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].body["caseId"], json!(case.to_string()));
        assert_eq!(calls[0].body["conversationId"], json!(after.conversation_id));
        assert_eq!(calls[0].idempotency_key.as_deref(), Some(turn.public_id(&case).as_str()));
    }
}

async fn timeout_then_success(backend: Backend) {
    let ok = Behaviour::answer(json!({"responseType": "NoAction"}));
    let agent = spawn_scripted_agent(vec![ok.clone().slow(Duration::from_millis(1_500)), ok], None).await;
    let mut h = harness(backend, &agent.url, RIGHT_SECRET, |a| a.timeout_ms = 400).await;
    let case = h.new_case().await;
    let (turn, after) = h.one_turn(&case).await;
    assert!(matches!(turn.result, Some(TurnResult::Answered { .. })));
    assert_eq!(turn.attempts, 2);
    assert_eq!(after.status, CaseStatus::Idle);
    let calls = agent.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls[0].idempotency_key, calls[1].idempotency_key,
        "retries carry the same idempotency key"
    );
}

async fn server_errors_then_success(backend: Backend) {
    let agent = spawn_scripted_agent(
        vec![
            Behaviour::raw(500, "oops"),
            Behaviour::raw(503, ""),
            Behaviour::answer(json!({"responseType": "Resolved", "message": "Done."})),
        ],
        None,
    )
    .await;
    let mut h = harness(backend, &agent.url, RIGHT_SECRET, |_| {}).await;
    let case = h.new_case().await;
    let (turn, after) = h.one_turn(&case).await;
    assert_eq!(turn.attempts, 3);
    assert!(matches!(turn.result, Some(TurnResult::Answered { .. })));
    assert_eq!(after.status, CaseStatus::Resolved);
    assert_eq!(agent.calls().len(), 3);
}

async fn too_many_requests_honours_retry_after(backend: Backend) {
    let agent = spawn_scripted_agent(
        vec![
            Behaviour::raw(429, "slow down").retry_after(1),
            Behaviour::answer(json!({"responseType": "NoAction"})),
        ],
        None,
    )
    .await;
    let mut h = harness(backend, &agent.url, RIGHT_SECRET, |_| {}).await;
    let case = h.new_case().await;
    let (turn, _) = h.one_turn(&case).await;
    assert_eq!(turn.attempts, 2);
    let calls = agent.calls();
    let gap = calls[1].at.duration_since(calls[0].at);
    assert!(
        gap >= Duration::from_millis(950),
        "second call came {gap:?} after a Retry-After of 1 s"
    );
}

async fn retry_budget_exhausted_escalates_with_the_reason(backend: Backend) {
    let agent = spawn_scripted_agent(vec![Behaviour::raw(502, "bad gateway")], None).await;
    let mut h = harness(backend, &agent.url, RIGHT_SECRET, |a| a.max_attempts = 3).await;
    let case = h.new_case().await;
    let (turn, after) = h.one_turn(&case).await;
    let reason = failure(&turn);
    assert!(reason.contains("HTTP 502") && reason.contains("3 attempt"), "{reason}");
    assert_eq!(agent.calls().len(), 3);
    assert_eq!(after.status, CaseStatus::Escalated);
    assert!(after.escalation.as_ref().unwrap().reason.contains("HTTP 502"));
}

async fn invalid_answers_escalate_without_retry(backend: Backend) {
    for (body, expected) in [
        ("{not json", "not valid JSON"),
        (r#"{"responseType": "Perhaps"}"#, "unknown responseType"),
        (r#"{"responseType": "Question"}"#, "without a message"),
    ] {
        let agent = spawn_scripted_agent(vec![Behaviour::raw(200, body)], None).await;
        let mut h = harness(backend.clone(), &agent.url, RIGHT_SECRET, |_| {}).await;
        let case = h.new_case().await;
        let (turn, after) = h.one_turn(&case).await;
        let reason = failure(&turn);
        assert!(reason.contains(expected), "{body}: {reason}");
        assert_eq!(agent.calls().len(), 1, "{body}: an invalid answer is not retried");
        assert_eq!(after.status, CaseStatus::Escalated, "{body}");
        assert!(
            h.store.list_records(&case, RecordKind::Draft).await.unwrap().is_empty(),
            "no draft from an invalid answer"
        );
    }
}

async fn hmac_signature_is_really_checked_by_the_agent(backend: Backend) {
    // Right secret: the agent's own verifier accepts the request.
    let agent = spawn_scripted_agent(vec![Behaviour::answer(json!({"responseType": "NoAction"}))], Some(RIGHT_SECRET)).await;
    let mut h = harness(backend.clone(), &agent.url, RIGHT_SECRET, hmac).await;
    let case = h.new_case().await;
    let (turn, _) = h.one_turn(&case).await;
    assert!(matches!(turn.result, Some(TurnResult::Answered { .. })), "{:?}", turn.result);
    assert_eq!(agent.calls().len(), 1);

    // Wrong secret, and no signature at all: refused (401, not retried) and escalated.
    for (secret, tune) in [
        ("a-wrong-secret-also-32-bytes-long", hmac as fn(&mut _)),
        (RIGHT_SECRET, |_: &mut _| {}),
    ] {
        let agent = spawn_scripted_agent(vec![Behaviour::answer(json!({"responseType": "NoAction"}))], Some(RIGHT_SECRET)).await;
        let mut h = harness(backend.clone(), &agent.url, secret, tune).await;
        let case = h.new_case().await;
        let (turn, after) = h.one_turn(&case).await;
        assert!(failure(&turn).contains("HTTP 401"), "{:?}", turn.result);
        assert_eq!(agent.calls().len(), 0, "the agent refused before doing any work");
        assert_eq!(after.status, CaseStatus::Escalated);
    }
}

async fn bearer_token_is_sent(backend: Backend) {
    let agent = spawn_scripted_agent(vec![Behaviour::answer(json!({"responseType": "NoAction"}))], None).await;
    let mut h = harness(backend, &agent.url, "tok-123-0123456789", |a| {
        a.auth = AgentAuth::Bearer {
            token: SecretRef {
                env: Some(HMAC_ENV.into()),
                secret_arn: None,
            },
        }
    })
    .await;
    let case = h.new_case().await;
    h.one_turn(&case).await;
    assert_eq!(agent.calls()[0].authorization.as_deref(), Some("Bearer tok-123-0123456789"));
}

async fn post_callback(api: std::net::SocketAddr, turn_id: &str, body: &Value, secret: &str) -> (u16, Value) {
    use casebridge::agent_auth::{sign_v2, Direction, RequestFacts};
    let body = body.to_string();
    let timestamp = chrono::Utc::now().timestamp();
    let path = format!("/turns/{turn_id}/answer");
    let facts = RequestFacts {
        direction: Direction::ToCasebridge,
        agent: "refund-agent",
        method: "POST",
        path_and_query: &path,
        body: body.as_bytes(),
    };
    let response = reqwest::Client::new()
        .post(format!("http://{api}{path}"))
        .header("x-casebridge-agent", "refund-agent")
        .header("x-casebridge-key-id", "k1")
        .header("x-casebridge-timestamp", timestamp.to_string())
        .header("x-casebridge-signature", sign_v2(secret.as_bytes(), &facts, timestamp))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn async_agent_answers_by_callback_and_a_replay_is_ignored(backend: Backend) {
    let agent = spawn_scripted_agent(vec![Behaviour::raw(202, "")], Some(RIGHT_SECRET)).await;
    let mut h = harness(backend, &agent.url, RIGHT_SECRET, |a| {
        hmac(a);
        a.mode = AgentMode::Async;
    })
    .await;
    let api = spawn_api_with(h.store.clone(), h.backend.mailer(), "rep-token", &h.config, secrets(RIGHT_SECRET)).await;
    let case = h.new_case().await;
    h.agent_step().await;
    let turn = h.turns(&case).await.pop().unwrap();
    assert_eq!(turn.status, TurnStatus::AwaitingCallback);
    assert!(turn.due_at.is_some());
    assert_eq!(h.case(&case).await.status, CaseStatus::AgentWorking);

    let answer = json!({"responseType": "Resolved", "message": "Your refund is on its way."});
    let turn_id = turn.public_id(&case);
    // A forged callback is refused and changes nothing.
    let (status, body) = post_callback(api, &turn_id, &answer, "not-the-secret").await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));
    assert_eq!(h.turns(&case).await.pop().unwrap().status, TurnStatus::AwaitingCallback);

    let (status, _) = post_callback(api, &turn_id, &answer, RIGHT_SECRET).await;
    assert_eq!(status, 200);
    h.outcome_step().await;
    let after = h.case(&case).await;
    assert_eq!(after.status, CaseStatus::Resolved);
    assert_eq!(h.turns(&case).await.pop().unwrap().status, TurnStatus::Done);

    let version = after.version;
    let (status, body) = post_callback(api, &turn_id, &json!({"responseType": "ResolveCase"}), RIGHT_SECRET).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("turn_closed")));
    let after = h.case(&case).await;
    assert_eq!(
        (after.version, after.status),
        (version, CaseStatus::Resolved),
        "a replayed callback changes nothing"
    );
    assert_eq!(agent.calls().len(), 1);
}

async fn async_answer_that_never_comes_is_escalated_by_the_sweep(backend: Backend) {
    let agent = spawn_scripted_agent(vec![Behaviour::raw(202, "")], None).await;
    let mut h = harness(backend, &agent.url, RIGHT_SECRET, |a| {
        a.mode = AgentMode::Async;
        a.async_answer_within_secs = 600;
    })
    .await;
    let case = h.new_case().await;
    h.agent_step().await;
    assert_eq!(h.turns(&case).await.pop().unwrap().status, TurnStatus::AwaitingCallback);

    // Not yet due: the sweep leaves it alone.
    assert!(h.agent.sweep().await.unwrap().is_empty());
    // Eleven minutes later it is overdue.
    let later = AgentFunction {
        store: h.store.clone(),
        agents: HttpAgentClient::new(secrets(RIGHT_SECRET)).unwrap(),
        config: h.config.clone(),
        clock: Box::new(ShiftedClock(chrono::Duration::minutes(11))),
    };
    let swept = later.handle_any(json!({"action": "sweep"}), None).await.unwrap();
    assert_eq!(swept["swept"].as_array().map(Vec::len), Some(1), "{swept}");
    h.outcome_step().await;
    let turn = h.turns(&case).await.pop().unwrap();
    assert!(failure(&turn).contains("sent no answer"));
    let after = h.case(&case).await;
    assert_eq!(after.status, CaseStatus::Escalated);
    assert!(after.escalation.unwrap().reason.contains("sent no answer"));
    assert!(later.sweep().await.unwrap().is_empty(), "a swept turn leaves the due index");
}

async fn the_same_stream_record_three_times_makes_one_call(backend: Backend) {
    let agent = spawn_scripted_agent(vec![Behaviour::answer(json!({"responseType": "NoAction"}))], None).await;
    let mut h = harness(backend, &agent.url, RIGHT_SECRET, |_| {}).await;
    let case = h.new_case().await;
    let event = h.agent_step().await;
    for _ in 0..2 {
        let replay = serde_json::from_value(serde_json::to_value(&event).unwrap()).unwrap();
        assert!(h.agent.handle(replay, None).await.batch_item_failures.is_empty());
    }
    assert_eq!(agent.calls().len(), 1);
    assert_eq!(h.turns(&case).await.len(), 1);
}

async fn mail_arriving_during_a_turn_goes_to_the_next_turn(backend: Backend) {
    let agent = spawn_scripted_agent(vec![Behaviour::answer(json!({"responseType": "NoAction"}))], None).await;
    let mut h = harness(backend, &agent.url, RIGHT_SECRET, |_| {}).await;
    let case = h.new_case().await;
    let customer = h.case(&case).await.customer;
    // Two more mails while the first turn is in flight, referring to the case by its subject tag.
    for n in 0..2 {
        let raw = customer_mail(
            &customer,
            &format!("Re: Refund please {}", case.subject_tag()),
            &format!("{}@c.example", unique("more")),
            None,
            &format!("One more thing, number {n}."),
        );
        match h.ingest(&raw).await {
            IngestOutcome::Stored {
                case_id, work_item: None, ..
            } => assert_eq!(case_id, case),
            other => panic!("mail during the turn: {other:?}"),
        }
    }
    assert_eq!(h.case(&case).await.pending_mail.len(), 2);
    h.one_turn(&case).await;
    // The outcome of turn one opened turn two with both mails.
    h.agent_step().await;
    let turns = h.turns(&case).await;
    assert_eq!(turns.len(), 2);
    assert_eq!(turns[0].mail_ids.len(), 1);
    assert_eq!(turns[1].mail_ids.len(), 2, "both mails are served in the next turn");
    assert_eq!(agent.calls().len(), 2);
    h.outcome_step().await;
    let after = h.case(&case).await;
    assert!(after.pending_mail.is_empty() && after.turn_in_flight.is_none());
}

async fn retries_stop_before_the_deadline(backend: Backend) {
    let agent = spawn_scripted_agent(vec![Behaviour::raw(500, "")], None).await;
    let h = harness(backend, &agent.url, RIGHT_SECRET, |a| {
        a.max_attempts = 50;
        a.timeout_ms = 500;
    })
    .await;
    let case = h.new_case().await;
    let _ = case;
    let started = std::time::Instant::now();
    let deadline = chrono::Utc::now() + chrono::Duration::seconds(4);
    let request = casebridge::protocol::AgentRequest {
        case_id: "CB-0000000000".into(),
        conversation_id: "c".into(),
        turn_id: None,
        intent: None,
        new_text: Vec::new(),
        remote_task: None,
    };
    use casebridge::agent_client::AgentClient;
    let outcome = h.agent.agents.call(&h.config.agents[0], &request, Some(deadline)).await;
    assert!(outcome.result.is_err());
    assert!(outcome.attempts < 50, "{} attempts", outcome.attempts);
    assert!(started.elapsed() < Duration::from_secs(4), "returned after {:?}", started.elapsed());
}

/// Stack only: the secret is read from Secrets Manager on moto.
#[tokio::test(flavor = "multi_thread")]
async fn agent_secret_from_secrets_manager_signs_requests() {
    let Some(backend) = Backend::local_stack().await else { return };
    let client = casebridge::aws::secrets_manager(&backend.as_stack().expect("the stack").aws);
    let created = client
        .create_secret()
        .name(unique("refund-agent-hmac"))
        .secret_string(RIGHT_SECRET)
        .send()
        .await
        .expect("create secret on moto");
    let arn = created.arn.unwrap();
    let agent = spawn_scripted_agent(vec![Behaviour::answer(json!({"responseType": "NoAction"}))], Some(RIGHT_SECRET)).await;
    let mut h = harness(backend, &agent.url, "unused", |a| {
        a.auth = hmac_auth(SecretRef {
            env: None,
            secret_arn: Some(arn.clone()),
        })
    })
    .await;
    h.agent.agents = HttpAgentClient::new(Arc::new(casebridge::secrets::Secrets::with_secrets_manager(client))).unwrap();
    let case = h.new_case().await;
    let (turn, _) = h.one_turn(&case).await;
    assert!(matches!(turn.result, Some(TurnResult::Answered { .. })), "{:?}", turn.result);
    assert_eq!(
        agent.calls().len(),
        1,
        "the agent verified the signature made with the stored secret"
    );
}

async fn escalated_cases_are_not_sent_to_agents(backend: Backend) {
    let agent = spawn_scripted_agent(vec![Behaviour::answer(json!({"responseType": "UnableToResolve"}))], None).await;
    let mut h = harness(backend, &agent.url, RIGHT_SECRET, |_| {}).await;
    let case = h.new_case().await;
    let (_, after) = h.one_turn(&case).await;
    assert_eq!(after.status, CaseStatus::Escalated);
    let raw = customer_mail(
        &after.customer,
        &format!("Re: Refund please {}", case.subject_tag()),
        &format!("{}@c.example", unique("m")),
        None,
        "Any news?",
    );
    match h.ingest(&raw).await {
        IngestOutcome::Stored {
            case_id, work_item: None, ..
        } => assert_eq!(case_id, case),
        other => panic!("{other:?}"),
    }
    assert_eq!(agent.calls().len(), 1, "no agent call while a representative holds the case");
    assert_eq!(h.case(&case).await.status, CaseStatus::Escalated);
}

on_every_backend!(
    each_answer_type_is_stored_and_carried_out,
    timeout_then_success,
    server_errors_then_success,
    too_many_requests_honours_retry_after,
    retry_budget_exhausted_escalates_with_the_reason,
    invalid_answers_escalate_without_retry,
    hmac_signature_is_really_checked_by_the_agent,
    bearer_token_is_sent,
    async_agent_answers_by_callback_and_a_replay_is_ignored,
    async_answer_that_never_comes_is_escalated_by_the_sweep,
    the_same_stream_record_three_times_makes_one_call,
    mail_arriving_during_a_turn_goes_to_the_next_turn,
    retries_stop_before_the_deadline,
    escalated_cases_are_not_sent_to_agents,
);
