//! The MCP server of the HTTP API (`POST /mcp`, docs/mcp.md): over loopback
//! HTTP, on a case worked by the pipeline on the embedded store, as the agent
//! it is routed to and as another agent; and the same server driven by the
//! reference Python MCP client (`mcp`, in the interop venv of
//! infra/local-stack.sh).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use casebridge::agent_auth::{sign_v2, Direction, RequestFacts};
use casebridge::agent_client::HttpAgentClient;
use casebridge::config::{AgentAuth, AgentConfig, Config, HmacScheme, SecretRef};
use casebridge::ids::CaseId;
use casebridge::secrets::FixedSecrets;
use casebridge_tests::*;
use serde_json::{json, Value};

const REFUND: (&str, &str) = ("refund-agent", "refund-secret-0123456789");
const OTHER: (&str, &str) = ("other-agent", "other-secret-0123456789");

fn agents_config(url: &str) -> Config {
    let mut config = config(url, "semi_autonomous");
    config.agents[0].auth = AgentAuth::Bearer {
        token: SecretRef {
            env: Some("REFUND_TOKEN".into()),
            secret_arn: None,
        },
    };
    let mut other: AgentConfig = config.agents[0].clone();
    other.name = OTHER.0.into();
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
        ("REFUND_TOKEN".into(), REFUND.1.into()),
        ("OTHER_TOKEN".into(), OTHER.1.into()),
    ])))
}

/// A customer reply on the case with a text attachment.
fn reply_with_attachment(customer: &str, case: &CaseId) -> Vec<u8> {
    format!(
        "From: Customer <{customer}>\r\nTo: Example Shop Support <support@shop.example>\r\nSubject: Re: Refund please {tag}\r\n\
         Date: Tue, 24 Nov 2026 09:30:00 +0000\r\nMessage-ID: <{id}@c.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe receipt is attached.\r\n\
         --b1\r\nContent-Type: text/plain; name=\"receipt.txt\"\r\nContent-Disposition: attachment; filename=\"receipt.txt\"\r\n\r\n\
         Order 1234, 40.00 USD\r\n--b1--\r\n",
        tag = case.subject_tag(),
        id = unique("att"),
    )
    .into_bytes()
}

/// A case routed to the refund agent, worked once (the agent asked a
/// question), then two more mails from the customer, the last with an
/// attachment; and the API serving it on loopback.
struct Fixture {
    h: Harness,
    case: CaseId,
    api: SocketAddr,
}

async fn fixture() -> Fixture {
    let (url, answers, _) = spawn_mapped_agent().await;
    let mut h = Harness::new(Backend::embedded(), agents_config(&url), HttpAgentClient::new(secrets()).unwrap()).await;
    let case = h.new_case().await;
    answers
        .lock()
        .unwrap()
        .insert(case.to_string(), json!({"responseType": "Question", "message": "Which order?"}));
    h.one_turn(&case).await;
    h.customer_writes(&case, "It was order 1234, bought last week.").await;
    let customer = h.case(&case).await.customer;
    h.ingest(&reply_with_attachment(&customer, &case)).await;
    let api = spawn_api_with(h.store.clone(), h.backend.mailer(), "rep-token-0123456789", &h.config, secrets()).await;
    Fixture { h, case, api }
}

/// One JSON-RPC message to /mcp with the given headers: (status, body).
async fn post(api: SocketAddr, headers: &[(&str, &str)], message: &Value) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("http://{api}/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.body(message.to_string()).send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn as_agent((name, token): (&str, &str)) -> Vec<(&'static str, String)> {
    vec![
        ("x-casebridge-agent", name.to_string()),
        ("authorization", format!("Bearer {token}")),
    ]
}

async fn rpc(api: SocketAddr, agent: (&str, &str), method: &str, params: Value) -> Value {
    let headers = as_agent(agent);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, body) = post(
        api,
        &headers,
        &json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}),
    )
    .await;
    assert_eq!(status, 200, "{method}: {body}");
    assert_eq!(body["jsonrpc"], "2.0", "{method}: {body}");
    body
}

