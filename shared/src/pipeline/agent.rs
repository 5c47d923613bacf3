//! Agent step: one work item → one agent turn. The turn record is claimed
//! (create-only) before the HTTP call, so a duplicated or retried stream
//! record never calls the agent twice for the same mail. A claimed turn
//! carries a due time: if the function dies mid-call, or an async agent never
//! posts its answer, the sweep fails the turn and the case escalates.

use chrono::{DateTime, Duration, Utc};

use super::step::{guarded, Attempt};
use super::{common_effect, enter, load_case, load_record, PipelineError, StepEnv, Timeline};
use crate::agent_client::{AgentCallOutcome, AgentClient, AgentReply};
use crate::config::{AgentConfig, AgentProtocol};
use crate::ids::CaseId;
use crate::lifecycle::CaseEvent;
use crate::model::{AgentTurn, Case, Record, RecordKind, TurnResult, TurnStatus};
use crate::protocol::{parse_agent_response, AgentRequest, ResponseType};
use crate::store::{CaseWrite, Commit, RecordWrite, Store};

#[derive(Debug, Clone, PartialEq)]
pub enum TurnOutcome {
    /// The answer (or failure) is stored under this turn key; the outcome step carries it out.
    Answered { turn: String, result: TurnResult },
    /// An async agent accepted the turn; the answer comes on the callback route.
    AwaitingCallback { turn: String, due_at: DateTime<Utc> },
    /// This work item already has a turn: nothing was called.
    AlreadyHandled { turn: String },
    /// The case is held by a representative or closed: the agent was not called.
    Skipped { turn: String, reason: String },
}

pub fn turn_key_for(work_item_key: &str) -> String {
    work_item_key.replacen("WORK#", "TURN#", 1)
}

/// How long a claimed call may stay in flight before the sweep calls it lost:
/// every attempt timing out, the backoff between them, and a minute of slack.
fn in_flight_budget(agent: &AgentConfig) -> Duration {
    let attempts = i64::from(agent.max_attempts);
    Duration::milliseconds(agent.timeout_ms as i64 * attempts) + Duration::seconds(30 * attempts + 60)
}

// The call variant is the common one; boxing it would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Claim {
    Call {
        agent: AgentConfig,
        turn: AgentTurn,
        case: Box<Case>,
    },
    Done(TurnOutcome),
}

pub async fn run_turn<S: Store, A: AgentClient>(
    env: StepEnv<'_>,
    store: &S,
    agents: &A,
    case_id: &CaseId,
    work_item_key: &str,
) -> Result<TurnOutcome, PipelineError> {
    let (agent, turn, case) = match claim_turn(env, store, case_id, work_item_key).await? {
        Claim::Call { agent, turn, case } => (agent, turn, case),
        Claim::Done(outcome) => return Ok(outcome),
    };
    let request = agent_request(store, &case, &turn, &agent).await?;
    tracing::info!(case = %case.id, turn = %turn.id, agent = %agent.name, "calling agent");
    let AgentCallOutcome {
        result,
        attempts,
        remote_task,
    } = agents.call(&agent, &request, env.deadline).await;
    let mut turn = turn;
    turn.remote_task = remote_task;
    let result = match result {
        Ok(AgentReply::Answer(response)) => TurnResult::Answered { response },
        Ok(AgentReply::Accepted) => {
            let due_at = env.clock.now() + Duration::seconds(agent.async_answer_within_secs as i64);
            return await_callback(env, store, case_id, turn, attempts, due_at).await;
        }
        Err(e) => {
            tracing::warn!(case = %case.id, turn = %turn.id, agent = %agent.name, error = %e, attempts, "agent turn failed");
            TurnResult::Failed {
                reason: format!("{e} (after {attempts} attempt(s))"),
            }
        }
    };
    record_answer(env, store, case_id, turn, TurnStatus::InFlight, result, attempts).await
}

