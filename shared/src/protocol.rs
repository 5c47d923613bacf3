//! The agent wire contract (SPEC §1): what casebridge POSTs to a custom agent
//! and the answer it accepts back. Parsing is strict: an answer that would
//! make casebridge write a blank or unbounded mail is refused with a typed error.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Largest `message` accepted from an agent, in bytes. Longer text is an agent
/// error rather than something silently truncated in front of a customer.
pub const MAX_AGENT_MESSAGE_BYTES: usize = 64 * 1024;

/// Largest agent response body read at all.
pub const MAX_AGENT_RESPONSE_BYTES: usize = 256 * 1024;

/// Body of the POST to an agent. Agents must ignore fields they do not know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentRequest {
    pub case_id: String,
    pub conversation_id: String,
    /// Identifies this turn; the same value is sent as the `Idempotency-Key` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_id: Option<String>,
    /// The intent the case was routed by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
    /// What the customer wrote in the turn's mails (new text only). Not in
    /// casebridge's own request body — its agents read the context route —
    /// but an A2A agent gets it as the message's text part.
    #[serde(skip)]
    pub new_text: Vec<String>,
    /// The A2A task the turn continues (the agent's last answer asked the
    /// customer a question); never on casebridge's own wire.
    #[serde(skip)]
    pub remote_task: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ResponseType {
    Question,
    Resolved,
    UnableToResolve,
    NoAction,
    ResolveCase,
}

impl ResponseType {
    pub const ALL: [ResponseType; 5] = [
        ResponseType::Question,
        ResponseType::Resolved,
        ResponseType::UnableToResolve,
        ResponseType::NoAction,
        ResponseType::ResolveCase,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ResponseType::Question => "Question",
            ResponseType::Resolved => "Resolved",
            ResponseType::UnableToResolve => "UnableToResolve",
            ResponseType::NoAction => "NoAction",
            ResponseType::ResolveCase => "ResolveCase",
        }
    }

    /// Answers that are carried out by writing a mail to the customer.
    pub fn writes_mail(self) -> bool {
        matches!(self, ResponseType::Question | ResponseType::Resolved)
    }
}

impl std::fmt::Display for ResponseType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HandlingOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needs_review: Option<bool>,
}

/// A validated agent answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentResponse {
    pub response_type: ResponseType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handling_options: Option<HandlingOptions>,
}

impl AgentResponse {
    /// `needsReview` only means something for answers that write mail (SPEC §1).
    pub fn needs_review(&self) -> bool {
        self.response_type.writes_mail() && self.handling_options.as_ref().and_then(|o| o.needs_review).unwrap_or(false)
    }
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AgentResponseError {
    #[error("agent answer is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("agent answer is not a JSON object")]
    NotAnObject,
    #[error("agent answer has no responseType")]
    MissingResponseType,
    #[error("agent answer has unknown responseType {0:?}")]
    UnknownResponseType(String),
    #[error("agent answer field {field} has the wrong JSON type (expected {expected})")]
    WrongType { field: &'static str, expected: &'static str },
    #[error("agent answered {0} without a message; casebridge never sends a blank mail")]
    MissingMessage(ResponseType),
    #[error("agent message is {size} bytes, over the limit of {limit}")]
    MessageTooLarge { size: usize, limit: usize },
    #[error("agent answer body is {size} bytes, over the limit of {limit}")]
    BodyTooLarge { size: usize, limit: usize },
}

/// Parses and validates an agent's answer body.
pub fn parse_agent_response(body: &[u8]) -> Result<AgentResponse, AgentResponseError> {
    if body.len() > MAX_AGENT_RESPONSE_BYTES {
        return Err(AgentResponseError::BodyTooLarge {
            size: body.len(),
            limit: MAX_AGENT_RESPONSE_BYTES,
        });
    }
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| AgentResponseError::InvalidJson(e.to_string()))?;
    validate_agent_response(&value)
}

