//! Agent2Agent (A2A) protocol 1.0, JSON-RPC binding, client side: the
//! `SendMessage` request casebridge sends for a turn and the mapping of
//! the agent's reply onto the contract's answers. Pure: no I/O here; the
//! HTTP call, its authentication and retries are `agent_client`'s, the
//! same as for casebridge's own protocol.
//!
//! The wire shapes are the protocol's protobuf-JSON (camelCase fields,
//! `SCREAMING_SNAKE_CASE` enums, a part is `{"text"}`, `{"data"}`, `{"url"}`
//! or `{"raw"}`), as the 1.0 specification and its reference SDK define them.
//!
//! | A2A reply | casebridge answer |
//! |---|---|
//! | task `TASK_STATE_INPUT_REQUIRED` | `Question`, the status message's text (the customer's reply continues the task) |
//! | task `TASK_STATE_COMPLETED` with the case extension's `closeCase: true` | `ResolveCase` |
//! | task `TASK_STATE_COMPLETED` with artifact text | `Resolved`, the artifacts' text |
//! | task `TASK_STATE_COMPLETED` without artifact text | `NoAction` |
//! | task `TASK_STATE_FAILED`, `TASK_STATE_REJECTED`, `TASK_STATE_CANCELED` | `UnableToResolve` (escalates) |
//! | task `TASK_STATE_AUTH_REQUIRED` | agent failure with the reason (escalates) |
//! | task `TASK_STATE_SUBMITTED`, `TASK_STATE_WORKING` | agent failure: casebridge asks for a blocking answer and does not poll tasks |
//! | a `message` instead of a task | `Resolved` with its text, `NoAction` without |
//! | a JSON-RPC error | agent failure with its code and (shortened) message |
//!
//! `needsReview` travels in the case extension's metadata
//! ([`CASE_EXTENSION`]): `{"needsReview": true}` on the task, its status
//! message, an artifact or the message.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

use crate::protocol::{validate_agent_response, AgentRequest, AgentResponse, AgentResponseError};