/// A tools/call: (isError, structuredContent, the text blocks joined).
async fn call_tool(api: SocketAddr, agent: (&str, &str), tool: &str, arguments: Value) -> (bool, Value, String) {
    let body = rpc(api, agent, "tools/call", json!({"name": tool, "arguments": arguments})).await;
    let result = &body["result"];
    assert!(result.is_object(), "{tool}: a tool result, not a JSON-RPC error: {body}");
    let text = result["content"]
        .as_array()
        .map(|blocks| blocks.iter().filter_map(|b| b["text"].as_str()).collect::<Vec<_>>().join("\n"))
        .unwrap_or_default();
    (result["isError"] == json!(true), result["structuredContent"].clone(), text)
}

#[tokio::test(flavor = "multi_thread")]
async fn initialize_and_list_exactly_the_four_read_only_tools() {
    let f = fixture().await;
    let init = rpc(
        f.api,
        REFUND,
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}}),
    )
    .await;
    assert_eq!(init["result"]["serverInfo"]["name"], "casebridge", "{init}");
    assert!(init["result"]["capabilities"]["tools"].is_object(), "tools capability: {init}");
    assert_eq!(init["result"]["protocolVersion"], "2025-06-18", "{init}");

    let list = rpc(f.api, REFUND, "tools/list", json!({})).await;
    let tools = list["result"]["tools"].as_array().expect("tools");
    let mut names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    names.sort();
    assert_eq!(names, ["get_attachment", "get_case", "get_previous_turns", "get_thread"]);
    let mut expected = casebridge_http_api::mcp::TOOLS.to_vec();
    expected.sort();
    assert_eq!(names, expected, "the crate's list of tools is the served one");
    for tool in tools {
        assert_eq!(tool["annotations"]["readOnlyHint"], true, "{tool}");
        assert_eq!(tool["annotations"]["destructiveHint"], false, "{tool}");
        let schema = &tool["inputSchema"];
        assert!(
            schema["required"].as_array().is_some_and(|r| r.contains(&json!("caseId"))),
            "every tool takes a caseId: {tool}"
        );
        assert!(tool["outputSchema"].is_object(), "typed output: {tool}");
    }
    let thread = tools.iter().find(|t| t["name"] == "get_thread").unwrap();
    assert_eq!(thread["inputSchema"]["properties"]["limit"]["maximum"], 50, "{thread}");

    // Stateless: no SSE stream to open, no session to delete.
    let http = reqwest::Client::new();
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let status = http
            .request(method.clone(), format!("http://{}/mcp", f.api))
            .header("x-casebridge-agent", REFUND.0)
            .header("authorization", format!("Bearer {}", REFUND.1))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 405, "{method}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_tool_answers_from_the_case_context() {
    let f = fixture().await;
    let case = f.h.case(&f.case).await;
    let rest: Value = reqwest::Client::new()
        .get(format!("http://{}/cases/{}/context", f.api, f.case))
        .header("x-casebridge-agent", REFUND.0)
        .header("authorization", format!("Bearer {}", REFUND.1))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    // get_case: the same facts as the REST context.
    let (error, got, _) = call_tool(f.api, REFUND, "get_case", json!({"caseId": f.case.to_string()})).await;
    assert!(!error, "{got}");
    assert_eq!(got["caseId"], json!(f.case.to_string()));
    assert_eq!(got["customer"]["email"], json!(case.customer));
    assert_eq!(got["status"], rest["status"]);
    assert_eq!(got["subject"], rest["subject"]);
    assert_eq!(got["intent"], "refund");
    assert_eq!(got["intentScores"][0]["intent"], "refund");
    assert_eq!(got["intentScores"][0]["confidence"], rest["intentScores"][0]["confidence"]);
    assert_eq!(got["secondIntent"], Value::Null, "no second request in this mail");
    assert!(
        got.get("thread").is_none() && got.get("turns").is_none(),
        "get_case is the case only: {got}"
    );

    // get_thread: three mails, paged by two.
    let (error, first, _) = call_tool(f.api, REFUND, "get_thread", json!({"caseId": f.case.to_string(), "limit": 2})).await;
    assert!(!error, "{first}");
    assert_eq!(first["total"], 3, "{first}");
    assert_eq!(first["mails"].as_array().unwrap().len(), 2);
    assert_eq!(first["mails"][0]["index"], 0);
    assert_eq!(first["mails"][0]["direction"], "inbound");
    assert!(
        first["mails"][0]["newText"].as_str().unwrap().contains("refund for order 1234"),
        "{first}"
    );
    assert!(
        first["mails"][1]["newText"].as_str().unwrap().contains("bought last week"),
        "{first}"
    );
    assert_eq!(first["nextCursor"], "2");
    let (error, next, _) = call_tool(
        f.api,
        REFUND,
        "get_thread",
        json!({"caseId": f.case.to_string(), "cursor": "2", "limit": 2}),
    )
    .await;
    assert!(!error, "{next}");
    assert_eq!(next["mails"].as_array().unwrap().len(), 1);
    assert_eq!(next["mails"][0]["index"], 2);
    assert_eq!(next["nextCursor"], Value::Null, "the last page has no cursor: {next}");
    let attachment = &next["mails"][0]["attachments"][0];
    assert_eq!(attachment["name"], "receipt.txt", "{next}");
    assert_eq!(attachment["contentType"], "text/plain");
    let (_, whole, _) = call_tool(f.api, REFUND, "get_thread", json!({"caseId": f.case.to_string()})).await;
    assert_eq!(whole["mails"].as_array().unwrap().len(), 3, "default limit covers it: {whole}");

    // get_attachment: described, and plainly not served.
    let (error, got, _) = call_tool(
        f.api,
        REFUND,
        "get_attachment",
        json!({"caseId": f.case.to_string(), "mailIndex": 2, "attachmentIndex": 0}),
    )
    .await;
    assert!(!error, "{got}");
    assert_eq!(got["name"], "receipt.txt");
    assert_eq!(got["contentType"], "text/plain");
    assert_eq!(got["served"], false);
    assert_eq!(got["text"], Value::Null);
    assert!(got["note"].as_str().unwrap().contains("not served"), "{got}");
    assert!(got["size"].as_u64().unwrap() > 0);
    let (error, _, text) = call_tool(
        f.api,
        REFUND,
        "get_attachment",
        json!({"caseId": f.case.to_string(), "mailIndex": 0, "attachmentIndex": 0}),
    )
    .await;
    assert!(error && text.contains("mail 0 has no attachment 0"), "{text}");
    let (error, _, text) = call_tool(
        f.api,
        REFUND,
        "get_attachment",
        json!({"caseId": f.case.to_string(), "mailIndex": 9, "attachmentIndex": 0}),
    )
    .await;
    assert!(error && text.contains("no mail 9"), "{text}");

    // get_previous_turns: the turn and what was answered.
    let turns = f.h.turns(&f.case).await;
    let (error, got, _) = call_tool(f.api, REFUND, "get_previous_turns", json!({"caseId": f.case.to_string()})).await;
    assert!(!error, "{got}");
    assert_eq!(got["turns"].as_array().unwrap().len(), turns.len(), "{got}");
    assert_eq!(got["turns"][0]["turnId"], json!(turns[0].public_id(&f.case)));
    assert_eq!(got["turns"][0]["responseType"], "Question");
    assert_eq!(got["turns"][0]["message"], "Which order?");
    assert_eq!(got["turns"][0]["error"], Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn another_agents_case_is_refused_and_nothing_of_it_is_told() {
    let f = fixture().await;
    let case = f.h.case(&f.case).await;
    let id = f.case.to_string();
    for (tool, arguments) in [
        ("get_case", json!({"caseId": id})),
        ("get_thread", json!({"caseId": id, "limit": 5})),
        ("get_attachment", json!({"caseId": id, "mailIndex": 2, "attachmentIndex": 0})),
        ("get_previous_turns", json!({"caseId": id})),
    ] {
        let (error, structured, text) = call_tool(f.api, OTHER, tool, arguments).await;
        assert!(error, "{tool}: refused");
        assert!(text.contains("not routed to your agent"), "{tool}: {text}");
        assert_eq!(structured, Value::Null, "{tool}: no content");
        for secret in [case.customer.as_str(), case.subject.as_str(), "1234", "Which order?", "receipt"] {
            assert!(!text.contains(secret), "{tool} tells {secret:?}: {text}");
        }
    }
    // A case that does not exist and a malformed id are errors too.
    let (error, _, text) = call_tool(f.api, REFUND, "get_case", json!({"caseId": "CB-0000000000"})).await;
    assert!(error && text.contains("does not exist"), "{text}");
    let (error, _, text) = call_tool(f.api, REFUND, "get_case", json!({"caseId": "../etc"})).await;
    assert!(error && text.contains("not a case id"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unauthenticated_requests_get_401_before_any_mcp_handling() {
    let f = fixture().await;
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}});
    for (headers, why) in [
        (vec![], "no agent named"),
        (vec![("x-casebridge-agent", REFUND.0)], "no token"),
        (
            vec![
                ("x-casebridge-agent", REFUND.0),
                ("authorization", "Bearer other-secret-0123456789"),
            ],
            "another agent's token",
        ),
        (
            vec![
                ("x-casebridge-agent", "nobody"),
                ("authorization", "Bearer refund-secret-0123456789"),
            ],
            "unknown agent",
        ),
    ] {
        let (status, body) = post(f.api, &headers, &list).await;
        assert_eq!(status, 401, "{why}: {body}");
        assert_eq!(
            body["code"], "unauthorized",
            "{why}: the API's error, not a JSON-RPC answer: {body}"
        );
        assert!(body.get("jsonrpc").is_none(), "{why}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signing_agent_signs_the_json_rpc_body() {
    let f = fixture().await;
    const HMAC_SECRET: &str = "an-hmac-secret-of-at-least-32-bytes";
    let mut config = f.h.config.clone();
    config.agents[0].auth = AgentAuth::Hmac {
        secret: SecretRef {
            env: Some("REFUND_HMAC".into()),
            secret_arn: None,
        },
        scheme: HmacScheme::V2,
        key_id: "k1".into(),
        previous: None,
    };
    let secrets = Arc::new(FixedSecrets(HashMap::from([("REFUND_HMAC".into(), HMAC_SECRET.into())])));
    let api = spawn_api_with(f.h.store.clone(), f.h.backend.mailer(), "rep-token-0123456789", &config, secrets).await;
    let call = |case: String| json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "get_case", "arguments": {"caseId": case}}});
    let body = call(f.case.to_string()).to_string();
    let timestamp = chrono::Utc::now().timestamp();
    let facts = RequestFacts {
        direction: Direction::ToCasebridge,
        agent: REFUND.0,
        method: "POST",
        path_and_query: "/mcp",
        body: body.as_bytes(),
    };
    let signature = sign_v2(HMAC_SECRET.as_bytes(), &facts, timestamp);
    let timestamp = timestamp.to_string();
    let signed = [
        ("x-casebridge-agent", REFUND.0),
        ("x-casebridge-key-id", "k1"),
        ("x-casebridge-timestamp", timestamp.as_str()),
        ("x-casebridge-signature", signature.as_str()),
    ];
    let send = |message: String, headers: Vec<(&'static str, String)>| async move {
        let mut request = reqwest::Client::new()
            .post(format!("http://{api}/mcp"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream");
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = request.body(message).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap_or(Value::Null))
    };
    let owned = |h: &[(&'static str, &str)]| h.iter().map(|(k, v)| (*k, v.to_string())).collect::<Vec<_>>();
    let (status, answer) = send(body.clone(), owned(&signed)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["result"]["structuredContent"]["caseId"],
        json!(f.case.to_string()),
        "{answer}"
    );
    // The same signature over another body (another case asked for) is refused.
    let (status, answer) = send(call("CB-0000000000".into()).to_string(), owned(&signed)).await;
    assert_eq!((status, answer["code"].as_str()), (401, Some("unauthorized")), "{answer}");
    // The bearer scheme is not accepted for a signing agent.
    let (status, _) = send(
        body,
        owned(&[
            ("x-casebridge-agent", REFUND.0),
            ("authorization", "Bearer refund-secret-0123456789"),
        ]),
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_paging_input_is_a_clear_error() {
    let f = fixture().await;
    let id = f.case.to_string();
    for (arguments, expected) in [
        (json!({"caseId": id, "limit": 0}), "limit must be between 1 and 50"),
        (json!({"caseId": id, "limit": 51}), "limit must be between 1 and 50"),
        (json!({"caseId": id, "cursor": "abc"}), "cursor is not one this server gave"),
        (json!({"caseId": id, "cursor": "-1"}), "cursor is not one this server gave"),
        (
            json!({"caseId": id, "cursor": "99999999999999999999"}),
            "cursor is not one this server gave",
        ),
        (json!({"caseId": id, "cursor": "4"}), "past the end"),
    ] {
        let (error, structured, text) = call_tool(f.api, REFUND, "get_thread", arguments.clone()).await;
        assert!(error, "{arguments}: refused");
        assert!(text.contains(expected), "{arguments}: {text}");
        assert_eq!(structured, Value::Null);
    }
    // Input that does not fit the schema: a JSON-RPC error naming the parameter problem, never a crash.
    for arguments in [
        json!({"caseId": id, "limit": -1}),
        json!({"caseId": id, "limit": "ten"}),
        json!({"caseId": id, "limit": 4294967296u64}),
        json!({"limit": 2}),
        json!({"caseId": id, "colour": "red"}),
    ] {
        let body = rpc(
            f.api,
            REFUND,
            "tools/call",
            json!({"name": "get_thread", "arguments": arguments.clone()}),
        )
        .await;
        let refused = body["error"]["code"] == json!(-32602) || body["result"]["isError"] == json!(true);
        assert!(refused, "{arguments}: {body}");
        let message = format!("{}{}", body["error"]["message"], body["result"]["content"]);
        assert!(
            ["limit", "caseId", "colour", "invalid"].iter().any(|w| message.contains(w)),
            "{arguments}: the error says what is wrong: {body}"
        );
    }
    // The server still answers afterwards.
    let (error, _, _) = call_tool(f.api, REFUND, "get_thread", json!({"caseId": id, "limit": 1})).await;
    assert!(!error);
}

/// The reference Python MCP client (`mcp` 2.3.0) against this server.
#[tokio::test(flavor = "multi_thread")]
async fn the_reference_python_client_lists_and_calls_the_tools() {
    let Some(python) = std::env::var_os("CASEBRIDGE_INTEROP_PYTHON") else {
        if std::env::var("CASEBRIDGE_REQUIRE_STACK").is_ok_and(|v| v == "1") {
            panic!(
                "CASEBRIDGE_REQUIRE_STACK=1 but CASEBRIDGE_INTEROP_PYTHON is not set: run infra/local-stack.sh install and eval its env"
            );
        }
        eprintln!(
            "skipped: CASEBRIDGE_INTEROP_PYTHON is not set (infra/local-stack.sh install, then eval \"$(bash infra/local-stack.sh env)\")"
        );
        return;
    };
    let f = fixture().await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/mcp_client.py");
    let settings = json!({
        "url": format!("http://{}/mcp", f.api),
        "agent": REFUND.0, "token": REFUND.1,
        "otherAgent": OTHER.0, "otherToken": OTHER.1,
        "caseId": f.case.to_string(),
    });
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        tokio::process::Command::new(python).arg(&script).arg(settings.to_string()).output(),
    )
    .await
    .expect("the client finished in time")
    .expect("the client ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "client failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("the client prints JSON");
    assert_eq!(seen["serverName"], "casebridge", "{seen}");
    assert_eq!(
        seen["tools"],
        json!(["get_attachment", "get_case", "get_previous_turns", "get_thread"]),
        "{seen}"
    );
    let case = &seen["getCase"];
    assert_eq!(case["isError"], false, "{seen}");
    assert_eq!(case["structured"]["caseId"], json!(f.case.to_string()));
    assert_eq!(case["structured"]["intent"], "refund");
    assert_eq!(case["structured"]["customer"]["email"], json!(f.h.case(&f.case).await.customer));
    let first = &seen["threadFirst"];
    assert_eq!(first["isError"], false, "{seen}");
    assert_eq!(first["structured"]["mails"].as_array().map(Vec::len), Some(1));
    assert_eq!(first["structured"]["nextCursor"], "1");
    assert!(first["structured"]["mails"][0]["newText"]
        .as_str()
        .unwrap_or("")
        .contains("refund for order 1234"));
    let next = &seen["threadNext"];
    assert_eq!(next["structured"]["mails"].as_array().map(Vec::len), Some(2), "{seen}");
    assert_eq!(next["structured"]["nextCursor"], Value::Null);
    assert_eq!(seen["badLimit"]["isError"], true, "{seen}");
    assert!(seen["foreign"]["isError"] == true, "{seen}");
    assert!(
        seen["foreign"]["text"][0]
            .as_str()
            .unwrap_or("")
            .contains("not routed to your agent"),
        "{seen}"
    );
    let bad = seen["badToken"].as_str().unwrap_or("");
    assert!(bad.starts_with("refused"), "{seen}");
    assert_eq!(seen["badTokenStatuses"], json!([401]), "refused at initialize, with 401: {seen}");
}
