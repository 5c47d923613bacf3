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
    /// How casebridge and the agent prove themselves to each other.
    pub auth: AgentSecret,
}

/// The agent's side of the `[agents.auth]` casebridge is configured with.
#[derive(Clone)]
pub enum AgentSecret {
    /// Local development only.
    None,
    /// One token both ways: casebridge sends it to the agent, the agent to the API.
    Bearer(String),
    /// HMAC v2: casebridge signs its calls, the agent signs its context reads;
    /// each side refuses what the other did not sign for that very request.
    Hmac { key_id: String, secret: String },
}

impl std::fmt::Debug for AgentSecret {
    // Never print a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AgentSecret::None => "None",
            AgentSecret::Bearer(_) => "Bearer(..)",
            AgentSecret::Hmac { .. } => "Hmac(..)",
        })
    }
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

/// Whether the request comes from casebridge.
fn from_casebridge(settings: &AgentSettings, method: &str, uri: &axum::http::Uri, headers: &axum::http::HeaderMap, body: &[u8]) -> bool {
    use casebridge::agent_auth::{verify, Direction, HmacKey, PresentedSignature, RequestFacts};
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match &settings.auth {
        AgentSecret::None => true,
        AgentSecret::Bearer(token) => {
            let presented = header("authorization").and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("");
            casebridge::agent_auth::same_secret(presented.as_bytes(), token.as_bytes())
        }
        AgentSecret::Hmac { key_id, secret } => {
            let keys = [HmacKey {
                id: key_id.clone(),
                secret: secret.as_bytes().to_vec(),
            }];
            let facts = RequestFacts {
                direction: Direction::ToAgent,
                agent: &settings.agent_name,
                method,
                path_and_query: uri.path_and_query().map_or("/", |p| p.as_str()),
                body,
            };
            let presented = PresentedSignature {
                timestamp: header("x-casebridge-timestamp"),
                signature: header("x-casebridge-signature"),
                key_id: header("x-casebridge-key-id"),
            };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            verify(casebridge::config::HmacScheme::V2, &keys, presented, &facts, now).is_ok()
        }
    }
}

async fn invoke(
    State(state): State<Arc<AgentState>>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, (StatusCode, String)> {
    if !from_casebridge(&state.settings, method.as_str(), &uri, &headers, &body) {
        return Err((StatusCode::UNAUTHORIZED, "not casebridge".into()));
    }
    let invocation: Invocation = serde_json::from_slice(&body).map_err(|e| (StatusCode::BAD_REQUEST, format!("not an invocation: {e}")))?;
    let api = state.settings.casebridge_api.trim_end_matches('/');
    let path = format!("/cases/{}/context", invocation.case_id);
    let mut request = state
        .http
        .get(format!("{api}{path}"))
        .header("x-casebridge-agent", &state.settings.agent_name);
    match &state.settings.auth {
        AgentSecret::None => {}
        AgentSecret::Bearer(token) => request = request.bearer_auth(token),
        AgentSecret::Hmac { key_id, secret } => {
            use casebridge::agent_auth::{sign_v2, Direction, RequestFacts};
            let timestamp = chrono::Utc::now().timestamp();
            let facts = RequestFacts {
                direction: Direction::ToCasebridge,
                agent: &state.settings.agent_name,
                method: "GET",
                path_and_query: &path,
                body: b"",
            };
            request = request
                .header("x-casebridge-key-id", key_id)
                .header("x-casebridge-timestamp", timestamp.to_string())
                .header("x-casebridge-signature", sign_v2(secret.as_bytes(), &facts, timestamp));
        }
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
