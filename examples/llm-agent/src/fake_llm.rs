//! A scripted fake of an OpenAI-compatible endpoint on loopback, so the
//! agent runs offline: `POST /v1/chat/completions` in the real wire format,
//! answered from a script rather than a model. It keeps every request it
//! received, so tests can see what the agent sent.
//!
//! [`Script::Refund`] plays the refund scenario:
//! 1. no order number in the customer's mails → `answer_customer` Question
//!    asking for it;
//! 2. an order number → a `lookup_order` tool call;
//! 3. the order is refundable → an `issue_refund` tool call; not found →
//!    Question; otherwise → UnableToResolve;
//! 4. refunded → `answer_customer` Resolved naming the amount.
//!
//! [`Script::NoToolCall`] answers plain text, and [`Script::BadAnswer`]
//! calls `answer_customer` with arguments that are not JSON: what a
//! misbehaving model does.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::llm::{ChatMessage, ChatRequest, ChatResponse, Choice, Role, ToolCall};
use crate::orders::{ISSUE_REFUND, LOOKUP_ORDER};
use crate::turn::ANSWER_CUSTOMER;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    Refund,
    NoToolCall,
    BadAnswer,
}

struct FakeState {
    script: Script,
    received: Mutex<Vec<ChatRequest>>,
    authorizations: Mutex<Vec<Option<String>>>,
}

/// The fake on its port.
#[derive(Clone)]
pub struct FakeLlm {
    /// The base URL to configure the agent with.
    pub base_url: String,
    state: Arc<FakeState>,
}

impl FakeLlm {
    /// The requests received so far, in order.
    pub fn received(&self) -> Vec<ChatRequest> {
        self.state.received.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The `Authorization` header of each request, in order (for tests: the
    /// fake checks no key).
    pub fn authorizations(&self) -> Vec<Option<String>> {
        self.state.authorizations.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// Starts the fake on `addr` (port 0 picks one).
pub async fn spawn(addr: SocketAddr, script: Script) -> std::io::Result<FakeLlm> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let state = Arc::new(FakeState {
        script,
        received: Mutex::new(Vec::new()),
        authorizations: Mutex::new(Vec::new()),
    });
    let app = Router::new()
        .route("/v1/chat/completions", post(complete))
        .with_state(state.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "fake LLM stopped");
        }
    });
    Ok(FakeLlm {
        base_url: format!("http://{bound}"),
        state,
    })
}

