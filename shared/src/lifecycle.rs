//! The case lifecycle as one pure reducer: `apply(lifecycle, event, policy)
//! → Transition { next, effects }`. No I/O, no clock, no store.
//!
//! Every step of the pipeline loads the case, asks this reducer what the
//! event means, writes the new lifecycle with one guarded commit, and then
//! carries out the effects (mail, drafts, work items, timeline lines). The
//! case status and the fields that go with it (turn in flight, pending mail,
//! escalation, follow-up, closure) are written nowhere else: `Case::set_lifecycle`
//! is their only writer, and it takes a [`CaseState`], whose variants carry
//! what the state needs (a closed case has its time, an escalated case its
//! escalation, a resolved case its follow-up), so a status without its data
//! cannot be written.
//!
//! `decision::decide` stays the heart of the answer arm: `AnswerRecorded`
//! asks it for the plan and turns the plan into the next state and effects.
//!
//! | event              | from                         | to                                    | effects |
//! |--------------------|------------------------------|---------------------------------------|---------|
//! | MailAccepted       | resolved + thanks (if set)   | closed (confirmed)                    | join thread |
//! |                    | closed                       | agent_working (reopened)              | join thread, open turn unless one is in flight |
//! |                    | escalated                    | unchanged, mail pending               | join thread |
//! |                    | turn in flight               | unchanged, mail pending               | join thread |
//! |                    | otherwise                    | agent_working                         | join thread, open turn |
//! |                    | no agent, not escalated      | refused: stays with representatives   | — |
//! | Unrouted           | new case                     | escalated                             | join thread, notify queue |
//! | RecordedOnly       | new case                     | closed (no resolution)                | join thread |
//! | TurnSkipped        | escalated / closed           | unchanged, turn cleared               | — |
//! | AnswerRecorded     | any                          | `decide()`'s next status              | send / draft / follow-up / notify queue; open turn for pending mail |
//! | DraftSent          | pending_review               | waiting_on_customer / resolved        | follow-up for a resolution |
//! |                    | closed                       | refused, except a closure notice      | — |
//! | DraftDiscarded     | pending_review               | idle                                  | — |
//! | FollowUpDue        | resolved with this follow-up | resolved (reminder) / closed (assumed)| reminder |
//! |                    | otherwise                    | unchanged                             | cancel the follow-up |
//! | SendFailed         | not closed, customer mail    | escalated                             | notify queue |
//! | TakenOver          | not closed                   | escalated                             | — |
//! | HandedBack         | escalated, with an agent     | idle or agent_working                 | open turn for pending mail |
//! | ReprocessRequested | not closed, no turn          | agent_working                         | open turn |

use crate::metrics::Fact;
use chrono::{DateTime, Utc};

use crate::decision::{decide, Action, DraftReason, Options, Situation};
use crate::model::{CaseStatus, Escalation, MailKind, Resolution, ResolutionKind, TurnResult, WorkflowMode};

/// The state of a case, with the data each state needs.
#[derive(Debug, Clone, PartialEq)]
pub enum CaseState {
    /// A turn is requested or in flight.
    AgentWorking,
    WaitingOnCustomer,
    PendingReview,
    /// A resolution went to the customer; `follow_up` is the active follow-up record.
    Resolved {
        follow_up: Option<String>,
    },
    /// A representative holds the case; agents are not called.
    Escalated(Escalation),
    Idle,
    /// `resolution` is None for a case recorded without an answer.
    Closed {
        at: DateTime<Utc>,
        resolution: Option<Resolution>,
    },
}

impl CaseState {
    pub fn status(&self) -> CaseStatus {
        match self {
            CaseState::AgentWorking => CaseStatus::AgentWorking,
            CaseState::WaitingOnCustomer => CaseStatus::WaitingOnCustomer,
            CaseState::PendingReview => CaseStatus::PendingReview,
            CaseState::Resolved { .. } => CaseStatus::Resolved,
            CaseState::Escalated(_) => CaseStatus::Escalated,
            CaseState::Idle => CaseStatus::Idle,
            CaseState::Closed { .. } => CaseStatus::Closed,
        }
    }

    /// Agents are called only for open cases nobody human holds.
    pub fn agents_may_work(&self) -> bool {
        !matches!(self, CaseState::Escalated(_) | CaseState::Closed { .. })
    }
}

/// The part of a case the lifecycle owns.
#[derive(Debug, Clone, PartialEq)]
pub struct Lifecycle {
    pub state: CaseState,
    /// The turn whose answer has not been carried out yet (a `TURN#` key).
    pub turn: Option<String>,
    /// Accepted mail waiting for the next turn.
    pub pending: Vec<String>,
    /// Times the customer wrote again after the case was closed.
    pub reopened: u32,
}

impl Lifecycle {
    /// A case before its first mail.
    pub fn new() -> Lifecycle {
        Lifecycle {
            state: CaseState::Idle,
            turn: None,
            pending: Vec::new(),
            reopened: 0,
        }
    }

    pub fn status(&self) -> CaseStatus {
        self.state.status()
    }
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle::new()
    }
}

