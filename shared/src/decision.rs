//! The decision table (SPEC §2): what casebridge does with an agent's answer.
//!
//! Pure code, no I/O: (case status, workflow, options, turn result) → next
//! status and a list of actions. The outcome step carries the actions out;
//! nothing else in casebridge decides what an answer means.
//!
//! | answer          | fully autonomous                                   | semi-autonomous / needsReview |
//! |-----------------|----------------------------------------------------|-------------------------------|
//! | Question        | send question → waiting_on_customer                | draft → pending_review        |
//! | Resolved        | send resolution (+ follow-up if set) → resolved    | draft → pending_review        |
//! | UnableToResolve | escalate → escalated                               | same                          |
//! | NoAction        | record → idle                                      | same                          |
//! | ResolveCase     | (closure notice if set) close → closed             | same                          |
//! | agent failed    | escalate with the reason → escalated               | same                          |
//!
//! Guards, in order: a closed case is never written to; a case a
//! representative holds (escalated) only collects the answer as a draft;
//! shadow mode turns every mail into a draft and sends, closes and escalates
//! nothing; the kill switch turns every customer mail into a draft; past the
//! per-case cap of AI mail in 24 hours the case escalates instead of sending.

use crate::model::{CaseStatus, MailKind, TurnResult, WorkflowMode};
use crate::protocol::{AgentResponse, ResponseType};

/// Why a mail became a draft instead of being sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DraftReason {
    SemiAutonomousWorkflow,
    AgentAskedForReview,
    CaseHeldByRepresentative,
    KillSwitch,
    ShadowMode,
}

impl DraftReason {
    pub fn describe(self) -> &'static str {
        match self {
            DraftReason::SemiAutonomousWorkflow => "semi-autonomous workflow: a representative reviews every mail",
            DraftReason::AgentAskedForReview => "the agent asked for review (needsReview)",
            DraftReason::CaseHeldByRepresentative => "the case is held by a representative",
            DraftReason::KillSwitch => "the kill switch is on: no mail is sent",
            DraftReason::ShadowMode => "shadow mode: decided and recorded, not sent",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write this text to the customer and send it.
    SendToCustomer { kind: MailKind, body: String },
    /// Store this text as a draft for a representative; send nothing.
    DraftForReview { kind: MailKind, body: String, reason: DraftReason },
    /// Remind the silent customer later, then close (the workflow's follow-up).
    ScheduleFollowUp,
    /// Put the case in the representative queue and notify the queue.
    Escalate { reason: String },
    /// Close the case.
    Close { reason: String },
    /// Only record the answer on the timeline.
    Record { note: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub next_status: CaseStatus,
    pub actions: Vec<Action>,
}

impl Plan {
    fn single(next_status: CaseStatus, action: Action) -> Plan {
        Plan {
            next_status,
            actions: vec![action],
        }
    }

    pub fn sends_mail(&self) -> bool {
        self.actions.iter().any(|a| matches!(a, Action::SendToCustomer { .. }))
    }
}

/// The workflow's and the case's settings the decision depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options<'a> {
    pub shadow: bool,
    pub kill_switch: bool,
    /// AI-written mail sent to this case in the last 24 hours.
    pub ai_mails_last_24h: u32,
    pub ai_mail_cap: u32,
    /// Whether the workflow follows up after a resolution.
    pub follow_up: bool,
    /// Text of the notice sent when an agent closes the case, if any.
    pub closure_notice: Option<&'a str>,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            shadow: false,
            kill_switch: false,
            ai_mails_last_24h: 0,
            ai_mail_cap: 4,
            follow_up: false,
            closure_notice: None,
        }
    }
}

/// What the decision looks at.
#[derive(Debug, Clone, Copy)]
pub struct Situation<'a> {
    pub case_status: CaseStatus,
    pub workflow: WorkflowMode,
    pub options: Options<'a>,
    pub result: &'a TurnResult,
}

