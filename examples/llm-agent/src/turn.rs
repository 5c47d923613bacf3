//! One turn: the case (read over MCP) as the conversation, the model asked
//! with the order tools and the final-answer tool, tool calls executed and
//! their results given back, until the model calls `answer_customer` or the
//! round budget is spent. The answer is the contract's `Question`,
//! `Resolved` or `UnableToResolve`, validated by the contract's own rules.
//!
//! Whatever the model does — text instead of a tool call, arguments that
//! are not JSON, an unknown kind, a blank message, no answer within the
//! rounds — the turn ends in `UnableToResolve` with the reason, so the case
//! goes to a representative. Only an unreachable or failing endpoint is an
//! error (the caller answers 503 and casebridge retries the turn).

use casebridge::protocol::{validate_agent_response, AgentResponse, ResponseType};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::llm::{ChatMessage, ChatRequest, LlmError, Model, Tool};
use crate::mcp::CaseFile;
use crate::orders::OrderService;

/// The tool the model gives its final answer with.
pub const ANSWER_CUSTOMER: &str = "answer_customer";

/// Characters of the customer's mails put before the model, per mail.
const MAX_MAIL_CHARS: usize = 8_000;
/// Mails put before the model, the latest.
const MAX_MAILS: usize = 30;

pub const SYSTEM_PROMPT: &str = "You are the refund agent of Example Shop's email support. \
You answer one customer's case by email. Read the case and its thread. \
Use lookup_order to check an order before you promise anything, and issue_refund to refund a delivered order \
within the refund limit. Never invent order numbers, amounts or dates. \
Finish every turn by calling answer_customer exactly once: \
kind \"Question\" to ask the customer for what you need (for example the order number), \
\"Resolved\" when the request is dealt with (say what you did), \
\"UnableToResolve\" when a representative must take over (say why; the customer does not see this text). \
The message of a Question or Resolved is the email body sent to the customer: plain text, polite, short, \
no subject line and no signature. Set needsReview to true when a person should check the email before it is sent.";

/// The final-answer tool.
pub fn answer_tool() -> Tool {
    Tool::function(
        ANSWER_CUSTOMER,
        "Give the final answer of this turn. Call it exactly once, last.",
        json!({
            "type": "object",
            "properties": {
                "kind": {"type": "string", "enum": ["Question", "Resolved", "UnableToResolve"]},
                "message": {"type": "string", "description": "The email body for Question and Resolved; the reason for UnableToResolve."},
                "needsReview": {"type": "boolean", "description": "A person should review the email before it is sent."}
            },
            "required": ["kind", "message"],
            "additionalProperties": false
        }),
    )
}

/// The arguments of `answer_customer`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FinalAnswer {
    pub kind: String,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub needs_review: Option<bool>,
}

/// What the turn answers, and what it did to get there (for the log and tests).
#[derive(Debug, Clone, PartialEq)]
pub struct TurnOutcome {
    pub answer: AgentResponse,
    pub rounds: u32,
    /// The order tools the model called, in order.
    pub tools_called: Vec<String>,
}

/// `UnableToResolve` with a reason for the representative.
pub fn unable(reason: &str) -> AgentResponse {
    AgentResponse {
        response_type: ResponseType::UnableToResolve,
        message: Some(reason.to_string()),
        handling_options: None,
    }
}

/// Maps `answer_customer`'s arguments (a JSON string, as the model wrote it)
/// onto a validated answer; anything unusable is `UnableToResolve` with why.
pub fn map_answer(arguments: &str) -> AgentResponse {
    let answer: FinalAnswer = match serde_json::from_str(arguments) {
        Ok(answer) => answer,
        Err(_) => return unable("the model's answer_customer arguments are not the answer format"),
    };
    let kind = match answer.kind.as_str() {
        "Question" | "Resolved" | "UnableToResolve" => answer.kind.as_str(),
        _ => return unable("the model answered a kind answer_customer does not offer"),
    };
    let mut value = json!({"responseType": kind});
    if let Some(message) = answer.message.as_deref().map(str::trim).filter(|m| !m.is_empty()) {
        value["message"] = json!(message);
    }
    if answer.needs_review == Some(true) {
        value["handlingOptions"] = json!({"needsReview": true});
    }
    match validate_agent_response(&value) {
        Ok(response) => response,
        Err(e) => unable(&format!("the model's answer is not a valid answer: {e}")),
    }
}

fn clip(text: &str, chars: usize) -> String {
    let mut clipped: String = text.chars().take(chars).collect();
    if text.chars().nth(chars).is_some() {
        clipped.push_str(" […]");
    }
    clipped
}

/// The case as the model's first user message.
pub fn case_message(file: &CaseFile) -> String {
    let case = &file.case;
    let customer = match &case.customer.name {
        Some(name) => format!("{name} <{}>", case.customer.email),
        None => case.customer.email.clone(),
    };
    let mut text = format!(
        "Case {} — subject: {}\nCustomer: {customer}\nRouted as: {}\nStatus: {}\n",
        case.case_id,
        case.subject,
        case.intent.as_deref().unwrap_or("(none)"),
        case.status,
    );
    let answered: Vec<String> = file
        .turns
        .iter()
        .filter_map(|t| t.response_type.as_deref().map(|r| format!("{} ({r})", t.turn_id)))
        .collect();
    if !answered.is_empty() {
        text.push_str(&format!("Earlier turns: {}\n", answered.join(", ")));
    }
    text.push_str("\nThe thread, oldest first:\n");
    let skip = file.thread.len().saturating_sub(MAX_MAILS);
    for mail in file.thread.iter().skip(skip) {
        let who = if mail.from_customer() { "From the customer" } else { "Sent by us" };
        text.push_str(&format!(
            "\n--- {who}, {} ---\n{}\n",
            mail.at,
            clip(mail.new_text.trim(), MAX_MAIL_CHARS)
        ));
    }
    text
}

