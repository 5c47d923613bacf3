//! The OpenAI chat completions wire format (`POST {base}/v1/chat/completions`)
//! with tool use, as typed DTOs, and a small client for it. Any
//! OpenAI-compatible endpoint speaks it (OpenAI, Azure OpenAI, vLLM, Ollama,
//! LiteLLM, …), and so does the scripted fake in [`crate::fake_llm`].

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

/// The request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool>,
    /// `"required"`: the model must call a tool (the final answer is a tool too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
    /// Newer OpenAI models' name for `system`; read, never sent.
    Developer,
}

/// One message of the conversation, sent or received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    /// Text; `null` on an assistant message that only calls tools.
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// On a `tool` message: the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    pub fn system(text: impl Into<String>) -> ChatMessage {
        ChatMessage::text(Role::System, text)
    }
    pub fn user(text: impl Into<String>) -> ChatMessage {
        ChatMessage::text(Role::User, text)
    }
    pub fn text(role: Role, text: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role,
            content: Some(text.into()),
            tool_calls: None,
            tool_call_id: None,
        }
    }
    /// The result of a tool call, as the model is shown it.
    pub fn tool_result(call_id: &str, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: Role::Tool,
            content: Some(content.into()),
            tool_calls: None,
            tool_call_id: Some(call_id.to_string()),
        }
    }
    /// An assistant message calling tools.
    pub fn calls(calls: Vec<ToolCall>) -> ChatMessage {
        ChatMessage {
            role: Role::Assistant,
            content: None,
            tool_calls: Some(calls),
            tool_call_id: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    /// Always `"function"`.
    #[serde(rename = "type", default = "function_kind")]
    pub kind: String,
    pub function: FunctionCall,
}

impl ToolCall {
    pub fn new(id: impl Into<String>, name: impl Into<String>, arguments: &Value) -> ToolCall {
        ToolCall {
            id: id.into(),
            kind: function_kind(),
            function: FunctionCall {
                name: name.into(),
                arguments: arguments.to_string(),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    pub name: String,
    /// A JSON object as a string, as the model wrote it: it may not be JSON at all.
    #[serde(default)]
    pub arguments: String,
}

fn function_kind() -> String {
    "function".into()
}

/// A tool declared to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    #[serde(rename = "type")]
    pub kind: String,
    pub function: FunctionDefinition,
}

impl Tool {
    pub fn function(name: &str, description: &str, parameters: Value) -> Tool {
        Tool {
            kind: function_kind(),
            function: FunctionDefinition {
                name: name.into(),
                description: description.into(),
                parameters,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionDefinition {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// JSON Schema of the arguments.
    #[serde(default)]
    pub parameters: Value,
}

/// The response body (the fields this agent reads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub choices: Vec<Choice>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    #[serde(default)]
    pub index: u32,
    pub message: ChatMessage,
    /// `tool_calls`, `stop`, `length`, …
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum LlmError {
    #[error("the model endpoint timed out")]
    Timeout,
    #[error("the model endpoint is unreachable")]
    Unreachable,
    #[error("the model endpoint answered HTTP {0}")]
    Status(u16),
    #[error("the model endpoint's answer is not a chat completion")]
    NotACompletion,
    #[error("the model endpoint answered no choice")]
    NoChoice,
}

impl LlmError {
    /// Worth another attempt later (casebridge retries the turn): the
    /// endpoint was away or overloaded, not wrong.
    pub fn is_transient(&self) -> bool {
        match self {
            LlmError::Timeout | LlmError::Unreachable => true,
            LlmError::Status(status) => *status == 429 || *status >= 500,
            LlmError::NotACompletion | LlmError::NoChoice => false,
        }
    }
}

/// Where and how to call the model.
#[derive(Clone)]
pub struct LlmSettings {
    /// e.g. `https://api.openai.com` (a base ending in `/v1` is accepted too).
    pub base_url: String,
    pub model: String,
    /// Sent as `Authorization: Bearer`; never logged.
    pub api_key: Option<String>,
    pub timeout: Duration,
}

impl std::fmt::Debug for LlmSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmSettings")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| ".."))
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// `{base}/v1/chat/completions`, or `{base}/chat/completions` for a base that names `/v1` already.
pub fn completions_url(base_url: &str) -> String {
    let base = base_url.trim_end_matches('/');
    if base.ends_with("/v1") {
        format!("{base}/chat/completions")
    } else {
        format!("{base}/v1/chat/completions")
    }
}

/// Largest completion read (a chat completion is a few KiB).
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

pub struct LlmClient {
    http: reqwest::Client,
    url: String,
    settings: LlmSettings,
}

impl LlmClient {
    pub fn new(settings: LlmSettings) -> Result<LlmClient, reqwest::Error> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .build()?;
        Ok(LlmClient {
            http,
            url: completions_url(&settings.base_url),
            settings,
        })
    }

    pub fn model(&self) -> &str {
        &self.settings.model
    }

    /// One completion: the first choice's message.
    pub async fn complete(&self, request: &ChatRequest) -> Result<ChatMessage, LlmError> {
        let mut call = self.http.post(&self.url).json(request);
        if let Some(key) = &self.settings.api_key {
            call = call.bearer_auth(key);
        }
        let fail = |e: reqwest::Error| if e.is_timeout() { LlmError::Timeout } else { LlmError::Unreachable };
        let response = call.send().await.map_err(fail)?;
        let status = response.status();
        if !status.is_success() {
            return Err(LlmError::Status(status.as_u16()));
        }
        if response.content_length().is_some_and(|n| n > MAX_RESPONSE_BYTES as u64) {
            return Err(LlmError::NotACompletion);
        }
        let body = response.bytes().await.map_err(fail)?;
        if body.len() > MAX_RESPONSE_BYTES {
            return Err(LlmError::NotACompletion);
        }
        let completion: ChatResponse = serde_json::from_slice(&body).map_err(|_| LlmError::NotACompletion)?;
        completion.choices.into_iter().next().map(|c| c.message).ok_or(LlmError::NoChoice)
    }
}

/// The model a turn asks: an OpenAI-compatible endpoint, or Amazon Bedrock.
pub enum Model {
    OpenAi(LlmClient),
    Bedrock(crate::bedrock::BedrockSettings),
}

impl Model {
    /// The model's name, as sent in the request.
    pub fn name(&self) -> &str {
        match self {
            Model::OpenAi(client) => client.model(),
            Model::Bedrock(settings) => &settings.model_id,
        }
    }

    pub async fn complete(&self, request: &ChatRequest) -> Result<ChatMessage, LlmError> {
        match self {
            Model::OpenAi(client) => client.complete(request).await,
            Model::Bedrock(settings) => crate::bedrock::complete(settings, request).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_request_is_the_openai_wire_format() {
        let request = ChatRequest {
            model: "gpt-4o-mini".into(),
            messages: vec![
                ChatMessage::system("You are a support agent."),
                ChatMessage::user("Refund order 1234"),
                ChatMessage::calls(vec![ToolCall::new("call_1", "lookup_order", &json!({"order_id": "1234"}))]),
                ChatMessage::tool_result("call_1", "{\"found\":true}"),
            ],
            tools: vec![Tool::function("lookup_order", "Look up", json!({"type": "object"}))],
            tool_choice: Some("required".into()),
            temperature: Some(0.0),
        };
        let wire = serde_json::to_value(&request).unwrap();
        assert_eq!(
            wire,
            json!({
                "model": "gpt-4o-mini",
                "messages": [
                    {"role": "system", "content": "You are a support agent."},
                    {"role": "user", "content": "Refund order 1234"},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "lookup_order", "arguments": "{\"order_id\":\"1234\"}"}}
                    ]},
                    {"role": "tool", "content": "{\"found\":true}", "tool_call_id": "call_1"}
                ],
                "tools": [{"type": "function", "function": {"name": "lookup_order", "description": "Look up", "parameters": {"type": "object"}}}],
                "tool_choice": "required",
                "temperature": 0.0
            })
        );
        let back: ChatRequest = serde_json::from_value(wire).unwrap();
        assert_eq!(back, request);
    }

    #[test]
    fn a_response_from_openai_is_read() {
        // As OpenAI answers it, with fields this agent does not read.
        let body = json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1795497600, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "logprobs": null, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": null, "refusal": null,
                "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "answer_customer", "arguments": "{\"kind\":\"Resolved\"}"}}]
            }}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        });
        let response: ChatResponse = serde_json::from_value(body).unwrap();
        let message = &response.choices[0].message;
        assert_eq!(message.role, Role::Assistant);
        assert_eq!(message.content, None);
        let call = &message.tool_calls.as_ref().unwrap()[0];
        assert_eq!(call.function.name, "answer_customer");
        assert_eq!(call.function.arguments, "{\"kind\":\"Resolved\"}");
        assert_eq!(response.choices[0].finish_reason.as_deref(), Some("tool_calls"));
        // A plain text answer has no tool calls.
        let text: ChatResponse =
            serde_json::from_value(json!({"choices": [{"message": {"role": "assistant", "content": "Hello"}}]})).unwrap();
        assert_eq!(text.choices[0].message.tool_calls, None);
    }

    #[test]
    fn the_url_takes_a_base_with_or_without_v1() {
        assert_eq!(
            completions_url("https://api.openai.com"),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(
            completions_url("https://api.openai.com/v1/"),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(completions_url("http://127.0.0.1:9/"), "http://127.0.0.1:9/v1/chat/completions");
    }

    #[test]
    fn the_api_key_is_not_in_debug_output() {
        let settings = LlmSettings {
            base_url: "https://api.openai.com".into(),
            model: "m".into(),
            api_key: Some("sk-secret-value".into()),
            timeout: Duration::from_secs(1),
        };
        assert!(!format!("{settings:?}").contains("sk-secret-value"));
    }

    #[test]
    fn transient_failures_are_told_apart() {
        assert!(LlmError::Status(503).is_transient());
        assert!(LlmError::Status(429).is_transient());
        assert!(LlmError::Timeout.is_transient());
        assert!(!LlmError::Status(400).is_transient());
        assert!(!LlmError::NotACompletion.is_transient());
    }
}
