//! Intent classification: the LLM classifier against a fake
//! OpenAI-compatible server on loopback (answers, failures, fallback), and
//! the catalogue classifier on the ingest path, below the threshold.

use std::sync::{Arc, Mutex};

use casebridge::config::IntentConfig;
use casebridge::intent::{CatalogueClassifier, IntentClassifier, LlmClassifier, LlmConfig};
use casebridge::model::CaseStatus;
use casebridge::pipeline::inbound::{ingest, InboundDelivery, IngestOutcome};
use casebridge::pipeline::{StepEnv, SystemClock};
use casebridge::store::sqlite::SqliteStore;
use casebridge::store::Store;
use serde_json::{json, Value};

fn catalogue() -> Vec<IntentConfig> {
    let text =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/intents/catalogue.toml")).unwrap();
    toml_intents(&text)
}

fn toml_intents(text: &str) -> Vec<IntentConfig> {
    let catalogue: casebridge::intent::eval::Catalogue = toml::from_str(text).unwrap();
    catalogue.intents
}

/// Requests the fake server saw: (Authorization header, body).
type Seen = Arc<Mutex<Vec<(Option<String>, Value)>>>;

/// A fake chat-completions server: answers `reply` (status, body) and records requests.
async fn fake_llm(status: u16, reply: Value, delay_ms: u64) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |headers: axum::http::HeaderMap, axum::Json(body): axum::Json<Value>| {
            let (log, reply) = (log.clone(), reply.clone());
            async move {
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
                log.lock().unwrap().push((auth, body));
                tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
                (axum::http::StatusCode::from_u16(status).unwrap(), axum::Json(reply))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/v1"), seen)
}

fn answer(content: &str) -> Value {
    json!({"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]})
}

fn llm(base_url: String, timeout_ms: u64) -> LlmClassifier {
    LlmClassifier::new(
        LlmConfig {
            base_url,
            model: "fake-model".into(),
            api_key: None,
            timeout_ms,
        },
        Some("sk-test".into()),
        &catalogue(),
    )
}

#[tokio::test]
async fn the_llm_label_is_used_and_the_request_is_well_formed() {
    let (url, seen) = fake_llm(200, answer(r#"{"intent": "refund", "confidence": 0.93}"#), 0).await;
    let result = llm(url, 2_000)
        .classify("Money back", "I returned the shoes, where is my money?")
        .await;
    assert_eq!(result.method, "llm:fake-model");
    assert_eq!(result.best().unwrap().intent, "refund");
    assert!((result.best().unwrap().confidence - 0.93).abs() < 1e-9);
    let requests = seen.lock().unwrap();
    let (auth, body) = &requests[0];
    assert_eq!(auth.as_deref(), Some("Bearer sk-test"));
    assert_eq!(body["model"], "fake-model");
    let system = body["messages"][0]["content"].as_str().unwrap();
    assert!(
        system.contains("- refund:") && system.contains("- general_question:"),
        "the catalogue is in the prompt"
    );
    assert!(body["messages"][1]["content"].as_str().unwrap().contains("where is my money"));
}

#[tokio::test]
async fn failures_fall_back_to_the_catalogue_and_say_so() {
    let mail = ("Refund", "Please refund my order, I sent it back last week.");
    for (status, reply, delay, reason) in [
        (500, json!({"error": "boom"}), 0, "HTTP 500"),
        (200, answer("not json at all"), 0, "label is not JSON"),
        (200, answer(r#"{"intent": "astrology", "confidence": 0.9}"#), 0, "unknown intent"),
        (200, answer(r#"{"intent": "refund", "confidence": 7}"#), 0, "confidence"),
        (200, answer(r#"{"intent": "refund", "confidence": 0.9}"#), 1_500, "timed out"),
    ] {
        let (url, _) = fake_llm(status, reply, delay).await;
        let result = llm(url, 300).classify(mail.0, mail.1).await;
        assert!(
            result.method.starts_with("tfidf (llm failed: ") && result.method.contains(reason),
            "{reason}: {}",
            result.method
        );
        assert_eq!(result.best().unwrap().intent, "refund", "the fallback still classifies");
    }
    let unreachable = llm("http://127.0.0.1:9/v1".into(), 300).classify(mail.0, mail.1).await;
    assert!(unreachable.method.contains("unreachable"), "{}", unreachable.method);
}

#[tokio::test]
async fn below_the_threshold_the_case_goes_to_a_representative() {
    let mut config = casebridge_tests::config("http://127.0.0.1:9/invoke", "fully_autonomous");
    config.intents = catalogue();
    for intent in &mut config.intents {
        intent.agent = Some("refund-agent".into());
    }
    config.classifier.threshold = 0.6;
    let store = SqliteStore::in_memory().unwrap();
    let classifier = CatalogueClassifier::new(&config.intents);
    let clock = SystemClock;
    let env = StepEnv::new(&config, &clock);
    let mut opened = Vec::new();
    for (subject, body) in [
        ("Hello", "Lorem ipsum dolor sit amet, consectetur adipiscing elit."),
        ("Refund", "Please refund my order, I returned it last week."),
    ] {
        let raw = casebridge_tests::customer_mail(
            "x@c.example",
            subject,
            &format!("{}@c.example", casebridge_tests::unique("m")),
            None,
            body,
        );
        let delivery = InboundDelivery {
            raw: &raw,
            delivery_id: casebridge_tests::unique("d"),
            raw_location: None,
            verdicts: Default::default(),
            attachment_locations: Vec::new(),
        };
        match ingest(env, &store, &classifier, delivery).await.unwrap() {
            IngestOutcome::Stored { case_id, work_item, .. } => opened.push((store.get_case(&case_id).await.unwrap().unwrap(), work_item)),
            other => panic!("{other:?}"),
        }
    }
    let (unclear, work) = &opened[0];
    assert_eq!(unclear.status, CaseStatus::Escalated);
    assert!(work.is_none());
    let reason = &unclear.escalation.as_ref().unwrap().reason;
    assert!(reason.contains("below the threshold") || reason.contains("no intent"), "{reason}");
    let (clear, work) = &opened[1];
    assert_eq!((clear.intent.as_deref(), clear.status), (Some("refund"), CaseStatus::AgentWorking));
    assert!(work.is_some() && clear.intent_confidence.unwrap() >= 0.6);
    let timeline = casebridge::context::timeline_lines(&store, &clear.id).await.unwrap().join("\n");
    assert!(
        timeline.contains("intent_classified") && timeline.contains("(scores: refund "),
        "scores are on the timeline: {timeline}"
    );
}
