//! The agent's A2A 1.0 side (JSON-RPC binding, `SendMessage`), mirroring
//! what casebridge's client sends and expects (`casebridge::a2a`): the
//! request is read with casebridge's own message and part types, the case
//! comes from the case extension's data part `{caseId, turnId, intent}`,
//! the conversation from `contextId`; the answer is a task:
//!
//! | answer | task |
//! |---|---|
//! | `Question` | `TASK_STATE_INPUT_REQUIRED`, the question as the status message's text (the customer's reply continues the task) |
//! | `Resolved` | `TASK_STATE_COMPLETED`, the resolution as an artifact's text |
//! | `UnableToResolve` | `TASK_STATE_FAILED`, the reason as the status message's text |
//!
//! `needsReview` is the case extension's metadata on the task:
//! `{"urn:casebridge:a2a:case:v1": {"needsReview": true}}`.
//!
//! The agent keeps no task store: every message reads the case again over
//! MCP, so a continued task is answered under the `taskId` it came with.

use casebridge::a2a::{CaseData, Message, Part, CASE_EXTENSION, SEND_MESSAGE};
use casebridge::protocol::{AgentResponse, ResponseType};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// JSON-RPC error codes (JSON-RPC 2.0 and A2A's).
pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;

/// A JSON-RPC request as received: `params` is read once the method is known.
#[derive(Debug, Deserialize)]
pub struct IncomingRequest {
    #[serde(default)]
    pub jsonrpc: String,
    #[serde(default)]
    pub id: Option<Value>,
    #[serde(default)]
    pub method: String,
    #[serde(default)]
    pub params: Option<Value>,
}

/// `SendMessage`'s params. casebridge always sends a configuration
/// (blocking, no history); other clients may leave it out, and the agent
/// answers blocking either way.
#[derive(Debug, Deserialize)]
pub struct IncomingParams {
    pub message: Message,
    #[serde(default)]
    pub configuration: Option<Value>,
}

/// What a `SendMessage` asks the agent to work on.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseMessage {
    pub case_id: String,
    pub conversation_id: Option<String>,
    pub task_id: Option<String>,
    pub turn_id: Option<String>,
}

/// A JSON-RPC error the agent answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcFailure {
    pub code: i64,
    pub message: String,
}

fn failure(code: i64, message: &str) -> RpcFailure {
    RpcFailure {
        code,
        message: message.into(),
    }
}

/// Reads a `SendMessage` request: its id, and the case it is about.
pub fn read_request(body: &[u8]) -> (Value, Result<CaseMessage, RpcFailure>) {
    let request: IncomingRequest = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(_) => return (Value::Null, Err(failure(PARSE_ERROR, "the body is not a JSON-RPC request"))),
    };
    let id = request.id.clone().unwrap_or(Value::Null);
    (id, case_message(request))
}

fn case_message(request: IncomingRequest) -> Result<CaseMessage, RpcFailure> {
    if request.jsonrpc != "2.0" {
        return Err(failure(INVALID_REQUEST, "jsonrpc must be \"2.0\""));
    }
    if request.method != SEND_MESSAGE {
        return Err(failure(METHOD_NOT_FOUND, "this agent serves SendMessage only"));
    }
    let params: IncomingParams = request
        .params
        .and_then(|p| serde_json::from_value(p).ok())
        .ok_or_else(|| failure(INVALID_PARAMS, "SendMessage takes {\"message\": {...}}"))?;
    let data = params
        .message
        .parts
        .iter()
        .filter_map(|p| p.data.clone())
        .find_map(|d| serde_json::from_value::<CaseData>(d).ok())
        .ok_or_else(|| failure(INVALID_PARAMS, "the message has no case data part {\"caseId\": ...}"))?;
    Ok(CaseMessage {
        case_id: data.case_id,
        conversation_id: params.message.context_id,
        task_id: params.message.task_id,
        turn_id: data.turn_id,
    })
}