/// What the reducer needs to know besides the state: the configuration and
/// the time, looked up by the step.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    pub now: DateTime<Utc>,
    /// The representatives' queue escalations go to.
    pub queue: &'a str,
    /// The case's agent, if it has one.
    pub agent: Option<&'a str>,
    /// The key (`TURN#…`) a turn opened by this transition gets.
    pub next_turn: &'a str,
    /// The workflow follows up after a resolution.
    pub follow_up: bool,
    /// A thank-you to a resolution closes the case.
    pub close_on_thanks: bool,
    pub kill_switch: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CaseEvent<'a> {
    /// Accepted customer mail was stored on the case.
    MailAccepted {
        mail: &'a str,
        thanks_only: bool,
    },
    /// A new case could not be routed to an agent: a representative takes it.
    Unrouted {
        reason: &'a str,
    },
    /// A new case is recorded and not answered (out-of-scope mail, `action = record`).
    RecordedOnly,
    /// The agent step found the case held or closed and did not call the agent.
    TurnSkipped {
        turn: &'a str,
    },
    /// A turn's answer (or failure) is stored; `decide()` says what it means.
    AnswerRecorded {
        turn: &'a str,
        result: &'a TurnResult,
        workflow: WorkflowMode,
        options: Options<'a>,
    },
    /// A representative sent a draft of this kind.
    DraftSent {
        draft: &'a str,
        kind: MailKind,
    },
    DraftDiscarded,
    /// A follow-up record is due; `reminders_sent` of `reminders` went out.
    FollowUpDue {
        follow_up: &'a str,
        reminders_sent: u32,
        reminders: u32,
    },
    /// Mail could not be sent, permanently. `to_customer` is false for the queue's own notices.
    SendFailed {
        reason: &'a str,
        to_customer: bool,
    },
    TakenOver {
        who: &'a str,
    },
    HandedBack {
        who: &'a str,
    },
    /// An operator asked for a new turn for `mail`; `release_hold` after the
    /// case was routed again to an agent.
    ReprocessRequested {
        mail: &'a str,
        release_hold: bool,
    },
}

/// What the step carries out after writing the new lifecycle.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// The mail joins the case's conversation: participants, thread ids.
    JoinThread,
    /// Write a work item for this turn with these mails (the agent step picks it up).
    OpenTurn { turn: String, mails: Vec<String> },
    /// Compose and send this mail to the customer.
    Send { kind: MailKind, body: String },
    /// Keep this mail as a draft for a representative.
    Draft { kind: MailKind, body: String, reason: DraftReason },
    /// Create the follow-up record.
    ScheduleFollowUp { id: String },
    /// Send reminder `n` to the silent customer.
    Remind { n: u32 },
    /// The follow-up record is finished: `done` after the closure, else cancelled.
    EndFollowUp { done: bool },
    /// Tell the representatives' queue.
    NotifyQueue { reason: String },
    /// One timeline line.
    Note { kind: &'static str, detail: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub next: Lifecycle,
    pub effects: Vec<Effect>,
    /// The support lead's facts this transition makes true (see
    /// [`facts_between`]); counted once, with the write of `next`.
    pub facts: Vec<Fact>,
}

/// The lifecycle facts of a change from `before` to `after`: a resolution
/// reached (by its kind), a reopening, an escalation (a take-over counts, as
/// in the report), an agent failure recorded. Draft outcomes, mail sent and
/// cases opened are counted by the steps that write them, which know what
/// the reducer does not (the draft was edited, the send went out).
pub fn facts_between(before: &Lifecycle, after: &Lifecycle, event: &CaseEvent<'_>) -> Vec<Fact> {
    let mut facts = Vec::new();
    if let (false, CaseState::Closed { resolution: Some(r), .. }) = (matches!(before.state, CaseState::Closed { .. }), &after.state) {
        facts.push(match r.kind {
            ResolutionKind::Confirmed => Fact::ResolvedConfirmed,
            ResolutionKind::Assumed => Fact::ResolvedAssumed,
            ResolutionKind::ClosedByAgent => Fact::ClosedByAgent,
        });
    }
    if after.reopened > before.reopened {
        facts.push(Fact::Reopened);
    }
    if matches!(after.state, CaseState::Escalated(_)) && !matches!(before.state, CaseState::Escalated(_)) {
        facts.push(Fact::Escalated);
    }
    if let CaseEvent::AnswerRecorded {
        result: TurnResult::Failed { .. },
        ..
    } = event
    {
        facts.push(Fact::AgentFailed);
    }
    if matches!(event, CaseEvent::DraftDiscarded) {
        facts.push(Fact::DraftDiscarded);
    }
    facts
}

/// The event does not apply to the case as it is; nothing changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

struct Builder<'a> {
    next: Lifecycle,
    effects: Vec<Effect>,
    policy: &'a Policy<'a>,
}