pub fn decide(situation: Situation<'_>) -> Plan {
    let Situation {
        case_status,
        workflow,
        options,
        result,
    } = situation;

    if case_status == CaseStatus::Closed {
        return Plan::single(
            CaseStatus::Closed,
            Action::Record {
                note: "case is closed; the answer was recorded and not carried out".into(),
            },
        );
    }

    let response = match result {
        TurnResult::Failed { reason } => {
            if case_status == CaseStatus::Escalated {
                return Plan::single(
                    CaseStatus::Escalated,
                    Action::Record {
                        note: format!("agent failed while a representative holds the case: {reason}"),
                    },
                );
            }
            return escalate(options, format!("agent failed: {reason}"));
        }
        TurnResult::Answered { response } => response,
    };

    if case_status == CaseStatus::Escalated {
        return decide_for_held_case(response);
    }

    match response.response_type {
        ResponseType::Question => mail_to_customer(response, workflow, options, MailKind::Question, CaseStatus::WaitingOnCustomer),
        ResponseType::Resolved => mail_to_customer(response, workflow, options, MailKind::Resolution, CaseStatus::Resolved),
        ResponseType::UnableToResolve => escalate(options, "the agent could not resolve the case".into()),
        ResponseType::NoAction => Plan::single(
            CaseStatus::Idle,
            Action::Record {
                note: "the agent chose to take no action".into(),
            },
        ),
        ResponseType::ResolveCase => close(workflow, options),
    }
}

fn escalate(options: Options<'_>, reason: String) -> Plan {
    if options.shadow {
        return Plan::single(
            CaseStatus::Idle,
            Action::Record {
                note: format!("shadow mode: would escalate ({reason})"),
            },
        );
    }
    Plan::single(CaseStatus::Escalated, Action::Escalate { reason })
}

fn close(workflow: WorkflowMode, options: Options<'_>) -> Plan {
    let reason = "the agent resolved the case".to_string();
    if options.shadow {
        return Plan::single(
            CaseStatus::Idle,
            Action::Record {
                note: format!("shadow mode: would close ({reason})"),
            },
        );
    }
    let mut actions = Vec::new();
    if let Some(notice) = options.closure_notice.filter(|n| !n.trim().is_empty()) {
        let body = notice.to_string();
        actions.push(match (workflow, options.kill_switch) {
            (WorkflowMode::SemiAutonomous, _) => Action::DraftForReview {
                kind: MailKind::ClosureNotice,
                body,
                reason: DraftReason::SemiAutonomousWorkflow,
            },
            (_, true) => Action::DraftForReview {
                kind: MailKind::ClosureNotice,
                body,
                reason: DraftReason::KillSwitch,
            },
            _ => Action::SendToCustomer {
                kind: MailKind::ClosureNotice,
                body,
            },
        });
    }
    actions.push(Action::Close { reason });
    Plan {
        next_status: CaseStatus::Closed,
        actions,
    }
}

fn mail_to_customer(
    response: &AgentResponse,
    workflow: WorkflowMode,
    options: Options<'_>,
    kind: MailKind,
    after_send: CaseStatus,
) -> Plan {
    // The protocol parser already refuses this; the table stays total anyway.
    let Some(body) = response.message.as_deref().filter(|m| !m.trim().is_empty()) else {
        return escalate(options, format!("agent answered {} without a message", response.response_type));
    };
    let review = if options.shadow {
        Some(DraftReason::ShadowMode)
    } else if workflow == WorkflowMode::SemiAutonomous {
        Some(DraftReason::SemiAutonomousWorkflow)
    } else if response.needs_review() {
        Some(DraftReason::AgentAskedForReview)
    } else if options.kill_switch {
        Some(DraftReason::KillSwitch)
    } else {
        None
    };
    if let Some(reason) = review {
        return Plan::single(
            CaseStatus::PendingReview,
            Action::DraftForReview {
                kind,
                body: body.to_string(),
                reason,
            },
        );
    }
    if options.ai_mails_last_24h >= options.ai_mail_cap {
        return escalate(
            options,
            format!(
                "{} AI mails went to this case in the last 24 hours (cap {}); a representative takes over",
                options.ai_mails_last_24h, options.ai_mail_cap
            ),
        );
    }
    let mut actions = vec![Action::SendToCustomer {
        kind,
        body: body.to_string(),
    }];
    if kind == MailKind::Resolution && options.follow_up {
        actions.push(Action::ScheduleFollowUp);
    }
    Plan {
        next_status: after_send,
        actions,
    }
}

