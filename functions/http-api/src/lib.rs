//! The HTTP API as an axum router: served by Lambda through lambda_http, and
//! on a loopback port by the CLI. Routes so far:
//!
//! - `GET /health`
//! - `GET /cases/{caseId}/context` — what an agent needs about a case
//!   (bearer token). Errors are JSON: `{"code": "...", "message": "..."}`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use casebridge::context::case_context;
use casebridge::ids::CaseId;
use casebridge::pipeline::PipelineError;
use casebridge::store::Store;
use serde::Serialize;

pub struct ApiState<S> {
    pub store: S,
    /// Token agents present as `Authorization: Bearer …`.
    pub agent_token: String,
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

/// Compares in time independent of where the first difference is.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorize_agent(headers: &HeaderMap, token: &str) -> Result<(), ApiError> {
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a bearer token is required",
            )
        })?;
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
    let id = CaseId::parse(&case_id)
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "bad_case_id", "not a case id"))?;
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
        .fallback(not_found)
        .with_state(state)
}

/// Serves the API on `addr` (port 0 picks one) in the background, for local
/// runs and tests; returns the bound address.
pub async fn spawn_local<S: Store + 'static>(
    addr: std::net::SocketAddr,
    state: Arc<ApiState<S>>,
) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(state)).await {
            tracing::error!(error = %e, "local API stopped");
        }
    });
    Ok(bound)
}
