//! An example LLM agent for casebridge. It serves both agent protocols
//! casebridge speaks, on one port:
//!
//! - `POST /invoke`: casebridge's own contract (`{"caseId",
//!   "conversationId"}` in, `{"responseType", "message"}` out, synchronous);
//! - `POST /a2a`: A2A 1.0, JSON-RPC binding, `SendMessage` ([`a2a`]), with
//!   its agent card at `GET /.well-known/agent-card.json`.
//!
//! Either way it reads the case over casebridge's MCP server ([`mcp`]),
//! asks an OpenAI-compatible chat completions endpoint ([`llm`]) or Amazon
//! Bedrock ([`bedrock`]) with tool use against a small fake order service
//! ([`orders`]), and answers
//! `Question`, `Resolved` or `UnableToResolve` ([`turn`]). [`fake_llm`] is a
//! scripted stand-in for the model, so it all runs offline.
//!
//! Logs name the case, the protocol, the rounds, the tools called and the
//! answer's type; never mail text, model output, tokens or keys.

pub mod a2a;
pub mod bedrock;
pub mod fake_llm;
pub mod llm;
pub mod mcp;
pub mod mcp_signing;
pub mod orders;
pub mod turn;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use casebridge::protocol::{AgentRequest, AgentResponse};
use serde_json::Value;

use crate::llm::{LlmClient, LlmSettings, Model};
use crate::mcp::{CaseReader, McpError, McpSettings};
use crate::orders::OrderService;
use crate::turn::{unable, TurnOutcome};

/// Answers remembered by idempotency key (the turn id), so a retried turn
/// is answered the same way without asking the model again.
const REMEMBERED_ANSWERS: usize = 1024;

/// The agent's side of the `[agents.auth]` casebridge is configured with.
#[derive(Clone)]
pub enum AgentSecret {
    /// Local development only.
    None,
    /// One token both ways: casebridge sends it to the agent, the agent to
    /// casebridge's MCP server.
    Bearer(String),
    /// HMAC v2: casebridge signs its calls to the agent, the agent signs
    /// each of its MCP requests; each side refuses what the other did not
    /// sign for that very request.
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

#[derive(Clone, Debug)]
pub struct Settings {
    /// The agent's name in casebridge's configuration (sent as `X-Casebridge-Agent`).
    pub agent_name: String,
    pub auth: AgentSecret,
    /// casebridge's MCP endpoint, e.g. `http://127.0.0.1:3000/mcp`.
    pub mcp_url: String,
    /// For the whole read of a case over MCP.
    pub mcp_timeout: Duration,
    pub llm: LlmSettings,
    /// Amazon Bedrock (Converse) instead of the OpenAI-compatible endpoint in `llm`.
    pub bedrock: Option<bedrock::BedrockSettings>,
    /// Model completions per turn at most.
    pub max_rounds: u32,
    /// For the whole turn (read, model rounds, tools); past it the agent
    /// answers 503 and casebridge retries or escalates. Keep casebridge's
    /// `timeout_ms` for this agent above it.
    pub turn_timeout: Duration,
    /// Orders the agent refunds on its own up to this amount.
    pub refund_limit_cents: u64,
}

impl Settings {
    /// Defaults for everything but where casebridge and the model are.
    pub fn new(agent_name: &str, auth: AgentSecret, mcp_url: &str, llm_base_url: &str, model: &str, api_key: Option<String>) -> Settings {
        Settings {
            agent_name: agent_name.into(),
            auth,
            mcp_url: mcp_url.into(),
            mcp_timeout: Duration::from_secs(10),
            llm: LlmSettings {
                base_url: llm_base_url.into(),
                model: model.into(),
                api_key,
                timeout: Duration::from_secs(30),
            },
            bedrock: None,
            max_rounds: 6,
            turn_timeout: Duration::from_secs(60),
            refund_limit_cents: orders::DEFAULT_REFUND_LIMIT_CENTS,
        }
    }
}

struct AgentState {
    settings: Settings,
    reader: CaseReader,
    llm: Model,
    orders: OrderService,
    answers: Mutex<(HashMap<String, AgentResponse>, VecDeque<String>)>,
}

impl AgentState {
    fn remembered(&self, key: &str) -> Option<AgentResponse> {
        self.answers.lock().ok().and_then(|a| a.0.get(key).cloned())
    }