/// What the agent is asked for a claimed turn.
pub async fn agent_request<S: Store>(store: &S, case: &Case, turn: &AgentTurn, agent: &AgentConfig) -> Result<AgentRequest, PipelineError> {
    let (new_text, remote_task) = match agent.protocol {
        AgentProtocol::Casebridge => (Vec::new(), None),
        AgentProtocol::A2a => a2a_turn_input(store, &case.id, turn).await?,
    };
    Ok(AgentRequest {
        case_id: case.id.to_string(),
        conversation_id: case.conversation_id.clone(),
        turn_id: Some(turn.public_id(&case.id)),
        intent: case.intent.clone(),
        new_text,
        remote_task,
    })
}

/// What an A2A agent is sent besides the case: the new text of the turn's
/// mails, and the task to continue when the case's previous turn left one
/// waiting for the customer (its answer was a question).
async fn a2a_turn_input<S: Store>(store: &S, case_id: &CaseId, turn: &AgentTurn) -> Result<(Vec<String>, Option<String>), PipelineError> {
    let mut texts = Vec::new();
    for id in &turn.mail_ids {
        if let Some(Record::Mail(mail)) = store.get_record(case_id, id).await? {
            texts.push(mail.new_text);
        }
    }
    let previous = store
        .list_records(case_id, RecordKind::Turn)
        .await?
        .into_iter()
        .filter_map(Record::into_turn)
        .filter(|t| t.id < turn.id)
        .max_by(|a, b| a.id.cmp(&b.id));
    let waiting = previous.and_then(|t| match (&t.result, t.remote_task) {
        (Some(TurnResult::Answered { response }), Some(task)) if response.response_type == ResponseType::Question => Some(task),
        _ => None,
    });
    Ok((texts, waiting))
}

async fn claim_turn<S: Store>(env: StepEnv<'_>, store: &S, case_id: &CaseId, work_item_key: &str) -> Result<Claim, PipelineError> {
    let turn_key = turn_key_for(work_item_key);
    let turn_key = &turn_key;
    guarded(
        store,
        || format!("turn {case_id}/{turn_key}"),
        move || async move {
            let mut case = load_case(store, case_id).await?;
            let work = load_record(store, case_id, work_item_key, Record::into_work_item).await?;
            let handled = Claim::Done(TurnOutcome::AlreadyHandled { turn: turn_key.clone() });
            if store.get_record(case_id, turn_key).await?.is_some() {
                return Ok(Attempt::Done(handled));
            }
            let now = env.clock.now();
            let mut turn = AgentTurn {
                id: turn_key.clone(),
                work_item: work.id.clone(),
                agent: case.agent.clone().unwrap_or_default(),
                mail_ids: work.mail_ids.clone(),
                status: TurnStatus::InFlight,
                started_at: now,
                attempts: 0,
                result: None,
                finished_at: None,
                due_at: None,
                remote_task: None,
            };
            let mut timeline = Timeline::for_commit(&case, now);
            let mut commit = Commit::new(case_id.clone());
            let agent = case.agent.as_deref().and_then(|name| env.config.agent(name)).cloned();
            let claim = if !case.agents_may_work() {
                let reason = format!("the case is {}; the agent is not called", case.status);
                turn.status = TurnStatus::Skipped;
                turn.finished_at = Some(now);
                // The reducer clears the turn and notes why (agents may not work: never refused).
                for effect in enter(env, &mut case, &mut timeline, CaseEvent::TurnSkipped { turn: turn_key }).unwrap_or_default() {
                    let _ = common_effect(effect, &mut timeline, &mut commit);
                }
                Claim::Done(TurnOutcome::Skipped {
                    turn: turn_key.clone(),
                    reason,
                })
            } else if let Some(agent) = agent {
                turn.due_at = Some(now + in_flight_budget(&agent));
                timeline.add(
                    "agent_called",
                    format!("agent {} called with {} mail(s)", agent.name, turn.mail_ids.len()),
                );
                Claim::Call {
                    agent,
                    turn: turn.clone(),
                    case: Box::new(case.clone()),
                }
            } else {
                // Configuration changed under the case: fail the turn so the case escalates.
                let reason = format!("agent {:?} is not configured", case.agent.as_deref().unwrap_or(""));
                turn.status = TurnStatus::Answered;
                turn.finished_at = Some(now);
                turn.result = Some(TurnResult::Failed { reason: reason.clone() });
                timeline.add("agent_failed", reason.clone());
                Claim::Done(TurnOutcome::Answered {
                    turn: turn_key.clone(),
                    result: TurnResult::Failed { reason },
                })
            };
            case.updated_at = now;
            commit.records.push(RecordWrite::Create(Record::Turn(turn)));
            timeline.write_into(&mut commit, &case);
            commit.case = Some(CaseWrite::Update(case));
            // The turn record is create-only: whoever writes it first calls the agent.
            Ok(Attempt::write(commit, claim, handled))
        },
    )
    .await
}

