//! An example custom agent that plays the refund scenario over the
//! casebridge agent protocol:
//!
//! 1. casebridge POSTs `{"caseId", "conversationId"}`;
//! 2. the agent reads the case context from casebridge's API;
//! 3. if no customer mail names an amount, it asks (`Question`);
//!    once one does, it confirms the refund (`Resolved`).
//!
//! A real agent would call an LLM and the shop's systems here.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Clone)]
pub struct AgentSettings {
    /// Base URL of casebridge's API, e.g. `http://127.0.0.1:3000`.
    pub casebridge_api: String,
    /// The agent's name in casebridge's configuration (sent as `X-Casebridge-Agent`).
    pub agent_name: String,
    /// The agent's bearer token: casebridge sends it to the agent, the agent sends it to the API.
    pub token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Invocation {
    case_id: String,
    #[allow(dead_code)]
    conversation_id: String,
}

struct AgentState {
    settings: AgentSettings,
    http: reqwest::Client,
}

/// Finds an amount such as `$42.50`, `42.50 USD`, `€19` or `19 EUR` in text.
pub fn find_amount(text: &str) -> Option<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    for (i, word) in words.iter().enumerate() {
        let clean = word.trim_matches(|c: char| c == ',' || c == '.' || c == '!' || c == '?' || c == ')' || c == '(');
        for symbol in ['$', '€', '£'] {
            if let Some(number) = clean.strip_prefix(symbol) {
                if is_number(number) {
                    return Some(format!("{symbol}{number}"));
                }
            }
        }
        if is_number(clean) {
            if let Some(next) = words.get(i + 1) {
                let unit = next.trim_matches(|c: char| !c.is_alphabetic()).to_ascii_uppercase();
                if ["USD", "EUR", "GBP", "DOLLARS", "EUROS"].contains(&unit.as_str()) {
                    return Some(format!("{clean} {unit}"));
                }
            }
        }
    }
    None
}

fn is_number(text: &str) -> bool {
    !text.is_empty() && text.chars().any(|c| c.is_ascii_digit()) && text.chars().all(|c| c.is_ascii_digit() || c == '.' || c == ',')
}

/// The agent's decision, from the case context casebridge serves.
pub fn answer_for(context: &Value) -> Value {
    let customer_texts: Vec<&str> = context["thread"]
        .as_array()
        .map(|mails| {
            mails
                .iter()
                .filter(|m| m["direction"] == "inbound")
                .filter_map(|m| m["newText"].as_str())
                .collect()
        })
        .unwrap_or_default();
    let name = context["customer"]["name"].as_str().unwrap_or("there");
    match customer_texts.iter().rev().find_map(|t| find_amount(t)) {
        Some(amount) => json!({
            "responseType": "Resolved",
            "message": format!("Hi {name},\n\nThank you. We have issued a refund of {amount} to your original payment method. It usually shows up within 5 business days.\n\nIs there anything else we can help with?"),
        }),
        None => json!({
            "responseType": "Question",
            "message": format!("Hi {name},\n\nSorry to hear that. To process your refund, could you tell us the amount you were charged for the order?"),
        }),
    }
}

async fn invoke(
    State(state): State<Arc<AgentState>>,
    headers: axum::http::HeaderMap,
    Json(invocation): Json<Invocation>,
) -> Result<Json<Value>, (StatusCode, String)> {
    if let Some(token) = &state.settings.token {
        let presented = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if presented != token {
            return Err((StatusCode::UNAUTHORIZED, "not casebridge".into()));
        }
    }
    let url = format!(
        "{}/cases/{}/context",
        state.settings.casebridge_api.trim_end_matches('/'),
        invocation.case_id
    );
    let mut request = state.http.get(&url).header("x-casebridge-agent", &state.settings.agent_name);
    if let Some(token) = &state.settings.token {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .map_err(|e| (StatusCode::BAD_GATEWAY, format!("case context unavailable: {e}")))?;
    if !response.status().is_success() {
        return Err((StatusCode::BAD_GATEWAY, format!("case context answered {}", response.status())));
    }
    let context: Value = response
        .json()
        .await
        .map_err(|e| (StatusCode::BAD_GATEWAY, format!("case context unreadable: {e}")))?;
    Ok(Json(answer_for(&context)))
}

pub fn router(settings: AgentSettings) -> Router {
    let state = Arc::new(AgentState {
        settings,
        http: reqwest::Client::new(),
    });
    Router::new().route("/invoke", post(invoke)).with_state(state)
}

/// Serves the agent on `addr` (port 0 picks one); returns the bound address.
pub async fn spawn(addr: SocketAddr, settings: AgentSettings) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(settings)).await {
            tracing::error!(error = %e, "refund agent stopped");
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_amounts_in_common_forms() {
        assert_eq!(find_amount("It was $42.50, thanks").as_deref(), Some("$42.50"));
        assert_eq!(find_amount("charged 19,99 EUR").as_deref(), Some("19,99 EUR"));
        assert_eq!(find_amount("order 1234 arrived broken"), None);
    }

    #[test]
    fn asks_then_resolves() {
        let ask = json!({"customer": {"name": "Ann"}, "thread": [{"direction": "inbound", "newText": "I want a refund for order 1234"}]});
        assert_eq!(answer_for(&ask)["responseType"], "Question");
        let resolve = json!({"customer": {"name": "Ann"}, "thread": [
            {"direction": "inbound", "newText": "I want a refund for order 1234"},
            {"direction": "outbound", "newText": "What amount? e.g. $10"},
            {"direction": "inbound", "newText": "It was $42.50"}]});
        let answer = answer_for(&resolve);
        assert_eq!(answer["responseType"], "Resolved");
        assert!(answer["message"].as_str().unwrap().contains("$42.50"));
    }
}
