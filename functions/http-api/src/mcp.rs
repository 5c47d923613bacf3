//! Case context over the Model Context Protocol: `POST /mcp`, Streamable
//! HTTP, served by the same router as the REST API (docs/mcp.md).
//!
//! The agent is authenticated exactly as on the REST routes, before any MCP
//! handling: the request body (the JSON-RPC message) is read once, checked
//! with [`AuthenticatedAgent::authenticate`] (bearer token, or HMAC over
//! method, path and that body), and only then handed to rmcp. The agent's name
//! is a field of the tool server built for that request, so no tool can run
//! without it.
//!
//! Every tool is read-only: it reads [`case_context`], the same view the REST
//! `GET /cases/{caseId}/context` returns, and refuses a case that is not
//! routed to the calling agent without saying anything about it.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use casebridge::context::{case_context, CaseContext, ContextMail};
use casebridge::ids::CaseId;
use casebridge::mail::MailSender;
use casebridge::model::Direction;
use casebridge::pipeline::PipelineError;
use casebridge::store::Store;
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::schemars::JsonSchema;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{tool, tool_handler, tool_router, ServerHandler};
use serde::{Deserialize, Serialize};

use crate::{ApiState, AuthenticatedAgent, LimitedBody};

/// The tools, by name, as `tools/list` gives them.
pub const TOOLS: &[&str] = &["get_case", "get_thread", "get_attachment", "get_previous_turns"];

/// Mails per `get_thread` page when the caller names no limit.
pub const DEFAULT_THREAD_LIMIT: u32 = 20;
/// Most mails per `get_thread` page.
pub const MAX_THREAD_LIMIT: u32 = 50;

/// `POST /mcp`: authenticate the agent, then let rmcp answer the JSON-RPC message.
pub(crate) async fn handle<S: Store + 'static, M: MailSender + 'static>(
    State(state): State<Arc<ApiState<S, M>>>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = match LimitedBody::read(body).await {
        Ok(body) => body,
        Err(e) => return e.into_response(),
    };
    let agent = match AuthenticatedAgent::authenticate(&state, &parts, body).await {
        Ok(agent) => agent,
        Err(e) => return e.into_response(),
    };
    let AuthenticatedAgent { name, body } = agent;
    let tools = CaseTools { state, agent: name };
    // Stateless, with plain JSON answers: every POST carries one JSON-RPC
    // message and gets its answer in the HTTP response. In Lambda behind API
    // Gateway no instance outlives a request, so a session or an SSE stream
    // held open between requests could not be kept; in this mode rmcp answers
    // GET and DELETE with 405, which the protocol allows.
    //
    // Host checking guards unauthenticated servers on loopback against DNS
    // rebinding; here every request already proved its agent's credentials
    // (a header a browser does not add by itself), and the public host name
    // is API Gateway's, so the list is not used.
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_sse_retry(None)
        .disable_allowed_hosts()
        .with_max_request_body_bytes(crate::MAX_BODY);
    let service = StreamableHttpService::new(move || Ok(tools.clone()), Arc::new(NeverSessionManager::default()), config);
    let response = service.handle(axum::http::Request::from_parts(parts, Body::from(body))).await;
    response.map(Body::new)
}

/// The tool server of one request: the API's state and the agent that proved who it is.
pub struct CaseTools<S, M> {
    state: Arc<ApiState<S, M>>,
    agent: String,
}

impl<S, M> Clone for CaseTools<S, M> {
    fn clone(&self) -> Self {
        CaseTools {
            state: self.state.clone(),
            agent: self.agent.clone(),
        }
    }
}

// ---- inputs ----------------------------------------------------------------

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(crate = "rmcp::schemars")]
pub struct CaseInput {
    /// The case id, e.g. `CB-7K2M9QX4`.
    pub case_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(crate = "rmcp::schemars")]
