//! The HTTP API: requests are API Gateway v2 events turned into requests by
//! lambda_http (as in Lambda) and handled by the router, over the embedded
//! store and the outbox, and again over DynamoDB on moto and SES on
//! aws-ses-v2-local when the local stack is up. Success bodies are validated
//! against docs/openapi.json.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use casebridge::agent_client::HttpAgentClient;
use casebridge::config::{AgentAuth, AgentConfig, Config, SecretRef};
use casebridge::ids::CaseId;
use casebridge::model::{CaseStatus, DraftStatus};
use casebridge::pipeline::inbound::IngestOutcome;
use casebridge::pipeline::SystemClock;
use casebridge::secrets::FixedSecrets;
use casebridge_http_api::{router, ApiState, RepresentativeAuth, ROUTES};
use casebridge_tests::*;
use serde_json::{json, Value};
use tower::ServiceExt;

const REP_TOKEN: &str = "rep-token-1";

fn openapi() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Validates a response body against the schema the OpenAPI document gives for it.
fn assert_documented(doc: &Value, method: &str, path: &str, status: u16, body: &Value) {
    let schema = &doc["paths"][path][method.to_lowercase()]["responses"][status.to_string()]["content"]["application/json"]["schema"];
    assert!(schema.is_object(), "{method} {path} {status} is not documented");
    let root = json!({"components": doc["components"], "$ref": schema["$ref"]});
    let validator = jsonschema::validator_for(&root).unwrap();
    let errors: Vec<String> = validator.iter_errors(body).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{method} {path} {status}: {errors:?}\n{body}");
}

/// An API Gateway HTTP API (v2) event, as Lambda delivers it.
fn event(method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>, claims: Option<Value>) -> lambda_http::Request {
    let mut header_map = serde_json::Map::new();
    header_map.insert("host".into(), json!("api.example.com"));
    for (k, v) in headers {
        header_map.insert(k.to_string(), json!(v));
    }
    let mut event = json!({
        "version": "2.0", "routeKey": "ANY /{proxy+}", "rawPath": path, "rawQueryString": "", "headers": header_map,
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com", "domainPrefix": "api",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "test"},
            "requestId": "r-1", "routeKey": "ANY /{proxy+}", "stage": "$default", "time": "24/Nov/2026:09:00:00 +0000", "timeEpoch": 1795496400000u64
        },
        "isBase64Encoded": false
    });
    if let Some(body) = body {
        event["body"] = json!(body);
    }
    if let Some(claims) = claims {
        event["requestContext"]["authorizer"] = json!({"jwt": {"claims": claims, "scopes": null}});
    }
    lambda_http::request::from_str(&event.to_string()).expect("API Gateway event")
}