/// The conversation the model starts from.
pub fn first_messages(file: &CaseFile) -> Vec<ChatMessage> {
    vec![ChatMessage::system(SYSTEM_PROMPT), ChatMessage::user(case_message(file))]
}

/// Runs the model to an answer within `max_rounds` completions.
pub async fn run(llm: &Model, orders: &OrderService, file: &CaseFile, max_rounds: u32) -> Result<TurnOutcome, LlmError> {
    let mut tools = OrderService::tools();
    tools.push(answer_tool());
    let mut request = ChatRequest {
        model: llm.name().to_string(),
        messages: first_messages(file),
        tools,
        tool_choice: Some("required".into()),
        temperature: Some(0.0),
    };
    let mut tools_called = Vec::new();
    for round in 1..=max_rounds {
        let reply = llm.complete(&request).await?;
        let calls = reply.tool_calls.clone().unwrap_or_default();
        if calls.is_empty() {
            return Ok(TurnOutcome {
                answer: unable("the model answered without calling answer_customer"),
                rounds: round,
                tools_called,
            });
        }
        request.messages.push(ChatMessage::calls(calls.clone()));
        let mut final_answer = None;
        for call in &calls {
            if call.function.name == ANSWER_CUSTOMER {
                // The first answer counts; tools called beside it still run.
                final_answer.get_or_insert_with(|| map_answer(&call.function.arguments));
                request
                    .messages
                    .push(ChatMessage::tool_result(&call.id, json!({"ok": true}).to_string()));
                continue;
            }
            tools_called.push(call.function.name.clone());
            let result = match orders.call(&call.function.name, &call.function.arguments) {
                Ok(value) => value,
                Err(error) => json!({"error": error}),
            };
            request.messages.push(ChatMessage::tool_result(&call.id, Value::to_string(&result)));
        }
        if let Some(answer) = final_answer {
            return Ok(TurnOutcome {
                answer,
                rounds: round,
                tools_called,
            });
        }
    }
    Ok(TurnOutcome {
        answer: unable(&format!("the model gave no answer within {max_rounds} rounds")),
        rounds: max_rounds,
        tools_called,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::{CaseInfo, Customer, Mail};

    #[test]
    fn answers_map_onto_the_contract() {
        let question = map_answer(r#"{"kind":"Question","message":"Which order was it?"}"#);
        assert_eq!(question.response_type, ResponseType::Question);
        assert_eq!(question.message.as_deref(), Some("Which order was it?"));
        assert!(!question.needs_review());
        let resolved = map_answer(r#"{"kind":"Resolved","message":"Refunded.","needsReview":true}"#);
        assert_eq!(resolved.response_type, ResponseType::Resolved);
        assert!(resolved.needs_review());
        let unable_ = map_answer(r#"{"kind":"UnableToResolve","message":"Over the limit."}"#);
        assert_eq!(unable_.response_type, ResponseType::UnableToResolve);
        assert_eq!(unable_.message.as_deref(), Some("Over the limit."));
    }

    #[test]
    fn unusable_answers_become_unable_to_resolve() {
        for arguments in [
            "",
            "{not json",
            "[]",
            r#"{"message":"no kind"}"#,
            r#"{"kind":"ResolveCase","message":"closing"}"#,
            r#"{"kind":"NoAction"}"#,
            r#"{"kind":"Resolved"}"#,
            r#"{"kind":"Question","message":"   "}"#,
            r#"{"kind":42,"message":"x"}"#,
        ] {
            let answer = map_answer(arguments);
            assert_eq!(answer.response_type, ResponseType::UnableToResolve, "{arguments}");
            assert!(answer.message.is_some_and(|m| !m.is_empty()), "{arguments}: a reason");
        }
        let huge = json!({"kind": "Resolved", "message": "x".repeat(200 * 1024)}).to_string();
        assert_eq!(
            map_answer(&huge).response_type,
            ResponseType::UnableToResolve,
            "over the size limit"
        );
    }

    #[test]
    fn the_case_message_carries_the_thread_in_order() {
        let mail = |direction: &str, text: &str| Mail {
            index: 0,
            direction: direction.into(),
            from: String::new(),
            subject: String::new(),
            at: "2026-11-24T09:12:00+00:00".into(),
            new_text: text.into(),
        };
        let file = CaseFile {
            case: CaseInfo {
                case_id: "CB-1".into(),
                conversation_id: "c".into(),
                status: "agent_working".into(),
                customer: Customer {
                    email: "ann@customer.example".into(),
                    name: Some("Ann".into()),
                },
                subject: "Refund".into(),
                intent: Some("refund".into()),
            },
            thread: vec![
                mail("inbound", "My mug arrived broken."),
                mail("outbound", "Which order?"),
                mail("inbound", "Order 1234."),
            ],
            turns: vec![],
        };
        let text = case_message(&file);
        assert!(text.contains("Ann <ann@customer.example>"), "{text}");
        let first = text.find("My mug arrived broken.").unwrap();
        let ours = text.find("Sent by us").unwrap();
        let last = text.find("Order 1234.").unwrap();
        assert!(first < ours && ours < last, "{text}");
        assert_eq!(clip("abcdef", 3), "abc […]");
    }
}