/// A representative holds the case: keep what the agent wrote for them, act on nothing.
fn decide_for_held_case(response: &AgentResponse) -> Plan {
    let kind = match response.response_type {
        ResponseType::Question => MailKind::Question,
        ResponseType::Resolved => MailKind::Resolution,
        other => {
            return Plan::single(
                CaseStatus::Escalated,
                Action::Record {
                    note: format!("agent answered {other} while a representative holds the case; not carried out"),
                },
            )
        }
    };
    match response.message.as_deref().filter(|m| !m.trim().is_empty()) {
        Some(body) => Plan::single(
            CaseStatus::Escalated,
            Action::DraftForReview {
                kind,
                body: body.to_string(),
                reason: DraftReason::CaseHeldByRepresentative,
            },
        ),
        None => Plan::single(
            CaseStatus::Escalated,
            Action::Record {
                note: format!("agent answered {} without a message", response.response_type),
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::HandlingOptions;
    use proptest::prelude::*;

    fn answer(t: ResponseType, message: Option<&str>, needs_review: Option<bool>) -> TurnResult {
        TurnResult::Answered {
            response: AgentResponse {
                response_type: t,
                message: message.map(str::to_string),
                handling_options: needs_review.map(|n| HandlingOptions { needs_review: Some(n) }),
            },
        }
    }

    /// Expected shape of a plan, compact enough to read as a table.
    #[derive(Debug, PartialEq)]
    enum Expect {
        Send(MailKind, CaseStatus),
        Draft(MailKind, DraftReason),
        Escalate,
        Record(CaseStatus),
        Close,
    }

    fn shape(plan: &Plan) -> Expect {
        assert_eq!(plan.actions.len(), 1, "{plan:?}");
        match &plan.actions[0] {
            Action::SendToCustomer { kind, .. } => Expect::Send(*kind, plan.next_status),
            Action::DraftForReview { kind, reason, .. } => {
                assert_eq!(plan.next_status, CaseStatus::PendingReview);
                Expect::Draft(*kind, *reason)
            }
            Action::Escalate { .. } => {
                assert_eq!(plan.next_status, CaseStatus::Escalated);
                Expect::Escalate
            }
            Action::Record { .. } => Expect::Record(plan.next_status),
            Action::ScheduleFollowUp => panic!("no follow-up without the option: {plan:?}"),
            Action::Close { .. } => {
                assert_eq!(plan.next_status, CaseStatus::Closed);
                Expect::Close
            }
        }
    }

    /// All 5 answer types × 2 workflows × needsReview absent/false/true.
    #[test]
    fn the_table() {
        use CaseStatus as S;
        use DraftReason as R;
        use Expect::*;
        use MailKind as K;
        use ResponseType as T;
        use WorkflowMode::*;
        let rows: Vec<(T, WorkflowMode, Option<bool>, Expect)> = vec![
            (T::Question, FullyAutonomous, None, Send(K::Question, S::WaitingOnCustomer)),
            (T::Question, FullyAutonomous, Some(false), Send(K::Question, S::WaitingOnCustomer)),
            (T::Question, FullyAutonomous, Some(true), Draft(K::Question, R::AgentAskedForReview)),
            (T::Question, SemiAutonomous, None, Draft(K::Question, R::SemiAutonomousWorkflow)),
            (
                T::Question,
                SemiAutonomous,
                Some(false),
                Draft(K::Question, R::SemiAutonomousWorkflow),
            ),
            (
                T::Question,
                SemiAutonomous,
                Some(true),
                Draft(K::Question, R::SemiAutonomousWorkflow),
            ),
            (T::Resolved, FullyAutonomous, None, Send(K::Resolution, S::Resolved)),
            (T::Resolved, FullyAutonomous, Some(false), Send(K::Resolution, S::Resolved)),
            (
                T::Resolved,
                FullyAutonomous,
                Some(true),
                Draft(K::Resolution, R::AgentAskedForReview),
            ),
            (T::Resolved, SemiAutonomous, None, Draft(K::Resolution, R::SemiAutonomousWorkflow)),
            (
                T::Resolved,
                SemiAutonomous,
                Some(false),
                Draft(K::Resolution, R::SemiAutonomousWorkflow),
            ),
            (
                T::Resolved,
                SemiAutonomous,
                Some(true),
                Draft(K::Resolution, R::SemiAutonomousWorkflow),
            ),
            (T::UnableToResolve, FullyAutonomous, None, Escalate),
            (T::UnableToResolve, FullyAutonomous, Some(false), Escalate),
            (T::UnableToResolve, FullyAutonomous, Some(true), Escalate),
            (T::UnableToResolve, SemiAutonomous, None, Escalate),
            (T::UnableToResolve, SemiAutonomous, Some(false), Escalate),
            (T::UnableToResolve, SemiAutonomous, Some(true), Escalate),
            (T::NoAction, FullyAutonomous, None, Record(S::Idle)),
            (T::NoAction, FullyAutonomous, Some(false), Record(S::Idle)),
            (T::NoAction, FullyAutonomous, Some(true), Record(S::Idle)),
            (T::NoAction, SemiAutonomous, None, Record(S::Idle)),
            (T::NoAction, SemiAutonomous, Some(false), Record(S::Idle)),
            (T::NoAction, SemiAutonomous, Some(true), Record(S::Idle)),
            (T::ResolveCase, FullyAutonomous, None, Close),
            (T::ResolveCase, FullyAutonomous, Some(false), Close),
            (T::ResolveCase, FullyAutonomous, Some(true), Close),
            (T::ResolveCase, SemiAutonomous, None, Close),
            (T::ResolveCase, SemiAutonomous, Some(false), Close),
            (T::ResolveCase, SemiAutonomous, Some(true), Close),
        ];
        assert_eq!(rows.len(), 5 * 2 * 3);
        for (t, workflow, needs_review, expected) in rows {
            let result = answer(t, Some("Some text"), needs_review);
            let plan = decide(Situation {
                options: Options::default(),
                case_status: S::AgentWorking,
                workflow,
                result: &result,
            });
            assert_eq!(shape(&plan), expected, "{t} {workflow:?} needsReview={needs_review:?}");
        }
    }

    #[test]
    fn sent_and_drafted_text_is_the_agents_message() {
        let result = answer(ResponseType::Question, Some("What is the amount?"), None);
        let plan = decide(Situation {
            options: Options::default(),
            case_status: CaseStatus::AgentWorking,
            workflow: WorkflowMode::FullyAutonomous,
            result: &result,
        });
        assert_eq!(
            plan.actions,
            vec![Action::SendToCustomer {
                kind: MailKind::Question,
                body: "What is the amount?".into()
            }]
        );
    }

    #[test]
    fn mail_answer_without_message_escalates_instead_of_blank_mail() {
        for t in [ResponseType::Question, ResponseType::Resolved] {
            for message in [None, Some("  \n")] {
                let result = answer(t, message, None);
                let plan = decide(Situation {
                    options: Options::default(),
                    case_status: CaseStatus::AgentWorking,
                    workflow: WorkflowMode::FullyAutonomous,
                    result: &result,
                });
                assert_eq!(shape(&plan), Expect::Escalate, "{t} {message:?}");
            }
        }
    }

    #[test]
    fn agent_failure_escalates_with_reason() {
        let result = TurnResult::Failed {
            reason: "timed out after 3 attempts".into(),
        };
        let plan = decide(Situation {
            options: Options::default(),
            case_status: CaseStatus::AgentWorking,
            workflow: WorkflowMode::FullyAutonomous,
            result: &result,
        });
        match &plan.actions[..] {
            [Action::Escalate { reason }] => assert!(reason.contains("timed out")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn closed_and_held_cases_are_not_acted_on() {
        let result = answer(ResponseType::Resolved, Some("Done"), None);
        let plan = decide(Situation {
            options: Options::default(),
            case_status: CaseStatus::Closed,
            workflow: WorkflowMode::FullyAutonomous,
            result: &result,
        });
        assert_eq!(shape(&plan), Expect::Record(CaseStatus::Closed));
        let plan = decide(Situation {
            options: Options::default(),
            case_status: CaseStatus::Escalated,
            workflow: WorkflowMode::FullyAutonomous,
            result: &result,
        });
        assert!(matches!(
            &plan.actions[..],
            [Action::DraftForReview {
                reason: DraftReason::CaseHeldByRepresentative,
                ..
            }]
        ));
        assert_eq!(plan.next_status, CaseStatus::Escalated);
        let close = answer(ResponseType::ResolveCase, None, None);
        let plan = decide(Situation {
            options: Options::default(),
            case_status: CaseStatus::Escalated,
            workflow: WorkflowMode::FullyAutonomous,
            result: &close,
        });
        assert_eq!(shape(&plan), Expect::Record(CaseStatus::Escalated));
    }

    fn any_status() -> impl Strategy<Value = CaseStatus> {
        prop::sample::select(CaseStatus::ALL.to_vec())
    }

    fn any_result() -> impl Strategy<Value = TurnResult> {
        let answered = (
            prop::sample::select(ResponseType::ALL.to_vec()),
            prop::option::of(".{0,40}"),
            prop::option::of(prop::option::of(any::<bool>())),
        )
            .prop_map(|(t, message, options)| TurnResult::Answered {
                response: AgentResponse {
                    response_type: t,
                    message,
                    handling_options: options.map(|needs_review| HandlingOptions { needs_review }),
                },
            });
        prop_oneof![answered, ".{0,40}".prop_map(|reason| TurnResult::Failed { reason })]
    }

    proptest! {
        #[test]
        fn no_plan_sends_in_semi_autonomous_mode_or_to_a_closed_case(
            status in any_status(),
            semi in any::<bool>(),
            result in any_result(),
            (shadow, kill_switch, follow_up) in (any::<bool>(), any::<bool>(), any::<bool>()),
            (sent, cap) in (0u32..6, 0u32..6),
            notice in prop::option::of(".{0,20}"),
        ) {
            let workflow = if semi { WorkflowMode::SemiAutonomous } else { WorkflowMode::FullyAutonomous };
            let options = Options { shadow, kill_switch, ai_mails_last_24h: sent, ai_mail_cap: cap, follow_up, closure_notice: notice.as_deref() };
            let plan = decide(Situation { options, case_status: status, workflow, result: &result });
            prop_assert!(!plan.actions.is_empty());
            if semi || shadow || kill_switch || status == CaseStatus::Closed || status == CaseStatus::Escalated {
                prop_assert!(!plan.sends_mail(), "{plan:?}");
            }
            if status == CaseStatus::Closed {
                prop_assert_eq!(plan.next_status, CaseStatus::Closed);
            }
            if shadow {
                prop_assert!(!plan.actions.iter().any(|a| matches!(a, Action::Close { .. } | Action::Escalate { .. })), "shadow mode closes and escalates nothing: {plan:?}");
            }
            if sent >= cap {
                prop_assert!(!plan.actions.iter().any(|a| matches!(a, Action::SendToCustomer { kind, .. } if kind.is_ai_written())), "over the cap: {plan:?}");
            }
            if plan.actions.contains(&Action::ScheduleFollowUp) {
                let sends_resolution = plan.actions.iter().any(|a| matches!(a, Action::SendToCustomer { kind: MailKind::Resolution, .. }));
                prop_assert!(follow_up && sends_resolution, "{:?}", plan);
            }
            for action in &plan.actions {
                match action {
                    Action::SendToCustomer { body, .. } | Action::DraftForReview { body, .. } => {
                        prop_assert!(!body.trim().is_empty(), "blank mail planned: {plan:?}");
                    }
                    _ => {}
                }
            }
            if plan.sends_mail() {
                if let TurnResult::Answered { response } = &result {
                    prop_assert!(!response.needs_review());
                }
            }
        }
    }
}

#[cfg(test)]
mod option_tests {
    use super::*;
    use crate::protocol::HandlingOptions;

    fn answered(t: ResponseType, message: Option<&str>) -> TurnResult {
        TurnResult::Answered {
            response: AgentResponse {
                response_type: t,
                message: message.map(str::to_string),
                handling_options: None::<HandlingOptions>,
            },
        }
    }

    fn plan(t: ResponseType, options: Options<'_>) -> Plan {
        let result = answered(t, Some("text"));
        decide(Situation {
            case_status: CaseStatus::AgentWorking,
            workflow: WorkflowMode::FullyAutonomous,
            options,
            result: &result,
        })
    }

    #[test]
    fn kill_switch_drafts_every_customer_mail() {
        let options = Options {
            kill_switch: true,
            ..Options::default()
        };
        for t in [ResponseType::Question, ResponseType::Resolved] {
            assert!(matches!(
                &plan(t, options).actions[..],
                [Action::DraftForReview {
                    reason: DraftReason::KillSwitch,
                    ..
                }]
            ));
        }
        let notice = Options {
            kill_switch: true,
            closure_notice: Some("Closed."),
            ..Options::default()
        };
        let closing = plan(ResponseType::ResolveCase, notice);
        assert!(matches!(
            &closing.actions[..],
            [
                Action::DraftForReview {
                    kind: MailKind::ClosureNotice,
                    ..
                },
                Action::Close { .. }
            ]
        ));
    }

    #[test]
    fn shadow_mode_records_instead_of_acting() {
        let options = Options {
            shadow: true,
            ..Options::default()
        };
        assert!(matches!(
            &plan(ResponseType::Resolved, options).actions[..],
            [Action::DraftForReview {
                reason: DraftReason::ShadowMode,
                ..
            }]
        ));
        for t in [ResponseType::UnableToResolve, ResponseType::ResolveCase] {
            let p = plan(t, options);
            assert!(matches!(&p.actions[..], [Action::Record { .. }]), "{t}: {p:?}");
            assert_eq!(p.next_status, CaseStatus::Idle);
        }
    }

    #[test]
    fn cap_escalates_and_follow_up_and_notice_are_planned() {
        let capped = plan(
            ResponseType::Question,
            Options {
                ai_mails_last_24h: 2,
                ai_mail_cap: 2,
                ..Options::default()
            },
        );
        assert!(matches!(&capped.actions[..], [Action::Escalate { reason }] if reason.contains("cap 2")));
        let resolved = plan(
            ResponseType::Resolved,
            Options {
                follow_up: true,
                ..Options::default()
            },
        );
        assert_eq!(resolved.actions[1], Action::ScheduleFollowUp);
        let question = plan(
            ResponseType::Question,
            Options {
                follow_up: true,
                ..Options::default()
            },
        );
        assert_eq!(question.actions.len(), 1, "follow-up only after a resolution");
        let closing = plan(
            ResponseType::ResolveCase,
            Options {
                closure_notice: Some("We closed your case."),
                ..Options::default()
            },
        );
        assert!(matches!(
            &closing.actions[..],
            [
                Action::SendToCustomer {
                    kind: MailKind::ClosureNotice,
                    ..
                },
                Action::Close { .. }
            ]
        ));
    }
}
