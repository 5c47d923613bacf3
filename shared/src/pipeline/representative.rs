//! What representatives and operators do to a case: take it over (agents
//! stop), hand it back (agents resume, with the mail that came meanwhile),
//! discard a draft, and reprocess the case from a chosen step.

use super::{load_case, PipelineError, StepEnv, Timeline, MAX_CONFLICT_RETRIES};
use crate::ids::CaseId;
use crate::intent::IntentClassifier;
use crate::mail::MailSender;
use crate::model::{Case, CaseStatus, DraftStatus, Escalation, OutboundStatus, Record, RecordKind, TurnStatus, WorkItem, WorkItemStatus};
use crate::store::{CaseWrite, Commit, CommitError, RecordWrite, Store};

/// Result of a representative action.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionOutcome {
    Done {
        detail: String,
    },
    /// The action does not apply to the case as it is now; nothing changed.
    Refused {
        reason: String,
    },
}

/// Applies `change` to the case in one commit, retrying on conflicts. `change`
/// returns Err(reason) to refuse, or the records to write and a detail line.
async fn update_case<S, F>(env: StepEnv<'_>, store: &S, case_id: &CaseId, mut change: F) -> Result<ActionOutcome, PipelineError>
where
    S: Store,
    F: FnMut(&mut Case, &mut Timeline) -> Result<(Vec<RecordWrite>, String), String>,
{
    for _ in 0..MAX_CONFLICT_RETRIES {
        let mut case = load_case(store, case_id).await?;
        let now = env.clock.now();
        let mut timeline = Timeline::for_commit(&case, now);
        let (records, detail) = match change(&mut case, &mut timeline) {
            Ok(ok) => ok,
            Err(reason) => return Ok(ActionOutcome::Refused { reason }),
        };
        case.updated_at = now;
        let mut commit = Commit::new(case_id.clone());
        commit.records = records;
        commit.records.extend(timeline.into_records().map(RecordWrite::Create));
        commit.case = Some(CaseWrite::Update(case));
        match store.commit(commit).await {
            Ok(()) => return Ok(ActionOutcome::Done { detail }),
            Err(CommitError::VersionConflict(_)) => continue,
            Err(CommitError::StateMismatch(what)) | Err(CommitError::AlreadyExists(what)) => {
                return Ok(ActionOutcome::Refused {
                    reason: format!("{what} changed meanwhile"),
                })
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(PipelineError::Contention(format!("case {case_id}")))
}

/// Opens a turn for the case's waiting mail, if an agent may work on it now.
fn open_turn(case: &mut Case, timeline: &mut Timeline, mail_ids: Vec<String>, why: &str) -> Option<WorkItem> {
    if mail_ids.is_empty() || case.turn_in_flight.is_some() || !case.agents_may_work() || case.agent.is_none() {
        return None;
    }
    let work = WorkItem {
        id: timeline.record_key("WORK#"),
        mail_ids,
        created_at: timeline.at,
        status: WorkItemStatus::Pending,
    };
    case.turn_in_flight = Some(work.id.replacen("WORK#", "TURN#", 1));
    case.pending_mail.retain(|m| !work.mail_ids.contains(m));
    case.status = CaseStatus::AgentWorking;
    timeline.add(
        "agent_turn_requested",
        format!(
            "{why}: agent {} will be called with {} mail(s)",
            case.agent.as_deref().unwrap_or("?"),
            work.mail_ids.len()
        ),
    );
    Some(work)
}

/// A representative takes the case: agents are not called until it is handed back.
pub async fn take_over<S: Store>(env: StepEnv<'_>, store: &S, case_id: &CaseId, who: &str) -> Result<ActionOutcome, PipelineError> {
    update_case(env, store, case_id, |case, timeline| {
        if case.status == CaseStatus::Closed {
            return Err("the case is closed".into());
        }
        let before = case.status;
        case.status = CaseStatus::Escalated;
        case.follow_up = None;
        case.escalation = Some(Escalation {
            queue: env.config.mail.queue_name.clone(),
            reason: format!("taken over by {who}"),
            at: timeline.at,
        });
        timeline.add("taken_over", format!("{who} took the case over; agents stop"));
        if before != CaseStatus::Escalated {
            timeline.add("status_changed", format!("case {before} → escalated"));
        }
        Ok((Vec::new(), format!("case {case_id} is held by {who}")))
    })
    .await
}

/// Gives the case back to its agent; mail that arrived meanwhile opens a turn.
pub async fn hand_back<S: Store>(env: StepEnv<'_>, store: &S, case_id: &CaseId, who: &str) -> Result<ActionOutcome, PipelineError> {
    update_case(env, store, case_id, |case, timeline| {
        if case.status != CaseStatus::Escalated {
            return Err(format!("the case is {}, not held by a representative", case.status));
        }
        if case.agent.is_none() {
            return Err("the case has no agent to hand it back to".into());
        }
        case.escalation = None;
        case.status = CaseStatus::Idle;
        timeline.add(
            "handed_back",
            format!("{who} handed the case back to agent {}", case.agent.as_deref().unwrap_or("?")),
        );
        let waiting = case.pending_mail.clone();
        let work = open_turn(case, timeline, waiting, "mail arrived while a representative held the case");
        timeline.add("status_changed", format!("case escalated → {}", case.status));
        let detail = match &work {
            Some(w) => format!("handed back; {} opened", w.id),
            None => "handed back".to_string(),
        };
        Ok((work.into_iter().map(|w| RecordWrite::Create(Record::WorkItem(w))).collect(), detail))
    })
    .await
}

/// Discards a pending draft.
pub async fn discard_draft<S: Store>(
    env: StepEnv<'_>,
    store: &S,
    case_id: &CaseId,
    draft_key: &str,
    who: &str,
) -> Result<ActionOutcome, PipelineError> {
    let Some(mut draft) = store.get_record(case_id, draft_key).await?.and_then(Record::into_draft) else {
        return Err(PipelineError::RecordNotFound(format!("{case_id}/{draft_key}")));
    };
    if draft.status != DraftStatus::PendingReview {
        return Ok(ActionOutcome::Refused {
            reason: "the draft is not pending review".into(),
        });
    }
    draft.status = DraftStatus::Discarded;
    update_case(env, store, case_id, |case, timeline| {
        timeline.add("draft_discarded", format!("{who} discarded the {} draft", draft.kind.as_str()));
        if case.status == CaseStatus::PendingReview {
            case.status = CaseStatus::Idle;
            timeline.add("status_changed", "case pending_review → idle");
        }
        Ok((
            vec![RecordWrite::ReplaceIfStatus {
                record: Record::Draft(draft.clone()),
                expected_status: "pending_review",
            }],
            "draft discarded".into(),
        ))
    })
    .await
}

/// The step a case is reprocessed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Route the case again with the current configuration (intent, agent,
    /// workflow) from its first mail, then open a turn for its latest mail.
    Inbound,
    /// Open a new agent turn for the case's latest customer mail.
    Agent,
    /// Carry out the latest answered turn again and send what is pending or failed.
    Outcome,
}

impl std::str::FromStr for Step {
    type Err = String;
    fn from_str(s: &str) -> Result<Step, String> {
        match s {
            "inbound" => Ok(Step::Inbound),
            "agent" => Ok(Step::Agent),
            "outcome" => Ok(Step::Outcome),
            other => Err(format!("unknown step {other:?}: use inbound, agent or outcome")),
        }
    }
}

async fn accepted_mail_ids<S: Store>(store: &S, case_id: &CaseId) -> Result<Vec<(String, String, String)>, PipelineError> {
    Ok(store
        .list_records(case_id, RecordKind::Mail)
        .await?
        .into_iter()
        .filter_map(Record::into_mail)
        .filter(|m| m.disposition.is_accepted())
        .map(|m| (m.id, m.subject, m.new_text))
        .collect())
}

/// Re-enters the pipeline at `step`. Inbound and Agent write a work item (in
/// AWS, its stream record calls the agent); Outcome sends directly.
pub async fn reprocess<S: Store, M: MailSender>(
    env: StepEnv<'_>,
    store: &S,
    mailer: &M,
    classifier: &dyn IntentClassifier,
    case_id: &CaseId,
    step: Step,
) -> Result<ActionOutcome, PipelineError> {
    match step {
        Step::Outcome => reprocess_outcome(env, store, mailer, case_id).await,
        Step::Inbound => reopen_turn(env, store, Some(classifier), case_id).await,
        Step::Agent => reopen_turn(env, store, None, case_id).await,
    }
}

/// Opens a new agent turn for the case's latest customer mail; with a
/// classifier, first routes the case again from its first mail with the
/// current configuration (intent, agent, workflow).
pub async fn reopen_turn<S: Store>(
    env: StepEnv<'_>,
    store: &S,
    classifier: Option<&dyn IntentClassifier>,
    case_id: &CaseId,
) -> Result<ActionOutcome, PipelineError> {
    load_case(store, case_id).await?;
    let mails = accepted_mail_ids(store, case_id).await?;
    let Some((latest, _, _)) = mails.last().cloned() else {
        return Ok(ActionOutcome::Refused {
            reason: "the case has no customer mail".into(),
        });
    };
    let (first_subject, first_text) = mails.first().map(|(_, s, t)| (s.clone(), t.clone())).unwrap_or_default();
    let routing = match classifier {
        Some(c) => Some(c.classify(&first_subject, &first_text).await),
        None => None,
    };
    update_case(env, store, case_id, |case, timeline| {
        if case.status == CaseStatus::Closed {
            return Err("the case is closed".into());
        }
        if let Some(classification) = &routing {
            let best = classification
                .best()
                .filter(|b| b.confidence >= env.config.classifier.routing_threshold());
            let intent = best.and_then(|b| env.config.intent(&b.intent));
            case.intent = best.map(|b| b.intent.clone());
            case.intent_confidence = best.map(|b| b.confidence);
            case.intent_scores = classification.case_scores();
            case.agent = intent.and_then(|i| i.agent.clone());
            case.workflow_name = intent.and_then(|i| i.workflow.clone());
            case.workflow = env.config.workflow(case.workflow_name.as_deref()).mode;
            timeline.add(
                "reprocessed",
                format!(
                    "routed again: intent {} → agent {}",
                    case.intent.as_deref().unwrap_or("none"),
                    case.agent.as_deref().unwrap_or("none")
                ),
            );
            if case.agent.is_some() && case.status == CaseStatus::Escalated {
                case.escalation = None;
                case.status = CaseStatus::Idle;
            }
        } else {
            timeline.add("reprocessed", "a new agent turn was requested");
        }
        if case.turn_in_flight.is_some() {
            return Err("a turn is in flight; wait for it or let the sweep fail it".into());
        }
        match open_turn(case, timeline, vec![latest.clone()], "reprocess") {
            Some(work) => {
                let detail = format!("{} opened", work.id);
                Ok((vec![RecordWrite::Create(Record::WorkItem(work))], detail))
            }
            None => Err(format!(
                "no agent may work on the case (status {}, agent {})",
                case.status,
                case.agent.as_deref().unwrap_or("none")
            )),
        }
    })
    .await
}

/// Carries out answered turns again, re-sends failed mail and sends pending mail.
pub async fn reprocess_outcome<S: Store, M: MailSender>(
    env: StepEnv<'_>,
    store: &S,
    mailer: &M,
    case_id: &CaseId,
) -> Result<ActionOutcome, PipelineError> {
    load_case(store, case_id).await?;
    let mut detail = Vec::new();
    let answered = store
        .list_records(case_id, RecordKind::Turn)
        .await?
        .into_iter()
        .filter_map(Record::into_turn)
        .filter(|t| t.status == TurnStatus::Answered);
    for turn in answered.collect::<Vec<_>>() {
        let report = super::outcome::carry_out(env, store, mailer, case_id, &turn.id).await?;
        detail.push(format!("{} carried out ({} sent)", turn.id, report.sent.len()));
    }
    let outbound = store
        .list_records(case_id, RecordKind::Outbound)
        .await?
        .into_iter()
        .filter_map(Record::into_outbound)
        .collect::<Vec<_>>();
    for mail in outbound.iter().filter(|o| o.status == OutboundStatus::Failed) {
        let sent = super::outcome::resend(env, store, mailer, case_id, &mail.id).await?;
        detail.push(format!("{} {}", mail.id, if sent { "re-sent" } else { "not re-sent" }));
    }
    for origin in outbound
        .iter()
        .filter(|o| o.status == OutboundStatus::Pending)
        .filter_map(|o| o.origin.clone())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let (sent, _) = super::outcome::flush_origin(env, store, mailer, case_id, &origin).await?;
        detail.push(format!("{} pending mail(s) of {origin} sent", sent.len()));
    }
    if detail.is_empty() {
        return Ok(ActionOutcome::Refused {
            reason: "nothing to carry out: no answered turn, no pending or failed mail".into(),
        });
    }
    Ok(ActionOutcome::Done { detail: detail.join("; ") })
}

/// Re-sends every failed mail of the given cases; returns (case, outbound, sent?) for each.
pub async fn replay_failed<S: Store, M: MailSender>(
    env: StepEnv<'_>,
    store: &S,
    mailer: &M,
    case_id: &CaseId,
) -> Result<Vec<(String, bool)>, PipelineError> {
    let mut results = Vec::new();
    let failed = store
        .list_records(case_id, RecordKind::Outbound)
        .await?
        .into_iter()
        .filter_map(Record::into_outbound)
        .filter(|o| o.status == OutboundStatus::Failed)
        .collect::<Vec<_>>();
    for mail in failed {
        let sent = super::outcome::resend(env, store, mailer, case_id, &mail.id).await?;
        results.push((mail.id, sent));
    }
    Ok(results)
}