/// Stores the turn's result if the turn is still in `expected` state. The
/// lifecycle does not change here: the outcome step applies the answer.
async fn record_answer<S: Store>(
    env: StepEnv<'_>,
    store: &S,
    case_id: &CaseId,
    turn: AgentTurn,
    expected: TurnStatus,
    result: TurnResult,
    attempts: u32,
) -> Result<TurnOutcome, PipelineError> {
    let line = match &result {
        TurnResult::Answered { response } => (
            "agent_answered",
            format!(
                "agent {} answered {}{}",
                turn.agent,
                response.response_type,
                if response.needs_review() { " (needsReview)" } else { "" }
            ),
        ),
        TurnResult::Failed { reason } => ("agent_failed", format!("agent {} failed: {reason}", turn.agent)),
    };
    let (turn, result, line) = (&turn, &result, &line);
    guarded(
        store,
        || format!("turn {case_id}/{}", turn.id),
        move || async move {
            let mut case = load_case(store, case_id).await?;
            let now = env.clock.now();
            let mut timeline = Timeline::for_commit(&case, now);
            timeline.add(line.0, line.1.clone());
            let mut turn = turn.clone();
            turn.status = TurnStatus::Answered;
            turn.attempts = attempts;
            turn.result = Some(result.clone());
            turn.finished_at = Some(now);
            turn.due_at = None;
            case.updated_at = now;
            let id = turn.id.clone();
            let mut commit = Commit::new(case_id.clone());
            commit.records.push(RecordWrite::ReplaceIfStatus {
                record: Record::Turn(turn),
                expected_status: expected.as_str(),
            });
            timeline.write_into(&mut commit, &case);
            commit.case = Some(CaseWrite::Update(case));
            Ok(Attempt::write(
                commit,
                TurnOutcome::Answered {
                    turn: id.clone(),
                    result: result.clone(),
                },
                TurnOutcome::AlreadyHandled { turn: id },
            ))
        },
    )
    .await
}

async fn await_callback<S: Store>(
    env: StepEnv<'_>,
    store: &S,
    case_id: &CaseId,
    turn: AgentTurn,
    attempts: u32,
    due_at: DateTime<Utc>,
) -> Result<TurnOutcome, PipelineError> {
    let turn = &turn;
    guarded(
        store,
        || format!("turn {case_id}/{}", turn.id),
        move || async move {
            let mut case = load_case(store, case_id).await?;
            let now = env.clock.now();
            let mut timeline = Timeline::for_commit(&case, now);
            timeline.add(
                "agent_accepted",
                format!(
                    "agent {} accepted the turn; its answer is expected by {}",
                    turn.agent,
                    due_at.format("%Y-%m-%d %H:%M:%S UTC")
                ),
            );
            let mut turn = turn.clone();
            turn.status = TurnStatus::AwaitingCallback;
            turn.attempts = attempts;
            turn.due_at = Some(due_at);
            case.updated_at = now;
            let id = turn.id.clone();
            let mut commit = Commit::new(case_id.clone());
            commit.records.push(RecordWrite::ReplaceIfStatus {
                record: Record::Turn(turn),
                expected_status: TurnStatus::InFlight.as_str(),
            });
            timeline.write_into(&mut commit, &case);
            commit.case = Some(CaseWrite::Update(case));
            Ok(Attempt::write(
                commit,
                TurnOutcome::AwaitingCallback { turn: id.clone(), due_at },
                TurnOutcome::AlreadyHandled { turn: id },
            ))
        },
    )
    .await
}

