//! Every sample event under infra/events is accepted by its function's
//! handler (on the embedded store, so no AWS is needed): the events the
//! README's `cargo lambda invoke` examples use stay valid.

use std::sync::Arc;

use casebridge::agent_client::HttpAgentClient;
use casebridge::intent::CatalogueClassifier;
use casebridge::mail::outbox::OutboxMailer;
use casebridge::raw_mail::FolderRawMail;
use casebridge::store::sqlite::SqliteStore;
use casebridge_agent_invocation::AgentFunction;
use casebridge_inbound_email::InboundFunction;
use casebridge_outcome_actions::OutcomeFunction;
use serde_json::Value;

fn event(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/events").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[tokio::test]
async fn every_sample_event_is_accepted_by_its_function() {
    let dir = std::env::temp_dir().join(format!("casebridge-events-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = casebridge_tests::config("http://127.0.0.1:9/invoke", "fully_autonomous");
    let inbound = InboundFunction {
        store: SqliteStore::in_memory().unwrap(),
        raw_mail: FolderRawMail::new(&dir),
        classifier: Box::new(CatalogueClassifier::new(&config.intents)),
        config: config.clone(),
        clock: casebridge_tests::clock(),
        key_prefix: String::new(),
    };
    // The receipt event names a mail that is not in the folder: recorded as rejected, not an error.
    let report = inbound.handle_any(event("inbound-ses-receipt.json")).await.unwrap();
    assert!(
        report["records"][0]["outcome"].as_str().unwrap().starts_with("rejected"),
        "{report}"
    );
    // Reprocessing a case that does not exist is refused with a typed error.
    assert!(inbound.handle_any(event("inbound-reprocess.json")).await.is_err());

    let agent = AgentFunction {
        store: SqliteStore::in_memory().unwrap(),
        agents: HttpAgentClient::new(Arc::new(casebridge::secrets::Secrets::env_only())).unwrap(),
        config: config.clone(),
        clock: casebridge_tests::clock(),
    };
    let response = agent.handle_any(event("agent-work-item-stream.json"), None).await.unwrap();
    assert_eq!(
        response["batchItemFailures"],
        serde_json::json!([]),
        "an unknown case is skipped, not retried forever"
    );
    assert_eq!(
        agent.handle_any(event("agent-sweep.json"), None).await.unwrap()["swept"],
        serde_json::json!([])
    );
    assert!(agent.handle_any(event("agent-reprocess.json"), None).await.is_err());
    assert!(
        agent.handle_any(serde_json::json!({"hello": 1}), None).await.is_err(),
        "unknown events are refused"
    );

    let outcome = OutcomeFunction {
        store: SqliteStore::in_memory().unwrap(),
        mailer: OutboxMailer::new(dir.join("outbox")).unwrap(),
        config,
        clock: casebridge_tests::clock(),
    };
    let response = outcome.handle_any(event("outcome-answered-turn-stream.json")).await.unwrap();
    assert_eq!(response["batchItemFailures"], serde_json::json!([]));
    assert_eq!(
        outcome.handle_any(event("outcome-follow-up.json")).await.unwrap()["followUps"],
        serde_json::json!([])
    );
    assert!(outcome.handle_any(event("outcome-reprocess.json")).await.is_err());

    let request = lambda_http::request::from_str(&event("http-api-context.json").to_string()).expect("API Gateway event");
    assert_eq!(request.uri().path(), "/cases/CB-0000000000/context");
    let _ = std::fs::remove_dir_all(&dir);
}