async fn call(app: &axum::Router, request: lambda_http::Request) -> (u16, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn agents_config(url: &str) -> Config {
    let mut config = config(url, "semi_autonomous");
    config.agents[0].auth = AgentAuth::Bearer {
        token: SecretRef {
            env: Some("REFUND_TOKEN".into()),
            secret_arn: None,
        },
    };
    let mut other: AgentConfig = config.agents[0].clone();
    other.name = "other-agent".into();
    other.auth = AgentAuth::Bearer {
        token: SecretRef {
            env: Some("OTHER_TOKEN".into()),
            secret_arn: None,
        },
    };
    config.agents.push(other);
    config
}

fn secrets() -> Arc<FixedSecrets> {
    Arc::new(FixedSecrets(HashMap::from([
        ("REFUND_TOKEN".into(), "refund-secret-0123456789".into()),
        ("OTHER_TOKEN".into(), "other-secret-0123456789".into()),
    ])))
}

fn api(h: &Harness, representatives: RepresentativeAuth) -> axum::Router {
    router(Arc::new(ApiState {
        store: h.store.clone(),
        mailer: h.backend.mailer(),
        config: h.config.clone(),
        secrets: secrets(),
        clock: Arc::new(SystemClock),
        representatives,
    }))
}

const REP: &[(&str, &str)] = &[("authorization", "Bearer rep-token-1"), ("x-casebridge-representative", "rita")];

#[test]
fn the_openapi_document_lists_exactly_the_routes() {
    let doc = openapi();
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    let mut implemented: Vec<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    documented.sort();
    implemented.sort();
    assert_eq!(documented, implemented);
}

async fn every_route_and_every_refusal_through_api_gateway_events(backend: Backend) {
    let doc = openapi();
    let (url, answers, _) = spawn_mapped_agent().await;
    let config = agents_config(&url);
    let mut h = Harness::new(backend, config, HttpAgentClient::new(secrets()).unwrap()).await;
    let app = api(&h, RepresentativeAuth::StaticToken(REP_TOKEN.into()));

    // Every documented route exists (a request never falls through to no_such_route).
    for (method, path) in ROUTES {
        let concrete = path
            .replace("{caseId}", "CB-0000000000")
            .replace("{draftId}", "0000000001.question")
            .replace("{turnId}", "CB-0000000000.0000000001");
        let (_, body) = call(&app, event(method, &concrete, &[], None, None)).await;
        assert_ne!(body["code"], "no_such_route", "{method} {path}");
    }
    let (status, body) = call(&app, event("GET", "/nope", &[], None, None)).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("no_such_route")));
    let (status, body) = call(&app, event("GET", "/health", &[], None, None)).await;
    assert_eq!(status, 200);
    assert_documented(&doc, "GET", "/health", 200, &body);

    // A case with a draft (semi-autonomous workflow).
    let case = h.new_case().await;
    answers
        .lock()
        .unwrap()
        .insert(case.to_string(), json!({"responseType": "Question", "message": "Which order?"}));
    h.one_turn(&case).await;
    let context_path = format!("/cases/{case}/context");

    // Agents: context.
    let refund = [
        ("x-casebridge-agent", "refund-agent"),
        ("authorization", "Bearer refund-secret-0123456789"),
    ];
    let (status, body) = call(&app, event("GET", &context_path, &refund, None, None)).await;
    assert_eq!(status, 200, "{body}");
    assert_documented(&doc, "GET", "/cases/{caseId}/context", 200, &body);
    assert_eq!(body["caseId"], json!(case.to_string()));
    assert_eq!(
        body["intentScores"][0]["intent"], "refund",
        "the intent comes with its scores: {body}"
    );
    for (headers, code, why) in [
        (vec![], 401, "no agent named"),
        (vec![("x-casebridge-agent", "refund-agent")], 401, "no token"),
        (
            vec![
                ("x-casebridge-agent", "refund-agent"),
                ("authorization", "Bearer other-secret-0123456789"),
            ],
            401,
            "another agent's token",
        ),
        (
            vec![
                ("x-casebridge-agent", "nobody"),
                ("authorization", "Bearer refund-secret-0123456789"),
            ],
            401,
            "unknown agent",
        ),
        (
            vec![
                ("x-casebridge-agent", "other-agent"),
                ("authorization", "Bearer other-secret-0123456789"),
            ],
            403,
            "case not routed to it",
        ),
    ] {
        let (status, body) = call(&app, event("GET", &context_path, &headers, None, None)).await;
        assert_eq!(status, code, "{why}: {body}");
        assert!(
            body["code"].is_string() && body["message"].is_string(),
            "{why}: errors are JSON with a code"
        );
    }
    let (status, body) = call(&app, event("GET", "/cases/not-a-case/context", &refund, None, None)).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_case_id")));
    let (status, body) = call(&app, event("GET", "/cases/CB-0000000000/context", &refund, None, None)).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("case_not_found")));

    // Agents: callback for a turn that is not waiting, a bad turn id, no credentials.
    let turn = h.turns(&case).await.pop().unwrap().public_id(&case);
    let answer = r#"{"responseType": "NoAction"}"#;
    let (status, body) = call(&app, event("POST", &format!("/turns/{turn}/answer"), &refund, Some(answer), None)).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("turn_closed")));
    let (status, _) = call(&app, event("POST", "/turns/garbage/answer", &refund, Some(answer), None)).await;
    assert_eq!(status, 404);
    let (status, _) = call(&app, event("POST", &format!("/turns/{turn}/answer"), &[], Some(answer), None)).await;
    assert_eq!(status, 401);

    // Representatives: refusals without or with a wrong token, on every representative route.
    for (method, path) in ROUTES
        .iter()
        .filter(|(_, p)| !p.contains("context") && !p.contains("answer") && *p != "/health")
    {
        let concrete = path.replace("{caseId}", case.as_str()).replace("{draftId}", "0000000001.question");
        for headers in [vec![], vec![("authorization", "Bearer wrong")]] {
            let (status, body) = call(&app, event(method, &concrete, &headers, None, None)).await;
            assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")), "{method} {path}");
        }
    }

    // Drafts: list, bad input, double click.
    let (status, body) = call(&app, event("GET", "/drafts", REP, None, None)).await;
    assert_eq!(status, 200);
    assert_documented(&doc, "GET", "/drafts", 200, &body);
    let draft = body["drafts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["caseId"] == json!(case.to_string()))
        .expect("our draft is listed")
        .clone();
    let send_path = format!("/cases/{case}/drafts/{}/send", draft["draftId"].as_str().unwrap());
    let (status, body) = call(&app, event("POST", &send_path, REP, Some("{not json"), None)).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_body")));
    let (status, body) = call(&app, event("POST", &format!("/cases/{case}/drafts/nonsense/send"), REP, None, None)).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_draft_id")));
    let edit = r#"{"body": "Hello, which order number was it?"}"#;
    let (first, second) = tokio::join!(
        call(&app, event("POST", &send_path, REP, Some(edit), None)),
        call(&app, event("POST", &send_path, REP, Some(edit), None))
    );
    let mut statuses = [first.0, second.0];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "a double click sends once: {first:?} {second:?}");
    let sent = if first.0 == 200 { first.1 } else { second.1 };
    assert_documented(&doc, "POST", "/cases/{caseId}/drafts/{draftId}/send", 200, &sent);
    let customer = h.case(&case).await.customer;
    let mails = h.sent_to(&customer).await;
    assert_eq!(mails.len(), 1);
    assert!(mails[0].text.contains("which order number"));
    assert_eq!(h.case(&case).await.status, CaseStatus::WaitingOnCustomer);

    // Discard: another case's draft; a second discard is refused.
    let other = h.new_case().await;
    answers
        .lock()
        .unwrap()
        .insert(other.to_string(), json!({"responseType": "Resolved", "message": "Done."}));
    h.one_turn(&other).await;
    let draft_id = casebridge_http_api::public_draft_id(&h.drafts(&other).await[0].id);
    let discard = format!("/cases/{other}/drafts/{draft_id}/discard");
    let (status, body) = call(&app, event("POST", &discard, REP, None, None)).await;
    assert_eq!(status, 200, "{body}");
    assert_documented(&doc, "POST", "/cases/{caseId}/drafts/{draftId}/discard", 200, &body);
    assert_eq!(h.drafts(&other).await[0].status, DraftStatus::Discarded);
    let (status, _) = call(&app, event("POST", &discard, REP, None, None)).await;
    assert_eq!(status, 409);

    // Escalations, take over, hand back, timeline.
    let (status, body) = call(&app, event("POST", &format!("/cases/{other}/take-over"), REP, None, None)).await;
    assert_eq!(status, 200);
    assert_documented(&doc, "POST", "/cases/{caseId}/take-over", 200, &body);
    let (status, body) = call(&app, event("GET", "/escalations", REP, None, None)).await;
    assert_eq!(status, 200);
    assert_documented(&doc, "GET", "/escalations", 200, &body);
    let listed = body["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["caseId"] == json!(other.to_string()))
        .expect("held case listed")
        .clone();
    assert!(listed["reason"].as_str().unwrap().contains("rita"));
    let (status, body) = call(&app, event("POST", &format!("/cases/{other}/hand-back"), REP, None, None)).await;
    assert_eq!(status, 200);
    assert_documented(&doc, "POST", "/cases/{caseId}/hand-back", 200, &body);
    let (status, _) = call(&app, event("POST", &format!("/cases/{other}/hand-back"), REP, None, None)).await;
    assert_eq!(status, 409, "handing back a case nobody holds is refused");
    let (status, body) = call(&app, event("GET", &format!("/cases/{other}/timeline"), REP, None, None)).await;
    assert_eq!(status, 200);
    assert_documented(&doc, "GET", "/cases/{caseId}/timeline", 200, &body);
    let kinds: Vec<&str> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"taken_over") && kinds.contains(&"handed_back") && kinds.contains(&"draft_discarded"),
        "{kinds:?}"
    );
    let (status, body) = call(&app, event("GET", "/cases/CB-0000000000/timeline", REP, None, None)).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("case_not_found")));
}