/// What became of an async agent's callback.
#[derive(Debug, Clone, PartialEq)]
pub enum CallbackOutcome {
    /// Stored; the outcome step carries it out.
    Accepted,
    /// The answer was invalid: stored as the turn's failure (the case escalates).
    Invalid(String),
    /// The turn is not waiting for an answer (answered, replayed, or timed out): ignored.
    TurnClosed,
    /// The turn belongs to another agent.
    WrongAgent,
    /// No such turn.
    UnknownTurn,
}

/// Takes an async agent's answer for a turn. Idempotent: a replay finds the
/// turn closed and changes nothing.
pub async fn accept_callback<S: Store>(
    env: StepEnv<'_>,
    store: &S,
    case_id: &CaseId,
    turn_key: &str,
    agent_name: &str,
    body: &[u8],
) -> Result<CallbackOutcome, PipelineError> {
    let Some(turn) = store.get_record(case_id, turn_key).await?.and_then(Record::into_turn) else {
        return Ok(CallbackOutcome::UnknownTurn);
    };
    if turn.agent != agent_name {
        return Ok(CallbackOutcome::WrongAgent);
    }
    if turn.status != TurnStatus::AwaitingCallback {
        return Ok(CallbackOutcome::TurnClosed);
    }
    let attempts = turn.attempts;
    let (result, outcome) = match parse_agent_response(body) {
        Ok(response) => (TurnResult::Answered { response }, CallbackOutcome::Accepted),
        Err(e) => (
            TurnResult::Failed {
                reason: format!("invalid callback answer: {e}"),
            },
            CallbackOutcome::Invalid(e.to_string()),
        ),
    };
    match record_answer(env, store, case_id, turn, TurnStatus::AwaitingCallback, result, attempts).await? {
        TurnOutcome::Answered { .. } => Ok(outcome),
        _ => Ok(CallbackOutcome::TurnClosed),
    }
}

/// Fails every turn past its due time — async answers that never came, calls
/// lost with their function — so their cases escalate. Returns the turns swept.
pub async fn sweep_overdue<S: Store>(env: StepEnv<'_>, store: &S, limit: usize) -> Result<Vec<(CaseId, String)>, PipelineError> {
    let now = env.clock.now();
    let mut swept = Vec::new();
    for due in store.list_due(crate::model::RecordKind::Turn, now, limit).await? {
        let Some(turn) = store.get_record(&due.case_id, &due.key).await?.and_then(Record::into_turn) else {
            continue;
        };
        let reason = match turn.status {
            TurnStatus::AwaitingCallback => format!(
                "agent {} accepted the turn but sent no answer by {}",
                turn.agent,
                due.due_at.format("%Y-%m-%d %H:%M:%S UTC")
            ),
            TurnStatus::InFlight => format!("the call to agent {} did not complete (the function stopped mid-call)", turn.agent),
            _ => continue,
        };
        let expected = turn.status;
        let attempts = turn.attempts;
        if let TurnOutcome::Answered { turn, .. } =
            record_answer(env, store, &due.case_id, turn, expected, TurnResult::Failed { reason }, attempts).await?
        {
            tracing::warn!(case = %due.case_id, turn = %turn, "overdue turn failed by the sweep");
            swept.push((due.case_id.clone(), turn));
        }
    }
    Ok(swept)
}
