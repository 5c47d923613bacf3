//! Reprocessing a case from each step through the functions' direct
//! invocations, and re-sending failed mail; on the embedded store and the
//! outbox, and again on the local stack when it is up.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use casebridge::agent_client::HttpAgentClient;
use casebridge::intent::CatalogueClassifier;
use casebridge::model::{CaseStatus, MailKind, OutboundStatus};
use casebridge::pipeline::representative::replay_failed;
use casebridge::pipeline::{StepEnv, SystemClock};
use casebridge::raw_mail::FolderRawMail;
use casebridge_inbound_email::InboundFunction;
use casebridge_tests::*;
use serde_json::json;

fn agents() -> HttpAgentClient {
    HttpAgentClient::new(Arc::new(casebridge::secrets::Secrets::env_only())).unwrap()
}

async fn from_inbound_routes_the_case_again_with_the_current_configuration(backend: Backend) {
    let (url, answers, calls) = spawn_mapped_agent().await;
    let config = config(&url, "fully_autonomous");
    let mut h = Harness::new(backend, config.clone(), agents()).await;
    // "Where is my order" has no agent in the configuration: the case goes to a representative.
    let raw = customer_mail(
        &format!("{}@c.example", unique("o")),
        "Where is my order?",
        &format!("{}@c.example", unique("m")),
        None,
        "Where is my order? No tracking yet.",
    );
    let case = match h.ingest(&raw).await {
        casebridge::pipeline::inbound::IngestOutcome::Stored {
            case_id, work_item: None, ..
        } => case_id,
        other => panic!("{other:?}"),
    };
    assert_eq!(h.case(&case).await.status, CaseStatus::Escalated);

    // The team gives order_status an agent, then reprocesses the case from inbound.
    let mut updated = config.clone();
    updated.intents.iter_mut().find(|i| i.name == "order_status").unwrap().agent = Some("refund-agent".into());
    let inbound = InboundFunction {
        store: h.store.clone(),
        raw_mail: FolderRawMail::new(std::env::temp_dir()),
        classifier: Box::new(CatalogueClassifier::new(&updated.intents)),
        config: updated.clone(),
        clock: clock(),
        key_prefix: String::new(),
    };
    let answer = inbound
        .handle_any(json!({"action": "reprocess", "caseId": case.to_string()}))
        .await
        .unwrap();
    assert_eq!(answer["status"], "done", "{answer}");
    h.agent.config = updated.clone();
    h.outcome.config = updated;
    answers.lock().unwrap().insert(
        case.to_string(),
        json!({"responseType": "Resolved", "message": "It ships tomorrow."}),
    );
    h.one_turn(&case).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let after = h.case(&case).await;
    assert_eq!((after.agent.as_deref(), after.status), (Some("refund-agent"), CaseStatus::Resolved));
}

async fn from_agent_opens_a_new_turn_and_refuses_a_held_case(backend: Backend) {
    let (url, _answers, calls) = spawn_mapped_agent().await;
    let mut h = Harness::new(backend, config(&url, "fully_autonomous"), agents()).await;
    let case = h.new_case().await;
    h.one_turn(&case).await; // NoAction
    let request = json!({"action": "reprocess", "caseId": case.to_string()});
    let answer = h.agent.handle_any(request.clone(), None).await.unwrap();
    assert_eq!(answer["status"], "done", "{answer}");
    h.one_turn(&case).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2, "the agent was called again");
    assert_eq!(h.turns(&case).await.len(), 2);

    let clock = SystemClock;
    casebridge::pipeline::representative::take_over(StepEnv::new(&h.config, &clock), &h.store, &case, "rita")
        .await
        .unwrap();
    let answer = h.agent.handle_any(request, None).await.unwrap();
    assert_eq!(answer["status"], "refused", "a held case is not sent to the agent: {answer}");
    let unknown = h
        .agent
        .handle_any(json!({"action": "reprocess", "caseId": "CB-0000000000"}), None)
        .await;
    assert!(unknown.is_err(), "an unknown case is an error");
}

async fn from_outcome_resends_failed_mail_and_replay_failed_covers_many_cases(backend: Backend) {
    let (backend, faults) = backend.with_mail_faults().await;
    let (url, answers, _) = spawn_mapped_agent().await;
    let mut h = Harness::new(backend, config(&url, "fully_autonomous"), agents()).await;
    let mut cases = Vec::new();
    for _ in 0..3 {
        let case = h.new_case().await;
        answers
            .lock()
            .unwrap()
            .insert(case.to_string(), json!({"responseType": "Resolved", "message": "Refunded."}));
        faults.fail(&h.case(&case).await.customer, SendFault::Rejected, 1);
        h.one_turn(&case).await;
        cases.push(case);
    }
    let failed = |outbound: Vec<casebridge::model::OutboundMail>| {
        outbound
            .into_iter()
            .filter(|o| o.kind == MailKind::Resolution && o.status == OutboundStatus::Failed)
            .count()
    };
    for case in &cases {
        assert_eq!(failed(h.outbound(case).await), 1);
    }
    // Outcome function, direct invocation: the first case's mail goes out.
    let answer = h
        .outcome
        .handle_any(json!({"action": "reprocess", "caseId": cases[0].to_string()}))
        .await
        .unwrap();
    assert_eq!(answer["status"], "done", "{answer}");
    assert!(answer["detail"].as_str().unwrap().contains("re-sent"));
    assert_eq!(failed(h.outbound(&cases[0]).await), 0);
    // replay-failed over the others.
    let clock = SystemClock;
    let env = StepEnv::new(&h.config, &clock);
    for case in &cases[1..] {
        let replayed = replay_failed(env, &h.store, &h.outcome.mailer, case).await.unwrap();
        assert_eq!(replayed.len(), 1);
        assert!(replayed[0].1, "re-sent");
    }
    for case in &cases {
        assert_eq!(
            h.sent_to(&h.case(case).await.customer).await.len(),
            1,
            "each customer got the resolution once"
        );
    }
}

on_every_backend!(
    from_inbound_routes_the_case_again_with_the_current_configuration,
    from_agent_opens_a_new_turn_and_refuses_a_held_case,
    from_outcome_resends_failed_mail_and_replay_failed_covers_many_cases,
);
