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
        CatalogueClassifier::new(&catalogue()),
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
    config.classifier.threshold = Some(0.6);
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

/// The held-out split measures the classifier only while nothing was
/// shaped on it: it is not training data, no catalogue example is copied
/// from any labelled file, and no held-out mail is repeated in training.
#[test]
fn the_held_out_split_stays_apart_from_the_catalogue_and_the_training_data() {
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/intents");
    let catalogue: casebridge::intent::eval::Catalogue =
        toml::from_str(&std::fs::read_to_string(folder.join("catalogue.toml")).unwrap()).unwrap();
    assert!(!catalogue.classifier.training.is_empty());
    assert!(
        !catalogue.classifier.training.iter().any(|t| t.contains("heldout")),
        "{:?}",
        catalogue.classifier.training
    );
    let read = |name: &str| casebridge::intent::eval::parse_jsonl(&std::fs::read_to_string(folder.join(name)).unwrap()).unwrap();
    let held_out = read("labelled-heldout.jsonl");
    assert!(held_out.len() >= 120);
    let training: Vec<_> = catalogue.classifier.training.iter().flat_map(|t| read(t)).collect();
    for mail in &held_out {
        assert!(
            !training.iter().any(|t| t.body == mail.body),
            "held-out mail {:?} is training data",
            mail.subject
        );
    }
    let examples: Vec<String> = catalogue
        .intents
        .iter()
        .flat_map(|i| i.examples.iter().map(|e| e.to_lowercase()))
        .collect();
    for mail in held_out.iter().chain(&training) {
        let text = format!("{} {}", mail.subject, mail.body).to_lowercase();
        if let Some(example) = examples.iter().find(|e| text.contains(e.as_str())) {
            panic!("catalogue example {example:?} is copied from labelled mail {:?}", mail.subject);
        }
    }
}

/// A catalogue that knows nothing of one word; training data that does.
fn zoo_intents() -> Vec<IntentConfig> {
    toml_intents(
        r#"
        [[intents]]
        name = "refund"
        description = "Money back"
        examples = ["please refund my order", "I want my money back"]
        keywords = ["refund"]
        [[intents]]
        name = "order_status"
        description = "Where is my order"
        examples = ["where is my parcel", "tracking number please"]
        keywords = ["tracking"]
        "#,
    )
}

const ZOO_TRAINING: &str = "{\"subject\":\"zebrafish\",\"body\":\"the zebrafish tank, where is it\",\"intent\":\"order_status\"}\n\
                            {\"subject\":\"aquarium\",\"body\":\"my zebrafish aquarium still has not come\",\"intent\":\"order_status\"}\n\
                            {\"subject\":\"money\",\"body\":\"the money for the lamp please\",\"intent\":\"refund\"}\n";

async fn zoo_classification(config: &casebridge::config::Config, s3: Option<&aws_sdk_s3::Client>) -> Option<String> {
    let classifier = casebridge::intent::from_config(config, &casebridge::secrets::Secrets::env_only(), s3)
        .await
        .unwrap();
    classifier
        .classify("Zebrafish", "any news on the zebrafish?")
        .await
        .best()
        .map(|b| b.intent.clone())
}

#[tokio::test]
async fn training_files_next_to_the_configuration_teach_the_classifier() {
    let folder = std::env::temp_dir().join(casebridge_tests::unique("training"));
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("past-cases.jsonl"), ZOO_TRAINING).unwrap();
    let mut config = casebridge_tests::config("http://127.0.0.1:9/invoke", "fully_autonomous");
    config.intents = zoo_intents();
    assert_eq!(
        zoo_classification(&config, None).await,
        None,
        "the catalogue alone has never seen the word"
    );
    config.classifier.training = vec!["past-cases.jsonl".into()];
    config.source_dir = Some(folder.clone());
    assert_eq!(zoo_classification(&config, None).await.as_deref(), Some("order_status"));
    config.classifier.training = vec!["missing.jsonl".into()];
    let error = casebridge::intent::from_config(&config, &casebridge::secrets::Secrets::env_only(), None)
        .await
        .err()
        .expect("a missing training file stops start-up");
    assert!(error.to_string().contains("missing.jsonl"), "{error}");
    std::fs::remove_dir_all(&folder).unwrap();
}

#[tokio::test]
async fn the_inbound_function_reads_training_data_from_s3() {
    let Some(stack) = casebridge_tests::stack().await else { return };
    let (s3, bucket, _) = stack.bucket().await;
    s3.put_object()
        .bucket(&bucket)
        .key("intents/past-cases.jsonl")
        .body(ZOO_TRAINING.as_bytes().to_vec().into())
        .send()
        .await
        .unwrap();
    let mut config = casebridge_tests::config("http://127.0.0.1:9/invoke", "fully_autonomous");
    config.intents = zoo_intents();
    config.classifier.training = vec![format!("s3://{bucket}/intents/past-cases.jsonl")];
    assert_eq!(zoo_classification(&config, Some(&s3)).await.as_deref(), Some("order_status"));
    config.classifier.training = vec![format!("s3://{bucket}/intents/nothing-here.jsonl")];
    let error = casebridge::intent::from_config(&config, &casebridge::secrets::Secrets::env_only(), Some(&s3))
        .await
        .err()
        .expect("a missing object stops start-up");
    assert!(error.to_string().contains("nothing-here.jsonl"), "{error}");
}
