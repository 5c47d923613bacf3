//! The HTTP API, as one axum router: served by Lambda through lambda_http
//! (API Gateway HTTP API), and on a loopback port by the CLI. The contract is
//! `docs/openapi.json`; a test checks the two agree.
//!
//! Authentication is two axum extractors, so a handler cannot forget it:
//! [`AuthenticatedAgent`] (the agent names itself in `X-Casebridge-Agent` and
//! proves it with its bearer token or an HMAC signature, v2 binding method,
//! path, direction and body — see `casebridge::agent_auth`) and
//! [`Representative`] (in AWS, API Gateway's JWT authorizer has checked the
//! token and the name comes from its claims; locally, a static bearer token).
//! An agent reads only cases routed to it, over REST or over MCP (`POST /mcp`,
//! [`mcp`]; docs/mcp.md). The representatives' browser console ([`console`];
//! docs/console.md) is served at `/` and calls the representative routes.
//!
//! Errors are JSON `{"code": "...", "message": "..."}` with a stable code; a
//! refused request changes nothing.

use std::sync::Arc;

pub mod console;
pub mod mcp;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use casebridge::agent_auth::{
    credentials, same_secret, verify, AgentCredentials, CredentialError, Direction, PresentedSignature, RequestFacts, AGENT_HEADER,
    KEY_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
use casebridge::config::Config;
use casebridge::context::case_context;
use casebridge::ids::CaseId;
use casebridge::mail::MailSender;
use casebridge::model::{parse_public_turn_id, Record, RecordKind};
use casebridge::pipeline::agent::{accept_callback, CallbackOutcome};
use casebridge::pipeline::outcome::DraftSendOutcome;
use casebridge::pipeline::representative::{
    discard_draft_because, hand_back, send_back_draft, send_draft_by, take_over, ActionOutcome, MAX_NOTE_CHARS,
};
use casebridge::pipeline::{Clock, PipelineError, StepEnv};
use casebridge::secrets::SecretResolver;
use casebridge::store::{Queue, Store};
use serde::Serialize;
use serde_json::{json, Value};

/// Every route, as documented in docs/openapi.json (checked by a test).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/health"),
    ("GET", "/cases/{caseId}/context"),
    ("POST", "/turns/{turnId}/answer"),
    ("GET", "/drafts"),
    ("POST", "/cases/{caseId}/drafts/{draftId}/send"),
    ("POST", "/cases/{caseId}/drafts/{draftId}/discard"),
    ("POST", "/cases/{caseId}/drafts/{draftId}/send-back"),
    ("GET", "/escalations"),
    ("POST", "/cases/{caseId}/take-over"),
    ("POST", "/cases/{caseId}/hand-back"),
    ("GET", "/cases/{caseId}/timeline"),
    ("GET", "/cases/{caseId}"),
    ("GET", "/metrics/summary"),
    ("POST", "/mcp"),
];

/// Cases a summary looks at, at most: the request path stays bounded.
const SUMMARY_CASE_LIMIT: usize = 100_000;

pub const REPRESENTATIVE_HEADER: &str = "x-casebridge-representative";
/// Largest request body accepted (a draft edit, an agent answer).
pub(crate) const MAX_BODY: usize = 256 * 1024;

/// How representatives are authenticated.
#[derive(Debug, Clone)]
pub enum RepresentativeAuth {
    /// `Authorization: Bearer <token>`; the name comes from `X-Casebridge-Representative`.
    StaticToken(String),
    /// API Gateway's JWT authorizer has checked the token; the name is its `email` or `sub` claim.
    ApiGatewayJwt,
}

pub struct ApiState<S, M> {
    pub store: S,
    pub mailer: M,
    pub config: Config,
    pub secrets: Arc<dyn SecretResolver>,
    pub clock: Arc<dyn Clock>,
    pub representatives: RepresentativeAuth,
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
    fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    fn bad_case_id() -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_case_id", "not a case id")
    }
    fn store(e: PipelineError) -> ApiError {
        match e {
            PipelineError::CaseNotFound(id) => ApiError::new(StatusCode::NOT_FOUND, "case_not_found", format!("case {id} does not exist")),
            PipelineError::RecordNotFound(what) => ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("{what} does not exist")),
            other => {
                tracing::error!(error = %other, "request failed");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the case store or mail service did not answer; retry",
                )
            }
        }
    }
}

