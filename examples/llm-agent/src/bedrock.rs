//! Amazon Bedrock (Converse API) as the model, the alternative to an
//! OpenAI-compatible endpoint (`LLM_PROVIDER=bedrock`). The turn loop keeps
//! its conversation in the chat completions shapes ([`crate::llm`]); this
//! module translates it to Converse and back:
//!
//! | chat completions | Converse |
//! |---|---|
//! | `system` message | `system` text block |
//! | `user` message | `user` message, text block |
//! | `assistant` message with `tool_calls` | `assistant` message, `toolUse` blocks (input: the arguments as JSON) |
//! | `tool` messages | one `user` message, `toolResult` blocks (JSON content, or text when not JSON) |
//! | `tools`, `tool_choice: "required"` | `toolConfig` with `toolSpec`s, `toolChoice: any` |
//!
//! Arguments the model wrote that are not JSON cannot be a `toolUse` input;
//! they are sent as a JSON string, and the model sees the tool's error.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_bedrockruntime::types::{
    AnyToolChoice, ContentBlock, ConversationRole, ConverseOutput, InferenceConfiguration, Message, SystemContentBlock,
    Tool as BedrockTool, ToolChoice, ToolConfiguration, ToolInputSchema, ToolResultBlock, ToolResultContentBlock, ToolSpecification,
    ToolUseBlock,
};
use aws_smithy_types::{Document, Number};
use serde_json::Value;

use crate::llm::{ChatMessage, ChatRequest, LlmError, Role, ToolCall};

/// Where and how to call Bedrock.
#[derive(Clone, Debug)]
pub struct BedrockSettings {
    /// From the SDK's default configuration (role or profile credentials, region).
    pub client: aws_sdk_bedrockruntime::Client,
    /// e.g. `anthropic.claude-3-5-haiku-20241022-v1:0` or an inference profile.
    pub model_id: String,
    pub max_tokens: u32,
    /// Per completion, over the SDK's own retries.
    pub timeout: Duration,
}

pub fn to_document(value: &Value) -> Document {
    match value {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => Document::Number(if let Some(u) = n.as_u64() {
            Number::PosInt(u)
        } else if let Some(i) = n.as_i64() {
            Number::NegInt(i)
        } else {
            Number::Float(n.as_f64().unwrap_or(0.0))
        }),
        Value::String(s) => Document::String(s.clone()),
        Value::Array(items) => Document::Array(items.iter().map(to_document).collect()),
        Value::Object(map) => Document::Object(map.iter().map(|(k, v)| (k.clone(), to_document(v))).collect::<HashMap<_, _>>()),
    }
}

pub fn to_json(document: &Document) -> Value {
    match document {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::Number(Number::PosInt(u)) => Value::from(*u),
        Document::Number(Number::NegInt(i)) => Value::from(*i),
        Document::Number(Number::Float(f)) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Document::String(s) => Value::String(s.clone()),
        Document::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        Document::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
    }
}

/// The Converse request's parts: system blocks, messages and the tool configuration.
pub struct ConverseParts {
    pub system: Vec<SystemContentBlock>,
    pub messages: Vec<Message>,
    pub tools: Option<ToolConfiguration>,
}

fn build_error(e: impl std::fmt::Display) -> LlmError {
    tracing::debug!(error = %e, "a Converse request could not be built");
    LlmError::NotACompletion
}

/// Translates the conversation (the table above).
pub fn to_converse(request: &ChatRequest) -> Result<ConverseParts, LlmError> {
    let mut system = Vec::new();
    let mut messages: Vec<Message> = Vec::new();
    // Tool results waiting to go out as one user message.
    let mut results: Vec<ContentBlock> = Vec::new();
    let flush = |results: &mut Vec<ContentBlock>, messages: &mut Vec<Message>| -> Result<(), LlmError> {
        if !results.is_empty() {
            let message = Message::builder()
                .role(ConversationRole::User)
                .set_content(Some(std::mem::take(results)))
                .build()
                .map_err(build_error)?;
            messages.push(message);
        }
        Ok(())
    };
    for message in &request.messages {
        let text = message.content.clone().unwrap_or_default();
        match message.role {
            Role::System | Role::Developer => system.push(SystemContentBlock::Text(text)),
            Role::Tool => {
                let content = match serde_json::from_str::<Value>(&text) {
                    Ok(value @ Value::Object(_)) => ToolResultContentBlock::Json(to_document(&value)),
                    _ => ToolResultContentBlock::Text(text),
                };
                let block = ToolResultBlock::builder()
                    .tool_use_id(message.tool_call_id.clone().unwrap_or_default())
                    .content(content)
                    .build()
                    .map_err(build_error)?;
                results.push(ContentBlock::ToolResult(block));
            }
            Role::User => {
                flush(&mut results, &mut messages)?;
                messages.push(
                    Message::builder()
                        .role(ConversationRole::User)
                        .content(ContentBlock::Text(text))
                        .build()
                        .map_err(build_error)?,
                );
            }
            Role::Assistant => {
                flush(&mut results, &mut messages)?;
                let mut blocks = Vec::new();
                if !text.trim().is_empty() {
                    blocks.push(ContentBlock::Text(text));
                }
                for call in message.tool_calls.iter().flatten() {
                    let input = serde_json::from_str::<Value>(&call.function.arguments)
                        .unwrap_or_else(|_| Value::String(call.function.arguments.clone()));
                    let block = ToolUseBlock::builder()
                        .tool_use_id(&call.id)
                        .name(&call.function.name)
                        .input(to_document(&input))
                        .build()
                        .map_err(build_error)?;
                    blocks.push(ContentBlock::ToolUse(block));
                }
                if !blocks.is_empty() {
                    messages.push(
                        Message::builder()
                            .role(ConversationRole::Assistant)
                            .set_content(Some(blocks))
                            .build()
                            .map_err(build_error)?,
                    );
                }
            }
        }
    }
    flush(&mut results, &mut messages)?;
    let tools = if request.tools.is_empty() {
        None
    } else {
        let mut config = ToolConfiguration::builder();
        for tool in &request.tools {
            let spec = ToolSpecification::builder()
                .name(&tool.function.name)
                .description(&tool.function.description)
                .input_schema(ToolInputSchema::Json(to_document(&tool.function.parameters)))
                .build()
                .map_err(build_error)?;
            config = config.tools(BedrockTool::ToolSpec(spec));
        }
        if request.tool_choice.as_deref() == Some("required") {
            config = config.tool_choice(ToolChoice::Any(AnyToolChoice::builder().build()));
        }
        Some(config.build().map_err(build_error)?)
    };
    Ok(ConverseParts { system, messages, tools })
}

