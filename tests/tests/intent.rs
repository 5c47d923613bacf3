//! Intent classification: the LLM classifier against a fake
//! OpenAI-compatible server on loopback (answers, failures, fallback), and
//! the catalogue classifier on the ingest path, below the threshold. All on
//! the embedded store, except reading training data from S3, which needs the
//! local stack's bucket.

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

/// The independent held-out and out-of-scope sets were written apart from
/// the catalogue and training data: they measure the classifier only while
/// nothing is learned from them. They are never training data, none of
/// their mails is repeated in any labelled file, and no catalogue example
/// (out-of-scope examples included) is copied from them. Failures name the
/// line only, so the test itself never shows their text.
#[test]
fn the_independent_sets_are_never_training_data_nor_in_the_catalogue() {
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/intents");
    let catalogue: casebridge::intent::eval::Catalogue =
        toml::from_str(&std::fs::read_to_string(folder.join("catalogue.toml")).unwrap()).unwrap();
    for location in &catalogue.classifier.training {
        assert!(
            !location.contains("independent") && !location.contains("out-of-scope"),
            "{location} is an evaluation file"
        );
    }
    let read = |path: &std::path::Path| casebridge::intent::eval::parse_jsonl(&std::fs::read_to_string(path).unwrap()).unwrap();
    let independent: Vec<(String, usize, String)> = ["heldout.jsonl", "out-of-scope.jsonl"]
        .iter()
        .flat_map(|name| {
            read(&folder.join("independent").join(name))
                .into_iter()
                .enumerate()
                .map(move |(line, m)| (name.to_string(), line + 1, format!("{}\n{}", m.subject, m.body)))
        })
        .collect();
    assert!(independent.len() >= 300, "both independent files are there");
    let mut labelled_files: Vec<std::path::PathBuf> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    labelled_files.sort();
    assert!(labelled_files.len() >= 8);
    let labelled: Vec<String> = labelled_files
        .iter()
        .flat_map(|file| read(file))
        .map(|m| format!("{}\n{}", m.subject, m.body))
        .collect();
    for (file, line, text) in &independent {
        assert!(
            !labelled.contains(text),
            "independent/{file} line {line} is repeated in a labelled file"
        );
    }
    let examples: Vec<String> = catalogue
        .intents
        .iter()
        .flat_map(|i| &i.examples)
        .chain(&catalogue.classifier.out_of_scope.examples)
        .map(|e| e.to_lowercase())
        .collect();
    assert!(catalogue.classifier.out_of_scope.examples.len() >= 20);
    for (file, line, text) in &independent {
        let text = text.to_lowercase();
        if let Some(example) = examples.iter().find(|e| text.contains(e.as_str())) {
            panic!("catalogue example {example:?} is copied from independent/{file} line {line}");
        }
    }
}

/// A classifier that always answers the same, for pipeline tests.
struct Fixed(casebridge::intent::Classification);

impl IntentClassifier for Fixed {
    fn classify<'a>(&'a self, _: &'a str, _: &'a str) -> casebridge::intent::ClassifyFuture<'a> {
        let answer = self.0.clone();
        Box::pin(async move { answer })
    }
}

fn score(intent: &str, confidence: f64) -> casebridge::intent::IntentScore {
    casebridge::intent::IntentScore {
        intent: intent.into(),
        confidence,
        second_request: false,
    }
}

async fn open_case(
    config: &casebridge::config::Config,
    store: &SqliteStore,
    classifier: &dyn IntentClassifier,
    subject: &str,
    body: &str,
) -> (casebridge::model::Case, Option<String>, String) {
    let clock = SystemClock;
    let env = StepEnv::new(config, &clock);
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
    match ingest(env, store, classifier, delivery).await.unwrap() {
        IngestOutcome::Stored { case_id, work_item, .. } => {
            let case = store.get_case(&case_id).await.unwrap().unwrap();
            let timeline = casebridge::context::timeline_lines(store, &case_id).await.unwrap().join("\n");
            (case, work_item, timeline)
        }
        other => panic!("{other:?}"),
    }
}

fn routed_config() -> casebridge::config::Config {
    let mut config = casebridge_tests::config("http://127.0.0.1:9/invoke", "fully_autonomous");
    config.intents = catalogue();
    for intent in &mut config.intents {
        intent.agent = Some("refund-agent".into());
    }
    config.classifier.threshold = Some(0.5);
    config
}