impl From<casebridge::store::StoreError> for ApiError {
    fn from(e: casebridge::store::StoreError) -> Self {
        ApiError::store(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self)).into_response()
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn parse_case(id: &str) -> Result<CaseId, ApiError> {
    CaseId::parse(id).ok_or_else(ApiError::bad_case_id)
}

/// `0000000002.question` ↔ `DRAFT#0000000002#question`.
pub fn draft_key(public_id: &str) -> Option<String> {
    let (sequence, kind) = public_id.split_once('.')?;
    let ok = sequence.len() == 10
        && sequence.bytes().all(|b| b.is_ascii_digit())
        && !kind.is_empty()
        && kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    ok.then(|| format!("DRAFT#{sequence}#{kind}"))
}

pub fn public_draft_id(key: &str) -> String {
    key.trim_start_matches("DRAFT#").replacen('#', ".", 1)
}

fn bearer(headers: &HeaderMap) -> &str {
    header(headers, "authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .trim()
}

/// The request body, read up to [`MAX_BODY`].
pub struct LimitedBody(pub Bytes);

impl LimitedBody {
    async fn read(body: axum::body::Body) -> Result<Bytes, ApiError> {
        axum::body::to_bytes(body, MAX_BODY)
            .await
            .map_err(|_| ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", "the body is too large"))
    }
}

impl<S: Send + Sync> FromRequest<S> for LimitedBody {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, _: &S) -> Result<Self, ApiError> {
        LimitedBody::read(request.into_body()).await.map(LimitedBody)
    }
}

/// An agent that proved it is the agent it names, with the body it signed.
pub struct AuthenticatedAgent {
    pub name: String,
    pub body: Bytes,
}

impl AuthenticatedAgent {
    /// Checks that the request (its head and the body read from it) comes from
    /// the agent it names; the agent's name and the body otherwise.
    pub async fn authenticate<S: Store + 'static, M: MailSender + 'static>(
        state: &ApiState<S, M>,
        parts: &Parts,
        body: Bytes,
    ) -> Result<AuthenticatedAgent, ApiError> {
        let headers = &parts.headers;
        let name = header(headers, AGENT_HEADER).ok_or_else(|| ApiError::unauthorized("name the agent in X-Casebridge-Agent"))?;
        let agent = state.config.agent(name).ok_or_else(|| ApiError::unauthorized("unknown agent"))?;
        let credentials = credentials(state.secrets.as_ref(), agent).await.map_err(|e| {
            // The reason is for operators, not for the caller.
            tracing::error!(error = %e, "agent credentials unavailable");
            match e {
                CredentialError::TooShort { .. } => ApiError::unauthorized("the agent's credentials are not configured"),
                CredentialError::Unavailable { .. } => ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "secret_unavailable",
                    "the agent's secret could not be read",
                ),
            }
        })?;
        match credentials {
            AgentCredentials::None => {}
            AgentCredentials::Bearer(token) => {
                if !same_secret(bearer(headers).as_bytes(), token.0.as_bytes()) {
                    return Err(ApiError::unauthorized("the bearer token is not valid"));
                }
            }
            AgentCredentials::Hmac { scheme, keys } => {
                let path_and_query = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
                let facts = RequestFacts {
                    direction: Direction::ToCasebridge,
                    agent: &agent.name,
                    method: parts.method.as_str(),
                    path_and_query,
                    body: &body,
                };
                let presented = PresentedSignature {
                    timestamp: header(headers, TIMESTAMP_HEADER),
                    signature: header(headers, SIGNATURE_HEADER),
                    key_id: header(headers, KEY_ID_HEADER),
                };
                verify(scheme, &keys, presented, &facts, state.clock.now().timestamp())
                    .map_err(|e| ApiError::unauthorized(format!("signature refused: {e}")))?;
            }
        }
        Ok(AuthenticatedAgent {
            name: agent.name.clone(),
            body,
        })
    }
}

impl<S: Store + 'static, M: MailSender + 'static> FromRequest<Arc<ApiState<S, M>>> for AuthenticatedAgent {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &Arc<ApiState<S, M>>) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        let body = LimitedBody::read(body).await?;
        AuthenticatedAgent::authenticate(state, &parts, body).await
    }
}

