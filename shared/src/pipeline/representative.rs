//! What representatives and operators do to a case: take it over (agents
//! stop), hand it back (agents resume, with the mail that came meanwhile),
//! discard a draft, and reprocess the case from a chosen step.

use super::outcome::DraftSendOutcome;
use super::step::{guarded, Attempt};
use super::{common_effect, enter, load_case, PipelineError, StepEnv, Timeline};
use crate::ids::CaseId;
use crate::intent::IntentClassifier;
use crate::lifecycle::{CaseEvent, Effect};
use crate::mail::MailSender;
use crate::model::{Case, CaseStatus, DraftStatus, OutboundStatus, Record, RecordKind, TurnStatus};
use crate::store::{CaseWrite, Commit, RecordWrite, Store};

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

/// Applies `change` to the case in one guarded commit (`step::guarded`).
/// `change` returns Err(reason) to refuse, or a detail line; it adds what it
/// writes besides the case to the commit.
async fn update_case<S, F>(env: StepEnv<'_>, store: &S, case_id: &CaseId, change: F) -> Result<ActionOutcome, PipelineError>
where
    S: Store,
    F: Fn(&mut Case, &mut Timeline, &mut Commit) -> Result<String, String> + Sync,
{
    let change = &change;
    guarded(
        store,
        || format!("case {case_id}"),
        move || async move {
            let mut case = load_case(store, case_id).await?;
            let now = env.clock.now();
            let mut timeline = Timeline::for_commit(&case, now);
            let mut commit = Commit::new(case_id.clone());
            let detail = match change(&mut case, &mut timeline, &mut commit) {
                Ok(detail) => detail,
                Err(reason) => return Ok(Attempt::Done(ActionOutcome::Refused { reason })),
            };
            case.updated_at = now;
            timeline.write_into(&mut commit, &case);
            commit.case = Some(CaseWrite::Update(case));
            Ok(Attempt::write(
                commit,
                ActionOutcome::Done { detail },
                ActionOutcome::Refused {
                    reason: "the case changed meanwhile; nothing was done".into(),
                },
            ))
        },
    )
    .await
}

/// Applies a representative's event through the lifecycle reducer; a
/// refusal becomes the action's refusal. Returns the turn opened, if any.
fn act(
    env: StepEnv<'_>,
    case: &mut Case,
    timeline: &mut Timeline,
    commit: &mut Commit,
    event: CaseEvent<'_>,
) -> Result<Option<String>, String> {
    let mut opened = None;
    for effect in enter(env, case, timeline, event).map_err(|r| r.0)? {
        if let Effect::OpenTurn { turn, .. } = &effect {
            opened = Some(turn.replacen("TURN#", "WORK#", 1));
        }
        // Representatives' events only note, open turns and end follow-ups (by the case moving on).
        let _ = common_effect(effect, timeline, commit);
    }
    Ok(opened)
}

/// A representative takes the case: agents are not called until it is handed back.
pub async fn take_over<S: Store>(env: StepEnv<'_>, store: &S, case_id: &CaseId, who: &str) -> Result<ActionOutcome, PipelineError> {
    update_case(env, store, case_id, |case, timeline, commit| {
        act(env, case, timeline, commit, CaseEvent::TakenOver { who })?;
        Ok(format!("case {case_id} is held by {who}"))
    })
    .await
}

/// Gives the case back to its agent; mail that arrived meanwhile opens a turn.
pub async fn hand_back<S: Store>(env: StepEnv<'_>, store: &S, case_id: &CaseId, who: &str) -> Result<ActionOutcome, PipelineError> {
    update_case(env, store, case_id, |case, timeline, commit| {
        Ok(match act(env, case, timeline, commit, CaseEvent::HandedBack { who })? {
            Some(work) => format!("handed back; {work} opened"),
            None => "handed back".to_string(),
        })
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
    discard_draft_because(env, store, case_id, draft_key, who, None).await
}

/// Discards a pending draft; the representative's reason, if given, is on
/// the timeline line that names them.
pub async fn discard_draft_because<S: Store>(
    env: StepEnv<'_>,
    store: &S,
    case_id: &CaseId,
    draft_key: &str,
    who: &str,
    reason: Option<&str>,
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
    update_case(env, store, case_id, |case, timeline, commit| {
        let because = reason.map(|r| format!(": {r}")).unwrap_or_default();
        timeline.add(
            "draft_discarded",
            format!("{who} discarded the {} draft{because}", draft.kind.as_str()),
        );
        act(env, case, timeline, commit, CaseEvent::DraftDiscarded)?;
        commit.records.push(RecordWrite::ReplaceIfStatus {
            record: Record::Draft(draft.clone()),
            expected_status: "pending_review",
        });
        Ok("draft discarded".into())
    })
    .await
}

/// Longest note a representative sends back to the agent with a draft, in characters.
pub const MAX_NOTE_CHARS: usize = 2000;

/// Sends a pending draft back to the agent with a representative's note:
/// the draft is discarded and a new turn opened for the case's latest
/// customer mail, in one guarded commit. The note is on the timeline
/// (`draft_sent_back`, naming the representative) and in the agent's case
/// context (`representativeNotes`), so the agent can redraft. Refused when
/// the draft is no longer pending, a turn is in flight, or no agent may
/// work on the case (taken over, no agent): nothing changes then.
pub async fn send_back_draft<S: Store>(
    env: StepEnv<'_>,
    store: &S,
    case_id: &CaseId,
    draft_key: &str,
    who: &str,
    note: &str,
) -> Result<ActionOutcome, PipelineError> {
    let Some(mut draft) = store.get_record(case_id, draft_key).await?.and_then(Record::into_draft) else {
        return Err(PipelineError::RecordNotFound(format!("{case_id}/{draft_key}")));
    };
    if draft.status != DraftStatus::PendingReview {
        return Ok(ActionOutcome::Refused {
            reason: "the draft is not pending review".into(),
        });
    }
    let note: String = note.split_whitespace().collect::<Vec<_>>().join(" ");
    if note.is_empty() {
        return Ok(ActionOutcome::Refused {
            reason: "a note for the agent is needed: say what to change".into(),
        });
    }
    let note: String = note.chars().take(MAX_NOTE_CHARS).collect();
    let Some((latest, _, _)) = accepted_mail_ids(store, case_id).await?.pop() else {
        return Ok(ActionOutcome::Refused {
            reason: "the case has no customer mail".into(),
        });
    };
    draft.status = DraftStatus::Discarded;
    update_case(env, store, case_id, |case, timeline, commit| {
        timeline.add(
            SENT_BACK,
            format!("{who} sent the {} draft back to the agent: {note}", draft.kind.as_str()),
        );
        act(env, case, timeline, commit, CaseEvent::DraftDiscarded)?;
        let event = CaseEvent::ReprocessRequested {
            mail: &latest,
            release_hold: false,
        };
        let work = act(env, case, timeline, commit, event)?;
        commit.records.push(RecordWrite::ReplaceIfStatus {
            record: Record::Draft(draft.clone()),
            expected_status: "pending_review",
        });
        Ok(format!("draft sent back; {} opened", work.unwrap_or_default()))
    })
    .await
}

/// The timeline kind of a draft sent back with a note; the agent's context
/// lists these lines as `representativeNotes`.
pub const SENT_BACK: &str = "draft_sent_back";

/// Sends a reviewed draft through `outcome::send_draft` (exactly once; a
/// second request finds it handled) and then names the representative on the
/// timeline. The name is a second commit after the send's: if that one fails
/// the mail is still sent, the draft's own line ("sent by a representative")
/// stands and the failure is logged. A closed case (its closure notice) is not
/// written to again.
pub async fn send_draft_by<S: Store, M: MailSender>(
    env: StepEnv<'_>,
    store: &S,
    mailer: &M,
    case_id: &CaseId,
    draft_key: &str,
    edited_body: Option<String>,
    who: &str,
) -> Result<DraftSendOutcome, PipelineError> {
    let outcome = super::outcome::send_draft(env, store, mailer, case_id, draft_key, edited_body).await?;
    if matches!(outcome, DraftSendOutcome::Sent { .. }) {
        let kind = draft_key.rsplit('#').next().unwrap_or_default().replace('_', " ");
        let named = update_case(env, store, case_id, |case, timeline, _| {
            if case.status == CaseStatus::Closed {
                return Err("the case is closed".into());
            }
            timeline.add("draft_sent_by", format!("{who} sent the {kind} draft"));
            Ok(String::new())
        })
        .await;
        match named {
            Ok(ActionOutcome::Done { .. }) => {}
            Ok(ActionOutcome::Refused { reason }) => {
                tracing::info!(case = %case_id, draft = %draft_key, %reason, "draft sent; the sender is not named on the timeline")
            }
            Err(e) => {
                tracing::warn!(case = %case_id, draft = %draft_key, error = %e, "draft sent; naming the sender on the timeline failed")
            }
        }
    }
    Ok(outcome)
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
    update_case(env, store, case_id, |case, timeline, commit| {
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
        } else {
            timeline.add("reprocessed", "a new agent turn was requested");
        }
        let event = CaseEvent::ReprocessRequested {
            mail: &latest,
            release_hold: routing.is_some(),
        };
        let work = act(env, case, timeline, commit, event)?;
        Ok(format!("{} opened", work.unwrap_or_default()))
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
