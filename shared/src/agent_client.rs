//! Calling a custom agent over HTTP (SPEC §1, §5): POST the request with its
//! authentication, bounded retries with exponential backoff and jitter for
//! timeouts, connection errors, 429 (honouring Retry-After) and 5xx — never
//! past the caller's deadline — then a strictly validated answer, an
//! "accepted, answer comes later" (202, async agents), or a typed error.
//! An agent with `protocol = "a2a"` gets the same transport, authentication,
//! retries and redirect refusal; only the body (an A2A `SendMessage`) and
//! the reading of the reply differ (`crate::a2a`).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use thiserror::Error;

use crate::a2a::A2aError;
use crate::agent_auth::{
    credentials, sign_v1, sign_v2, AgentCredentials, Direction, RequestFacts, KEY_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
use crate::config::{AgentConfig, AgentMode, AgentProtocol, HmacScheme};
use crate::protocol::{parse_agent_response, AgentRequest, AgentResponse, AgentResponseError, MAX_AGENT_RESPONSE_BYTES};
use crate::secrets::SecretResolver;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AgentCallError {
    #[error("agent did not answer within {0} ms")]
    Timeout(u64),
    #[error("could not reach the agent: {0}")]
    Transport(String),
    #[error("agent answered HTTP {0}")]
    Status(u16),
    /// Following a redirect would hand the signed request (and its
    /// Idempotency-Key) to whoever the Location names, and mail their answer.
    #[error("agent answered a redirect (HTTP {0}); redirects are never followed: configure the agent's final URL")]
    Redirect(u16),
    #[error("agent answer is invalid: {0}")]
    Invalid(#[from] AgentResponseError),
    #[error("agent is misconfigured: {0}")]
    Config(String),
    #[error("agent answered 202 Accepted but is configured as synchronous")]
    UnexpectedAccepted,
    /// An A2A reply that is not an answer (an RPC error, a task left working, …).
    #[error("{0}")]
    A2a(A2aError),
}

impl From<A2aError> for AgentCallError {
    fn from(e: A2aError) -> Self {
        match e {
            // The answer itself broke the contract: the same kind as a bad casebridge answer.
            A2aError::Answer(invalid) => AgentCallError::Invalid(invalid),
            other => AgentCallError::A2a(other),
        }
    }
}

impl AgentCallError {
    fn is_retryable(&self) -> bool {
        match self {
            AgentCallError::Timeout(_) | AgentCallError::Transport(_) => true,
            AgentCallError::Status(code) => *code == 429 || *code >= 500,
            AgentCallError::Redirect(_)
            | AgentCallError::Invalid(_)
            | AgentCallError::Config(_)
            | AgentCallError::UnexpectedAccepted
            | AgentCallError::A2a(_) => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum AgentReply {
    Answer(AgentResponse),
    /// An async agent took the turn; its answer arrives on the callback route.
    Accepted,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AgentCallOutcome {
    pub result: Result<AgentReply, AgentCallError>,
    pub attempts: u32,
    /// An A2A task waiting for the customer's reply (the answer is a
    /// `Question`): the next turn of the case continues it.
    pub remote_task: Option<String>,
}

impl AgentCallOutcome {
    /// An outcome with no A2A task to continue.
    pub fn new(result: Result<AgentReply, AgentCallError>, attempts: u32) -> AgentCallOutcome {
        AgentCallOutcome {
            result,
            attempts,
            remote_task: None,
        }
    }
}

/// What one attempt gave: the reply and the A2A task to continue.
type Attempted = Result<(AgentReply, Option<String>), AgentCallError>;

/// The port the agent step calls agents through.
pub trait AgentClient: Send + Sync {
    /// `deadline`: no attempt starts that could not finish before it.
    fn call(
        &self,
        agent: &AgentConfig,
        request: &AgentRequest,
        deadline: Option<DateTime<Utc>>,
    ) -> impl Future<Output = AgentCallOutcome> + Send;
}

pub struct HttpAgentClient {
    http: reqwest::Client,
    secrets: Arc<dyn SecretResolver>,
    base_backoff: Duration,
    /// A2A agent cards read: card URL → (when, the JSON-RPC endpoint it named).
    cards: std::sync::Mutex<HashMap<String, (Instant, String)>>,
}

/// How long an agent card's endpoint is used before the card is read again.
/// A failed call drops it at once, so a moved agent is found on the retry.
const CARD_TTL: Duration = Duration::from_secs(300);

/// Longest wait honoured from a Retry-After header.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// Time kept back before the deadline for storing the outcome.
const DEADLINE_MARGIN: Duration = Duration::from_secs(2);

impl HttpAgentClient {
    pub fn new(secrets: Arc<dyn SecretResolver>) -> Result<HttpAgentClient, AgentCallError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("casebridge/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(5))
            // A redirect is an agent error, never followed (see AgentCallError::Redirect).
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| AgentCallError::Config(e.to_string()))?;
        Ok(HttpAgentClient {
            http,
            secrets,
            base_backoff: Duration::from_millis(200),
            cards: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// Shorter backoff, for tests that exercise retries.
    pub fn with_base_backoff(mut self, backoff: Duration) -> HttpAgentClient {
        self.base_backoff = backoff;
        self
    }

    /// Where this call goes: the agent's url, or the JSON-RPC endpoint its
    /// agent card names (read without credentials, as cards are public;
    /// redirects refused like the call's; checked against what the card
    /// demands of the caller).
    async fn endpoint(&self, agent: &AgentConfig, credentials: &AgentCredentials) -> Result<String, AgentCallError> {
        let Some(card_url) = &agent.card_url else {
            return Ok(agent.url.clone());
        };
        if let Ok(cards) = self.cards.lock() {
            if let Some((read_at, endpoint)) = cards.get(card_url) {
                if read_at.elapsed() < CARD_TTL {
                    return Ok(endpoint.clone());
                }
            }
        }
        let response = self
            .http
            .get(card_url)
            .timeout(Duration::from_millis(agent.timeout_ms))
            .header(reqwest::header::ACCEPT, "application/json")
            .header(crate::a2a::VERSION_HEADER, crate::a2a::PROTOCOL_VERSION)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    AgentCallError::Timeout(agent.timeout_ms)
                } else {
                    AgentCallError::Transport(format!("agent card: {}", without_url(&e)))
                }
            })?;
        let status = response.status();
        if status.is_redirection() {
            return Err(AgentCallError::Redirect(status.as_u16()));
        }
        if !status.is_success() {
            return Err(AgentCallError::Status(status.as_u16()));
        }
        let body = read_bounded(response, agent.timeout_ms).await?;
        let card: crate::a2a::AgentCard = serde_json::from_slice(&body).map_err(|e| A2aError::Card(format!("not an agent card: {e}")))?;
        let offered = match credentials {
            AgentCredentials::None => crate::a2a::OfferedAuth::None,
            AgentCredentials::Bearer(_) => crate::a2a::OfferedAuth::Bearer,
            AgentCredentials::Hmac { .. } => crate::a2a::OfferedAuth::Signed,
        };
        let endpoint = crate::a2a::card_endpoint(&card, offered)?;
        if let Ok(mut cards) = self.cards.lock() {
            cards.insert(card_url.clone(), (Instant::now(), endpoint.clone()));
        }
        Ok(endpoint)
    }

    fn forget_card(&self, agent: &AgentConfig) {
        if let (Some(card_url), Ok(mut cards)) = (&agent.card_url, self.cards.lock()) {
            cards.remove(card_url);
        }
    }

    async fn attempt(
        &self,
        agent: &AgentConfig,
        url: &str,
        body: &[u8],
        turn_id: Option<&str>,
        rpc_id: &str,
        credentials: &AgentCredentials,
    ) -> (Attempted, Option<Duration>) {
        let mut call = self
            .http
            .post(url)
            .timeout(Duration::from_millis(agent.timeout_ms))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_vec());
        if agent.protocol == AgentProtocol::A2a {
            call = call
                .header(crate::a2a::VERSION_HEADER, crate::a2a::PROTOCOL_VERSION)
                .header(crate::a2a::EXTENSIONS_HEADER, crate::a2a::CASE_EXTENSION);
        }
        if let Some(turn) = turn_id {
            call = call.header("Idempotency-Key", turn);
        }
        match credentials {
            AgentCredentials::None => {}
            AgentCredentials::Bearer(token) => call = call.bearer_auth(&token.0),
            AgentCredentials::Hmac { scheme, keys } => {
                let Some(key) = keys.first() else {
                    return (Err(AgentCallError::Config("no HMAC key".into())), None);
                };
                // Signed per attempt: a retry after minutes still falls in the agent's window.
                let timestamp = Utc::now().timestamp();
                let signature = match scheme {
                    HmacScheme::V1 => sign_v1(&key.secret, timestamp, body),
                    HmacScheme::V2 => {
                        let Some(path_and_query) = request_target(url) else {
                            return (Err(AgentCallError::Config("the agent's url has no path".into())), None);
                        };
                        let facts = RequestFacts {
                            direction: Direction::ToAgent,
                            agent: &agent.name,
                            method: "POST",
                            path_and_query: &path_and_query,
                            body,
                        };
                        sign_v2(&key.secret, &facts, timestamp)
                    }
                };
                call = call
                    .header(KEY_ID_HEADER, &key.id)
                    .header(TIMESTAMP_HEADER, timestamp.to_string())
                    .header(SIGNATURE_HEADER, signature);
            }
        }
        let response = match call.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return (Err(AgentCallError::Timeout(agent.timeout_ms)), None),
            Err(e) => return (Err(AgentCallError::Transport(without_url(&e))), None),
        };
        let status = response.status();
        if status == reqwest::StatusCode::ACCEPTED {
            return match (agent.protocol, agent.mode) {
                (AgentProtocol::Casebridge, AgentMode::Async) => (Ok((AgentReply::Accepted, None)), None),
                _ => (Err(AgentCallError::UnexpectedAccepted), None),
            };
        }
        if status.is_redirection() {
            return (Err(AgentCallError::Redirect(status.as_u16())), None);
        }
        if !status.is_success() {
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return (Err(AgentCallError::Status(status.as_u16())), retry_after);
        }
        let body = match read_bounded(response, agent.timeout_ms).await {
            Ok(body) => body,
            Err(e) => return (Err(e), None),
        };
        let reply = match agent.protocol {
            AgentProtocol::Casebridge => parse_agent_response(&body)
                .map(|answer| (AgentReply::Answer(answer), None))
                .map_err(AgentCallError::from),
            AgentProtocol::A2a => crate::a2a::parse_reply(&body, rpc_id)
                .map(|reply| (AgentReply::Answer(reply.answer), reply.continue_task))
                .map_err(AgentCallError::from),
        };
        (reply, None)
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let backoff = self.base_backoff.saturating_mul(1 << (attempt - 1).min(6));
        // Jitter from the clock's sub-second part: spreads retries without an RNG dependency.
        let spread = backoff.as_millis() as u64 / 2 + 1;
        backoff + Duration::from_millis(u64::from(Utc::now().timestamp_subsec_nanos() / 1000) % spread)
    }
}

/// The request target as it goes on the wire (path, and `?query`), which a
/// v2 signature binds.
pub fn request_target(url: &str) -> Option<String> {
    let url = reqwest::Url::parse(url).ok()?;
    Some(match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_string(),
    })
}

/// reqwest errors name the URL; an agent URL may carry a key in its query.
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "<agent url>");
    }
    text
}