/// The representative making the request, by name; 401 otherwise.
pub struct Representative(pub String);

impl<S: Send + Sync, M: Send + Sync> FromRequestParts<Arc<ApiState<S, M>>> for Representative {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<ApiState<S, M>>) -> Result<Self, ApiError> {
        let headers = &parts.headers;
        match &state.representatives {
            RepresentativeAuth::StaticToken(token) => {
                if !same_secret(bearer(headers).as_bytes(), token.as_bytes()) {
                    return Err(ApiError::unauthorized("a valid representative token is required"));
                }
                Ok(Representative(
                    header(headers, REPRESENTATIVE_HEADER)
                        .filter(|n| !n.trim().is_empty())
                        .unwrap_or("representative")
                        .chars()
                        .take(100)
                        .collect(),
                ))
            }
            RepresentativeAuth::ApiGatewayJwt => {
                let claims = match parts.extensions.get::<lambda_http::request::RequestContext>() {
                    Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) => {
                        ctx.authorizer.as_ref().and_then(|a| a.jwt.as_ref()).map(|j| &j.claims)
                    }
                    _ => None,
                };
                let claims = claims.ok_or_else(|| ApiError::unauthorized("no verified token (the JWT authorizer did not run)"))?;
                claims
                    .get("email")
                    .or_else(|| claims.get("sub"))
                    .cloned()
                    .map(Representative)
                    .ok_or_else(|| ApiError::unauthorized("the token names nobody"))
            }
        }
    }
}

type Shared<S, M> = State<Arc<ApiState<S, M>>>;

async fn context<S: Store + 'static, M: MailSender + 'static>(
    State(state): Shared<S, M>,
    Path(case_id): Path<String>,
    AuthenticatedAgent { name: agent, .. }: AuthenticatedAgent,
) -> Result<Response, ApiError> {
    let id = parse_case(&case_id)?;
    let (case, context) = case_context(&state.store, &id).await.map_err(ApiError::store)?;
    if case.agent.as_deref() != Some(agent.as_str()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_routed_to_agent",
            "this case is not routed to your agent",
        ));
    }
    Ok(Json(context).into_response())
}

async fn callback<S: Store + 'static, M: MailSender + 'static>(
    State(state): Shared<S, M>,
    Path(turn_id): Path<String>,
    AuthenticatedAgent { name: agent, body }: AuthenticatedAgent,
) -> Result<Response, ApiError> {
    let (case_id, turn_key) =
        parse_public_turn_id(&turn_id).ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "unknown_turn", "not a turn id"))?;
    let env = StepEnv::new(&state.config, state.clock.as_ref());
    let outcome = accept_callback(env, &state.store, &case_id, &turn_key, &agent, &body)
        .await
        .map_err(ApiError::store)?;
    tracing::info!(case = %case_id, turn = %turn_key, agent = %agent, outcome = ?outcome, "async answer received");
    match outcome {
        CallbackOutcome::Accepted => Ok(Json(json!({"status": "accepted"})).into_response()),
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

fn action_response(outcome: ActionOutcome) -> Result<Response, ApiError> {
    match outcome {
        ActionOutcome::Done { detail } => Ok(Json(json!({"status": "done", "detail": detail})).into_response()),
        ActionOutcome::Refused { reason } => Err(ApiError::new(StatusCode::CONFLICT, "not_applicable", reason)),
    }
}

async fn list_drafts<S: Store + 'static, M: MailSender + 'static>(
    State(state): Shared<S, M>,
    _: Representative,
) -> Result<Response, ApiError> {
    let queue = state.store.list_queue(Queue::Drafts, 500).await.map_err(ApiError::from)?;
    let mut drafts = Vec::new();
    for item in queue {
        if let Some(draft) = state
            .store
            .get_record(&item.case_id, &item.key)
            .await
            .map_err(ApiError::from)?
            .and_then(Record::into_draft)
        {
            // The case's intent for the console's queue: one more read per draft.
            let intent = state
                .store
                .get_case(&item.case_id)
                .await
                .map_err(ApiError::from)?
                .and_then(|c| c.intent);
            drafts.push(json!({
                "caseId": item.case_id,
                "draftId": public_draft_id(&draft.id),
                "kind": draft.kind.as_str(),
                "to": draft.to,
                "subject": draft.subject,
                "body": draft.body,
                "reason": draft.reason,
                "createdAt": draft.created_at,
                "intent": intent,
            }));
        }
    }
    Ok(Json(json!({ "drafts": drafts })).into_response())
}

async fn send_draft_route<S: Store + 'static, M: MailSender + 'static>(
    State(state): Shared<S, M>,
    Path((case_id, draft_id)): Path<(String, String)>,
    Representative(who): Representative,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let case_id = parse_case(&case_id)?;
    let key = draft_key(&draft_id).ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "bad_draft_id", "not a draft id"))?;
    let edited = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let value: Value = serde_json::from_slice(&body)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_body", format!("the body is not JSON: {e}")))?;
        match value.get("body") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) if !text.trim().is_empty() => Some(text.clone()),
            Some(_) => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_body",
                    "body must be a non-blank string",
                ))
            }
        }
    };
    let env = StepEnv::new(&state.config, state.clock.as_ref());
    match send_draft_by(env, &state.store, &state.mailer, &case_id, &key, edited, &who)
        .await
        .map_err(ApiError::store)?
    {
        DraftSendOutcome::Sent { outbound } => {
            tracing::info!(case = %case_id, draft = %key, representative = %who, "draft sent");
            Ok(Json(json!({"status": "sent", "outboundId": outbound})).into_response())
        }
        DraftSendOutcome::AlreadyHandled => Err(ApiError::new(
            StatusCode::CONFLICT,
            "draft_not_pending",
            "the draft was already sent or discarded",
        )),
    }
}