/// Validates an already-decoded JSON value field by field, so each fault gets
/// its own error instead of serde's generic message.
pub fn validate_agent_response(value: &serde_json::Value) -> Result<AgentResponse, AgentResponseError> {
    let object = value.as_object().ok_or(AgentResponseError::NotAnObject)?;
    let response_type = match object.get("responseType") {
        None | Some(serde_json::Value::Null) => return Err(AgentResponseError::MissingResponseType),
        Some(serde_json::Value::String(s)) => ResponseType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| AgentResponseError::UnknownResponseType(s.clone()))?,
        Some(_) => {
            return Err(AgentResponseError::WrongType {
                field: "responseType",
                expected: "string",
            })
        }
    };
    let message = match object.get("message") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(AgentResponseError::WrongType {
                field: "message",
                expected: "string",
            })
        }
    };
    let handling_options = match object.get("handlingOptions") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Object(options)) => {
            let needs_review = match options.get("needsReview") {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::Bool(b)) => Some(*b),
                Some(_) => {
                    return Err(AgentResponseError::WrongType {
                        field: "handlingOptions.needsReview",
                        expected: "boolean",
                    })
                }
            };
            Some(HandlingOptions { needs_review })
        }
        Some(_) => {
            return Err(AgentResponseError::WrongType {
                field: "handlingOptions",
                expected: "object",
            })
        }
    };
    if let Some(text) = &message {
        if text.len() > MAX_AGENT_MESSAGE_BYTES {
            return Err(AgentResponseError::MessageTooLarge {
                size: text.len(),
                limit: MAX_AGENT_MESSAGE_BYTES,
            });
        }
    }
    let has_text = message.as_deref().is_some_and(|m| !m.trim().is_empty());
    if response_type.writes_mail() && !has_text {
        return Err(AgentResponseError::MissingMessage(response_type));
    }
    Ok(AgentResponse {
        response_type,
        message,
        handling_options,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_each_type_and_reads_needs_review() {
        let r = parse_agent_response(br#"{"responseType":"Question","message":"Which order?","handlingOptions":{"needsReview":true}}"#)
            .unwrap();
        assert_eq!(r.response_type, ResponseType::Question);
        assert!(r.needs_review());
        let r = parse_agent_response(br#"{"responseType":"NoAction","handlingOptions":{"needsReview":true}}"#).unwrap();
        assert!(!r.needs_review(), "needsReview means nothing for NoAction");
    }

    #[test]
    fn rejects_each_fault_with_its_own_error() {
        use AgentResponseError::*;
        type Check = fn(&AgentResponseError) -> bool;
        let cases: &[(&[u8], Check)] = &[
            (b"not json", |e| matches!(e, InvalidJson(_))),
            (b"[1]", |e| matches!(e, NotAnObject)),
            (b"{}", |e| matches!(e, MissingResponseType)),
            (
                br#"{"responseType":"Maybe"}"#,
                |e| matches!(e, UnknownResponseType(t) if t == "Maybe"),
            ),
            (br#"{"responseType":3}"#, |e| matches!(e, WrongType { field: "responseType", .. })),
            (br#"{"responseType":"Resolved","message":5}"#, |e| {
                matches!(e, WrongType { field: "message", .. })
            }),
            (br#"{"responseType":"Question"}"#, |e| {
                matches!(e, MissingMessage(ResponseType::Question))
            }),
            (br#"{"responseType":"Resolved","message":"   "}"#, |e| {
                matches!(e, MissingMessage(ResponseType::Resolved))
            }),
            (
                br#"{"responseType":"Resolved","message":"x","handlingOptions":{"needsReview":"yes"}}"#,
                |e| {
                    matches!(
                        e,
                        WrongType {
                            field: "handlingOptions.needsReview",
                            ..
                        }
                    )
                },
            ),
            (br#"{"responseType":"Resolved","message":"x","handlingOptions":true}"#, |e| {
                matches!(
                    e,
                    WrongType {
                        field: "handlingOptions",
                        ..
                    }
                )
            }),
        ];
        for (body, check) in cases {
            let err = parse_agent_response(body).unwrap_err();
            assert!(check(&err), "{} gave {err:?}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn rejects_oversize_message() {
        let body = serde_json::json!({"responseType":"Resolved","message":"a".repeat(MAX_AGENT_MESSAGE_BYTES + 1)});
        let err = parse_agent_response(body.to_string().as_bytes()).unwrap_err();
        assert!(matches!(err, AgentResponseError::MessageTooLarge { .. }));
    }
}