impl Builder<'_> {
    fn note(&mut self, kind: &'static str, detail: impl Into<String>) {
        self.effects.push(Effect::Note {
            kind,
            detail: detail.into(),
        });
    }

    fn escalate(&mut self, reason: String) {
        self.next.state = CaseState::Escalated(Escalation {
            queue: self.policy.queue.to_string(),
            reason: reason.clone(),
            at: self.policy.now,
        });
        self.note("escalated", format!("to queue {}: {reason}", self.policy.queue));
        self.effects.push(Effect::NotifyQueue { reason });
    }

    fn close(&mut self, resolution: Option<ResolutionKind>) {
        self.next.state = CaseState::Closed {
            at: self.policy.now,
            resolution: resolution.map(|kind| Resolution { kind, at: self.policy.now }),
        };
    }

    /// Opens the next turn for `mails` if an agent may work now; the one
    /// place a turn is opened, so "one turn in flight" is checked once.
    fn open_turn(&mut self, mails: Vec<String>, detail: impl FnOnce(&str, usize) -> String) -> bool {
        let Some(agent) = self.policy.agent else { return false };
        if mails.is_empty() || self.next.turn.is_some() || !self.next.state.agents_may_work() {
            return false;
        }
        self.next.pending.retain(|m| !mails.contains(m));
        self.next.turn = Some(self.policy.next_turn.to_string());
        self.next.state = CaseState::AgentWorking;
        let line = detail(agent, mails.len());
        self.note("agent_turn_requested", line);
        self.effects.push(Effect::OpenTurn {
            turn: self.policy.next_turn.to_string(),
            mails,
        });
        true
    }

    fn status_line(&mut self, before: CaseStatus) {
        let after = self.next.status();
        if after != before {
            self.note("status_changed", format!("case {before} → {after}"));
        }
    }

    fn done(self, before: &Lifecycle, event: &CaseEvent<'_>) -> Result<Transition, Refused> {
        let facts = facts_between(before, &self.next, event);
        Ok(Transition {
            next: self.next,
            effects: self.effects,
            facts,
        })
    }
}

