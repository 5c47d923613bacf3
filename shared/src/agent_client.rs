//! Calling a custom agent over HTTP (SPEC §1, §5): POST the request, bounded
//! retries with backoff for timeouts, connection errors, 429 and 5xx, then a
//! strictly validated answer or a typed error.

use std::future::Future;
use std::time::Duration;

use thiserror::Error;

use crate::config::AgentConfig;
use crate::protocol::{
    parse_agent_response, AgentRequest, AgentResponse, AgentResponseError, MAX_AGENT_RESPONSE_BYTES,
};

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AgentCallError {
    #[error("agent did not answer within {0} ms")]
    Timeout(u64),
    #[error("could not reach the agent: {0}")]
    Transport(String),
    #[error("agent answered HTTP {0}")]
    Status(u16),
    #[error("agent answer is invalid: {0}")]
    Invalid(#[from] AgentResponseError),
    #[error("agent is misconfigured: {0}")]
    Config(String),
}

impl AgentCallError {
    fn is_retryable(&self) -> bool {
        match self {
            AgentCallError::Timeout(_) | AgentCallError::Transport(_) => true,
            AgentCallError::Status(code) => *code == 429 || *code >= 500,
            AgentCallError::Invalid(_) | AgentCallError::Config(_) => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AgentCallOutcome {
    pub result: Result<AgentResponse, AgentCallError>,
    pub attempts: u32,
}

/// The port the agent step calls agents through.
pub trait AgentClient: Send + Sync {
    fn call(
        &self,
        agent: &AgentConfig,
        request: &AgentRequest,
    ) -> impl Future<Output = AgentCallOutcome> + Send;
}

pub struct HttpAgentClient {
    http: reqwest::Client,
    base_backoff: Duration,
}

impl HttpAgentClient {
    pub fn new() -> Result<HttpAgentClient, AgentCallError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("casebridge/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| AgentCallError::Config(e.to_string()))?;
        Ok(HttpAgentClient {
            http,
            base_backoff: Duration::from_millis(200),
        })
    }

    /// Shorter backoff, for tests that exercise retries.
    pub fn with_base_backoff(mut self, backoff: Duration) -> HttpAgentClient {
        self.base_backoff = backoff;
        self
    }

    async fn attempt(
        &self,
        agent: &AgentConfig,
        request: &AgentRequest,
        token: Option<&str>,
    ) -> (Result<AgentResponse, AgentCallError>, Option<Duration>) {
        let mut call = self
            .http
            .post(&agent.url)
            .timeout(Duration::from_millis(agent.timeout_ms))
            .json(request);
        if let Some(turn) = &request.turn_id {
            call = call.header("Idempotency-Key", turn);
        }
        if let Some(token) = token {
            call = call.bearer_auth(token);
        }
        let response = match call.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return (Err(AgentCallError::Timeout(agent.timeout_ms)), None)
            }
            Err(e) => return (Err(AgentCallError::Transport(without_url(&e))), None),
        };
        let status = response.status();
        if !status.is_success() {
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return (Err(AgentCallError::Status(status.as_u16())), retry_after);
        }
        match read_bounded(response).await {
            Ok(body) => (
                parse_agent_response(&body).map_err(AgentCallError::from),
                None,
            ),
            Err(e) => (Err(e), None),
        }
    }
}

/// reqwest errors name the URL; an agent URL may carry a key in its query.
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "<agent url>");
    }
    text
}

async fn read_bounded(mut response: reqwest::Response) -> Result<Vec<u8>, AgentCallError> {
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
            Err(e) if e.is_timeout() => return Err(AgentCallError::Timeout(0)),
            Err(e) => return Err(AgentCallError::Transport(without_url(&e))),
        }
    }
}

/// Longest wait honoured from a Retry-After header.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

impl AgentClient for HttpAgentClient {
    async fn call(&self, agent: &AgentConfig, request: &AgentRequest) -> AgentCallOutcome {
        let token = match &agent.bearer_token_env {
            Some(var) => match std::env::var(var) {
                Ok(token) => Some(token),
                Err(_) => {
                    return AgentCallOutcome {
                        result: Err(AgentCallError::Config(format!(
                            "bearer token variable {var} is not set"
                        ))),
                        attempts: 0,
                    }
                }
            },
            None => None,
        };
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (result, retry_after) = self.attempt(agent, request, token.as_deref()).await;
            match result {
                Err(e) if e.is_retryable() && attempts < agent.max_attempts => {
                    let backoff = self.base_backoff.saturating_mul(1 << (attempts - 1).min(6));
                    // Jitter from the clock's sub-second part: no RNG dependency, spreads retries.
                    let jitter = Duration::from_millis(
                        u64::from(chrono::Utc::now().timestamp_subsec_millis())
                            % (backoff.as_millis() as u64 / 2 + 1),
                    );
                    let wait = retry_after
                        .map(|r| r.min(MAX_RETRY_AFTER))
                        .unwrap_or(backoff + jitter);
                    tracing::warn!(agent = %agent.name, attempt = attempts, error = %e, wait_ms = wait.as_millis() as u64, "agent call failed; retrying");
                    tokio::time::sleep(wait).await;
                }
                result => return AgentCallOutcome { result, attempts },
            }
        }
    }
}
