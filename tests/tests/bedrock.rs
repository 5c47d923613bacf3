//! The Bedrock intent classifier against a fake Bedrock Runtime on
//! loopback speaking the Converse wire format (`POST /model/{modelId}/converse`),
//! reached through `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` as in production: the
//! label is used, the request is signed and well formed, and every failure
//! falls back to the catalogue classifier and says why. Its own test binary,
//! because it sets process-wide AWS environment variables.

use std::sync::{Arc, Mutex, OnceLock};

use casebridge::config::IntentConfig;
use casebridge::intent::{BedrockClassifier, BedrockConfig, CatalogueClassifier, IntentClassifier};
use serde_json::{json, Value};

fn catalogue() -> Vec<IntentConfig> {
    let text =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/intents/catalogue.toml")).unwrap();
    let catalogue: casebridge::intent::eval::Catalogue = toml::from_str(&text).unwrap();
    catalogue.intents
}

/// Requests the fake server saw: (model id from the path, Authorization header, body).
type Seen = Arc<Mutex<Vec<(String, Option<String>, Value)>>>;

fn converse_answer(text: &str) -> Value {
    json!({
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 120, "outputTokens": 12, "totalTokens": 132},
        "metrics": {"latencyMs": 40}
    })
}

/// What the fake model does, by model id.
fn behaviour(model: &str) -> (u16, Option<&'static str>, Value, u64) {
    match model {
        "refund-model" => (200, None, converse_answer(r#"{"intent": "refund", "confidence": 0.91}"#), 0),
        "fenced-model" => (
            200,
            None,
            converse_answer("```json\n{\"intent\": \"order_status\", \"confidence\": 0.8}\n```"),
            0,
        ),
        "chatty-model" => (200, None, converse_answer("I think this is about a refund."), 0),
        "astrology-model" => (200, None, converse_answer(r#"{"intent": "astrology", "confidence": 0.9}"#), 0),
        "overconfident-model" => (200, None, converse_answer(r#"{"intent": "refund", "confidence": 7}"#), 0),
        "empty-model" => (
            200,
            None,
            json!({"output": {"message": {"role": "assistant", "content": []}}, "stopReason": "end_turn", "usage": {"inputTokens": 1, "outputTokens": 0, "totalTokens": 1}, "metrics": {"latencyMs": 1}}),
            0,
        ),
        "denied-model" => (
            403,
            Some("AccessDeniedException"),
            json!({"message": "not authorized to invoke this model"}),
            0,
        ),
        "slow-model" => (200, None, converse_answer(r#"{"intent": "refund", "confidence": 0.9}"#), 1_500),
        _ => (
            400,
            Some("ValidationException"),
            json!({"message": "The provided model identifier is invalid."}),
            0,
        ),
    }
}

/// The fake Bedrock Runtime, started once for the whole binary on its own
/// runtime (each test has its own), with the environment pointing at it.
fn server() -> &'static Seen {
    static SERVER: OnceLock<Seen> = OnceLock::new();
    SERVER.get_or_init(|| {
        let seen: Seen = Arc::default();
        let log = seen.clone();
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let app = axum::Router::new().route(
                    "/model/{model}/converse",
                    axum::routing::post(
                        move |axum::extract::Path(model): axum::extract::Path<String>,
                              headers: axum::http::HeaderMap,
                              axum::Json(body): axum::Json<Value>| {
                            let log = log.clone();
                            async move {
                                let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
                                log.lock().unwrap().push((model.clone(), auth, body));
                                let (status, error_type, reply, delay) = behaviour(&model);
                                tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                                let mut response = axum::response::IntoResponse::into_response((
                                    axum::http::StatusCode::from_u16(status).unwrap(),
                                    axum::Json(reply),
                                ));
                                if let Some(kind) = error_type {
                                    response.headers_mut().insert("x-amzn-errortype", kind.parse().unwrap());
                                }
                                response
                            }
                        },
                    ),
                );
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                sender.send(listener.local_addr().unwrap()).unwrap();
                let _ = axum::serve(listener, app).await;
            });
        });
        let address = receiver.recv().unwrap();
        // The function's role credentials, as the SDK finds them in Lambda.
        std::env::set_var("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", format!("http://{address}"));
        std::env::set_var("AWS_ACCESS_KEY_ID", "AKIDFUNCTIONROLE");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "role-secret");
        std::env::set_var("AWS_SESSION_TOKEN", "role-session");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
        seen
    })
}

fn config(model: &str, timeout_ms: u64) -> BedrockConfig {
    BedrockConfig {
        model_id: model.into(),
        region: Some("eu-central-1".into()),
        timeout_ms,
        max_tokens: 64,
    }
}

async fn bedrock(model: &str, timeout_ms: u64) -> BedrockClassifier {
    server();
    let config = config(model, timeout_ms);
    let client = casebridge::intent::bedrock_client(&config).await;
    BedrockClassifier::new(config, client, &catalogue(), CatalogueClassifier::new(&catalogue()))
}

const MAIL: (&str, &str) = ("Money back", "I returned the shoes two weeks ago, where is my money?");

#[tokio::test]
async fn the_bedrock_label_is_used_and_the_converse_request_is_signed_and_well_formed() {
    let result = bedrock("refund-model", 3_000).await.classify(MAIL.0, MAIL.1).await;
    assert_eq!(result.method, "bedrock:refund-model");
    assert_eq!(result.best().unwrap().intent, "refund");
    assert!((result.best().unwrap().confidence - 0.91).abs() < 1e-9);
    let seen = server().lock().unwrap();
    let (_, auth, body) = seen.iter().find(|(model, _, _)| model == "refund-model").unwrap();
    let auth = auth.as_deref().unwrap_or_default();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDFUNCTIONROLE/") && auth.contains("/eu-central-1/bedrock/aws4_request"),
        "signed with the role's credentials for the configured region: {auth}"
    );
    let system = body["system"][0]["text"].as_str().unwrap();
    assert!(
        system.contains("- refund:") && system.contains("- general_question:"),
        "the catalogue is in the prompt"
    );
    assert_eq!(body["messages"][0]["role"], "user");
    assert!(body["messages"][0]["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("where is my money"));
    assert_eq!(body["inferenceConfig"]["maxTokens"], 64);
    assert_eq!(body["inferenceConfig"]["temperature"], 0.0);
}

#[tokio::test]
async fn a_fenced_json_answer_is_read() {
    let result = bedrock("fenced-model", 3_000).await.classify("Parcel", "where is my parcel?").await;
    assert_eq!(result.best().map(|b| b.intent.as_str()), Some("order_status"));
}

#[tokio::test]
async fn failures_fall_back_to_the_catalogue_and_say_so() {
    let mail = ("Refund", "Please refund my order, I sent it back last week.");
    for (model, timeout, reason) in [
        ("chatty-model", 3_000, "label is not JSON"),
        ("astrology-model", 3_000, "unknown intent"),
        ("overconfident-model", 3_000, "confidence"),
        ("empty-model", 3_000, "no message text"),
        ("denied-model", 3_000, "HTTP 403"),
        ("no-such-model", 3_000, "HTTP 400"),
        ("slow-model", 300, "timed out"),
    ] {
        let result = bedrock(model, timeout).await.classify(mail.0, mail.1).await;
        assert!(
            result.method.starts_with("tfidf (bedrock failed: ") && result.method.contains(reason),
            "{model}: {}",
            result.method
        );
        assert_eq!(result.best().unwrap().intent, "refund", "{model}: the fallback still classifies");
    }
}

#[tokio::test]
async fn the_configuration_chooses_bedrock() {
    server();
    let mut config = casebridge_tests::config("http://127.0.0.1:9/invoke", "fully_autonomous");
    config.intents = catalogue();
    config.classifier.bedrock = Some(self::config("refund-model", 3_000));
    config.validate().unwrap();
    let classifier = casebridge::intent::from_config(&config, &casebridge::secrets::Secrets::env_only(), None)
        .await
        .unwrap();
    let result = classifier.classify(MAIL.0, MAIL.1).await;
    assert_eq!(result.method, "bedrock:refund-model");
}