async fn representatives_in_aws_are_named_by_the_jwt_authorizer(backend: Backend) {
    let h = Harness::new(
        backend,
        agents_config("http://127.0.0.1:9/invoke"),
        HttpAgentClient::new(secrets()).unwrap(),
    )
    .await;
    let app = api(&h, RepresentativeAuth::ApiGatewayJwt);
    let (status, _) = call(
        &app,
        event(
            "GET",
            "/escalations",
            &[],
            None,
            Some(json!({"sub": "u-1", "email": "rita@shop.example"})),
        ),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = call(
        &app,
        event("GET", "/escalations", &[("authorization", "Bearer rep-token-1")], None, None),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("unauthorized")),
        "without the authorizer's claims nothing passes"
    );
}

async fn take_over_stops_the_agent_and_hand_back_resumes_it(backend: Backend) {
    let (url, answers, calls) = spawn_mapped_agent().await;
    let mut config = agents_config(&url);
    config.workflow.mode = casebridge::model::WorkflowMode::FullyAutonomous;
    let mut h = Harness::new(backend, config, HttpAgentClient::new(secrets()).unwrap()).await;
    let app = api(&h, RepresentativeAuth::StaticToken(REP_TOKEN.into()));
    let case: CaseId = h.new_case().await;
    answers
        .lock()
        .unwrap()
        .insert(case.to_string(), json!({"responseType": "Question", "message": "Which order?"}));
    h.one_turn(&case).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let (status, _) = call(&app, event("POST", &format!("/cases/{case}/take-over"), REP, None, None)).await;
    assert_eq!(status, 200);
    match h.customer_writes(&case, "It was order 1234.").await {
        IngestOutcome::Stored { work_item: None, .. } => {}
        other => panic!("a held case opens no turn: {other:?}"),
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "agent not called while held");

    let (status, body) = call(&app, event("POST", &format!("/cases/{case}/hand-back"), REP, None, None)).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("WORK#"),
        "the waiting mail opened a turn: {body}"
    );
    answers
        .lock()
        .unwrap()
        .insert(case.to_string(), json!({"responseType": "Resolved", "message": "Refunded."}));
    h.one_turn(&case).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2, "agent called again after hand-back");
    assert_eq!(h.case(&case).await.status, CaseStatus::Resolved);
}

on_every_backend!(
    every_route_and_every_refusal_through_api_gateway_events,
    representatives_in_aws_are_named_by_the_jwt_authorizer,
    take_over_stops_the_agent_and_hand_back_resumes_it,
);