async fn complete(
    State(state): State<Arc<FakeState>>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<ChatResponse>, (StatusCode, Json<Value>)> {
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
    if let Ok(mut seen) = state.authorizations.lock() {
        seen.push(authorization);
    }
    let request: ChatRequest = serde_json::from_slice(&body).map_err(|_| {
        (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": {"message": "not a chat completions request", "type": "invalid_request_error"}})),
        )
    })?;
    if let Ok(mut received) = state.received.lock() {
        received.push(request.clone());
    }
    let message = reply(state.script, &request);
    Ok(Json(ChatResponse {
        id: Some(format!("chatcmpl-{}", uuid::Uuid::new_v4().simple())),
        object: Some("chat.completion".into()),
        model: Some(request.model.clone()),
        choices: vec![Choice {
            index: 0,
            finish_reason: Some(if message.tool_calls.is_some() { "tool_calls" } else { "stop" }.into()),
            message,
        }],
    }))
}

/// The script's next message for this conversation.
pub fn reply(script: Script, request: &ChatRequest) -> ChatMessage {
    match script {
        Script::NoToolCall => ChatMessage::text(Role::Assistant, "Sure, I think a refund is fine."),
        Script::BadAnswer => ChatMessage::calls(vec![ToolCall {
            id: call_id(request),
            kind: "function".into(),
            function: crate::llm::FunctionCall {
                name: ANSWER_CUSTOMER.into(),
                arguments: "{kind: Resolved, message: 'Refunded'".into(),
            },
        }]),
        Script::Refund => refund_step(request),
    }
}

fn call_id(request: &ChatRequest) -> String {
    format!("call_{}", request.messages.len())
}

fn answer(request: &ChatRequest, kind: &str, message: &str) -> ChatMessage {
    ChatMessage::calls(vec![ToolCall::new(
        call_id(request),
        ANSWER_CUSTOMER,
        &json!({"kind": kind, "message": message}),
    )])
}

/// The last tool result, with the name of the tool it answers.
fn last_tool_result(request: &ChatRequest) -> Option<(String, Value)> {
    let result = request.messages.iter().rev().find(|m| m.role == Role::Tool)?;
    let id = result.tool_call_id.as_deref()?;
    let name = request
        .messages
        .iter()
        .filter_map(|m| m.tool_calls.as_ref())
        .flatten()
        .find(|c| c.id == id)
        .map(|c| c.function.name.clone())?;
    let value = serde_json::from_str(result.content.as_deref().unwrap_or("null")).unwrap_or(Value::Null);
    Some((name, value))
}

fn refund_step(request: &ChatRequest) -> ChatMessage {
    match last_tool_result(request) {
        None => {
            let customer_text: Vec<&str> = request
                .messages
                .iter()
                .filter(|m| m.role == Role::User)
                .filter_map(|m| m.content.as_deref())
                .collect();
            match customer_text.iter().rev().find_map(|t| find_order_number(&customer_lines(t))) {
                Some(order_id) => ChatMessage::calls(vec![ToolCall::new(call_id(request), LOOKUP_ORDER, &json!({"order_id": order_id}))]),
                None => answer(
                    request,
                    "Question",
                    "Sorry to hear that. Could you tell us the order number, so we can look into the refund?",
                ),
            }
        }
        Some((name, result)) if name == LOOKUP_ORDER => {
            let order = result["orderId"].as_str().unwrap_or("?");
            if result["found"] != json!(true) {
                answer(
                    request,
                    "Question",
                    &format!("We could not find an order {order}. Could you check the order number?"),
                )
            } else if result["refunded"] == json!(true) {
                answer(
                    request,
                    "Resolved",
                    &format!("Order {order} has already been refunded; the money should be back within 5 business days."),
                )
            } else if result["refundable"] == json!(true) {
                ChatMessage::calls(vec![ToolCall::new(call_id(request), ISSUE_REFUND, &json!({"order_id": order}))])
            } else {
                answer(
                    request,
                    "UnableToResolve",
                    &format!(
                        "Order {order} ({}, {}) cannot be refunded by the agent; a representative must decide.",
                        result["status"].as_str().unwrap_or("?"),
                        result["amount"].as_str().unwrap_or("?")
                    ),
                )
            }
        }
        Some((name, result)) if name == ISSUE_REFUND => {
            if result["refunded"] == json!(true) {
                answer(
                    request,
                    "Resolved",
                    &format!(
                        "We have refunded {} for order {} to your original payment method. It usually shows up within 5 business days.",
                        result["amount"].as_str().unwrap_or("the amount"),
                        result["orderId"].as_str().unwrap_or("?"),
                    ),
                )
            } else {
                answer(
                    request,
                    "UnableToResolve",
                    &format!("The refund failed: {}", result["reason"].as_str().unwrap_or("no reason given")),
                )
            }
        }
        Some(_) => answer(request, "UnableToResolve", "The script does not know this tool."),
    }
}

/// The customer's lines of the case message (the agent marks each mail
/// `--- From the customer …` or `--- Sent by us …`); the whole text when it
/// has no such marks.
fn customer_lines(text: &str) -> String {
    if !text.contains("--- From the customer") {
        return text.to_string();
    }
    let mut from_customer = false;
    let mut lines = Vec::new();
    for line in text.lines() {
        if line.starts_with("--- ") {
            from_customer = line.starts_with("--- From the customer");
        } else if from_customer {
            lines.push(line);
        }
    }
    lines.join("\n")
}

/// The last order number in the text: digits after "order", "order no.",
/// "order number" or "#" (at least 3 digits).
pub fn find_order_number(text: &str) -> Option<String> {
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric() && c != '#').to_ascii_lowercase())
        .collect();
    let digits = |w: &str| -> Option<String> {
        let w = w.trim_start_matches('#');
        (w.len() >= 3 && w.chars().all(|c| c.is_ascii_digit())).then(|| w.to_string())
    };
    let mut found = None;
    for (i, word) in words.iter().enumerate() {
        if word.starts_with('#') {
            if let Some(n) = digits(word) {
                found = Some(n);
                continue;
            }
        }
        if word == "order" {
            let mut j = i + 1;
            while j < words.len() && ["no", "number", "nr", "is", "was"].contains(&words[j].as_str()) {
                j += 1;
            }
            if let Some(n) = words.get(j).and_then(|w| digits(w)) {
                found = Some(n);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orders::OrderService;

    #[test]
    fn finds_order_numbers_as_customers_write_them() {
        assert_eq!(find_order_number("a refund for order 1234.").as_deref(), Some("1234"));
        assert_eq!(find_order_number("Order #1236 arrived broken").as_deref(), Some("1236"));
        assert_eq!(find_order_number("my order number is 1235").as_deref(), Some("1235"));
        assert_eq!(find_order_number("it was #1234, thanks").as_deref(), Some("1234"));
        assert_eq!(find_order_number("my order arrived broken, I paid $42.50"), None);
        assert_eq!(find_order_number("order 12"), None);
    }

    fn conversation(text: &str) -> ChatRequest {
        ChatRequest {
            model: "fake".into(),
            messages: vec![
                ChatMessage::system("s"),
                ChatMessage::user(format!("Case CB-1\n\n--- From the customer, t ---\n{text}\n")),
            ],
            tools: vec![],
            tool_choice: None,
            temperature: None,
        }
    }

    /// Plays the script against the order service until it answers.
    fn play(text: &str) -> (Vec<String>, Value) {
        let orders = OrderService::default();
        let mut request = conversation(text);
        let mut tools = Vec::new();
        for _ in 0..5 {
            let message = reply(Script::Refund, &request);
            let call = message.tool_calls.clone().unwrap().remove(0);
            if call.function.name == ANSWER_CUSTOMER {
                return (tools, serde_json::from_str(&call.function.arguments).unwrap());
            }
            tools.push(call.function.name.clone());
            let result = orders.call(&call.function.name, &call.function.arguments).unwrap();
            request.messages.push(message);
            request.messages.push(ChatMessage::tool_result(&call.id, result.to_string()));
        }
        panic!("no answer")
    }

    #[test]
    fn the_refund_script_plays_each_branch() {
        let (tools, answer) = play("I want a refund for order 1234.");
        assert_eq!(tools, ["lookup_order", "issue_refund"]);
        assert_eq!(answer["kind"], "Resolved");
        assert!(answer["message"].as_str().unwrap().contains("$42.50"));
        let (tools, answer) = play("My mug arrived broken, refund please.");
        assert!(tools.is_empty());
        assert_eq!(answer["kind"], "Question");
        let (_, answer) = play("Refund order 1236 please.");
        assert_eq!(answer["kind"], "UnableToResolve", "over the limit");
        let (_, answer) = play("Refund order 9999 please.");
        assert_eq!(answer["kind"], "Question", "no such order");
    }

    #[test]
    fn our_own_mails_are_not_read_as_the_customers() {
        let text = "Case CB-1\n\n--- Sent by us, t ---\nIs it order 1236?\n\n--- From the customer, t ---\nNo.\n";
        assert_eq!(find_order_number(&customer_lines(text)), None);
    }
}
