//! What an attacker tries against agent authentication, on the embedded
//! store (no local stack needed): replayed and re-targeted signatures,
//! casebridge's own request posted back, redirects, empty secrets, hostile
//! timestamps. docs/security.md lists these and the threat model.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, Method};
use casebridge::agent_auth::{sign_v1, sign_v2, Direction, RequestFacts};
use casebridge::agent_client::{AgentCallError, AgentClient, HttpAgentClient};
use casebridge::config::{AgentAuth, Config, HmacScheme, SecretRef};
use casebridge::ids::CaseId;
use casebridge::protocol::AgentRequest;
use casebridge::secrets::FixedSecrets;
use casebridge::store::sqlite::SqliteStore;
use casebridge_http_api::{ApiState, RepresentativeAuth};
use serde_json::{json, Value};

const SECRET: &str = "an-hmac-secret-of-at-least-32-bytes";
const SECRET_ENV: &str = "SECURITY_TEST_AGENT_SECRET";

fn hmac_config(agent_url: &str, scheme: HmacScheme) -> Config {
    let mut config = casebridge_tests::config(agent_url, "fully_autonomous");
    config.agents[0].auth = AgentAuth::Hmac {
        secret: SecretRef {
            env: Some(SECRET_ENV.into()),
            secret_arn: None,
        },
        scheme,
        key_id: "k1".into(),
        previous: None,
    };
    config
}

fn secrets(value: &str) -> Arc<FixedSecrets> {
    Arc::new(FixedSecrets(HashMap::from([(SECRET_ENV.to_string(), value.to_string())])))
}

async fn api(config: &Config, secret: &str) -> std::net::SocketAddr {
    let dir = std::env::temp_dir().join(casebridge_tests::unique("security-outbox"));
    let state = Arc::new(ApiState {
        store: SqliteStore::in_memory().expect("in-memory store"),
        mailer: casebridge::mail::outbox::OutboxMailer::new(dir).expect("outbox"),
        config: config.clone(),
        secrets: secrets(secret),
        clock: Arc::new(casebridge::pipeline::SystemClock),
        representatives: RepresentativeAuth::StaticToken("representative-token-0123".into()),
    });
    casebridge_http_api::spawn_local("127.0.0.1:0".parse().expect("addr"), state)
        .await
        .expect("bind")
}

/// Headers of a request the agent signs to casebridge.
fn agent_signed(method: &str, path: &str, body: &[u8], secret: &str) -> Vec<(&'static str, String)> {
    let timestamp = chrono::Utc::now().timestamp();
    let facts = RequestFacts {
        direction: Direction::ToCasebridge,
        agent: "refund-agent",
        method,
        path_and_query: path,
        body,
    };
    vec![
        ("x-casebridge-agent", "refund-agent".into()),
        ("x-casebridge-key-id", "k1".into()),
        ("x-casebridge-timestamp", timestamp.to_string()),
        ("x-casebridge-signature", sign_v2(secret.as_bytes(), &facts, timestamp)),
    ]
}