// ---- the reply ---------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RpcReply {
    pub jsonrpc: &'static str,
    pub id: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<SendMessageReply>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<RpcErrorBody>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RpcErrorBody {
    pub code: i64,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SendMessageReply {
    pub task: TaskReply,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskReply {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_id: Option<String>,
    pub status: TaskStatusReply,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<ArtifactReply>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskStatusReply {
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
    /// RFC 3339.
    pub timestamp: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactReply {
    pub artifact_id: String,
    pub name: String,
    pub parts: Vec<Part>,
}

pub fn error_reply(id: Value, error: RpcFailure) -> RpcReply {
    RpcReply {
        jsonrpc: "2.0",
        id,
        result: None,
        error: Some(RpcErrorBody {
            code: error.code,
            message: error.message,
        }),
    }
}

fn text_part(text: &str) -> Part {
    Part {
        text: Some(text.to_string()),
        media_type: Some("text/plain".into()),
        ..Part::default()
    }
}

fn agent_message(text: &str, request: &CaseMessage, task_id: &str) -> Message {
    Message {
        message_id: uuid::Uuid::new_v4().to_string(),
        context_id: request.conversation_id.clone(),
        task_id: Some(task_id.to_string()),
        role: "ROLE_AGENT".into(),
        parts: vec![text_part(text)],
        metadata: None,
        extensions: vec![CASE_EXTENSION.into()],
    }
}

/// The task answering `request` with `answer` (the table above). `NoAction`
/// and `ResolveCase`, which this agent never answers, map as casebridge
/// reads them: a completed task without artifact, and one with `closeCase`.
pub fn task_reply(id: Value, request: &CaseMessage, answer: &AgentResponse, now: chrono::DateTime<chrono::Utc>) -> RpcReply {
    let task_id = request.task_id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let text = answer.message.as_deref().unwrap_or("");
    let mut flags = Map::new();
    if answer.needs_review() {
        flags.insert("needsReview".into(), Value::Bool(true));
    }
    let (state, message, artifacts) = match answer.response_type {
        ResponseType::Question => ("TASK_STATE_INPUT_REQUIRED", Some(agent_message(text, request, &task_id)), vec![]),
        ResponseType::Resolved | ResponseType::ResolveCase => {
            if answer.response_type == ResponseType::ResolveCase {
                flags.insert("closeCase".into(), Value::Bool(true));
            }
            let artifacts = if text.is_empty() {
                vec![]
            } else {
                vec![ArtifactReply {
                    artifact_id: uuid::Uuid::new_v4().to_string(),
                    name: "answer".into(),
                    parts: vec![text_part(text)],
                }]
            };
            ("TASK_STATE_COMPLETED", None, artifacts)
        }
        ResponseType::NoAction => ("TASK_STATE_COMPLETED", None, vec![]),
        ResponseType::UnableToResolve => (
            "TASK_STATE_FAILED",
            (!text.is_empty()).then(|| agent_message(text, request, &task_id)),
            vec![],
        ),
    };
    let metadata = (!flags.is_empty()).then(|| {
        let mut map = Map::new();
        map.insert(CASE_EXTENSION.into(), Value::Object(flags));
        map
    });
    RpcReply {
        jsonrpc: "2.0",
        id,
        result: Some(SendMessageReply {
            task: TaskReply {
                id: task_id,
                context_id: request.conversation_id.clone(),
                status: TaskStatusReply {
                    state,
                    message,
                    timestamp: now.to_rfc3339(),
                },
                artifacts,
                metadata,
            },
        }),
        error: None,
    }
}

/// The agent card (`GET /.well-known/agent-card.json`), naming the JSON-RPC
/// endpoint at `url` and the case extension.
pub fn agent_card(name: &str, url: &str) -> Value {
    json!({
        "name": name,
        "description": "Answers email support cases about refunds: reads the case from casebridge over MCP, looks orders up and refunds small ones.",
        "version": env!("CARGO_PKG_VERSION"),
        "supportedInterfaces": [{"url": url, "protocolBinding": "JSONRPC", "protocolVersion": casebridge::a2a::PROTOCOL_VERSION}],
        "capabilities": {
            "streaming": false,
            "pushNotifications": false,
            "extensions": [{"uri": CASE_EXTENSION, "description": "casebridge case data and answer flags", "required": true}]
        },
        "defaultInputModes": ["text/plain", "application/json"],
        "defaultOutputModes": ["text/plain"],
        "skills": [{"id": "refund", "name": "Refunds", "description": "Refund a delivered order", "tags": ["refund", "support"]}]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use casebridge::a2a::{parse_reply, send_message};
    use casebridge::protocol::AgentRequest;

    fn casebridge_request(task: Option<&str>) -> Vec<u8> {
        let request = AgentRequest {
            case_id: "CB-7K3M9Q2XAB".into(),
            conversation_id: "conv-1".into(),
            turn_id: Some("CB-7K3M9Q2XAB.0000000001".into()),
            intent: Some("refund".into()),
            new_text: vec!["My mug arrived broken.".into()],
            remote_task: task.map(str::to_string),
        };
        serde_json::to_vec(&send_message(&request)).unwrap()
    }

    #[test]
    fn reads_what_casebridge_sends() {
        let (id, message) = read_request(&casebridge_request(Some("task-9")));
        assert_eq!(id, json!("CB-7K3M9Q2XAB.0000000001"));
        assert_eq!(
            message.unwrap(),
            CaseMessage {
                case_id: "CB-7K3M9Q2XAB".into(),
                conversation_id: Some("conv-1".into()),
                task_id: Some("task-9".into()),
                turn_id: Some("CB-7K3M9Q2XAB.0000000001".into()),
            }
        );
    }

    #[test]
    fn refuses_what_is_not_a_case_message() {
        let code = |body: &[u8]| read_request(body).1.unwrap_err().code;
        assert_eq!(code(b"<html>"), PARSE_ERROR);
        assert_eq!(code(br#"{"jsonrpc":"1.0","id":1,"method":"SendMessage"}"#), INVALID_REQUEST);
        assert_eq!(
            code(br#"{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{}}"#),
            METHOD_NOT_FOUND
        );
        assert_eq!(
            code(br#"{"jsonrpc":"2.0","id":1,"method":"SendMessage","params":{}}"#),
            INVALID_PARAMS
        );
        let no_data = json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage",
            "params": {"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "hi"}]}}});
        assert_eq!(code(no_data.to_string().as_bytes()), INVALID_PARAMS);
    }

    /// Every answer, as a task, read back by casebridge's own client is the same answer.
    #[test]
    fn casebridge_reads_each_task_as_the_answer_it_came_from() {
        let body = casebridge_request(Some("task-9"));
        let (id, message) = read_request(&body);
        let message = message.unwrap();
        let answers = [
            json!({"responseType": "Question", "message": "Which order was it?"}),
            json!({"responseType": "Question", "message": "Which order?", "handlingOptions": {"needsReview": true}}),
            json!({"responseType": "Resolved", "message": "We refunded $42.50."}),
            json!({"responseType": "Resolved", "message": "Refunded.", "handlingOptions": {"needsReview": true}}),
            json!({"responseType": "UnableToResolve", "message": "Over the refund limit."}),
            json!({"responseType": "NoAction"}),
            json!({"responseType": "ResolveCase", "message": "Closed."}),
        ];
        for answer in answers {
            let answer = casebridge::protocol::validate_agent_response(&answer).unwrap();
            let reply = task_reply(id.clone(), &message, &answer, chrono::Utc::now());
            let wire = serde_json::to_vec(&reply).unwrap();
            let read = parse_reply(&wire, "CB-7K3M9Q2XAB.0000000001").unwrap();
            assert_eq!(read.answer, answer, "{}", String::from_utf8_lossy(&wire));
            let continued = (answer.response_type == ResponseType::Question).then(|| "task-9".to_string());
            assert_eq!(read.continue_task, continued, "a question continues the task it came with");
        }
    }

    #[test]
    fn a_new_task_gets_an_id_and_the_wire_has_the_protocol_shapes() {
        let mut body: Value = serde_json::from_slice(&casebridge_request(None)).unwrap();
        body["id"] = json!(7);
        let (id, message) = read_request(body.to_string().as_bytes());
        let answer =
            casebridge::protocol::validate_agent_response(&json!({"responseType": "Question", "message": "Which order?"})).unwrap();
        let wire = serde_json::to_value(task_reply(id, &message.unwrap(), &answer, chrono::Utc::now())).unwrap();
        assert_eq!(wire["id"], 7, "the request's id, whatever its type");
        let task = &wire["result"]["task"];
        assert!(!task["id"].as_str().unwrap().is_empty());
        assert_eq!(task["contextId"], "conv-1");
        assert_eq!(task["status"]["state"], "TASK_STATE_INPUT_REQUIRED");
        assert_eq!(task["status"]["message"]["role"], "ROLE_AGENT");
        assert_eq!(task["status"]["message"]["parts"][0]["text"], "Which order?");
        assert_eq!(task["status"]["message"]["taskId"], task["id"]);
        let error = serde_json::to_value(error_reply(json!(1), failure(METHOD_NOT_FOUND, "no"))).unwrap();
        assert_eq!(
            error,
            json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": "no"}})
        );
    }
}