    fn remember(&self, key: String, answer: &AgentResponse) {
        if let Ok(mut guard) = self.answers.lock() {
            let (map, order) = &mut *guard;
            if map.insert(key.clone(), answer.clone()).is_none() {
                order.push_back(key);
            }
            while order.len() > REMEMBERED_ANSWERS {
                if let Some(old) = order.pop_front() {
                    map.remove(&old);
                }
            }
        }
    }
}

/// Whether the request comes from casebridge (as in `examples/refund-agent`).
fn from_casebridge(settings: &Settings, method: &str, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> bool {
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
            verify(
                casebridge::config::HmacScheme::V2,
                &keys,
                presented,
                &facts,
                chrono::Utc::now().timestamp(),
            )
            .is_ok()
        }
    }
}

/// Why a turn got no answer: casebridge retries these (503).
#[derive(Debug)]
enum Unavailable {
    Mcp(&'static str),
    Llm(llm::LlmError),
    Timeout,
}

impl IntoResponse for Unavailable {
    fn into_response(self) -> Response {
        let reason = match &self {
            Unavailable::Mcp(kind) => format!("the case could not be read ({kind})"),
            Unavailable::Llm(e) => e.to_string(),
            Unavailable::Timeout => "the turn took too long".into(),
        };
        (StatusCode::SERVICE_UNAVAILABLE, reason).into_response()
    }
}

fn mcp_kind(e: &McpError) -> &'static str {
    match e {
        McpError::Timeout => "timeout",
        McpError::Connect(_) => "connection failed",
        McpError::Call { .. } => "call failed",
        McpError::Tool { .. } => "tool refused",
        McpError::Shape { .. } => "unexpected tool output",
        McpError::BadAgentName => "bad agent name",
    }
}

/// Works one turn of a case: read over MCP, ask the model, map its answer.
async fn work(state: &AgentState, protocol: &'static str, case_id: &str, key: Option<&str>) -> Result<AgentResponse, Unavailable> {
    if let Some(answer) = key.and_then(|k| state.remembered(k)) {
        tracing::info!(case = %case_id, protocol, answer = ?answer.response_type, "turn answered again (same idempotency key)");
        return Ok(answer);
    }
    let outcome = tokio::time::timeout(state.settings.turn_timeout, work_now(state, case_id))
        .await
        .map_err(|_| Unavailable::Timeout);
    let outcome = match outcome.and_then(|r| r) {
        Ok(outcome) => outcome,
        Err(e) => {
            let kind = match &e {
                Unavailable::Mcp(kind) => *kind,
                Unavailable::Llm(_) => "model endpoint",
                Unavailable::Timeout => "turn timeout",
            };
            tracing::warn!(case = %case_id, protocol, kind, "turn not answered; casebridge may retry");
            return Err(e);
        }
    };
    tracing::info!(
        case = %case_id,
        protocol,
        rounds = outcome.rounds,
        tools = ?outcome.tools_called,
        answer = ?outcome.answer.response_type,
        "turn answered"
    );
    if let Some(key) = key {
        state.remember(key.to_string(), &outcome.answer);
    }
    Ok(outcome.answer)
}

async fn work_now(state: &AgentState, case_id: &str) -> Result<TurnOutcome, Unavailable> {
    let file = match state.reader.read(case_id).await {
        Ok(file) => file,
        // The server refused this case (not routed to us, gone): a person must look.
        Err(e @ McpError::Tool { .. }) => {
            return Ok(TurnOutcome {
                answer: unable(&format!("the agent could not read the case: {e}")),
                rounds: 0,
                tools_called: vec![],
            })
        }
        Err(e) => return Err(Unavailable::Mcp(mcp_kind(&e))),
    };
    match turn::run(&state.llm, &state.orders, &file, state.settings.max_rounds).await {
        Ok(outcome) => Ok(outcome),
        Err(e) if e.is_transient() => Err(Unavailable::Llm(e)),
        Err(e) => Ok(TurnOutcome {
            answer: unable(&format!("the model could not be used: {e}")),
            rounds: 0,
            tools_called: vec![],
        }),
    }
}