async fn discard_draft_route<S: Store + 'static, M: MailSender + 'static>(
    State(state): Shared<S, M>,
    Path((case_id, draft_id)): Path<(String, String)>,
    Representative(who): Representative,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let case_id = parse_case(&case_id)?;
    let key = draft_key(&draft_id).ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "bad_draft_id", "not a draft id"))?;
    let reason = discard_reason(&body)?;
    let env = StepEnv::new(&state.config, state.clock.as_ref());
    action_response(
        discard_draft_because(env, &state.store, &case_id, &key, &who, reason.as_deref())
            .await
            .map_err(ApiError::store)?,
    )
}

/// `{"note": "..."}`: the draft goes back to the agent, which redrafts with the note.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SendBackBody {
    note: String,
}

async fn send_back_draft_route<S: Store + 'static, M: MailSender + 'static>(
    State(state): Shared<S, M>,
    Path((case_id, draft_id)): Path<(String, String)>,
    Representative(who): Representative,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let case_id = parse_case(&case_id)?;
    let key = draft_key(&draft_id).ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "bad_draft_id", "not a draft id"))?;
    let body: SendBackBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_body",
            format!("the body must be {{\"note\": \"...\"}}: {e}"),
        )
    })?;
    if body.note.chars().count() > MAX_NOTE_CHARS {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_body",
            format!("note must be at most {MAX_NOTE_CHARS} characters"),
        ));
    }
    let env = StepEnv::new(&state.config, state.clock.as_ref());
    action_response(
        send_back_draft(env, &state.store, &case_id, &key, &who, &body.note)
            .await
            .map_err(ApiError::store)?,
    )
}

/// Longest discard reason kept on the timeline, in characters.
const MAX_REASON_CHARS: usize = 500;

/// The optional `{"reason": "..."}` of a discard; an empty body gives none.
fn discard_reason(body: &[u8]) -> Result<Option<String>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_body", format!("the body is not JSON: {e}")))?;
    match value.get("reason") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.trim().is_empty() => Ok(None),
        // One line on the timeline: runs of whitespace (newlines too) become one space.
        Some(Value::String(text)) if text.chars().count() <= MAX_REASON_CHARS => {
            Ok(Some(text.split_whitespace().collect::<Vec<_>>().join(" ")))
        }
        Some(Value::String(_)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_body",
            format!("reason must be at most {MAX_REASON_CHARS} characters"),
        )),
        Some(_) => Err(ApiError::new(StatusCode::BAD_REQUEST, "bad_body", "reason must be a string")),
    }
}