pub struct ThreadInput {
    /// The case id, e.g. `CB-7K2M9QX4`.
    pub case_id: String,
    /// Where to go on: the `nextCursor` of the previous page; absent for the first page.
    #[serde(default)]
    pub cursor: Option<String>,
    /// Mails on this page, 1 to 50; 20 when absent.
    #[serde(default)]
    #[schemars(range(min = 1, max = 50))]
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(crate = "rmcp::schemars")]
pub struct AttachmentInput {
    /// The case id, e.g. `CB-7K2M9QX4`.
    pub case_id: String,
    /// The mail's `index` in the thread, as `get_thread` lists it.
    pub mail_index: u32,
    /// The attachment's `index` within that mail.
    pub attachment_index: u32,
}

// ---- outputs ---------------------------------------------------------------

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(crate = "rmcp::schemars")]
pub struct CaseView {
    pub case_id: String,
    pub conversation_id: String,
    /// e.g. `agent_working`, `waiting_on_customer`, `escalated`, `resolved`.
    pub status: String,
    pub customer: CustomerView,
    pub subject: String,
    /// The intent the case was routed by.
    pub intent: Option<String>,
    pub intent_confidence: Option<f64>,
    /// The classifier's top scores, best first.
    pub intent_scores: Vec<IntentScoreView>,
    /// A second request in the first mail, besides the routed intent.
    pub second_intent: Option<IntentScoreView>,
    /// Drafts a representative sent back to the agent, oldest first: who,
    /// which draft and what to change. The latest is what to address now.
    pub representative_notes: Vec<NoteView>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(crate = "rmcp::schemars")]
pub struct NoteView {
    /// RFC 3339.
    pub at: String,
    pub text: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(crate = "rmcp::schemars")]
pub struct CustomerView {
    pub email: String,
    pub name: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(crate = "rmcp::schemars")]
pub struct IntentScoreView {
    pub intent: String,
    pub confidence: f64,
    /// True when the mail also asks for this, besides the routed intent.
    pub second_request: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(crate = "rmcp::schemars")]