/// The model's Converse message as a chat completions assistant message.
pub fn from_converse(output: Option<&ConverseOutput>) -> Result<ChatMessage, LlmError> {
    let Some(ConverseOutput::Message(message)) = output else {
        return Err(LlmError::NoChoice);
    };
    let mut text = Vec::new();
    let mut calls = Vec::new();
    for block in message.content() {
        match block {
            ContentBlock::Text(t) => text.push(t.clone()),
            ContentBlock::ToolUse(tool) => calls.push(ToolCall::new(tool.tool_use_id(), tool.name(), &to_json(tool.input()))),
            _ => {}
        }
    }
    let text = text.join("\n");
    Ok(ChatMessage {
        role: Role::Assistant,
        content: (!text.is_empty()).then_some(text),
        tool_calls: (!calls.is_empty()).then_some(calls),
        tool_call_id: None,
    })
}

/// One Converse call.
pub async fn complete(settings: &BedrockSettings, request: &ChatRequest) -> Result<ChatMessage, LlmError> {
    use aws_sdk_bedrockruntime::error::SdkError;
    let parts = to_converse(request)?;
    let inference = InferenceConfiguration::builder()
        .max_tokens(i32::try_from(settings.max_tokens).unwrap_or(i32::MAX))
        .set_temperature(request.temperature)
        .build();
    let call = settings
        .client
        .converse()
        .model_id(&settings.model_id)
        .set_system(Some(parts.system))
        .set_messages(Some(parts.messages))
        .set_tool_config(parts.tools)
        .inference_config(inference)
        .send();
    let output = match tokio::time::timeout(settings.timeout, call).await {
        Err(_) => return Err(LlmError::Timeout),
        Ok(Ok(output)) => output,
        // The status only: an error body may echo the conversation.
        Ok(Err(error)) => {
            return Err(match &error {
                SdkError::ServiceError(_) => error
                    .raw_response()
                    .map_or(LlmError::Status(500), |r| LlmError::Status(r.status().as_u16())),
                SdkError::TimeoutError(_) => LlmError::Timeout,
                SdkError::DispatchFailure(_) => LlmError::Unreachable,
                _ => LlmError::NotACompletion,
            })
        }
    };
    from_converse(output.output())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::Tool;
    use serde_json::json;

    #[test]
    fn json_and_documents_round_trip() {
        let value = json!({"a": [1, -2, 2.5, "x", true, null], "b": {"c": "d"}});
        assert_eq!(to_json(&to_document(&value)), value);
    }

    #[test]
    fn the_conversation_becomes_converse_messages() {
        let request = ChatRequest {
            model: "m".into(),
            messages: vec![
                ChatMessage::system("be brief"),
                ChatMessage::user("refund order 1234"),
                ChatMessage::calls(vec![
                    ToolCall::new("t1", "lookup_order", &json!({"order_id": "1234"})),
                    ToolCall::new("t2", "issue_refund", &json!({"order_id": "1234"})),
                ]),
                ChatMessage::tool_result("t1", "{\"found\":true}"),
                ChatMessage::tool_result("t2", "not json"),
            ],
            tools: vec![Tool::function("lookup_order", "Look up", json!({"type": "object"}))],
            tool_choice: Some("required".into()),
            temperature: Some(0.0),
        };
        let parts = to_converse(&request).unwrap();
        assert_eq!(parts.system, vec![SystemContentBlock::Text("be brief".into())]);
        assert_eq!(parts.messages.len(), 3, "user, assistant, one user message with both results");
        assert_eq!(parts.messages[1].role(), &ConversationRole::Assistant);
        let ContentBlock::ToolUse(used) = &parts.messages[1].content()[0] else {
            panic!("a toolUse block")
        };
        assert_eq!(used.name(), "lookup_order");
        assert_eq!(to_json(used.input()), json!({"order_id": "1234"}));
        let results = parts.messages[2].content();
        assert_eq!(results.len(), 2);
        let ContentBlock::ToolResult(first) = &results[0] else {
            panic!("a toolResult block")
        };
        assert_eq!(first.tool_use_id(), "t1");
        assert!(matches!(first.content()[0], ToolResultContentBlock::Json(_)));
        let ContentBlock::ToolResult(second) = &results[1] else {
            panic!("a toolResult block")
        };
        assert_eq!(second.content()[0], ToolResultContentBlock::Text("not json".into()));
        let tools = parts.tools.unwrap();
        assert_eq!(tools.tools().len(), 1);
        assert!(matches!(tools.tool_choice(), Some(ToolChoice::Any(_))));
    }

    #[test]
    fn the_models_tool_use_becomes_tool_calls() {
        let message = Message::builder()
            .role(ConversationRole::Assistant)
            .content(ContentBlock::Text("Let me check.".into()))
            .content(ContentBlock::ToolUse(
                ToolUseBlock::builder()
                    .tool_use_id("tooluse_1")
                    .name("answer_customer")
                    .input(to_document(&json!({"kind": "Resolved", "message": "Done."})))
                    .build()
                    .unwrap(),
            ))
            .build()
            .unwrap();
        let reply = from_converse(Some(&ConverseOutput::Message(message))).unwrap();
        assert_eq!(reply.content.as_deref(), Some("Let me check."));
        let call = &reply.tool_calls.unwrap()[0];
        assert_eq!(call.id, "tooluse_1");
        let arguments: Value = serde_json::from_str(&call.function.arguments).unwrap();
        assert_eq!(arguments, json!({"kind": "Resolved", "message": "Done."}));
        assert_eq!(from_converse(None), Err(LlmError::NoChoice));
    }

    /// A fake Bedrock Runtime on loopback: `POST /model/{id}/converse`
    /// answers a lookup_order tool use, then answer_customer; the bodies
    /// it received are kept.
    async fn fake_converse() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
        let seen: std::sync::Arc<std::sync::Mutex<Vec<Value>>> = Default::default();
        let log = seen.clone();
        let app = axum::Router::new().route(
            "/model/{model}/converse",
            axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                let log = log.clone();
                async move {
                    let mut log = log.lock().unwrap();
                    log.push(body);
                    let tool = if log.len() == 1 {
                        json!({"toolUseId": "tu1", "name": "lookup_order", "input": {"order_id": "1234"}})
                    } else {
                        json!({"toolUseId": "tu2", "name": "answer_customer", "input": {"kind": "Resolved", "message": "Refunded $42.50."}})
                    };
                    axum::Json(json!({
                        "output": {"message": {"role": "assistant", "content": [{"toolUse": tool}]}},
                        "stopReason": "tool_use",
                        "usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15},
                        "metrics": {"latencyMs": 3}
                    }))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (format!("http://{addr}"), seen)
    }

    #[tokio::test]
    async fn a_turn_runs_against_converse() {
        use aws_sdk_bedrockruntime::config::{BehaviorVersion, Credentials, Region};
        let (url, seen) = fake_converse().await;
        let config = aws_sdk_bedrockruntime::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-central-1"))
            .endpoint_url(url)
            .credentials_provider(Credentials::new("AKIDTEST", "test-secret", None, None, "test"))
            .build();
        let model = crate::llm::Model::Bedrock(BedrockSettings {
            client: aws_sdk_bedrockruntime::Client::from_conf(config),
            model_id: "test-model".into(),
            max_tokens: 512,
            timeout: Duration::from_secs(5),
        });
        let file = crate::mcp::CaseFile {
            case: crate::mcp::CaseInfo {
                case_id: "CB-1".into(),
                conversation_id: "c".into(),
                status: "agent_working".into(),
                customer: crate::mcp::Customer {
                    email: "ann@customer.example".into(),
                    name: None,
                },
                subject: "Refund".into(),
                intent: Some("refund".into()),
            },
            thread: vec![],
            turns: vec![],
        };
        let orders = crate::orders::OrderService::default();
        let outcome = crate::turn::run(&model, &orders, &file, 4).await.unwrap();
        assert_eq!(outcome.answer.response_type, casebridge::protocol::ResponseType::Resolved);
        assert_eq!(outcome.tools_called, ["lookup_order"]);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0]["toolConfig"]["tools"].as_array().unwrap().len(), 3);
        assert!(seen[0]["toolConfig"]["toolChoice"]["any"].is_object(), "{}", seen[0]);
        assert!(seen[0]["system"][0]["text"].as_str().unwrap().contains("answer_customer"));
        let result = &seen[1]["messages"][2]["content"][0]["toolResult"];
        assert_eq!(result["toolUseId"], "tu1");
        assert_eq!(result["content"][0]["json"]["orderId"], "1234");
    }
}