async fn escalations<S: Store + 'static, M: MailSender + 'static>(
    State(state): Shared<S, M>,
    _: Representative,
) -> Result<Response, ApiError> {
    let queue = state.store.list_queue(Queue::Escalated, 500).await.map_err(ApiError::from)?;
    let mut cases = Vec::new();
    for item in queue {
        if let Some(case) = state.store.get_case(&item.case_id).await.map_err(ApiError::from)? {
            cases.push(json!({
                "caseId": case.id,
                "subject": case.subject,
                "customer": case.customer,
                "queue": case.escalation.as_ref().map(|e| e.queue.clone()),
                "reason": case.escalation.as_ref().map(|e| e.reason.clone()),
                "since": item.since,
                "intent": case.intent,
                "agent": case.agent,
            }));
        }
    }
    Ok(Json(json!({ "cases": cases })).into_response())
}

/// A representative's action on a whole case.
#[derive(Clone, Copy)]
enum CaseAction {
    TakeOver,
    HandBack,
}

async fn case_action<S: Store + 'static, M: MailSender + 'static>(
    state: &ApiState<S, M>,
    case_id: &str,
    who: &str,
    action: CaseAction,
) -> Result<Response, ApiError> {
    let case_id = parse_case(case_id)?;
    let env = StepEnv::new(&state.config, state.clock.as_ref());
    let outcome = match action {
        CaseAction::TakeOver => take_over(env, &state.store, &case_id, who).await,
        CaseAction::HandBack => hand_back(env, &state.store, &case_id, who).await,
    };
    action_response(outcome.map_err(ApiError::store)?)
}

async fn take_over_route<S: Store + 'static, M: MailSender + 'static>(
    State(state): Shared<S, M>,
    Path(case_id): Path<String>,
    Representative(who): Representative,
) -> Result<Response, ApiError> {
    case_action(&state, &case_id, &who, CaseAction::TakeOver).await
}

async fn hand_back_route<S: Store + 'static, M: MailSender + 'static>(
    State(state): Shared<S, M>,
    Path(case_id): Path<String>,
    Representative(who): Representative,
) -> Result<Response, ApiError> {
    case_action(&state, &case_id, &who, CaseAction::HandBack).await
}

async fn timeline<S: Store + 'static, M: MailSender + 'static>(
    State(state): Shared<S, M>,
    Path(case_id): Path<String>,
    _: Representative,
) -> Result<Response, ApiError> {
    let case_id = parse_case(&case_id)?;
    let case = state.store.get_case(&case_id).await.map_err(ApiError::from)?;
    let case = case.ok_or_else(|| ApiError::store(PipelineError::CaseNotFound(case_id.clone())))?;
    let events: Vec<Value> = state
        .store
        .list_records(&case_id, RecordKind::Event)
        .await
        .map_err(ApiError::from)?
        .into_iter()
        .filter_map(Record::into_event)
        .map(|e| json!({"at": e.at, "kind": e.kind, "detail": e.detail}))
        .collect();
    Ok(
        Json(json!({"caseId": case.id, "status": case.status, "subject": case.subject, "customer": case.customer, "events": events}))
            .into_response(),
    )
}

/// The case as a representative reads it: the agent's context (thread with
/// new and full text, turns with what they answered, intent and scores) plus
/// the agent, the workflow, the escalation and every draft of the case.
async fn case_view<S: Store + 'static, M: MailSender + 'static>(
    State(state): Shared<S, M>,
    Path(case_id): Path<String>,
    _: Representative,
) -> Result<Response, ApiError> {
    let case_id = parse_case(&case_id)?;
    let (case, context) = case_context(&state.store, &case_id).await.map_err(ApiError::store)?;
    let drafts: Vec<Value> = state
        .store
        .list_records(&case_id, RecordKind::Draft)
        .await
        .map_err(ApiError::from)?
        .into_iter()
        .filter_map(Record::into_draft)
        .map(|d| {
            json!({
                "draftId": public_draft_id(&d.id),
                "kind": d.kind.as_str(),
                "status": d.status,
                "to": d.to,
                "subject": d.subject,
                "body": d.body,
                "reason": d.reason,
                "createdAt": d.created_at,
                "edited": d.edited,
            })
        })
        .collect();
    let mut view = serde_json::to_value(context).map_err(|e| ApiError::store(PipelineError::Commit(e.to_string())))?;
    if let Value::Object(fields) = &mut view {
        fields.insert("agent".into(), json!(case.agent));
        fields.insert("workflow".into(), json!(case.workflow));
        fields.insert(
            "escalation".into(),
            json!(case
                .escalation
                .as_ref()
                .map(|e| json!({"queue": e.queue, "reason": e.reason, "at": e.at}))),
        );
        fields.insert("drafts".into(), Value::Array(drafts));
    }
    Ok(Json(view).into_response())
}