#[tokio::test]
async fn mail_that_is_not_a_support_request_is_held_or_recorded_and_the_timeline_says_why() {
    let mut config = routed_config();
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/intents");
    let catalogue: casebridge::intent::eval::Catalogue =
        toml::from_str(&std::fs::read_to_string(folder.join("catalogue.toml")).unwrap()).unwrap();
    config.classifier.out_of_scope = catalogue.classifier.out_of_scope.clone();
    let classes = casebridge::intent::classes(&config.intents, &config.classifier.out_of_scope, &[]);
    let classifier = CatalogueClassifier::new(&classes);
    let store = SqliteStore::in_memory().unwrap();
    let application = (
        "Application for the warehouse job",
        "Dear hiring team, I would like to apply for the job in your warehouse. My CV is attached. Kind regards, Ola",
    );
    let (held, work, timeline) = open_case(&config, &store, &classifier, application.0, application.1).await;
    assert_eq!((held.status, work), (CaseStatus::Escalated, None));
    assert_eq!(held.intent.as_deref(), Some(casebridge::intent::OUT_OF_SCOPE));
    let reason = &held.escalation.as_ref().unwrap().reason;
    assert!(reason.contains("not a support request"), "{reason}");
    assert!(
        timeline.contains("out_of_scope") && timeline.contains("held for a representative"),
        "{timeline}"
    );
    // Recorded, not answered: closed, no agent, no notice to the queue.
    config.classifier.out_of_scope.action = casebridge::intent::OutOfScopeAction::Record;
    let sure = Fixed(casebridge::intent::Classification {
        ranked: vec![score(casebridge::intent::OUT_OF_SCOPE, 0.9), score("refund", 0.05)],
        second: None,
        method: "fixed".into(),
    });
    let (recorded, work, timeline) = open_case(&config, &store, &sure, "Newsletter", "Our spring newsletter").await;
    assert_eq!((recorded.status, work, recorded.agent.as_deref()), (CaseStatus::Closed, None, None));
    assert!(timeline.contains("recorded, not answered"), "{timeline}");
    let outbound = store
        .list_records(&recorded.id, casebridge::model::RecordKind::Outbound)
        .await
        .unwrap();
    assert!(outbound.is_empty(), "no queue notice for recorded mail");
    // Unsure out-of-scope is held even with action = record.
    let unsure = Fixed(casebridge::intent::Classification {
        ranked: vec![score(casebridge::intent::OUT_OF_SCOPE, 0.4), score("refund", 0.3)],
        second: None,
        method: "fixed".into(),
    });
    let (held, _, _) = open_case(&config, &store, &unsure, "Hello", "Something about money").await;
    assert_eq!(held.status, CaseStatus::Escalated);
    // A support request still goes to its agent.
    let (refund, work, _) = open_case(
        &config,
        &store,
        &classifier,
        "Refund",
        "Please refund my order, I returned it last week.",
    )
    .await;
    assert_eq!(
        (refund.intent.as_deref(), refund.status),
        (Some("refund"), CaseStatus::AgentWorking)
    );
    assert!(work.is_some());
}

#[tokio::test]
async fn a_second_request_is_routed_by_the_first_and_shown_on_the_timeline_and_in_the_context() {
    let config = routed_config();
    let store = SqliteStore::in_memory().unwrap();
    let two = Fixed(casebridge::intent::Classification {
        ranked: vec![
            score("cancel_order", 0.62),
            score("general_question", 0.08),
            score("change_address", 0.25),
        ],
        second: Some(score("change_address", 0.25)),
        method: "fixed".into(),
    });
    let (case, work, timeline) = open_case(
        &config,
        &store,
        &two,
        "Cancel and new address",
        "Please cancel order 12890. For my other order, the address is now 4 Mill Lane.",
    )
    .await;
    assert_eq!(
        (case.intent.as_deref(), case.status),
        (Some("cancel_order"), CaseStatus::AgentWorking)
    );
    assert!(work.is_some());
    assert!(
        timeline.contains("second_intent") && timeline.contains("also asks for change_address (confidence 0.25)"),
        "{timeline}"
    );
    let (_, context) = casebridge::context::case_context(&store, &case.id).await.unwrap();
    let second = context.second_intent.clone().expect("the context has the second request");
    assert_eq!((second.intent.as_str(), second.second_request), ("change_address", true));
    assert_eq!(context.intent_scores[0].intent, "cancel_order");
    // The context as agents get it matches the documented schema.
    let body = serde_json::to_value(&context).unwrap();
    assert_eq!(body["secondIntent"]["intent"], "change_address");
    assert_eq!(body["intentScores"][1]["secondRequest"], true);
    assert!(body["intentScores"][0].get("secondRequest").is_none(), "absent when false");
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json")).unwrap(),
    )
    .unwrap();
    let schema = json!({"components": doc["components"], "$ref": "#/components/schemas/CaseContext"});
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(&body).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    // One request: no second, and the schema allows null.
    let one = Fixed(casebridge::intent::Classification {
        ranked: vec![score("refund", 0.9)],
        second: None,
        method: "fixed".into(),
    });
    let (case, _, timeline) = open_case(&config, &store, &one, "Refund", "Refund please").await;
    assert!(!timeline.contains("second_intent"));
    let (_, context) = casebridge::context::case_context(&store, &case.id).await.unwrap();
    assert!(context.second_intent.is_none());
    let body = serde_json::to_value(&context).unwrap();
    assert!(validator.iter_errors(&body).next().is_none());
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

/// Stack only: the training data is an object in a bucket on moto.
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