async fn read_bounded(mut response: reqwest::Response, timeout_ms: u64) -> Result<Vec<u8>, AgentCallError> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_AGENT_RESPONSE_BYTES {
                    return Err(AgentCallError::Invalid(AgentResponseError::BodyTooLarge {
                        size: body.len(),
                        limit: MAX_AGENT_RESPONSE_BYTES,
                    }));
                }
            }
            Ok(None) => return Ok(body),
            Err(e) if e.is_timeout() => return Err(AgentCallError::Timeout(timeout_ms)),
            Err(e) => return Err(AgentCallError::Transport(without_url(&e))),
        }
    }
}

impl AgentClient for HttpAgentClient {
    async fn call(&self, agent: &AgentConfig, request: &AgentRequest, deadline: Option<DateTime<Utc>>) -> AgentCallOutcome {
        let credentials = match credentials(self.secrets.as_ref(), agent).await {
            Ok(credentials) => credentials,
            Err(e) => return AgentCallOutcome::new(Err(AgentCallError::Config(e.to_string())), 0),
        };
        let (body, rpc_id) = match agent.protocol {
            AgentProtocol::Casebridge => (serde_json::to_vec(request), String::new()),
            AgentProtocol::A2a => {
                let message = crate::a2a::send_message(request);
                (serde_json::to_vec(&message), message.id)
            }
        };
        let body = match body {
            Ok(body) => body,
            Err(e) => return AgentCallOutcome::new(Err(AgentCallError::Config(e.to_string())), 0),
        };
        let per_attempt = Duration::from_millis(agent.timeout_ms);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (result, retry_after) = match self.endpoint(agent, &credentials).await {
                Ok(url) => {
                    self.attempt(agent, &url, &body, request.turn_id.as_deref(), &rpc_id, &credentials)
                        .await
                }
                Err(e) => (Err(e), None),
            };
            if result.is_err() {
                self.forget_card(agent);
            }
            match result {
                Err(e) if e.is_retryable() && attempts < agent.max_attempts => {
                    let wait = retry_after
                        .map(|r| r.min(MAX_RETRY_AFTER))
                        .unwrap_or_else(|| self.backoff(attempts));
                    if let Some(deadline) = deadline {
                        let next_end = Utc::now() + wait + per_attempt + DEADLINE_MARGIN;
                        if next_end > deadline {
                            tracing::warn!(agent = %agent.name, attempt = attempts, error = %e, "agent call failed; no time left for another attempt");
                            return AgentCallOutcome::new(Err(e), attempts);
                        }
                    }
                    tracing::warn!(agent = %agent.name, attempt = attempts, error = %e, wait_ms = wait.as_millis() as u64, "agent call failed; retrying");
                    tokio::time::sleep(wait).await;
                }
                result => {
                    let (result, remote_task) = match result {
                        Ok((reply, task)) => (Ok(reply), task),
                        Err(e) => (Err(e), None),
                    };
                    return AgentCallOutcome {
                        result,
                        attempts,
                        remote_task,
                    };
                }
            }
        }
    }
}