#[derive(serde::Deserialize)]
struct SummaryQuery {
    since: String,
    until: String,
    #[serde(default)]
    intent: Option<String>,
}

/// The support lead's numbers. On a store that lists cases cheaply (the
/// embedded one): `casebridge::report` over the cases created in the
/// period, as `casebridge report --format json` prints it. On DynamoDB, where
/// that would scan the table on a request path: the per-day counters of the
/// period's days (`casebridge::daily`, `"source": "daily_counters"`), one
/// query per day and shard, at most `MAX_COUNTER_DAYS` days.
async fn metrics_summary<S: Store + 'static, M: MailSender + 'static>(
    State(state): Shared<S, M>,
    _: Representative,
    query: Result<axum::extract::Query<SummaryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let axum::extract::Query(query) =
        query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_query", format!("since and until are required: {e}")))?;
    let bad = |e: String| ApiError::new(StatusCode::BAD_REQUEST, "bad_query", e);
    let since = casebridge::report::parse_since(&query.since).map_err(bad)?;
    let until = casebridge::report::parse_until(&query.until).map_err(bad)?;
    if since >= until {
        return Err(bad("since must be before until".into()));
    }
    let period = casebridge::report::Period { since, until };
    if !state.store.lists_cases_cheaply() {
        let (first, last) = period.days();
        casebridge::store::check_counter_period(first, last).map_err(|e| bad(e.to_string()))?;
        let counts = state.store.daily_counts(first, last).await.map_err(ApiError::from)?;
        let summary = casebridge::daily::summarize(&counts, first, last, query.intent.as_deref());
        return Ok(Json(summary).into_response());
    }
    let facts = casebridge::report::load_facts(&state.store, since, until, SUMMARY_CASE_LIMIT)
        .await
        .map_err(ApiError::from)?;
    let report = casebridge::report::aggregate_with(&facts, &period, query.intent.as_deref(), &state.config.report);
    Ok(Json(report).into_response())
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no_such_route", "no such route")
}

pub fn router<S: Store + 'static, M: MailSender + 'static>(state: Arc<ApiState<S, M>>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/cases/{case_id}/context", get(context::<S, M>))
        .route("/turns/{turn_id}/answer", post(callback::<S, M>))
        .route("/drafts", get(list_drafts::<S, M>))
        .route("/cases/{case_id}/drafts/{draft_id}/send", post(send_draft_route::<S, M>))
        .route("/cases/{case_id}/drafts/{draft_id}/discard", post(discard_draft_route::<S, M>))
        .route("/cases/{case_id}/drafts/{draft_id}/send-back", post(send_back_draft_route::<S, M>))
        .route("/escalations", get(escalations::<S, M>))
        .route("/cases/{case_id}/take-over", post(take_over_route::<S, M>))
        .route("/cases/{case_id}/hand-back", post(hand_back_route::<S, M>))
        .route("/cases/{case_id}/timeline", get(timeline::<S, M>))
        .route("/cases/{case_id}", get(case_view::<S, M>))
        .route("/metrics/summary", get(metrics_summary::<S, M>))
        .route("/mcp", post(mcp::handle::<S, M>))
        .merge(console::router())
        .fallback(not_found)
        .with_state(state)
}

/// Serves the API on `addr` (port 0 picks one) in the background, for local
/// runs and tests; returns the bound address.
pub async fn spawn_local<S: Store + 'static, M: MailSender + 'static>(
    addr: std::net::SocketAddr,
    state: Arc<ApiState<S, M>>,
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