/// The protocol version casebridge speaks, sent in [`VERSION_HEADER`].
pub const PROTOCOL_VERSION: &str = "1.0";
/// The header naming the protocol version of a request.
pub const VERSION_HEADER: &str = "A2A-Version";
/// The header a client names the extensions it uses in.
pub const EXTENSIONS_HEADER: &str = "A2A-Extensions";
pub const SEND_MESSAGE: &str = "SendMessage";
/// casebridge's A2A extension: the data part's `{caseId, turnId, intent}`
/// and, from the agent, `closeCase` and `needsReview` in metadata keyed by
/// this URI.
pub const CASE_EXTENSION: &str = "urn:casebridge:a2a:case:v1";
/// Characters kept of an agent's error or status text in a failure reason.
const REASON_CHARS: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpcRequest<P> {
    pub jsonrpc: String,
    pub id: String,
    pub method: String,
    pub params: P,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendMessageParams {
    pub message: Message,
    pub configuration: SendConfiguration,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendConfiguration {
    pub accepted_output_modes: Vec<String>,
    /// No history back: casebridge keeps the thread itself, and a long
    /// history would only push the reply over the size limit.
    pub history_length: u32,
    /// `false`: the reply is the task at a terminal or interrupted state.
    pub return_immediately: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    #[serde(default)]
    pub message_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub parts: Vec<Part>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<String>,
}

/// One part: exactly one of text, data, url or raw in a valid part; the
/// others are read only to be ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Part {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RpcResponse {
    #[serde(default)]
    pub id: Option<Value>,
    #[serde(default)]
    pub result: Option<SendMessageResult>,
    #[serde(default)]
    pub error: Option<RpcError>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RpcError {
    pub code: i64,
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SendMessageResult {
    #[serde(default)]
    pub task: Option<Task>,
    #[serde(default)]
    pub message: Option<Message>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    pub id: String,
    #[serde(default)]
    pub context_id: Option<String>,
    pub status: TaskStatus,
    #[serde(default)]
    pub artifacts: Vec<Artifact>,
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TaskStatus {
    pub state: String,
    #[serde(default)]
    pub message: Option<Message>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Artifact {
    #[serde(default)]
    pub parts: Vec<Part>,
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
}

/// The data part casebridge sends with every message (the case extension).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaseData {
    pub case_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
}

/// What the agent's reply means for the turn.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub answer: AgentResponse,
    /// The task to continue with the customer's reply (an `input-required` task).
    pub continue_task: Option<String>,
}

/// The parts of an agent card (`/.well-known/agent-card.json`) casebridge
/// reads: where the JSON-RPC binding is served and what authentication the
/// agent demands. Everything else on the card is ignored.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentCard {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub supported_interfaces: Vec<AgentInterface>,
    /// Scheme name → scheme; a scheme is an object with one key naming its
    /// kind (`httpAuthSecurityScheme`, `oauth2SecurityScheme`, …).
    #[serde(default)]
    pub security_schemes: Map<String, Value>,
    /// Alternatives: any one requirement met is enough; all the schemes a
    /// requirement names are needed together.
    #[serde(default)]
    pub security_requirements: Vec<SecurityRequirement>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentInterface {
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub protocol_binding: String,
    #[serde(default)]
    pub protocol_version: String,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct SecurityRequirement {
    #[serde(default)]
    pub schemes: Map<String, Value>,
}

/// The authentication casebridge can give an A2A agent, as a card names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferedAuth {
    /// None configured.
    None,
    /// `Authorization: Bearer` (A2A's HTTP auth scheme `Bearer`).
    Bearer,
    /// casebridge's signed scheme: no A2A scheme names it, so a card that
    /// demands any scheme is not met by it alone.
    Signed,
}

/// The JSON-RPC endpoint an agent card names, checked against what the card
/// demands of the caller. The first interface with the `JSONRPC` binding
/// and a 1.x (or unstated) protocol version is taken; its URL must be
/// absolute http(s).
pub fn card_endpoint(card: &AgentCard, offered: OfferedAuth) -> Result<String, A2aError> {
    let interface = card
        .supported_interfaces
        .iter()
        .find(|i| {
            i.protocol_binding.eq_ignore_ascii_case("JSONRPC")
                && (i.protocol_version.is_empty() || i.protocol_version == "1" || i.protocol_version.starts_with("1."))
        })
        .ok_or_else(|| {
            let offered: Vec<String> = card
                .supported_interfaces
                .iter()
                .map(|i| format!("{} {}", i.protocol_binding, i.protocol_version).trim().to_string())
                .collect();
            A2aError::Card(short(&format!(
                "it names no JSONRPC interface of protocol 1.x (it names: {})",
                if offered.is_empty() {
                    "none".to_string()
                } else {
                    offered.join(", ")
                }
            )))
        })?;
    let url = interface.url.trim();
    if !(url.starts_with("https://") || url.starts_with("http://")) || url_host(url).is_none() {
        return Err(A2aError::Card(short(&format!(
            "its JSONRPC url {url:?} is not an absolute http(s) URL"
        ))));
    }
    if card.security_requirements.is_empty() {
        return Ok(url.to_string());
    }
    let mut needed = Vec::new();
    for requirement in &card.security_requirements {
        let unmet: Vec<String> = requirement
            .schemes
            .keys()
            .filter(|name| !scheme_met(card.security_schemes.get(name.as_str()), offered))
            .map(|name| scheme_kind(card.security_schemes.get(name.as_str()), name))
            .collect();
        if unmet.is_empty() {
            return Ok(url.to_string());
        }
        needed.push(unmet.join(" and "));
    }
    Err(A2aError::CardAuth(short(&needed.join(", or "))))
}

/// Whether casebridge's configured authentication meets one named scheme.
fn scheme_met(scheme: Option<&Value>, offered: OfferedAuth) -> bool {
    let bearer = scheme
        .and_then(|s| s.get("httpAuthSecurityScheme"))
        .and_then(|h| h.get("scheme"))
        .and_then(Value::as_str)
        .is_some_and(|s| s.eq_ignore_ascii_case("bearer"));
    bearer && offered == OfferedAuth::Bearer
}

/// A scheme as a reason names it: its kind, or its name if the card does
/// not declare it.
fn scheme_kind(scheme: Option<&Value>, name: &str) -> String {
    let Some(kind) = scheme.and_then(Value::as_object).and_then(|o| o.keys().next()) else {
        return format!("{name:?} (not declared on the card)");
    };
    let kind = match kind.as_str() {
        "httpAuthSecurityScheme" => "HTTP bearer authentication",
        "oauth2SecurityScheme" => "OAuth 2.0, which casebridge does not speak yet",
        "openIdConnectSecurityScheme" => "OpenID Connect, which casebridge does not speak yet",
        "mtlsSecurityScheme" => "mutual TLS, which casebridge does not speak yet",
        "apiKeySecurityScheme" => "an API key, which casebridge does not send",
        _ => "an unknown scheme",
    };
    format!("{name:?} ({kind})")
}

/// An http(s) URL's host, if it has one (no URL crate in this pure module).
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let host = rest.split(['/', '?', '#']).next()?;
    (!host.is_empty()).then_some(host)
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum A2aError {
    #[error("the A2A agent card is unusable: {0}")]
    Card(String),
    #[error("the A2A agent card demands authentication casebridge is not configured for: {0}")]
    CardAuth(String),
    #[error("the A2A reply is not JSON-RPC: {0}")]
    NotJsonRpc(String),
    #[error("the A2A reply answers request {got}, not {sent}")]
    WrongId { sent: String, got: String },
    #[error("the A2A agent answered JSON-RPC error {code}: {message}")]
    Rpc { code: i64, message: String },
    #[error("the A2A reply has neither a task nor a message")]
    Empty,
    #[error("the A2A task needs authorization (TASK_STATE_AUTH_REQUIRED){0}")]
    AuthRequired(String),
    #[error("the A2A task is still {0}: casebridge asks for a blocking answer and does not poll tasks")]
    NotFinished(String),
    #[error("the A2A task has the unknown state {0:?}")]
    UnknownState(String),
    #[error(transparent)]
    Answer(#[from] AgentResponseError),
}

/// The `SendMessage` request for a turn: the customer's new text, the case
/// data part, the conversation as `contextId`, and the task to continue
/// when the agent's last answer asked the customer a question. The message
/// id is the turn id, so a retried attempt is the same message.
pub fn send_message(request: &AgentRequest) -> RpcRequest<SendMessageParams> {
    let id = request
        .turn_id
        .clone()
        .unwrap_or_else(|| format!("{}.{}", request.case_id, request.conversation_id));
    let text = if request.new_text.is_empty() {
        // A turn always has mail; an empty text still tells the agent so.
        "(the customer's mail has no text)".to_string()
    } else {
        request.new_text.join("\n\n---\n\n")
    };
    let data = CaseData {
        case_id: request.case_id.clone(),
        turn_id: request.turn_id.clone(),
        intent: request.intent.clone(),
    };
    let parts = vec![
        Part {
            text: Some(text),
            media_type: Some("text/plain".into()),
            ..Part::default()
        },
        Part {
            data: serde_json::to_value(&data).ok(),
            media_type: Some("application/json".into()),
            ..Part::default()
        },
    ];
    RpcRequest {
        jsonrpc: "2.0".into(),
        id: id.clone(),
        method: SEND_MESSAGE.into(),
        params: SendMessageParams {
            message: Message {
                message_id: id,
                context_id: Some(request.conversation_id.clone()),
                task_id: request.remote_task.clone(),
                role: "ROLE_USER".into(),
                parts,
                metadata: None,
                extensions: vec![CASE_EXTENSION.into()],
            },
            configuration: SendConfiguration {
                accepted_output_modes: vec!["text/plain".into()],
                history_length: 0,
                return_immediately: false,
            },
        },
    }
}

/// Maps a `SendMessage` reply body onto a validated answer (the table above).
pub fn parse_reply(body: &[u8], sent_id: &str) -> Result<Reply, A2aError> {
    let response: RpcResponse = serde_json::from_slice(body).map_err(|e| A2aError::NotJsonRpc(short(&e.to_string())))?;
    if let Some(error) = response.error {
        return Err(A2aError::Rpc {
            code: error.code,
            message: short(&error.message),
        });
    }
    match &response.id {
        Some(Value::String(got)) if got == sent_id => {}
        other => {
            return Err(A2aError::WrongId {
                sent: sent_id.to_string(),
                got: short(&other.as_ref().map(Value::to_string).unwrap_or_else(|| "none".into())),
            })
        }
    }
    let result = response.result.ok_or(A2aError::Empty)?;
    if let Some(task) = result.task {
        return map_task(task);
    }
    let message = result.message.ok_or(A2aError::Empty)?;
    let text = text_of(&message.parts);
    let review = needs_review(&[message.metadata.as_ref()]);
    let kind = if text.is_empty() { "NoAction" } else { "Resolved" };
    Ok(Reply {
        answer: answer(kind, &text, review)?,
        continue_task: None,
    })
}

fn map_task(task: Task) -> Result<Reply, A2aError> {
    let status_text = task.status.message.as_ref().map(|m| text_of(&m.parts)).unwrap_or_default();
    let status_meta = task.status.message.as_ref().and_then(|m| m.metadata.as_ref());
    let mut metas = vec![task.metadata.as_ref(), status_meta];
    metas.extend(task.artifacts.iter().map(|a| a.metadata.as_ref()));
    let review = needs_review(&metas);
    let reply = |kind: &str, text: &str, continue_task: Option<String>| -> Result<Reply, A2aError> {
        Ok(Reply {
            answer: answer(kind, text, review)?,
            continue_task,
        })
    };
    match task.status.state.as_str() {
        "TASK_STATE_INPUT_REQUIRED" => reply("Question", &status_text, Some(task.id)),
        "TASK_STATE_COMPLETED" => {
            let artifacts: Vec<String> = task.artifacts.iter().map(|a| text_of(&a.parts)).filter(|t| !t.is_empty()).collect();
            let text = artifacts.join("\n\n");
            if extension_flag(&metas, "closeCase") {
                reply("ResolveCase", &text, None)
            } else if text.is_empty() {
                reply("NoAction", "", None)
            } else {
                reply("Resolved", &text, None)
            }
        }
        "TASK_STATE_FAILED" | "TASK_STATE_REJECTED" | "TASK_STATE_CANCELED" => reply("UnableToResolve", &status_text, None),
        "TASK_STATE_AUTH_REQUIRED" => Err(A2aError::AuthRequired(if status_text.is_empty() {
            String::new()
        } else {
            format!(": {}", short(&status_text))
        })),
        "TASK_STATE_SUBMITTED" | "TASK_STATE_WORKING" => Err(A2aError::NotFinished(task.status.state)),
        other => Err(A2aError::UnknownState(short(other))),
    }
}

/// The answer in the contract's JSON, through the contract's own validation
/// (message limits, a question or resolution never blank).
fn answer(kind: &str, text: &str, needs_review: bool) -> Result<AgentResponse, A2aError> {
    let mut value = Map::new();
    value.insert("responseType".into(), Value::String(kind.into()));
    if !text.is_empty() {
        value.insert("message".into(), Value::String(text.into()));
    }
    if needs_review {
        value.insert("handlingOptions".into(), serde_json::json!({"needsReview": true}));
    }
    Ok(validate_agent_response(&Value::Object(value))?)
}

/// The text parts, trimmed and joined; data, files and raw bytes are not mail text.
fn text_of(parts: &[Part]) -> String {
    parts
        .iter()
        .filter_map(|p| p.text.as_deref())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn extension_flag(metas: &[Option<&Map<String, Value>>], flag: &str) -> bool {
    metas
        .iter()
        .flatten()
        .filter_map(|m| m.get(CASE_EXTENSION))
        .any(|ext| ext.get(flag).and_then(Value::as_bool) == Some(true))
}

fn needs_review(metas: &[Option<&Map<String, Value>>]) -> bool {
    extension_flag(metas, "needsReview")
}

/// An agent's text in a failure reason: one line, printable, bounded.
fn short(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(REASON_CHARS)
        .collect();
    cleaned.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ResponseType;
    use serde_json::json;

    fn card(value: Value) -> AgentCard {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_card_names_its_json_rpc_endpoint_if_its_demands_are_met() {
        let interfaces = json!([
            {"url": "https://agent.example/grpc", "protocolBinding": "GRPC", "protocolVersion": "1.0"},
            {"url": "https://agent.example/v0", "protocolBinding": "JSONRPC", "protocolVersion": "0.3"},
            {"url": "https://agent.example/a2a", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}
        ]);
        let open = card(json!({"supportedInterfaces": interfaces}));
        for offered in [OfferedAuth::None, OfferedAuth::Bearer, OfferedAuth::Signed] {
            assert_eq!(card_endpoint(&open, offered).unwrap(), "https://agent.example/a2a");
        }
        let bearer = card(json!({
            "supportedInterfaces": interfaces,
            "securitySchemes": {"b": {"httpAuthSecurityScheme": {"scheme": "bearer"}}, "o": {"oauth2SecurityScheme": {}}},
            // Either OAuth alone, or bearer: bearer meets the second.
            "securityRequirements": [{"schemes": {"o": {}}}, {"schemes": {"b": {}}}]
        }));
        assert_eq!(card_endpoint(&bearer, OfferedAuth::Bearer).unwrap(), "https://agent.example/a2a");
        let Err(A2aError::CardAuth(reason)) = card_endpoint(&bearer, OfferedAuth::Signed) else {
            panic!("the signed scheme is no A2A scheme")
        };
        assert_eq!(
            reason,
            "\"o\" (OAuth 2.0, which casebridge does not speak yet), or \"b\" (HTTP bearer authentication)"
        );
        // All the schemes of one requirement are needed together.
        let both = card(json!({
            "supportedInterfaces": interfaces,
            "securitySchemes": {"b": {"httpAuthSecurityScheme": {"scheme": "Bearer"}}},
            "securityRequirements": [{"schemes": {"b": {}, "m": {}}}]
        }));
        assert!(matches!(card_endpoint(&both, OfferedAuth::Bearer), Err(A2aError::CardAuth(r)) if r == "\"m\" (not declared on the card)"));
    }

    #[test]
    fn a_card_without_a_usable_json_rpc_interface_is_refused() {
        for (interfaces, says) in [
            (json!([]), "it names: none"),
            (
                json!([{"url": "https://a.example", "protocolBinding": "HTTP+JSON", "protocolVersion": "1.0"}]),
                "HTTP+JSON 1.0",
            ),
            (
                json!([{"url": "https://a.example", "protocolBinding": "JSONRPC", "protocolVersion": "2.0"}]),
                "JSONRPC 2.0",
            ),
            (
                json!([{"url": "ftp://a.example/a2a", "protocolBinding": "JSONRPC"}]),
                "not an absolute http(s) URL",
            ),
            (
                json!([{"url": "https:///a2a", "protocolBinding": "JSONRPC"}]),
                "not an absolute http(s) URL",
            ),
            (
                json!([{"url": "/a2a", "protocolBinding": "JSONRPC"}]),
                "not an absolute http(s) URL",
            ),
        ] {
            let Err(A2aError::Card(reason)) = card_endpoint(&card(json!({"supportedInterfaces": interfaces})), OfferedAuth::Bearer) else {
                panic!("{interfaces}")
            };
            assert!(reason.contains(says), "{reason}");
        }
    }

    fn request(remote_task: Option<&str>) -> AgentRequest {
        AgentRequest {
            case_id: "CB-7K3M9Q2XAB".into(),
            conversation_id: "conv-1".into(),
            turn_id: Some("CB-7K3M9Q2XAB.0000000001".into()),
            intent: Some("refund".into()),
            new_text: vec!["My parcel arrived broken.".into()],
            remote_task: remote_task.map(str::to_string),
        }
    }

    #[test]
    fn the_request_carries_the_text_the_case_and_the_task_to_continue() {
        let wire = serde_json::to_value(send_message(&request(Some("task-9")))).unwrap();
        assert_eq!(wire["jsonrpc"], "2.0");
        assert_eq!(wire["method"], "SendMessage");
        assert_eq!(wire["id"], "CB-7K3M9Q2XAB.0000000001");
        let message = &wire["params"]["message"];
        assert_eq!(message["messageId"], "CB-7K3M9Q2XAB.0000000001");
        assert_eq!(message["contextId"], "conv-1");
        assert_eq!(message["taskId"], "task-9");
        assert_eq!(message["role"], "ROLE_USER");
        assert_eq!(message["parts"][0]["text"], "My parcel arrived broken.");
        assert_eq!(
            message["parts"][1]["data"],
            json!({"caseId": "CB-7K3M9Q2XAB", "turnId": "CB-7K3M9Q2XAB.0000000001", "intent": "refund"})
        );
        assert_eq!(message["extensions"], json!([CASE_EXTENSION]));
        assert_eq!(wire["params"]["configuration"]["returnImmediately"], false);
        assert_eq!(wire["params"]["configuration"]["historyLength"], 0);
        // A first turn starts a task: no taskId on the wire.
        let first = serde_json::to_value(send_message(&request(None))).unwrap();
        assert!(first["params"]["message"].get("taskId").is_none());
    }

    fn reply(result: Value) -> Result<Reply, A2aError> {
        let body = json!({"jsonrpc": "2.0", "id": "t1", "result": result});
        parse_reply(body.to_string().as_bytes(), "t1")
    }

    fn task(state: &str, status_text: Option<&str>, artifacts: Value, metadata: Value) -> Value {
        let mut status = json!({"state": state});
        if let Some(text) = status_text {
            status["message"] = json!({"messageId": "m", "role": "ROLE_AGENT", "parts": [{"text": text}]});
        }
        json!({"task": {"id": "task-1", "contextId": "conv-1", "status": status, "artifacts": artifacts, "metadata": metadata}})
    }

    #[test]
    fn task_states_map_onto_the_contract() {
        let ext = |flags: Value| json!({ CASE_EXTENSION: flags });
        let artifact = json!([{"artifactId": "a", "parts": [{"text": "Refunded $42.50."}]}]);
        let kind = |r: Result<Reply, A2aError>| r.map(|r| (r.answer.response_type, r.answer.message, r.continue_task));
        // (reply, Ok((answer, message, task to continue)) or Err(()) for a refusal)
        type Want = Result<(ResponseType, Option<String>, Option<String>), ()>;
        let cases: Vec<(Value, Want)> = vec![
            (
                task("TASK_STATE_INPUT_REQUIRED", Some("Which order?"), json!([]), json!({})),
                Ok((ResponseType::Question, Some("Which order?".into()), Some("task-1".into()))),
            ),
            (
                task("TASK_STATE_COMPLETED", None, artifact.clone(), json!({})),
                Ok((ResponseType::Resolved, Some("Refunded $42.50.".into()), None)),
            ),
            (
                task("TASK_STATE_COMPLETED", None, artifact.clone(), ext(json!({"closeCase": true}))),
                Ok((ResponseType::ResolveCase, Some("Refunded $42.50.".into()), None)),
            ),
            (
                task("TASK_STATE_COMPLETED", None, json!([]), json!({})),
                Ok((ResponseType::NoAction, None, None)),
            ),
            (
                task("TASK_STATE_FAILED", Some("no such order"), json!([]), json!({})),
                Ok((ResponseType::UnableToResolve, Some("no such order".into()), None)),
            ),
            (
                task("TASK_STATE_REJECTED", None, json!([]), json!({})),
                Ok((ResponseType::UnableToResolve, None, None)),
            ),
            (
                task("TASK_STATE_CANCELED", None, json!([]), json!({})),
                Ok((ResponseType::UnableToResolve, None, None)),
            ),
            (task("TASK_STATE_AUTH_REQUIRED", Some("sign in"), json!([]), json!({})), Err(())),
            (task("TASK_STATE_WORKING", None, json!([]), json!({})), Err(())),
            (task("TASK_STATE_SUBMITTED", None, json!([]), json!({})), Err(())),
            (task("TASK_STATE_SOMETHING", None, json!([]), json!({})), Err(())),
            // A question without text is never sent as a blank mail.
            (task("TASK_STATE_INPUT_REQUIRED", None, json!([]), json!({})), Err(())),
            (
                json!({"message": {"messageId": "m", "role": "ROLE_AGENT", "parts": [{"text": "Done."}]}}),
                Ok((ResponseType::Resolved, Some("Done.".into()), None)),
            ),
            (
                json!({"message": {"messageId": "m", "role": "ROLE_AGENT", "parts": [{"data": {"x": 1}}]}}),
                Ok((ResponseType::NoAction, None, None)),
            ),
            (json!({}), Err(())),
        ];
        for (result, want) in cases {
            let got = kind(reply(result.clone()));
            match want {
                Ok(want) => assert_eq!(got, Ok(want), "{result}"),
                Err(()) => assert!(got.is_err(), "{result} gave {got:?}"),
            }
        }
        let auth = reply(task("TASK_STATE_AUTH_REQUIRED", Some("sign in\nfirst"), json!([]), json!({})));
        assert_eq!(
            auth.unwrap_err().to_string(),
            "the A2A task needs authorization (TASK_STATE_AUTH_REQUIRED): sign in first"
        );
    }

    #[test]
    fn needs_review_comes_from_the_case_extension() {
        let meta = json!({ CASE_EXTENSION: {"needsReview": true} });
        let on_task = reply(task("TASK_STATE_INPUT_REQUIRED", Some("Which order?"), json!([]), meta.clone())).unwrap();
        assert!(on_task.answer.needs_review());
        let artifact = json!([{"artifactId": "a", "parts": [{"text": "Refunded."}], "metadata": meta}]);
        assert!(reply(task("TASK_STATE_COMPLETED", None, artifact, json!({})))
            .unwrap()
            .answer
            .needs_review());
        let other_key = json!({"urn:someone:else": {"needsReview": true}});
        let plain = reply(task("TASK_STATE_INPUT_REQUIRED", Some("Which order?"), json!([]), other_key)).unwrap();
        assert!(!plain.answer.needs_review());
    }

    #[test]
    fn errors_wrong_ids_and_junk_are_typed() {
        let error = json!({"jsonrpc": "2.0", "id": "t1", "error": {"code": -32001, "message": "Task not found\u{7}"}});
        assert_eq!(
            parse_reply(error.to_string().as_bytes(), "t1"),
            Err(A2aError::Rpc {
                code: -32001,
                message: "Task not found".into()
            })
        );
        let other = json!({"jsonrpc": "2.0", "id": "t2", "result": {"message": {"parts": [{"text": "hi"}]}}});
        assert!(matches!(
            parse_reply(other.to_string().as_bytes(), "t1"),
            Err(A2aError::WrongId { .. })
        ));
        assert!(matches!(parse_reply(b"<html>", "t1"), Err(A2aError::NotJsonRpc(_))));
        assert!(matches!(
            parse_reply(b"{\"jsonrpc\":\"2.0\",\"id\":\"t1\"}", "t1"),
            Err(A2aError::Empty)
        ));
        let long = "x".repeat(100_000);
        let error = json!({"jsonrpc": "2.0", "id": "t1", "error": {"code": 1, "message": long}});
        let Err(A2aError::Rpc { message, .. }) = parse_reply(error.to_string().as_bytes(), "t1") else {
            panic!("an error")
        };
        assert_eq!(message.chars().count(), REASON_CHARS);
    }

    proptest::proptest! {
        /// Whatever the agent sends back, the mapping answers or refuses; it never panics.
        #[test]
        fn any_reply_is_answered_or_refused(body in proptest::collection::vec(proptest::num::u8::ANY, 0..512), state in "[A-Z_]{0,30}") {
            let _ = parse_reply(&body, "t1");
            let _ = reply(task(&state, Some("text"), json!([{"parts": [{"text": "a"}]}]), json!({})));
        }
    }
}