/// The reducer. Total: every (state, event) pair yields a transition or a
/// refusal with the reason, never a panic.
pub fn apply(current: &Lifecycle, event: CaseEvent<'_>, policy: &Policy<'_>) -> Result<Transition, Refused> {
    let before = current.status();
    let mut b = Builder {
        next: current.clone(),
        effects: Vec::new(),
        policy,
    };
    match event.clone() {
        CaseEvent::MailAccepted { mail, thanks_only } => {
            let escalated = matches!(b.next.state, CaseState::Escalated(_));
            if policy.agent.is_none() && !escalated {
                return Err(Refused("the case has no agent; it stays with representatives".into()));
            }
            b.effects.push(Effect::JoinThread);
            if let CaseState::Resolved { follow_up } = &mut b.next.state {
                if follow_up.take().is_some() {
                    b.note("follow_up_cancelled", "the customer wrote; no more reminders");
                }
                if policy.close_on_thanks && thanks_only {
                    b.close(Some(ResolutionKind::Confirmed));
                    b.note("case_closed", "the customer confirmed the resolution with a thank-you");
                    b.status_line(before);
                    return b.done(current, &event);
                }
            }
            b.next.pending.push(mail.to_string());
            if matches!(b.next.state, CaseState::Closed { .. }) {
                b.next.state = CaseState::AgentWorking;
                b.next.reopened = b.next.reopened.saturating_add(1);
                b.note("case_reopened", "the customer wrote again after the case was closed");
            }
            if escalated {
                b.note(
                    "held_for_representative",
                    "mail added; a representative holds the case, so no agent is called",
                );
            } else if let Some(turn) = &b.next.turn {
                let line = format!("turn {turn} is in flight; this mail goes to the agent in the next turn");
                b.note("queued_for_next_turn", line);
            } else {
                let mails = std::mem::take(&mut b.next.pending);
                if !b.open_turn(mails.clone(), |agent, n| {
                    format!("agent {agent} will be called with {n} new mail(s)")
                }) {
                    b.next.pending = mails;
                }
            }
        }
        CaseEvent::Unrouted { reason } => {
            b.effects.push(Effect::JoinThread);
            b.escalate(reason.to_string());
        }
        CaseEvent::RecordedOnly => {
            b.effects.push(Effect::JoinThread);
            b.close(None);
            b.note(
                "case_closed",
                "closed without an answer or a queue notice ([classifier.out_of_scope] action = record)",
            );
        }
        CaseEvent::TurnSkipped { turn } => {
            if b.next.state.agents_may_work() {
                return Err(Refused(format!("the case is {before}; its turn is not skipped")));
            }
            if b.next.turn.as_deref() == Some(turn) {
                b.next.turn = None;
            }
            b.note("agent_skipped", format!("the case is {before}; the agent is not called"));
        }
        CaseEvent::AnswerRecorded {
            turn,
            result,
            workflow,
            options,
        } => {
            let plan = decide(Situation {
                case_status: before,
                workflow,
                options,
                result,
            });
            if b.next.turn.as_deref() == Some(turn) {
                b.next.turn = None;
            }
            let was_closed = matches!(b.next.state, CaseState::Closed { .. });
            b.next.state = match plan.next_status {
                CaseStatus::AgentWorking => CaseState::AgentWorking,
                CaseStatus::WaitingOnCustomer => CaseState::WaitingOnCustomer,
                CaseStatus::PendingReview => CaseState::PendingReview,
                CaseStatus::Resolved => CaseState::Resolved { follow_up: None },
                CaseStatus::Idle => CaseState::Idle,
                // Set by the Escalate and Close actions below, or kept as they were.
                CaseStatus::Escalated | CaseStatus::Closed => b.next.state.clone(),
            };
            for action in plan.actions {
                match action {
                    Action::SendToCustomer { kind, body } => b.effects.push(Effect::Send { kind, body }),
                    Action::DraftForReview { kind, body, reason } => b.effects.push(Effect::Draft { kind, body, reason }),
                    Action::ScheduleFollowUp => {
                        let id = turn.replacen("TURN#", "FUP#", 1);
                        b.next.state = CaseState::Resolved {
                            follow_up: Some(id.clone()),
                        };
                        b.effects.push(Effect::ScheduleFollowUp { id });
                    }
                    Action::Escalate { reason } => b.escalate(reason),
                    Action::Close { reason } if !was_closed => {
                        b.close(Some(ResolutionKind::ClosedByAgent));
                        b.note("case_closed", reason);
                    }
                    Action::Close { .. } => {}
                    Action::Record { note } => b.note("answer_recorded", note),
                }
            }
            let pending = b.next.pending.clone();
            b.open_turn(pending, |_, n| {
                format!("{n} mail(s) arrived during the turn; the agent is called again")
            });
            b.status_line(before);
        }
        CaseEvent::DraftSent { draft, kind } => {
            match (&b.next.state, kind) {
                // The closure notice of a closed case is what the draft is for.
                (CaseState::Closed { .. }, MailKind::ClosureNotice) => {}
                (CaseState::Closed { .. }, _) => return Err(Refused("the case is closed".into())),
                (CaseState::PendingReview, MailKind::Question) => b.next.state = CaseState::WaitingOnCustomer,
                (CaseState::PendingReview, MailKind::Resolution) => {
                    let follow_up = policy
                        .follow_up
                        .then(|| format!("FUP#draft-{}", draft.trim_start_matches("DRAFT#")));
                    if let Some(id) = &follow_up {
                        b.effects.push(Effect::ScheduleFollowUp { id: id.clone() });
                    }
                    b.next.state = CaseState::Resolved { follow_up };
                }
                _ => {}
            }
            b.status_line(before);
        }
        CaseEvent::DraftDiscarded => {
            if b.next.state == CaseState::PendingReview {
                b.next.state = CaseState::Idle;
            }
            b.status_line(before);
        }
        CaseEvent::FollowUpDue {
            follow_up,
            reminders_sent,
            reminders,
        } => {
            let current = matches!(&b.next.state, CaseState::Resolved { follow_up: Some(f) } if f == follow_up);
            if !(current && policy.follow_up) {
                b.effects.push(Effect::EndFollowUp { done: false });
                b.note("follow_up_cancelled", "the case moved on; no more reminders");
            } else if reminders_sent < reminders {
                let n = reminders_sent.saturating_add(1);
                if policy.kill_switch {
                    b.note(
                        "reminder_skipped",
                        format!("reminder {n} of {reminders} not sent: the kill switch is on"),
                    );
                }
                b.effects.push(Effect::Remind { n });
            } else {
                b.close(Some(ResolutionKind::Assumed));
                b.effects.push(Effect::EndFollowUp { done: true });
                b.note(
                    "case_closed",
                    format!("no answer after {reminders} reminder(s): resolution assumed"),
                );
                b.status_line(before);
            }
        }
        CaseEvent::SendFailed { reason, to_customer } => {
            if to_customer && !matches!(b.next.state, CaseState::Closed { .. }) {
                b.escalate(format!("mail to the customer failed: {reason}"));
                b.status_line(before);
            }
        }
        CaseEvent::TakenOver { who } => {
            if matches!(b.next.state, CaseState::Closed { .. }) {
                return Err(Refused("the case is closed".into()));
            }
            b.next.state = CaseState::Escalated(Escalation {
                queue: policy.queue.to_string(),
                reason: format!("taken over by {who}"),
                at: policy.now,
            });
            b.note("taken_over", format!("{who} took the case over; agents stop"));
            b.status_line(before);
        }
        CaseEvent::HandedBack { who } => {
            if !matches!(b.next.state, CaseState::Escalated(_)) {
                return Err(Refused(format!("the case is {before}, not held by a representative")));
            }
            let Some(agent) = policy.agent else {
                return Err(Refused("the case has no agent to hand it back to".into()));
            };
            b.next.state = CaseState::Idle;
            b.note("handed_back", format!("{who} handed the case back to agent {agent}"));
            let waiting = b.next.pending.clone();
            b.open_turn(waiting, |agent, n| {
                format!("mail arrived while a representative held the case: agent {agent} will be called with {n} mail(s)")
            });
            b.status_line(before);
        }
        CaseEvent::ReprocessRequested { mail, release_hold } => {
            if matches!(b.next.state, CaseState::Closed { .. }) {
                return Err(Refused("the case is closed".into()));
            }
            if release_hold && policy.agent.is_some() && matches!(b.next.state, CaseState::Escalated(_)) {
                b.next.state = CaseState::Idle;
            }
            if b.next.turn.is_some() {
                return Err(Refused("a turn is in flight; wait for it or let the sweep fail it".into()));
            }
            if !b.open_turn(vec![mail.to_string()], |agent, n| {
                format!("reprocess: agent {agent} will be called with {n} mail(s)")
            }) {
                return Err(Refused(format!(
                    "no agent may work on the case (status {}, agent {})",
                    b.next.status(),
                    policy.agent.unwrap_or("none")
                )));
            }
            b.status_line(before);
        }
    }
    b.done(current, &event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{AgentResponse, HandlingOptions, ResponseType};
    use proptest::prelude::*;

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default()
    }

    fn policy(next_turn: &str) -> Policy<'_> {
        Policy {
            now: at(),
            queue: "support",
            agent: Some("refunds"),
            next_turn,
            follow_up: true,
            close_on_thanks: true,
            kill_switch: false,
        }
    }

    fn answer(t: ResponseType, needs_review: bool) -> TurnResult {
        TurnResult::Answered {
            response: AgentResponse {
                response_type: t,
                message: Some("text".into()),
                handling_options: Some(HandlingOptions {
                    needs_review: Some(needs_review),
                }),
            },
        }
    }

    fn with(state: CaseState, turn: Option<&str>, pending: &[&str]) -> Lifecycle {
        Lifecycle {
            state,
            turn: turn.map(str::to_string),
            pending: pending.iter().map(|s| s.to_string()).collect(),
            reopened: 0,
        }
    }

    fn escalation() -> Escalation {
        Escalation {
            queue: "support".into(),
            reason: "r".into(),
            at: at(),
        }
    }

    fn closed() -> CaseState {
        CaseState::Closed {
            at: at(),
            resolution: None,
        }
    }

    fn opened(t: &Transition) -> Vec<String> {
        t.effects
            .iter()
            .filter_map(|e| match e {
                Effect::OpenTurn { mails, .. } => Some(mails.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// The mail arm, one row per situation: (from, turn in flight, thanks) →
    /// (status after, turn opened with the mail, mail left pending).
    #[test]
    fn mail_table() {
        use CaseStatus::*;
        let resolved = || CaseState::Resolved {
            follow_up: Some("FUP#1".into()),
        };
        type Row = (CaseState, Option<&'static str>, bool, CaseStatus, bool, bool);
        let rows: Vec<Row> = vec![
            (CaseState::Idle, None, false, AgentWorking, true, false),
            (CaseState::WaitingOnCustomer, None, false, AgentWorking, true, false),
            (CaseState::AgentWorking, Some("TURN#1"), false, AgentWorking, false, true),
            (resolved(), None, true, Closed, false, false),
            (resolved(), None, false, AgentWorking, true, false),
            (CaseState::Escalated(escalation()), None, false, Escalated, false, true),
            (closed(), None, false, AgentWorking, true, false),
            (closed(), None, true, AgentWorking, true, false),
        ];
        for (from, turn, thanks, status, turn_opened, left_pending) in rows {
            let label = format!("{from:?} turn={turn:?} thanks={thanks}");
            let t = apply(
                &with(from, turn, &[]),
                CaseEvent::MailAccepted {
                    mail: "MSG#2",
                    thanks_only: thanks,
                },
                &policy("TURN#2"),
            )
            .unwrap_or_else(|e| panic!("{label}: {e}"));
            assert_eq!(t.next.status(), status, "{label}");
            assert_eq!(opened(&t) == ["MSG#2"], turn_opened, "{label}");
            assert_eq!(t.next.pending == ["MSG#2"], left_pending, "{label}");
            assert!(t.effects.contains(&Effect::JoinThread), "{label}");
        }
    }

    /// Which support-lead facts each transition counts (and that the ones
    /// that change nothing count nothing).
    #[test]
    fn facts_table() {
        let failed = TurnResult::Failed { reason: "timeout".into() };
        let resolve_case = answer(ResponseType::ResolveCase, false);
        let question = answer(ResponseType::Question, false);
        let recorded = |result| CaseEvent::AnswerRecorded {
            turn: "TURN#1",
            result,
            workflow: WorkflowMode::FullyAutonomous,
            options: Options::default(),
        };
        let follow_up = || CaseState::Resolved {
            follow_up: Some("FUP#1".into()),
        };
        let mail = |thanks_only| CaseEvent::MailAccepted {
            mail: "MSG#2",
            thanks_only,
        };
        let due = |sent| CaseEvent::FollowUpDue {
            follow_up: "FUP#1",
            reminders_sent: sent,
            reminders: 2,
        };
        let rows: Vec<(Lifecycle, CaseEvent<'_>, Vec<Fact>)> = vec![
            (
                with(CaseState::Resolved { follow_up: None }, None, &[]),
                mail(true),
                vec![Fact::ResolvedConfirmed],
            ),
            (with(follow_up(), None, &[]), due(2), vec![Fact::ResolvedAssumed]),
            (with(follow_up(), None, &[]), due(1), vec![]),
            (
                with(CaseState::AgentWorking, Some("TURN#1"), &[]),
                recorded(&resolve_case),
                vec![Fact::ClosedByAgent],
            ),
            (with(CaseState::AgentWorking, Some("TURN#1"), &[]), recorded(&question), vec![]),
            (
                with(CaseState::AgentWorking, Some("TURN#1"), &[]),
                recorded(&failed),
                vec![Fact::Escalated, Fact::AgentFailed],
            ),
            (with(closed(), None, &[]), mail(false), vec![Fact::Reopened]),
            (
                with(CaseState::Idle, None, &[]),
                CaseEvent::Unrouted { reason: "no agent" },
                vec![Fact::Escalated],
            ),
            (
                with(CaseState::Idle, None, &[]),
                CaseEvent::TakenOver { who: "rita" },
                vec![Fact::Escalated],
            ),
            // Already held: taking it over does not count a second escalation.
            (
                with(CaseState::Escalated(escalation()), None, &[]),
                CaseEvent::TakenOver { who: "rita" },
                vec![],
            ),
            (
                with(CaseState::PendingReview, None, &[]),
                CaseEvent::DraftDiscarded,
                vec![Fact::DraftDiscarded],
            ),
            (with(CaseState::Idle, None, &[]), CaseEvent::RecordedOnly, vec![]),
        ];
        for (i, (from, event, want)) in rows.into_iter().enumerate() {
            let t = apply(&from, event.clone(), &policy("TURN#2")).unwrap_or_else(|e| panic!("row {i}: refused: {e}"));
            assert_eq!(t.facts, want, "row {i}: {event:?} from {:?}", from.state);
        }
    }

    #[test]
    fn a_thank_you_to_a_resolution_closes_it_as_confirmed() {
        let from = with(CaseState::Resolved { follow_up: None }, None, &[]);
        let t = apply(
            &from,
            CaseEvent::MailAccepted {
                mail: "MSG#2",
                thanks_only: true,
            },
            &policy("TURN#2"),
        )
        .unwrap();
        assert!(matches!(
            t.next.state,
            CaseState::Closed {
                resolution: Some(Resolution {
                    kind: ResolutionKind::Confirmed,
                    ..
                }),
                ..
            }
        ));
        let mut off = policy("TURN#2");
        off.close_on_thanks = false;
        let t = apply(
            &from,
            CaseEvent::MailAccepted {
                mail: "MSG#2",
                thanks_only: true,
            },
            &off,
        )
        .unwrap();
        assert_eq!(
            t.next.status(),
            CaseStatus::AgentWorking,
            "without close_on_thanks the agent reads it"
        );
    }

    #[test]
    fn mail_for_a_case_without_agent_is_refused_unless_held() {
        let mut p = policy("TURN#2");
        p.agent = None;
        let mail = CaseEvent::MailAccepted {
            mail: "MSG#2",
            thanks_only: false,
        };
        assert!(apply(&with(CaseState::Idle, None, &[]), mail.clone(), &p).is_err());
        let held = apply(&with(CaseState::Escalated(escalation()), None, &[]), mail, &p).unwrap();
        assert_eq!(held.next.pending, ["MSG#2"]);
    }

    #[test]
    fn an_answer_opens_the_next_turn_for_mail_that_came_meanwhile() {
        let from = with(CaseState::AgentWorking, Some("TURN#1"), &["MSG#2", "MSG#3"]);
        let result = answer(ResponseType::Question, false);
        let t = apply(
            &from,
            CaseEvent::AnswerRecorded {
                turn: "TURN#1",
                result: &result,
                workflow: WorkflowMode::FullyAutonomous,
                options: Options::default(),
            },
            &policy("TURN#4"),
        )
        .unwrap();
        assert_eq!(t.next.turn.as_deref(), Some("TURN#4"));
        assert!(t.next.pending.is_empty());
        assert_eq!(opened(&t), ["MSG#2", "MSG#3"]);
        assert!(t.effects.iter().any(|e| matches!(
            e,
            Effect::Send {
                kind: MailKind::Question,
                ..
            }
        )));
    }

    #[test]
    fn a_resolution_with_follow_up_names_its_record_in_the_state() {
        let result = answer(ResponseType::Resolved, false);
        let options = Options {
            follow_up: true,
            ..Options::default()
        };
        let t = apply(
            &with(CaseState::AgentWorking, Some("TURN#0000000003"), &[]),
            CaseEvent::AnswerRecorded {
                turn: "TURN#0000000003",
                result: &result,
                workflow: WorkflowMode::FullyAutonomous,
                options,
            },
            &policy("TURN#0000000004"),
        )
        .unwrap();
        assert_eq!(
            t.next.state,
            CaseState::Resolved {
                follow_up: Some("FUP#0000000003".into())
            }
        );
        assert!(t.effects.contains(&Effect::ScheduleFollowUp {
            id: "FUP#0000000003".into()
        }));
        // The follow-up reminds, then closes with the resolution assumed.
        let remind = apply(
            &t.next,
            CaseEvent::FollowUpDue {
                follow_up: "FUP#0000000003",
                reminders_sent: 0,
                reminders: 1,
            },
            &policy("TURN#5"),
        )
        .unwrap();
        assert!(remind.effects.contains(&Effect::Remind { n: 1 }));
        let close = apply(
            &remind.next,
            CaseEvent::FollowUpDue {
                follow_up: "FUP#0000000003",
                reminders_sent: 1,
                reminders: 1,
            },
            &policy("TURN#5"),
        )
        .unwrap();
        assert!(matches!(
            close.next.state,
            CaseState::Closed {
                resolution: Some(Resolution {
                    kind: ResolutionKind::Assumed,
                    ..
                }),
                ..
            }
        ));
        // A stale follow-up is cancelled, not acted on.
        let stale = apply(
            &with(CaseState::Idle, None, &[]),
            CaseEvent::FollowUpDue {
                follow_up: "FUP#0000000003",
                reminders_sent: 0,
                reminders: 1,
            },
            &policy("TURN#5"),
        )
        .unwrap();
        assert_eq!(stale.effects[0], Effect::EndFollowUp { done: false });
    }

    #[test]
    fn representatives_actions_refuse_what_does_not_apply() {
        let p = policy("TURN#9");
        assert!(apply(&with(closed(), None, &[]), CaseEvent::TakenOver { who: "ann" }, &p).is_err());
        assert!(apply(&with(CaseState::Idle, None, &[]), CaseEvent::HandedBack { who: "ann" }, &p).is_err());
        let back = apply(
            &with(CaseState::Escalated(escalation()), None, &["MSG#4"]),
            CaseEvent::HandedBack { who: "ann" },
            &p,
        )
        .unwrap();
        assert_eq!(opened(&back), ["MSG#4"]);
        assert!(apply(
            &with(CaseState::Idle, Some("TURN#1"), &[]),
            CaseEvent::ReprocessRequested {
                mail: "MSG#1",
                release_hold: false
            },
            &p
        )
        .is_err());
        let held = with(CaseState::Escalated(escalation()), None, &[]);
        let request = CaseEvent::ReprocessRequested {
            mail: "MSG#1",
            release_hold: false,
        };
        assert!(apply(&held, request, &p).is_err(), "a held case stays held unless routed again");
        let request = CaseEvent::ReprocessRequested {
            mail: "MSG#1",
            release_hold: true,
        };
        assert_eq!(apply(&held, request, &p).unwrap().next.status(), CaseStatus::AgentWorking);
    }

    #[test]
    fn a_closure_notice_draft_can_be_sent_on_the_closed_case() {
        let p = policy("TURN#9");
        let from = with(closed(), None, &[]);
        let notice = CaseEvent::DraftSent {
            draft: "DRAFT#1#closure_notice",
            kind: MailKind::ClosureNotice,
        };
        assert_eq!(apply(&from, notice, &p).unwrap().next.status(), CaseStatus::Closed);
        let question = CaseEvent::DraftSent {
            draft: "DRAFT#1#question",
            kind: MailKind::Question,
        };
        assert!(apply(&from, question, &p).is_err());
    }

    // ---- random event sequences ----

    #[derive(Debug, Clone)]
    enum Step {
        Mail {
            thanks: bool,
        },
        Answer {
            t: u8,
            review: bool,
            failed: bool,
            semi: bool,
            shadow: bool,
            kill: bool,
            capped: bool,
        },
        AnswerStale,
        Skip,
        DraftSent(u8),
        DraftDiscarded,
        FollowUp {
            sent: u32,
        },
        SendFailed {
            to_customer: bool,
        },
        TakeOver,
        HandBack,
        Reprocess {
            release: bool,
        },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => any::<bool>().prop_map(|thanks| Step::Mail { thanks }),
            4 => (0u8..5, any::<bool>(), prop::bool::weighted(0.15), any::<bool>(), prop::bool::weighted(0.1), prop::bool::weighted(0.1), prop::bool::weighted(0.1))
                .prop_map(|(t, review, failed, semi, shadow, kill, capped)| Step::Answer { t, review, failed, semi, shadow, kill, capped }),
            1 => Just(Step::AnswerStale),
            1 => Just(Step::Skip),
            1 => (0u8..3).prop_map(Step::DraftSent),
            1 => Just(Step::DraftDiscarded),
            1 => (0u32..3).prop_map(|sent| Step::FollowUp { sent }),
            1 => any::<bool>().prop_map(|to_customer| Step::SendFailed { to_customer }),
            1 => Just(Step::TakeOver),
            1 => Just(Step::HandBack),
            1 => any::<bool>().prop_map(|release| Step::Reprocess { release }),
        ]
    }

    proptest! {
        /// Invariants over any sequence of events: at most one turn in
        /// flight and a turn opened only when none is; an agent-working case
        /// has its turn; nothing is sent to a closed case, nor in shadow
        /// mode, under the kill switch, in a semi-autonomous workflow or for
        /// an answer that asked for review; every accepted mail ends in
        /// exactly one turn, the pending list, or the thank-you that closed
        /// the case.
        #[test]
        fn invariants_hold_over_random_histories(steps in prop::collection::vec(step(), 1..40), agent in prop::bool::weighted(0.9)) {
            let mut life = Lifecycle::new();
            let mut mails = 0u32;
            let mut turns = 0u32;
            let mut in_turns: Vec<String> = Vec::new();
            let mut consumed: Vec<String> = Vec::new();
            let mut refused_mail: Vec<String> = Vec::new();
            for s in steps {
                let next_turn = format!("TURN#{:010}", turns + 1);
                let mut p = policy(&next_turn);
                if !agent { p.agent = None; }
                let mail_id = format!("MSG#{mails}");
                let result;
                let current_turn = life.turn.clone().unwrap_or_else(|| "TURN#none".into());
                let follow_up = match &life.state { CaseState::Resolved { follow_up: Some(f) } => f.clone(), _ => "FUP#none".into() };
                let mut forbids_send = false;
                let event = match &s {
                    Step::Mail { thanks } => { mails += 1; CaseEvent::MailAccepted { mail: &mail_id, thanks_only: *thanks } }
                    Step::Answer { t, review, failed, semi, shadow, kill, capped } => {
                        let kinds = [ResponseType::Question, ResponseType::Resolved, ResponseType::UnableToResolve, ResponseType::NoAction, ResponseType::ResolveCase];
                        result = if *failed { TurnResult::Failed { reason: "x".into() } } else { answer(kinds[usize::from(*t) % 5], *review) };
                        forbids_send = (*review && !*failed && *t < 2) || *semi || *shadow || *kill || life.status() == CaseStatus::Closed;
                        CaseEvent::AnswerRecorded {
                            turn: &current_turn,
                            result: &result,
                            workflow: if *semi { WorkflowMode::SemiAutonomous } else { WorkflowMode::FullyAutonomous },
                            options: Options { shadow: *shadow, kill_switch: *kill, ai_mails_last_24h: if *capped { 9 } else { 0 }, ai_mail_cap: 4, follow_up: true, closure_notice: Some("bye") },
                        }
                    }
                    Step::AnswerStale => {
                        result = answer(ResponseType::NoAction, false);
                        CaseEvent::AnswerRecorded { turn: "TURN#stale", result: &result, workflow: WorkflowMode::FullyAutonomous, options: Options::default() }
                    }
                    Step::Skip => CaseEvent::TurnSkipped { turn: &current_turn },
                    Step::DraftSent(k) => CaseEvent::DraftSent { draft: "DRAFT#1", kind: [MailKind::Question, MailKind::Resolution, MailKind::ClosureNotice][usize::from(*k) % 3] },
                    Step::DraftDiscarded => CaseEvent::DraftDiscarded,
                    Step::FollowUp { sent } => CaseEvent::FollowUpDue { follow_up: &follow_up, reminders_sent: *sent, reminders: 2 },
                    Step::SendFailed { to_customer } => CaseEvent::SendFailed { reason: "bounced", to_customer: *to_customer },
                    Step::TakeOver => CaseEvent::TakenOver { who: "ann" },
                    Step::HandBack => CaseEvent::HandedBack { who: "ann" },
                    Step::Reprocess { release } => CaseEvent::ReprocessRequested { mail: "MSG#reprocess", release_hold: *release },
                };
                let before = life.clone();
                let Ok(t) = apply(&life, event, &p) else {
                    if matches!(s, Step::Mail { .. }) { refused_mail.push(mail_id.clone()); }
                    continue;
                };
                for effect in &t.effects {
                    match effect {
                        Effect::OpenTurn { turn, mails } => {
                            // Only the answer to the turn in flight frees its place for the next one.
                            let freed = before.turn.is_none() || matches!(s, Step::Answer { .. });
                            prop_assert!(freed, "a turn opened while {:?} was in flight", before.turn);
                            prop_assert_eq!(Some(turn), t.next.turn.as_ref());
                            prop_assert!(t.next.state.agents_may_work());
                            prop_assert!(p.agent.is_some());
                            turns += 1;
                            in_turns.extend(mails.iter().filter(|m| *m != "MSG#reprocess").cloned());
                        }
                        Effect::Send { kind, .. } => {
                            prop_assert!(!forbids_send, "{:?} sent from {:?} on {:?}", kind, before.state, s);
                            prop_assert!(before.status() != CaseStatus::Closed && before.status() != CaseStatus::Escalated);
                        }
                        Effect::Remind { .. } => {
                            let resolved = matches!(before.state, CaseState::Resolved { .. });
                            prop_assert!(resolved, "a reminder from {:?}", before.state);
                        }
                        _ => {}
                    }
                }
                if matches!(s, Step::Mail { thanks: true }) && matches!(t.next.state, CaseState::Closed { resolution: Some(Resolution { kind: ResolutionKind::Confirmed, .. }), .. })
                    && !matches!(before.state, CaseState::Closed { .. }) {
                    consumed.push(mail_id.clone());
                }
                life = t.next;
                if life.status() == CaseStatus::AgentWorking {
                    prop_assert!(life.turn.is_some(), "agent_working without a turn after {:?}", s);
                }
                // Conservation of accepted mail.
                for m in 0..mails {
                    let id = format!("MSG#{m}");
                    let places = in_turns.iter().filter(|x| **x == id).count()
                        + life.pending.iter().filter(|x| **x == id).count()
                        + consumed.iter().filter(|x| **x == id).count()
                        + refused_mail.iter().filter(|x| **x == id).count();
                    prop_assert_eq!(places, 1, "mail {} is in {} places", id, places);
                }
            }
        }
    }
}