async fn send(api: std::net::SocketAddr, method: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, Value) {
    let http = reqwest::Client::new();
    let mut request = http.request(method.parse().expect("method"), format!("http://{api}{path}"));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.body(body.to_vec()).send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn turn_path(case: &CaseId) -> String {
    format!("/turns/{case}.0000000001/answer")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_callback_is_worth_nothing_for_another_turn() {
    let config = hmac_config("http://127.0.0.1:9/invoke", HmacScheme::V2);
    let api = api(&config, SECRET).await;
    let (b1, b2) = (
        CaseId::generate(&config.mail.case_prefix),
        CaseId::generate(&config.mail.case_prefix),
    );
    let body = br#"{"responseType":"Resolved","message":"Your refund of $40 is on its way."}"#;
    let signed_for_b1 = agent_signed("POST", &turn_path(&b1), body, SECRET);
    // Its own turn: authentication passes (the turn does not exist here).
    let (status, answer) = send(api, "POST", &turn_path(&b1), &signed_for_b1, body).await;
    assert_eq!((status, answer["code"].as_str()), (404, Some("unknown_turn")), "{answer}");
    // Replayed to another turn within the window: refused before anything is looked up.
    let (status, answer) = send(api, "POST", &turn_path(&b2), &signed_for_b1, body).await;
    assert_eq!((status, answer["code"].as_str()), (401, Some("unauthorized")), "{answer}");
    assert!(answer["message"].as_str().unwrap_or("").contains("does not match"), "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_context_read_opens_no_other_case() {
    let config = hmac_config("http://127.0.0.1:9/invoke", HmacScheme::V2);
    let api = api(&config, SECRET).await;
    let (a, b) = (
        CaseId::generate(&config.mail.case_prefix),
        CaseId::generate(&config.mail.case_prefix),
    );
    let signed_for_a = agent_signed("GET", &format!("/cases/{a}/context"), b"", SECRET);
    let (status, answer) = send(api, "GET", &format!("/cases/{a}/context"), &signed_for_a, b"").await;
    assert_eq!((status, answer["code"].as_str()), (404, Some("case_not_found")), "{answer}");
    let (status, _) = send(api, "GET", &format!("/cases/{b}/context"), &signed_for_a, b"").await;
    assert_eq!(status, 401);
    // A query string is part of what is signed, too.
    let (status, _) = send(api, "GET", &format!("/cases/{a}/context?x=1"), &signed_for_a, b"").await;
    assert_eq!(status, 401);
}

/// What an agent received: headers and body, call by call.
type Received = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

/// An agent that records what casebridge sent it.
async fn recording_agent(answer: Value) -> (String, Received) {
    let seen: Received = Arc::default();
    let recorded = seen.clone();
    let app = axum::Router::new().route(
        "/invoke",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let recorded = recorded.clone();
            let answer = answer.clone();
            async move {
                recorded.lock().expect("lock").push((headers, body.to_vec()));
                axum::Json(answer)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/invoke"), seen)
}

/// One call casebridge makes to an agent at `/invoke` + `suffix`, as the agent received it.
async fn one_signed_call(suffix: &str, scheme: HmacScheme) -> (Config, CaseId, HeaderMap, Vec<u8>) {
    let (url, seen) = recording_agent(json!({"responseType": "NoAction"})).await;
    let config = hmac_config(&format!("{url}{suffix}"), scheme);
    let client = HttpAgentClient::new(secrets(SECRET)).expect("client");
    let case = CaseId::generate(&config.mail.case_prefix);
    let outcome = client.call(&config.agents[0], &request(&case), None).await;
    assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    let (headers, body) = seen.lock().expect("lock").pop().expect("one call");
    (config, case, headers, body)
}

fn request(case: &CaseId) -> AgentRequest {
    AgentRequest {
        case_id: case.to_string(),
        conversation_id: "conversation-1".into(),
        turn_id: Some(format!("{case}.0000000001")),
        intent: Some("refund".into()),
        new_text: Vec::new(),
        remote_task: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn casebridges_own_signed_request_does_not_pass_as_the_agents() {
    let (config, case, headers, body) = one_signed_call("", HmacScheme::V2).await;
    assert!(headers["x-casebridge-signature"].to_str().unwrap_or("").starts_with("v2="));
    assert_eq!(headers["x-casebridge-key-id"], "k1");

    // Post exactly what casebridge signed back to casebridge, as a callback.
    let api = api(&config, SECRET).await;
    let mut replayed: Vec<(&str, String)> = vec![("x-casebridge-agent", "refund-agent".into())];
    for name in ["x-casebridge-key-id", "x-casebridge-timestamp", "x-casebridge-signature"] {
        replayed.push((name, headers[name].to_str().unwrap_or("").to_string()));
    }
    let (status, answer) = send(api, "POST", &turn_path(&case), &replayed, &body).await;
    assert_eq!(status, 401, "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_verifies_casebridges_signature_with_its_own_code() {
    let (_, _, headers, body) = one_signed_call("?tenant=7", HmacScheme::V2).await;
    let path = "/invoke?tenant=7";
    let verified = |path: &str, secret: &str, body: &[u8]| {
        casebridge_tests::agent_side_signature_ok(
            secret,
            &casebridge_tests::SignedAtAgent {
                agent: "refund-agent",
                method: Method::POST.as_str(),
                path_and_query: path,
                headers: &headers,
                body,
            },
        )
    };
    assert!(verified(path, SECRET, &body));
    assert!(!verified("/invoke", SECRET, &body), "the query is signed");
    assert!(!verified(path, "another-secret-of-at-least-32-bytes", &body));
    assert!(!verified(path, SECRET, b"{}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn redirects_are_agent_errors_and_never_followed() {
    // Where a redirect would lead: it must never see the signed request.
    let (elsewhere, seen_elsewhere) = recording_agent(json!({"responseType": "Resolved", "message": "evil"})).await;
    for status in [301u16, 302, 307, 308] {
        let location = elsewhere.clone();
        let app = axum::Router::new().route(
            "/invoke",
            axum::routing::post(move || {
                let location = location.clone();
                async move {
                    (
                        axum::http::StatusCode::from_u16(status).expect("status"),
                        [(axum::http::header::LOCATION, location)],
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let config = hmac_config(&format!("http://{addr}/invoke"), HmacScheme::V2);
        let client = HttpAgentClient::new(secrets(SECRET)).expect("client");
        let outcome = client
            .call(&config.agents[0], &request(&CaseId::generate(&config.mail.case_prefix)), None)
            .await;
        assert_eq!(outcome.result, Err(AgentCallError::Redirect(status)));
        assert_eq!(outcome.attempts, 1, "a redirect is not retried");
        let reason = AgentCallError::Redirect(status).to_string();
        assert!(reason.contains("never followed"), "{reason}");
    }
    assert!(seen_elsewhere.lock().expect("lock").is_empty(), "the redirect target was called");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_or_short_secret_authenticates_nobody() {
    let mut config = casebridge_tests::config("http://127.0.0.1:9/invoke", "fully_autonomous");
    config.agents[0].auth = AgentAuth::Bearer {
        token: SecretRef {
            env: Some(SECRET_ENV.into()),
            secret_arn: None,
        },
    };
    let case = CaseId::generate(&config.mail.case_prefix);
    let path = format!("/cases/{case}/context");
    for secret in ["", "short-token"] {
        let api = api(&config, secret).await;
        for headers in [
            vec![("x-casebridge-agent", "refund-agent".to_string())],
            vec![
                ("x-casebridge-agent", "refund-agent".to_string()),
                ("authorization", format!("Bearer {secret}")),
            ],
        ] {
            let (status, answer) = send(api, "GET", &path, &headers, b"").await;
            assert_eq!(status, 401, "secret {secret:?}: {answer}");
        }
        // At start-up the same configuration is refused, naming agent and variable.
        let refused = casebridge::agent_auth::check_env_secrets(&config, secrets(secret).as_ref())
            .await
            .expect_err("refused");
        let text = refused.to_string();
        assert!(
            text.contains("refund-agent") && text.contains(SECRET_ENV) && text.contains("16"),
            "{text}"
        );
    }
    // casebridge does not call an agent with an empty HMAC secret either.
    let config = hmac_config("http://127.0.0.1:9/invoke", HmacScheme::V2);
    let client = HttpAgentClient::new(secrets("")).expect("client");
    let outcome = client.call(&config.agents[0], &request(&case), None).await;
    assert!(
        matches!(&outcome.result, Err(AgentCallError::Config(reason)) if reason.contains("at least 32")),
        "{:?}",
        outcome.result
    );
    assert_eq!(outcome.attempts, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_timestamps_are_refused_not_a_crash() {
    let config = hmac_config("http://127.0.0.1:9/invoke", HmacScheme::V2);
    let api = api(&config, SECRET).await;
    let case = CaseId::generate(&config.mail.case_prefix);
    for timestamp in ["-9223372036854775808", "9223372036854775807", "99999999999999999999", "1e9", ""] {
        let headers = vec![
            ("x-casebridge-agent", "refund-agent".to_string()),
            ("x-casebridge-timestamp", timestamp.to_string()),
            ("x-casebridge-signature", format!("v2={}", "0".repeat(64))),
        ];
        let (status, answer) = send(api, "POST", &turn_path(&case), &headers, b"{}").await;
        assert_eq!(status, 401, "{timestamp:?}: {answer}");
    }
    let (status, _) = send(api, "GET", "/health", &[], b"").await;
    assert_eq!(status, 200, "the API is still up");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_still_on_v1_keeps_working_and_may_move_to_v2() {
    let (config, case, headers, body) = one_signed_call("", HmacScheme::V1).await;
    let timestamp: i64 = headers["x-casebridge-timestamp"].to_str().unwrap_or("").parse().unwrap_or(0);
    assert_eq!(
        headers["x-casebridge-signature"].to_str().unwrap_or(""),
        sign_v1(SECRET.as_bytes(), timestamp, &body)
    );

    let api = api(&config, SECRET).await;
    let path = turn_path(&case);
    let now = chrono::Utc::now().timestamp();
    let v1 = vec![
        ("x-casebridge-agent", "refund-agent".to_string()),
        ("x-casebridge-timestamp", now.to_string()),
        ("x-casebridge-signature", sign_v1(SECRET.as_bytes(), now, b"{}")),
    ];
    let (status, _) = send(api, "POST", &path, &v1, b"{}").await;
    assert_eq!(status, 404, "a v1 callback authenticates for a v1 agent");
    let (status, _) = send(api, "POST", &path, &agent_signed("POST", &path, b"{}", SECRET), b"{}").await;
    assert_eq!(status, 404, "and so does a v2 one, so the agent can move first");
    // Once the agent is on v2, v1 no longer passes.
    let api = self::api(&hmac_config(&config.agents[0].url, HmacScheme::V2), SECRET).await;
    let (status, answer) = send(api, "POST", &path, &v1, b"{}").await;
    assert_eq!(status, 401, "{answer}");
}

/// The verifiers docs/agents.md shows, run as an agent would run them.
enum Verifier {
    Python,
    TypeScript { js: std::path::PathBuf },
}

fn repo(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

impl Verifier {
    fn available() -> Vec<Verifier> {
        let mut found = vec![Verifier::Python];
        match std::env::var("CASEBRIDGE_TSC") {
            Ok(tsc) => {
                let out = std::env::temp_dir().join(casebridge_tests::unique("verifiers"));
                let status = std::process::Command::new(&tsc)
                    .arg("-p")
                    .arg(repo("examples/verifiers/tsconfig.json"))
                    .arg("--outDir")
                    .arg(&out)
                    .status()
                    .expect("run tsc");
                assert!(status.success(), "the TypeScript verifier does not compile");
                found.push(Verifier::TypeScript { js: out.join("driver.js") });
            }
            Err(_) if std::env::var_os("CASEBRIDGE_REQUIRE_STACK").is_some() => {
                panic!("CASEBRIDGE_TSC is not set (infra/local-stack.sh env sets it)")
            }
            Err(_) => eprintln!("skipping the TypeScript verifier: CASEBRIDGE_TSC is not set"),
        }
        found
    }

    fn run(&self, command: &str, case: &Value) -> std::process::Output {
        let file = std::env::temp_dir().join(format!("{}.json", casebridge_tests::unique("signed")));
        std::fs::write(&file, case.to_string()).expect("write case");
        let output = match self {
            Verifier::Python => std::process::Command::new("python3")
                .arg(repo("examples/verifiers/casebridge_v2.py"))
                .args([command, &file.display().to_string()])
                .output(),
            Verifier::TypeScript { js } => std::process::Command::new("node")
                .arg(js)
                .args([command, &file.display().to_string()])
                .output(),
        }
        .expect("run verifier");
        let _ = std::fs::remove_file(&file);
        output
    }

    fn name(&self) -> &'static str {
        match self {
            Verifier::Python => "python",
            Verifier::TypeScript { .. } => "typescript",
        }
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                text.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                text.push('=');
            }
        }
    }
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn the_documented_verifiers_accept_casebridges_signatures_and_sign_for_it() {
    let (config, case, headers, body) = one_signed_call("?tenant=7", HmacScheme::V2).await;
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(name, value)| (name.as_str().to_string(), json!(value.to_str().unwrap_or(""))))
        .collect();
    let recorded = json!({
        "key_id": "k1", "secret": SECRET, "agent": "refund-agent", "method": "POST",
        "path_and_query": "/invoke?tenant=7", "headers": headers, "body_base64": base64(&body),
    });
    let api = api(&config, SECRET).await;
    for verifier in Verifier::available() {
        let name = verifier.name();
        assert!(
            verifier.run("verify", &recorded).status.success(),
            "{name} refused casebridge's signature"
        );
        let mut tampered = recorded.clone();
        tampered["body_base64"] = json!(base64(br#"{"caseId":"CB-0000000000"}"#));
        assert!(!verifier.run("verify", &tampered).status.success(), "{name} took a changed body");
        let mut other_path = recorded.clone();
        other_path["path_and_query"] = json!("/invoke");
        assert!(!verifier.run("verify", &other_path).status.success(), "{name} took another path");

        // The agent's side: headers it signs for a context read are accepted by casebridge.
        let path = format!("/cases/{case}/context");
        let read = json!({"key_id": "k1", "secret": SECRET, "agent": "refund-agent", "method": "GET",
            "path_and_query": path, "headers": {}, "body_base64": ""});
        let output = verifier.run("sign", &read);
        assert!(output.status.success(), "{name}: {}", String::from_utf8_lossy(&output.stderr));
        let signed: serde_json::Map<String, Value> = serde_json::from_slice(&output.stdout).expect("headers as JSON");
        let signed: Vec<(&str, String)> = signed
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("").to_string()))
            .collect();
        let (status, answer) = send(api, "GET", &path, &signed, b"").await;
        assert_eq!((status, answer["code"].as_str()), (404, Some("case_not_found")), "{name}: {answer}");
    }
}

#[test]
fn the_agent_guide_shows_the_verifiers_it_tests() {
    let guide = std::fs::read_to_string(repo("docs/agents.md")).expect("docs/agents.md");
    let python = std::fs::read_to_string(repo("examples/verifiers/casebridge_v2.py")).expect("python verifier");
    let library = python.split("\n\nif __name__").next().unwrap_or_default();
    assert!(
        guide.contains(library),
        "docs/agents.md shows another Python verifier than the tested one"
    );
    let typescript = std::fs::read_to_string(repo("examples/verifiers/casebridge_v2.ts")).expect("typescript verifier");
    assert!(
        guide.contains(&typescript),
        "docs/agents.md shows another TypeScript verifier than the tested one"
    );
    for vector in [
        "v2=ba4df9d2b980748a460bbec1b618f5a14979e52411c72d9aea1ee1c7df2bcb31",
        "v2=85f71b7fc8e9cf52fe188ab712ec5e1dd37e6e69c7a846a8a08ada18389e043c",
    ] {
        assert!(guide.contains(vector), "{vector}");
    }
    let openapi: Value = serde_json::from_str(&std::fs::read_to_string(repo("docs/openapi.json")).expect("openapi")).expect("json");
    let schemes = &openapi["components"]["securitySchemes"];
    assert!(schemes["agentHmac"]["description"].as_str().unwrap_or("").contains("casebridge-v2"));
    assert_eq!(schemes["agentKeyId"]["name"], "X-Casebridge-Key-Id");
    let request = std::fs::read_to_string(repo("shared/schemas/agent-request.schema.json")).expect("schema");
    assert!(request.contains("v2=") && request.contains("X-Casebridge-Key-Id"));
}
