//! Reads the case over casebridge's MCP server (`POST /mcp`, stateless
//! Streamable HTTP, docs/mcp.md) with rmcp's client: `get_case`, every page
//! of `get_thread`, `get_previous_turns`. The transport runs on the
//! workspace's reqwest (rustls), built here with redirects refused, as
//! casebridge refuses them. Authentication: `X-Casebridge-Agent` with the
//! agent's bearer token, or every POST signed with HMAC v2
//! ([`crate::mcp_signing`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue};
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::{StreamableHttpClient, StreamableHttpClientTransportConfig};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{RoleClient, ServiceExt};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use thiserror::Error;

use crate::mcp_signing::SigningClient;
use crate::AgentSecret;

/// Pages of the thread read at most (50 mails a page).
const MAX_THREAD_PAGES: usize = 20;
const THREAD_PAGE: u32 = 50;

/// The case as the tools give it (the fields this agent reads).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaseInfo {
    pub case_id: String,
    #[serde(default)]
    pub conversation_id: String,
    #[serde(default)]
    pub status: String,
    pub customer: Customer,
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub intent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Customer {
    pub email: String,
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ThreadPage {
    #[serde(default)]
    mails: Vec<Mail>,
    #[serde(default)]
    next_cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mail {
    #[serde(default)]
    pub index: u32,
    /// `inbound` (from the customer) or `outbound` (sent to the customer).
    pub direction: String,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub at: String,
    #[serde(default)]
    pub new_text: String,
}

impl Mail {
    pub fn from_customer(&self) -> bool {
        self.direction == "inbound"
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Turns {
    #[serde(default)]
    turns: Vec<Turn>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Turn {
    #[serde(default)]
    pub turn_id: String,
    #[serde(default)]
    pub response_type: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
}

/// Everything the agent reads of a case.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseFile {
    pub case: CaseInfo,
    /// Oldest first.
    pub thread: Vec<Mail>,
    pub turns: Vec<Turn>,
}

#[derive(Debug, Error)]
pub enum McpError {
    #[error("the MCP server did not answer in time")]
    Timeout,
    #[error("the MCP connection failed: {0}")]
    Connect(String),
    #[error("the MCP call {tool} failed: {reason}")]
    Call { tool: &'static str, reason: String },
    #[error("the MCP tool {tool} refused: {reason}")]
    Tool { tool: &'static str, reason: String },
    #[error("the MCP tool {tool} answered something else than its output schema")]
    Shape { tool: &'static str },
    #[error("the agent's name is not a valid header value")]
    BadAgentName,
}

/// How the agent reaches casebridge's MCP server.
#[derive(Clone)]
pub struct McpSettings {
    /// e.g. `http://127.0.0.1:3000/mcp`.
    pub url: String,
    pub agent_name: String,
    /// As casebridge's `[agents.auth]` for this agent.
    pub auth: AgentSecret,
    /// For the whole read: connect, initialize and every tool call.
    pub timeout: Duration,
}

impl std::fmt::Debug for McpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpSettings")
            .field("url", &self.url)
            .field("agent_name", &self.agent_name)
            .field("auth", &self.auth)
            .field("timeout", &self.timeout)
            .finish()
    }
}

pub struct CaseReader {
    settings: McpSettings,
    http: reqwest::Client,
}

impl CaseReader {
    pub fn new(settings: McpSettings) -> Result<CaseReader, reqwest::Error> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .build()?;
        Ok(CaseReader { settings, http })
    }

    /// The case, its whole thread and its turns, within the timeout.
    pub async fn read(&self, case_id: &str) -> Result<CaseFile, McpError> {
        tokio::time::timeout(self.settings.timeout, self.read_now(case_id))
            .await
            .map_err(|_| McpError::Timeout)?
    }

    async fn read_now(&self, case_id: &str) -> Result<CaseFile, McpError> {
        let agent = HeaderValue::from_str(&self.settings.agent_name).map_err(|_| McpError::BadAgentName)?;
        let headers = HashMap::from([(HeaderName::from_static("x-casebridge-agent"), agent)]);
        let config = StreamableHttpClientTransportConfig::with_uri(self.settings.url.as_str()).custom_headers(headers);
        match &self.settings.auth {
            AgentSecret::None => read_over(self.http.clone(), config, case_id).await,
            AgentSecret::Bearer(token) => read_over(self.http.clone(), config.auth_header(token.clone()), case_id).await,
            AgentSecret::Hmac { key_id, secret } => {
                let client = SigningClient {
                    inner: self.http.clone(),
                    agent: self.settings.agent_name.clone(),
                    key_id: key_id.clone(),
                    secret: Arc::from(secret.as_bytes()),
                };
                read_over(client, config, case_id).await
            }
        }
    }
}

async fn read_over<C: StreamableHttpClient>(
    http: C,
    config: StreamableHttpClientTransportConfig,
    case_id: &str,
) -> Result<CaseFile, McpError> {
    let transport = StreamableHttpClientTransport::with_client(http, config);
    let client = ().serve(transport).await.map_err(|e| McpError::Connect(e.to_string()))?;
    let result = read_with(&client, case_id).await;
    // Stateless server: nothing to delete; this stops the local worker.
    let _ = client.cancel().await;
    result
}

async fn read_with(client: &RunningService<RoleClient, ()>, case_id: &str) -> Result<CaseFile, McpError> {
    let case: CaseInfo = call(client, "get_case", json!({"caseId": case_id})).await?;
    let mut thread = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_THREAD_PAGES {
        let mut args = json!({"caseId": case_id, "limit": THREAD_PAGE});
        if let Some(cursor) = &cursor {
            args["cursor"] = json!(cursor);
        }
        let page: ThreadPage = call(client, "get_thread", args).await?;
        thread.extend(page.mails);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let turns: Turns = call(client, "get_previous_turns", json!({"caseId": case_id})).await?;
    Ok(CaseFile {
        case,
        thread,
        turns: turns.turns,
    })
}

async fn call<T: DeserializeOwned>(client: &RunningService<RoleClient, ()>, tool: &'static str, args: Value) -> Result<T, McpError> {
    let arguments: Map<String, Value> = match args {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let result = client
        .call_tool(CallToolRequestParams::new(tool).with_arguments(arguments))
        .await
        .map_err(|e| McpError::Call {
            tool,
            reason: e.to_string(),
        })?;
    decode(tool, result)
}

/// A tool result: its structured content (or, from a server that sends
/// only text, the JSON of its text), or the tool's error text.
fn decode<T: DeserializeOwned>(tool: &'static str, result: CallToolResult) -> Result<T, McpError> {
    let text = || {
        result
            .content
            .iter()
            .filter_map(|block| block.as_text().map(|t| t.text.as_str()))
            .collect::<Vec<_>>()
            .join("\n")
    };
    if result.is_error == Some(true) {
        let reason: String = text().chars().take(200).collect();
        return Err(McpError::Tool { tool, reason });
    }
    let value = match &result.structured_content {
        Some(value) => value.clone(),
        None => serde_json::from_str(&text()).map_err(|_| McpError::Shape { tool })?,
    };
    serde_json::from_value(value).map_err(|_| McpError::Shape { tool })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::ContentBlock as Content;

    #[test]
    fn tool_results_decode_from_structured_content_or_text() {
        let view = json!({"caseId": "CB-1", "customer": {"email": "ann@customer.example", "name": "Ann"}, "subject": "Refund"});
        let structured = CallToolResult::structured(view.clone());
        let case: CaseInfo = decode("get_case", structured).unwrap();
        assert_eq!(case.customer.name.as_deref(), Some("Ann"));
        let text_only = CallToolResult::success(vec![Content::text(view.to_string())]);
        let case: CaseInfo = decode("get_case", text_only).unwrap();
        assert_eq!(case.case_id, "CB-1");
        let refused = CallToolResult::error(vec![Content::text("this case is not routed to your agent")]);
        let err = decode::<CaseInfo>("get_case", refused).unwrap_err();
        assert!(err.to_string().contains("not routed to your agent"), "{err}");
        let junk = CallToolResult::structured(json!({"unexpected": true}));
        assert!(matches!(decode::<CaseInfo>("get_case", junk), Err(McpError::Shape { .. })));
    }

    #[test]
    fn the_token_is_not_in_debug_output() {
        let settings = McpSettings {
            url: "http://127.0.0.1:1/mcp".into(),
            agent_name: "llm-agent".into(),
            auth: AgentSecret::Bearer("agent-token-0123456789".into()),
            timeout: Duration::from_secs(1),
        };
        assert!(!format!("{settings:?}").contains("agent-token"));
    }
}
