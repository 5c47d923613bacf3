//! The HTTP API as an axum router: served by Lambda through lambda_http, and
//! on a loopback port by the CLI. Routes so far:
//!
//! - `GET /health`
//! - `GET /cases/{caseId}/context` — what an agent needs about a case
//!   (bearer token).
//! - `POST /turns/{turnId}/answer` — an async agent's answer for a turn it
//!   accepted with 202. The agent names itself in `X-Casebridge-Agent` and
//!   authenticates as casebridge authenticates to it (bearer token, or HMAC
//!   signature over the body). Idempotent: a replay finds the turn closed.
//!
//! Errors are JSON: `{"code": "...", "message": "..."}`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::routing::post;
use axum::{Json, Router};
use casebridge::agent_auth::{same_secret, verify, AGENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use casebridge::config::{AgentAuth, Config};
use casebridge::context::case_context;
use casebridge::ids::CaseId;
use casebridge::model::parse_public_turn_id;
use casebridge::pipeline::agent::{accept_callback, CallbackOutcome};
use casebridge::pipeline::PipelineError;
use casebridge::pipeline::{Clock, StepEnv};
use casebridge::secrets::SecretResolver;
use casebridge::store::Store;
use serde::Serialize;

pub struct ApiState<S> {
    pub store: S,
    /// Token agents present as `Authorization: Bearer …` for case context.
    pub agent_token: String,
    /// Agents (and their auth) for the callback route.
    pub config: Config,
    pub secrets: Arc<dyn SecretResolver>,
    pub clock: Arc<dyn Clock>,
}

#[derive(Debug, Serialize)]
pub struct ApiError {
    pub code: &'static str,
    pub message: String,
    #[serde(skip)]
    status: StatusCode,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            status,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self)).into_response()
    }
}

fn authorize_agent(headers: &HeaderMap, token: &str) -> Result<(), ApiError> {
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "a bearer token is required"))?;
    if token.is_empty() || !same_secret(presented.trim().as_bytes(), token.as_bytes()) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the bearer token is not valid",
        ));
    }
    Ok(())
}

async fn context<S: Store>(
    State(state): State<Arc<ApiState<S>>>,
    headers: HeaderMap,
    Path(case_id): Path<String>,
) -> Result<Response, ApiError> {
    authorize_agent(&headers, &state.agent_token)?;
    let id = CaseId::parse(&case_id).ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "bad_case_id", "not a case id"))?;
    match case_context(&state.store, &id).await {
        Ok((_, context)) => Ok(Json(context).into_response()),
        Err(PipelineError::CaseNotFound(_)) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "case_not_found",
            format!("case {id} does not exist"),
        )),
        Err(e) => {
            tracing::error!(case = %id, error = %e, "case context failed");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the case store did not answer; retry",
            ))
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Checks that the request comes from the agent it names; returns that name.
async fn authenticate_agent<S>(state: &ApiState<S>, headers: &HeaderMap, body: &[u8]) -> Result<String, ApiError> {
    let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
    let name = header(headers, AGENT_HEADER).ok_or_else(|| unauthorized("name the agent in X-Casebridge-Agent"))?;
    let agent = state.config.agent(name).ok_or_else(|| unauthorized("unknown agent"))?;
    let secret = match agent.auth.secret() {
        Some(reference) => Some(state.secrets.resolve(reference).await.map_err(|e| {
            tracing::error!(agent = %agent.name, error = %e, "agent secret unavailable");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "secret_unavailable",
                "the agent's secret could not be read",
            )
        })?),
        None => None,
    };
    match (&agent.auth, secret) {
        (AgentAuth::None, _) => {}
        (AgentAuth::Bearer { .. }, Some(token)) => {
            let presented = header(headers, "authorization")
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            if !same_secret(presented.trim().as_bytes(), token.as_bytes()) {
                return Err(unauthorized("the bearer token is not valid"));
            }
        }
        (AgentAuth::Hmac { .. }, Some(key)) => {
            let now = state.clock.now().timestamp();
            verify(
                key.as_bytes(),
                header(headers, TIMESTAMP_HEADER),
                header(headers, SIGNATURE_HEADER),
                body,
                now,
            )
            .map_err(|e| unauthorized(&format!("signature refused: {e}")))?;
        }
        _ => return Err(unauthorized("the agent's credentials are not configured")),
    }
    Ok(agent.name.clone())
}

async fn callback<S: Store>(
    State(state): State<Arc<ApiState<S>>>,
    headers: HeaderMap,
    Path(turn_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let agent = authenticate_agent(&state, &headers, &body).await?;
    let (case_id, turn_key) =
        parse_public_turn_id(&turn_id).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "unknown_turn", "not a turn id"))?;
    let env = StepEnv::new(&state.config, state.clock.as_ref());
    let outcome = accept_callback(env, &state.store, &case_id, &turn_key, &agent, &body)
        .await
        .map_err(|e| {
            tracing::error!(case = %case_id, turn = %turn_key, error = %e, "callback failed");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                "the case store did not answer; retry",
            )
        })?;
    tracing::info!(case = %case_id, turn = %turn_key, agent = %agent, outcome = ?outcome, "async answer received");
    match outcome {
        CallbackOutcome::Accepted => Ok((StatusCode::OK, Json(serde_json::json!({"status": "accepted"}))).into_response()),
        CallbackOutcome::Invalid(reason) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_answer",
            format!("{reason}; the case is escalated"),
        )),
        CallbackOutcome::TurnClosed => Err(ApiError::new(
            StatusCode::CONFLICT,
            "turn_closed",
            "the turn is not waiting for an answer; nothing changed",
        )),
        CallbackOutcome::WrongAgent => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong_agent",
            "the turn belongs to another agent",
        )),
        CallbackOutcome::UnknownTurn => Err(ApiError::new(StatusCode::NOT_FOUND, "unknown_turn", "no such turn")),
    }
}

async fn health() -> &'static str {
    "ok"
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no_such_route", "no such route")
}

pub fn router<S: Store + 'static>(state: Arc<ApiState<S>>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/cases/{case_id}/context", get(context::<S>))
        .route("/turns/{turn_id}/answer", post(callback::<S>))
        .fallback(not_found)
        .with_state(state)
}

/// Serves the API on `addr` (port 0 picks one) in the background, for local
/// runs and tests; returns the bound address.
pub async fn spawn_local<S: Store + 'static>(addr: std::net::SocketAddr, state: Arc<ApiState<S>>) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(state)).await {
            tracing::error!(error = %e, "local API stopped");
        }
    });
    Ok(bound)
}