pub struct ThreadPage {
    pub case_id: String,
    /// Mails in the thread in all.
    pub total: u32,
    pub mails: Vec<MailView>,
    /// Pass it as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(crate = "rmcp::schemars")]
pub struct MailView {
    /// Position in the thread, oldest first, from 0.
    pub index: u32,
    /// `inbound` (from the customer) or `outbound` (sent to the customer).
    pub direction: String,
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    /// RFC 3339.
    pub at: String,
    /// What the sender wrote this time, without quoted history or signature.
    pub new_text: String,
    pub attachments: Vec<AttachmentView>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(crate = "rmcp::schemars")]
pub struct AttachmentView {
    /// Position within its mail, from 0.
    pub index: u32,
    pub name: Option<String>,
    pub content_type: String,
    pub size: u64,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(crate = "rmcp::schemars")]
pub struct AttachmentDetail {
    pub case_id: String,
    pub mail_index: u32,
    pub attachment_index: u32,
    pub name: Option<String>,
    pub content_type: String,
    pub size: u64,
    /// Whether the content is in `text`. Never, in this version: see `note`.
    pub served: bool,
    /// The content of a text attachment, when served.
    pub text: Option<String>,
    /// Where the mail's attachments were copied (`s3://…`), as the case
    /// store records it; absent when they were not copied.
    pub stored_at: Option<String>,
    /// Plainly, why the content is or is not here.
    pub note: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(crate = "rmcp::schemars")]
pub struct TurnsView {
    pub case_id: String,
    /// Oldest first.
    pub turns: Vec<TurnView>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(crate = "rmcp::schemars")]
pub struct TurnView {
    /// The public turn id (`<caseId>.<sequence>`).
    pub turn_id: String,
    /// RFC 3339.
    pub started_at: String,
    /// What the agent answered (`Question`, `Resolved`, …); absent when it failed or has not answered.
    pub response_type: Option<String>,
    /// The message the agent answered with, if any.
    pub message: Option<String>,
    /// Why the turn failed, when it did.
    pub error: Option<String>,
}

// ---- conversions -----------------------------------------------------------

fn score(s: &casebridge::intent::IntentScore) -> IntentScoreView {
    IntentScoreView {
        intent: s.intent.clone(),
        confidence: s.confidence,
        second_request: s.second_request,
    }
}

fn case_view(c: &CaseContext) -> CaseView {
    CaseView {
        case_id: c.case_id.clone(),
        conversation_id: c.conversation_id.clone(),
        status: c.status.clone(),
        customer: CustomerView {
            email: c.customer.email.clone(),
            name: c.customer.name.clone(),
        },
        subject: c.subject.clone(),
        intent: c.intent.clone(),
        intent_confidence: c.intent_confidence,
        intent_scores: c.intent_scores.iter().map(score).collect(),
        second_intent: c.second_intent.as_ref().map(score),
        representative_notes: c
            .representative_notes
            .iter()
            .map(|n| NoteView {
                at: n.at.to_rfc3339(),
                text: n.text.clone(),
            })
            .collect(),
    }
}

/// A count or position as the tools give it (the thread and its attachments
/// are far below this; a larger value saturates rather than wraps).
fn small(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn mail_view(index: usize, m: &ContextMail) -> MailView {
    MailView {
        index: small(index),
        direction: match m.direction {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
        .into(),
        from: m.from.clone(),
        to: m.to.clone(),
        subject: m.subject.clone(),
        at: m.at.to_rfc3339(),
        new_text: m.new_text.clone(),
        attachments: m
            .attachments
            .iter()
            .enumerate()
            .map(|(i, a)| AttachmentView {
                index: small(i),
                name: a.name.clone(),
                content_type: a.content_type.clone(),
                size: u64::try_from(a.size).unwrap_or(u64::MAX),
            })
            .collect(),
    }
}

/// One page of the thread: mails `[cursor, cursor + limit)`. The cursor is
/// the position of the first mail of the page, in decimal; anything else, or
/// a position past the end, is refused.
pub fn thread_page(context: &CaseContext, cursor: Option<&str>, limit: Option<u32>) -> Result<ThreadPage, String> {
    let limit = limit.unwrap_or(DEFAULT_THREAD_LIMIT);
    if !(1..=MAX_THREAD_LIMIT).contains(&limit) {
        return Err(format!("limit must be between 1 and {MAX_THREAD_LIMIT}, not {limit}"));
    }
    let total = context.thread.len();
    let start = match cursor {
        None => 0,
        Some(text) => {
            let text = text.trim();
            let ok = !text.is_empty() && text.len() <= 10 && text.bytes().all(|b| b.is_ascii_digit());
            let start = ok.then(|| text.parse::<usize>().ok()).flatten();
            match start {
                Some(start) if start <= total => start,
                Some(_) => return Err("cursor is past the end of the thread; start again without a cursor".into()),
                None => return Err("cursor is not one this server gave (pass nextCursor from the previous page)".into()),
            }
        }
    };
    let limit = usize::try_from(limit).map_err(|_| "limit is too large".to_string())?;
    let end = start.checked_add(limit).map_or(total, |end| end.min(total));
    let mails = context.thread[start..end]
        .iter()
        .enumerate()
        .map(|(offset, m)| mail_view(start.saturating_add(offset), m))
        .collect();
    Ok(ThreadPage {
        case_id: context.case_id.clone(),
        total: small(total),
        mails,
        next_cursor: (end < total).then(|| end.to_string()),
    })
}

fn attachment_detail(context: &CaseContext, mail_index: u32, attachment_index: u32) -> Result<AttachmentDetail, String> {
    let mail = usize::try_from(mail_index)
        .ok()
        .and_then(|i| context.thread.get(i))
        .ok_or_else(|| format!("the thread has no mail {mail_index} (it has {})", context.thread.len()))?;
    let attachment = usize::try_from(attachment_index)
        .ok()
        .and_then(|i| mail.attachments.get(i))
        .ok_or_else(|| {
            format!(
                "mail {mail_index} has no attachment {attachment_index} (it has {})",
                mail.attachments.len()
            )
        })?;
    let is_text = attachment.content_type.to_ascii_lowercase().starts_with("text/");
    let note = if is_text {
        "the content of attachments is not served by this server (the case store keeps only their description); \
         ask a representative, or read it where the deployment copied it (storedAt)"
    } else {
        "binary attachments are not served here; only their name, type and size are"
    };
    Ok(AttachmentDetail {
        case_id: context.case_id.clone(),
        mail_index,
        attachment_index,
        name: attachment.name.clone(),
        content_type: attachment.content_type.clone(),
        size: u64::try_from(attachment.size).unwrap_or(u64::MAX),
        served: false,
        text: None,
        stored_at: attachment.location.clone(),
        note: note.into(),
    })
}

fn turns_view(context: &CaseContext) -> TurnsView {
    TurnsView {
        case_id: context.case_id.clone(),
        turns: context
            .turns
            .iter()
            .map(|t| TurnView {
                turn_id: format!("{}.{}", context.case_id, t.turn_id.trim_start_matches("TURN#")),
                started_at: t.started_at.to_rfc3339(),
                response_type: t.response_type.clone(),
                message: t.message.clone(),
                error: t.error.clone(),
            })
            .collect(),
    }
}

// ---- the tools -------------------------------------------------------------

impl<S: Store + 'static, M: MailSender + 'static> CaseTools<S, M> {
    /// The context of a case routed to this agent; a tool error otherwise,
    /// which says nothing of a case routed elsewhere.
    async fn context(&self, tool: &'static str, case_id: &str) -> Result<CaseContext, String> {
        let id = CaseId::parse(case_id).ok_or_else(|| "caseId is not a case id (e.g. CB-7K2M9QX4)".to_string())?;
        let result = case_context(&self.state.store, &id).await;
        let refused = match result {
            Ok((case, context)) if case.agent.as_deref() == Some(self.agent.as_str()) => {
                tracing::info!(agent = %self.agent, case = %id, tool, "mcp tool call");
                return Ok(context);
            }
            Ok(_) => "this case is not routed to your agent".to_string(),
            Err(PipelineError::CaseNotFound(_)) => format!("case {id} does not exist"),
            Err(other) => {
                tracing::error!(agent = %self.agent, case = %id, tool, error = %other, "mcp tool call failed");
                return Err("the case store did not answer; retry".into());
            }
        };
        tracing::info!(agent = %self.agent, case = %id, tool, "mcp tool call refused");
        Err(refused)
    }
}

#[tool_router]
impl<S: Store + 'static, M: MailSender + 'static> CaseTools<S, M> {
    #[tool(
        description = "The case: status, customer address and name, subject, the intent it was routed by with the classifier's scores, and a second request in the first mail if any.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn get_case(&self, Parameters(input): Parameters<CaseInput>) -> Result<Json<CaseView>, String> {
        let context = self.context("get_case", &input.case_id).await?;
        Ok(Json(case_view(&context)))
    }

    #[tool(
        description = "The case's mails, oldest first (customer mail accepted on the case and mail sent to the customer), each with what its sender newly wrote and its attachments' names, types and sizes. Paged: limit 1 to 50 (default 20); pass nextCursor as cursor for the next page.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn get_thread(&self, Parameters(input): Parameters<ThreadInput>) -> Result<Json<ThreadPage>, String> {
        let context = self.context("get_thread", &input.case_id).await?;
        thread_page(&context, input.cursor.as_deref(), input.limit).map(Json)
    }

    #[tool(
        description = "One attachment of a mail in the thread, by the mail's and the attachment's index as get_thread lists them: its name, type and size, and whether its content is served (it is not, in this version: the note says why).",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn get_attachment(&self, Parameters(input): Parameters<AttachmentInput>) -> Result<Json<AttachmentDetail>, String> {
        let context = self.context("get_attachment", &input.case_id).await?;
        attachment_detail(&context, input.mail_index, input.attachment_index).map(Json)
    }

    #[tool(
        description = "The agent turns on the case so far, oldest first: when each started, what the agent answered (response type and message) or why the turn failed.",
        annotations(read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn get_previous_turns(&self, Parameters(input): Parameters<CaseInput>) -> Result<Json<TurnsView>, String> {
        let context = self.context("get_previous_turns", &input.case_id).await?;
        Ok(Json(turns_view(&context)))
    }
}

#[tool_handler(
    name = "casebridge",
    instructions = "Read-only context of the email support cases routed to your agent. Nothing here writes to a case or sends mail."
)]
impl<S: Store + 'static, M: MailSender + 'static> ServerHandler for CaseTools<S, M> {}