/// `POST /invoke`: casebridge's own contract.
async fn invoke(State(state): State<Arc<AgentState>>, method: Method, uri: Uri, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if !from_casebridge(&state.settings, method.as_str(), &uri, &headers, &body) {
        return (StatusCode::UNAUTHORIZED, "not casebridge").into_response();
    }
    let request: AgentRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(_) => return (StatusCode::BAD_REQUEST, "not an agent request {\"caseId\", \"conversationId\"}").into_response(),
    };
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or(request.turn_id.clone());
    match work(&state, "casebridge", &request.case_id, key.as_deref()).await {
        Ok(answer) => Json(answer).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /a2a`: A2A `SendMessage`.
async fn a2a_send(State(state): State<Arc<AgentState>>, method: Method, uri: Uri, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if !from_casebridge(&state.settings, method.as_str(), &uri, &headers, &body) {
        return (StatusCode::UNAUTHORIZED, "not casebridge").into_response();
    }
    let (id, request) = a2a::read_request(&body);
    let request = match request {
        Ok(request) => request,
        Err(error) => return Json(a2a::error_reply(id, error)).into_response(),
    };
    // The message id is the turn id, the same on every retry.
    let key = request.turn_id.clone().or_else(|| id.as_str().map(str::to_string));
    match work(&state, "a2a", &request.case_id, key.as_deref()).await {
        Ok(answer) => Json(a2a::task_reply(id, &request, &answer, chrono::Utc::now())).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn agent_card(State(state): State<Arc<AgentState>>, headers: HeaderMap) -> Json<Value> {
    let host = headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or("127.0.0.1");
    Json(a2a::agent_card(&state.settings.agent_name, &format!("http://{host}/a2a")))
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the HTTP client could not be built: {0}")]
    Client(#[from] reqwest::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

pub fn router(settings: Settings) -> Result<Router, StartError> {
    let reader = CaseReader::new(McpSettings {
        url: settings.mcp_url.clone(),
        agent_name: settings.agent_name.clone(),
        auth: settings.auth.clone(),
        timeout: settings.mcp_timeout,
    })?;
    let state = Arc::new(AgentState {
        reader,
        llm: match &settings.bedrock {
            Some(bedrock) => Model::Bedrock(bedrock.clone()),
            None => Model::OpenAi(LlmClient::new(settings.llm.clone())?),
        },
        orders: OrderService::new(settings.refund_limit_cents),
        answers: Mutex::new((HashMap::new(), VecDeque::new())),
        settings,
    });
    Ok(Router::new()
        .route("/invoke", post(invoke))
        .route("/a2a", post(a2a_send))
        .route("/.well-known/agent-card.json", get(agent_card))
        .with_state(state))
}

/// Serves the agent on a bound listener (bind first to know the URL to
/// configure casebridge with, then start the agent once casebridge's API is up).
pub fn serve(listener: tokio::net::TcpListener, settings: Settings) -> Result<SocketAddr, StartError> {
    let bound = listener.local_addr()?;
    let app = router(settings)?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "llm agent stopped");
        }
    });
    Ok(bound)
}

/// Serves the agent on `addr` (port 0 picks one); returns the bound address.
pub async fn spawn(addr: SocketAddr, settings: Settings) -> Result<SocketAddr, StartError> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve(listener, settings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::io::Write;

    const MAIL_TEXT: &str = "Private words 7Q2 from the customer: refund order 1234 please.";
    const TOKEN: &str = "agent-token-7Q2-0123456789";
    const API_KEY: &str = "sk-7Q2-secret-api-key";

    /// A stand-in for casebridge's MCP server: initialize, and the three
    /// tools over one case whose only mail is `MAIL_TEXT`.
    async fn fake_mcp(seen: Arc<Mutex<Vec<Option<String>>>>) -> SocketAddr {
        let app = Router::new().route(
            "/mcp",
            post(move |headers: HeaderMap, Json(message): Json<Value>| {
                let seen = seen.clone();
                async move {
                    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
                    seen.lock().unwrap().push(auth);
                    let Some(id) = message.get("id").cloned() else {
                        return StatusCode::ACCEPTED.into_response();
                    };
                    let result = match message["method"].as_str() {
                        Some("initialize") => json!({
                            "protocolVersion": message["params"]["protocolVersion"],
                            "capabilities": {"tools": {}},
                            "serverInfo": {"name": "fake", "version": "0"}
                        }),
                        Some("tools/call") => {
                            let content = match message["params"]["name"].as_str() {
                                Some("get_case") => json!({"caseId": "CB-1", "conversationId": "c", "status": "agent_working",
                                    "customer": {"email": "ann@customer.example", "name": "Ann"}, "subject": "Refund", "intent": "refund"}),
                                Some("get_thread") => json!({"caseId": "CB-1", "total": 1, "nextCursor": null, "mails": [
                                    {"index": 0, "direction": "inbound", "from": "ann@customer.example", "to": [], "subject": "Refund",
                                     "at": "2026-11-24T09:12:00+00:00", "newText": MAIL_TEXT, "attachments": []}]}),
                                _ => json!({"caseId": "CB-1", "turns": []}),
                            };
                            json!({"content": [{"type": "text", "text": content.to_string()}], "structuredContent": content, "isError": false})
                        }
                        _ => json!({}),
                    };
                    Json(json!({"jsonrpc": "2.0", "id": id, "result": result})).into_response()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        addr
    }

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A whole turn, logged at debug level: the log has the case and the
    /// outcome, and none of the mail text, the model's answer, the token or the key.
    #[tokio::test(flavor = "current_thread")]
    async fn a_turn_logs_no_mail_text_answers_or_secrets() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug"))
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        let seen = Arc::new(Mutex::new(Vec::new()));
        let mcp = fake_mcp(seen.clone()).await;
        let fake = fake_llm::spawn("127.0.0.1:0".parse().unwrap(), fake_llm::Script::Refund)
            .await
            .unwrap();
        let settings = Settings::new(
            "refund-agent",
            AgentSecret::Bearer(TOKEN.into()),
            &format!("http://{mcp}/mcp"),
            &fake.base_url,
            "fake",
            Some(API_KEY.into()),
        );
        let agent = spawn("127.0.0.1:0".parse().unwrap(), settings).await.unwrap();
        let response = reqwest::Client::new()
            .post(format!("http://{agent}/invoke"))
            .bearer_auth(TOKEN)
            .json(&json!({"caseId": "CB-1", "conversationId": "c", "turnId": "CB-1.0000000001"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["responseType"], "Resolved", "{answer}");
        let resolution = answer["message"].as_str().unwrap().to_string();

        // The key went to the model endpoint, the token to the MCP server.
        assert!(fake
            .authorizations()
            .iter()
            .all(|a| a.as_deref() == Some(&format!("Bearer {API_KEY}"))));
        assert!(user_saw(&fake, MAIL_TEXT));
        assert!(seen
            .lock()
            .unwrap()
            .iter()
            .all(|a| a.as_deref() == Some(&format!("Bearer {TOKEN}"))));

        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(log.contains("turn answered") && log.contains("CB-1"), "{log}");
        for secret in [MAIL_TEXT, "7Q2", &resolution, TOKEN, API_KEY] {
            assert!(!log.contains(secret), "{secret:?} in the log:\n{log}");
        }
    }

    fn user_saw(fake: &fake_llm::FakeLlm, text: &str) -> bool {
        fake.received()
            .iter()
            .flat_map(|r| r.messages.iter())
            .filter_map(|m| m.content.as_deref())
            .any(|c| c.contains(text))
    }
}
