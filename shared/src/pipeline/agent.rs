//! Agent step: one work item → one agent turn. The turn record is claimed
//! (create-only) before the HTTP call, so a duplicated or retried stream
//! record never calls the agent twice for the same mail.

use super::{load_case, PipelineError, StepEnv, Timeline, MAX_CONFLICT_RETRIES};
use crate::agent_client::{AgentCallOutcome, AgentClient};
use crate::ids::CaseId;
use crate::model::{AgentTurn, Case, Record, TurnResult, TurnStatus};
use crate::protocol::AgentRequest;
use crate::store::{CaseWrite, Commit, CommitError, RecordWrite, Store};

#[derive(Debug, Clone, PartialEq)]
pub enum TurnOutcome {
    /// The answer (or failure) is stored under this turn key; the outcome step carries it out.
    Answered { turn: String, result: TurnResult },
    /// This work item already has a turn: nothing was called.
    AlreadyHandled { turn: String },
    /// The case is held by a representative or closed: the agent was not called.
    Skipped { turn: String, reason: String },
}

pub fn turn_key_for(work_item_key: &str) -> String {
    work_item_key.replacen("WORK#", "TURN#", 1)
}

// The call variant is the common one; boxing it would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Claim {
    Call {
        agent: crate::config::AgentConfig,
        turn: AgentTurn,
        case: Case,
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
    let request = AgentRequest {
        case_id: case.id.to_string(),
        conversation_id: case.conversation_id.clone(),
        turn_id: Some(format!("{}/{}", case.id, turn.id)),
        intent: case.intent.clone(),
    };
    tracing::info!(case = %case.id, turn = %turn.id, agent = %agent.name, "calling agent");
    let AgentCallOutcome { result, attempts } = agents.call(&agent, &request).await;
    let result = match result {
        Ok(response) => TurnResult::Answered { response },
        Err(e) => {
            tracing::warn!(case = %case.id, turn = %turn.id, agent = %agent.name, error = %e, attempts, "agent turn failed");
            TurnResult::Failed {
                reason: format!("{e} (after {attempts} attempt(s))"),
            }
        }
    };
    record_answer(env, store, case_id, turn, result, attempts).await
}

async fn claim_turn<S: Store>(
    env: StepEnv<'_>,
    store: &S,
    case_id: &CaseId,
    work_item_key: &str,
) -> Result<Claim, PipelineError> {
    let turn_key = turn_key_for(work_item_key);
    for _ in 0..MAX_CONFLICT_RETRIES {
        let mut case = load_case(store, case_id).await?;
        let work = store
            .get_record(case_id, work_item_key)
            .await?
            .and_then(Record::into_work_item)
            .ok_or_else(|| PipelineError::RecordNotFound(format!("{case_id}/{work_item_key}")))?;
        if store.get_record(case_id, &turn_key).await?.is_some() {
            return Ok(Claim::Done(TurnOutcome::AlreadyHandled { turn: turn_key }));
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
        };
        let mut timeline = Timeline::for_commit(&case, now);
        let agent = case
            .agent
            .as_deref()
            .and_then(|name| env.config.agent(name))
            .cloned();
        let claim = if !case.agents_may_work() {
            let reason = format!("the case is {}; the agent is not called", case.status);
            turn.status = TurnStatus::Skipped;
            turn.finished_at = Some(now);
            if case.turn_in_flight.as_deref() == Some(turn_key.as_str()) {
                case.turn_in_flight = None;
            }
            timeline.add("agent_skipped", reason.clone());
            Claim::Done(TurnOutcome::Skipped {
                turn: turn_key.clone(),
                reason,
            })
        } else if let Some(agent) = agent {
            timeline.add("agent_called", format!("agent {} called", agent.name));
            Claim::Call {
                agent,
                turn: turn.clone(),
                case: case.clone(),
            }
        } else {
            // Configuration changed under the case: fail the turn so the case escalates.
            let reason = format!(
                "agent {:?} is not configured",
                case.agent.as_deref().unwrap_or("")
            );
            turn.status = TurnStatus::Answered;
            turn.finished_at = Some(now);
            turn.result = Some(TurnResult::Failed {
                reason: reason.clone(),
            });
            timeline.add("agent_failed", reason.clone());
            Claim::Done(TurnOutcome::Answered {
                turn: turn_key.clone(),
                result: TurnResult::Failed { reason },
            })
        };
        case.updated_at = now;
        let mut commit = Commit::new(case_id.clone());
        commit.records.push(RecordWrite::Create(Record::Turn(turn)));
        commit
            .records
            .extend(timeline.into_records().map(RecordWrite::Create));
        commit.case = Some(CaseWrite::Update(case));
        match store.commit(commit).await {
            Ok(()) => return Ok(claim),
            Err(CommitError::VersionConflict(_)) => continue,
            Err(CommitError::AlreadyExists(_)) => {
                return Ok(Claim::Done(TurnOutcome::AlreadyHandled { turn: turn_key }))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(PipelineError::Contention(format!(
        "turn {case_id}/{turn_key}"
    )))
}

async fn record_answer<S: Store>(
    env: StepEnv<'_>,
    store: &S,
    case_id: &CaseId,
    mut turn: AgentTurn,
    result: TurnResult,
    attempts: u32,
) -> Result<TurnOutcome, PipelineError> {
    for _ in 0..MAX_CONFLICT_RETRIES {
        let mut case = load_case(store, case_id).await?;
        let now = env.clock.now();
        let mut timeline = Timeline::for_commit(&case, now);
        match &result {
            TurnResult::Answered { response } => timeline.add(
                "agent_answered",
                format!(
                    "agent {} answered {}{}",
                    turn.agent,
                    response.response_type,
                    if response.needs_review() {
                        " (needsReview)"
                    } else {
                        ""
                    }
                ),
            ),
            TurnResult::Failed { reason } => timeline.add(
                "agent_failed",
                format!("agent {} failed: {reason}", turn.agent),
            ),
        }
        turn.status = TurnStatus::Answered;
        turn.attempts = attempts;
        turn.result = Some(result.clone());
        turn.finished_at = Some(now);
        case.updated_at = now;
        let mut commit = Commit::new(case_id.clone());
        commit.records.push(RecordWrite::ReplaceIfStatus {
            record: Record::Turn(turn.clone()),
            expected_status: TurnStatus::InFlight.as_str(),
        });
        commit
            .records
            .extend(timeline.into_records().map(RecordWrite::Create));
        commit.case = Some(CaseWrite::Update(case));
        match store.commit(commit).await {
            Ok(()) => {
                return Ok(TurnOutcome::Answered {
                    turn: turn.id,
                    result,
                })
            }
            Err(CommitError::VersionConflict(_)) => continue,
            Err(CommitError::StateMismatch(_)) => {
                return Ok(TurnOutcome::AlreadyHandled { turn: turn.id })
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(PipelineError::Contention(format!(
        "turn {case_id}/{}",
        turn.id
    )))
}
