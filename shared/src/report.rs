//! The support lead's numbers: one pure aggregation over per-case facts,
//! shared by every surface (the CLI's `casebridge report`, later the HTTP
//! API's summary), so the figures cannot drift apart between them.
//!
//! [`CaseFacts::from_case`] reads the facts off a case and its records;
//! [`aggregate`] turns a slice of facts into a [`Report`]; [`load_facts`]
//! reads facts through the [`Store`] port.
//!
//! Definitions (what each figure counts):
//! - a case belongs to the period when it was *created* in `[since, until)`;
//! - *automated resolution*: the case carries a resolution (confirmed by the
//!   customer, assumed after the follow-ups, or closed by the agent) and was
//!   never escalated nor taken over. A resolution the customer reopened
//!   afterwards (`Case::reopened > 0`) is counted as *reopened*, not as the
//!   kind it was first closed with: it did not hold;
//! - *escalation*: every `escalated` or `taken_over` timeline event (the case
//!   keeps only its last escalation); a case counts once in the escalation
//!   rate however often it escalated, every escalation counts in the reasons;
//! - *drafts*: reviewed drafts are sent unedited, sent edited
//!   ([`Draft::edited`]) or discarded; the shares are over reviewed drafts;
//! - *first response*: the first outbound mail sent to the customer (not the
//!   escalation notice, which goes to the representatives' queue);
//! - *time to resolution*: from the case's creation to its resolution, for
//!   resolved cases that were not reopened;
//! - *AI mails sent*: sent outbound mail whose text an agent wrote (questions
//!   and resolutions, including drafts a representative sent);
//! - *agent failures*: failed turns, by the kind their reason names;
//! - *infra cost*: the cost model of `[report]` (per inbound mail's cycle,
//!   per sent mail) over the group's mails; *per resolved case* divides it
//!   by the group's resolved cases (automated or not);
//! - *readiness*: an intent qualifies for autonomy when it has at least
//!   `min_reviewed_drafts` reviewed drafts, sends at least
//!   `min_unedited_share` of them unedited, and escalates at most
//!   `max_escalation_rate` of its cases. The report says why or why not;
//!   nothing switches on its own.
//!
//! Percentiles use the nearest-rank method (the smallest value with at least
//! q of the values at or below it), so every figure is one observed duration.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::ReportConfig;
use crate::ids::CaseId;
use crate::model::{Case, DraftStatus, MailKind, OutboundStatus, Record, RecordKind, ResolutionKind, TurnResult};
use crate::store::{Store, StoreError};

/// How a case's resolution turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolutionOutcome {
    Confirmed,
    Assumed,
    ClosedByAgent,
    /// Resolved, then the customer wrote again: the resolution did not hold.
    Reopened,
}

/// What became of a draft a representative reviewed (pending drafts have none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DraftOutcome {
    SentUnedited,
    SentEdited,
    Discarded,
}

/// Why an agent turn failed, read from the failed turn's reason text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// No answer in time: the call timed out, or an async answer never came.
    Timeout,
    HttpStatus,
    InvalidAnswer,
    Redirect,
    Other,
}

impl FailureKind {
    /// Classifies the reason texts `agent_client::AgentCallError` and the
    /// agent step write. Text, because turns store the reason as text.
    pub fn of_reason(reason: &str) -> FailureKind {
        if reason.contains("did not answer within") || reason.contains("sent no answer by") {
            FailureKind::Timeout
        } else if reason.contains("answered a redirect") {
            FailureKind::Redirect
        } else if reason.contains("answer is invalid") || reason.contains("invalid callback answer") {
            FailureKind::InvalidAnswer
        } else if reason.contains("agent answered HTTP ") {
            FailureKind::HttpStatus
        } else {
            FailureKind::Other
        }
    }
}

/// A short, bounded key for an escalation reason: the reasons carry counts,
/// durations and names that would make every reason its own row.
pub fn escalation_reason_key(reason: &str) -> &'static str {
    if reason.starts_with("agent failed") {
        "agent_failed"
    } else if reason.contains("could not resolve") {
        "unable_to_resolve"
    } else if reason.contains("AI mails went to this case") {
        "ai_mail_cap"
    } else if reason.contains("without a message") {
        "answer_without_message"
    } else if reason.starts_with("taken over") {
        "taken_over"
    } else {
        "other"
    }
}

/// Everything the report needs to know about one case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseFacts {
    pub case_id: CaseId,
    pub intent: Option<String>,
    pub agent: Option<String>,
    pub created_at: DateTime<Utc>,
    pub first_response_at: Option<DateTime<Utc>>,
    pub resolution: Option<ResolutionOutcome>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// One key ([`escalation_reason_key`]) per escalation, oldest first.
    pub escalations: Vec<String>,
    pub drafts: Vec<DraftOutcome>,
    pub ai_mails_sent: u64,
    pub agent_failures: Vec<FailureKind>,
    /// Inbound mail stored on the case (for the cost model).
    #[serde(default)]
    pub mails_in: u64,
    /// Mail sent from the case, notices included (for the cost model).
    #[serde(default)]
    pub mails_sent: u64,
}

impl CaseFacts {
    /// Reads the facts off a case and its records (any kinds, any order;
    /// unrelated kinds are ignored).
    pub fn from_case(case: &Case, records: &[Record]) -> CaseFacts {
        let mut facts = CaseFacts {
            case_id: case.id.clone(),
            intent: case.intent.clone(),
            agent: case.agent.clone(),
            created_at: case.created_at,
            first_response_at: None,
            resolution: case.resolution.as_ref().map(|r| {
                if case.reopened > 0 {
                    ResolutionOutcome::Reopened
                } else {
                    match r.kind {
                        ResolutionKind::Confirmed => ResolutionOutcome::Confirmed,
                        ResolutionKind::Assumed => ResolutionOutcome::Assumed,
                        ResolutionKind::ClosedByAgent => ResolutionOutcome::ClosedByAgent,
                    }
                }
            }),
            resolved_at: case.resolution.as_ref().map(|r| r.at),
            escalations: Vec::new(),
            drafts: Vec::new(),
            ai_mails_sent: 0,
            agent_failures: Vec::new(),
            mails_in: 0,
            mails_sent: 0,
        };
        let mut escalation_events: Vec<(DateTime<Utc>, String)> = Vec::new();
        for record in records {
            match record {
                Record::Mail(mail) if mail.direction == crate::model::Direction::Inbound => {
                    facts.mails_in = facts.mails_in.saturating_add(1);
                }
                Record::Outbound(mail) if mail.status == OutboundStatus::Sent => {
                    facts.mails_sent = facts.mails_sent.saturating_add(1);
                    if mail.kind == MailKind::EscalationNotice {
                        continue;
                    }
                    let at = mail.sent_at.unwrap_or(mail.created_at);
                    facts.first_response_at = Some(facts.first_response_at.map_or(at, |first| first.min(at)));
                    if mail.kind.is_ai_written() {
                        facts.ai_mails_sent = facts.ai_mails_sent.saturating_add(1);
                    }
                }
                Record::Draft(draft) => match draft.status {
                    DraftStatus::Sent if draft.edited => facts.drafts.push(DraftOutcome::SentEdited),
                    DraftStatus::Sent => facts.drafts.push(DraftOutcome::SentUnedited),
                    DraftStatus::Discarded => facts.drafts.push(DraftOutcome::Discarded),
                    DraftStatus::PendingReview => {}
                },
                Record::Turn(turn) => {
                    if let Some(TurnResult::Failed { reason }) = &turn.result {
                        facts.agent_failures.push(FailureKind::of_reason(reason));
                    }
                }
                Record::Event(event) if event.kind == "escalated" => {
                    // The detail reads "to queue NAME: REASON".
                    let reason = event.detail.split_once(": ").map_or(event.detail.as_str(), |(_, r)| r);
                    escalation_events.push((event.at, escalation_reason_key(reason).to_string()));
                }
                Record::Event(event) if event.kind == "taken_over" => escalation_events.push((event.at, "taken_over".to_string())),
                _ => {}
            }
        }
        escalation_events.sort_by_key(|(at, _)| *at);
        facts.escalations = escalation_events.into_iter().map(|(_, key)| key).collect();
        // A case escalated by hand in the store, without its event, still counts once.
        if facts.escalations.is_empty() {
            if let Some(escalation) = &case.escalation {
                facts.escalations.push(escalation_reason_key(&escalation.reason).to_string());
            }
        }
        if facts.resolution == Some(ResolutionOutcome::Reopened) {
            // The stored time is of a resolution that did not hold.
            facts.resolved_at = None;
        }
        facts
    }

    fn automated(&self) -> bool {
        self.resolution.is_some() && self.escalations.is_empty()
    }
}

/// The period and filter a report covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Period {
    pub since: DateTime<Utc>,
    /// Exclusive.
    pub until: DateTime<Utc>,
}

impl Period {
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.since <= at && at < self.until
    }

    /// The first and the last (inclusive) UTC day the period touches: the
    /// days of the per-day counters. `until` is exclusive, so its own day
    /// counts only when the period ends after midnight.
    pub fn days(&self) -> (chrono::NaiveDate, chrono::NaiveDate) {
        let last = self.until - chrono::Duration::nanoseconds(1);
        (self.since.date_naive(), last.max(self.since).date_naive())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResolutionCounts {
    /// Resolved without a representative: the sum of the four below.
    pub automated: u64,
    pub confirmed: u64,
    pub assumed: u64,
    pub closed_by_agent: u64,
    pub reopened: u64,
    /// Resolved after an escalation (a representative was involved).
    pub after_escalation: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DraftCounts {
    pub sent_unedited: u64,
    pub sent_edited: u64,
    pub discarded: u64,
    /// sent_unedited / reviewed drafts; none without reviewed drafts.
    pub unedited_share: Option<f64>,
    /// sent_edited / reviewed drafts; none without reviewed drafts.
    pub edited_share: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FailureCounts {
    pub total: u64,
    pub timeout: u64,
    pub http_status: u64,
    pub invalid_answer: u64,
    pub redirect: u64,
    pub other: u64,
}

/// p50 and p90 of a set of durations, in whole seconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Percentiles {
    /// How many durations the percentiles are over.
    pub count: u64,
    pub p50_secs: Option<i64>,
    pub p90_secs: Option<i64>,
}

/// The figures of one group of cases (all, one intent, one agent).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub cases: u64,
    pub resolutions: ResolutionCounts,
    /// resolutions.automated / cases.
    pub automated_resolution_rate: Option<f64>,
    /// Cases escalated at least once.
    pub escalated_cases: u64,
    /// escalated_cases / cases.
    pub escalation_rate: Option<f64>,
    /// Every escalation by reason key.
    pub escalation_reasons: BTreeMap<String, u64>,
    pub drafts: DraftCounts,
    pub first_response: Percentiles,
    pub time_to_resolution: Percentiles,
    pub ai_mails_sent: u64,
    pub agent_failures: FailureCounts,
    /// The cost model over the group's mails, in USD.
    pub infra_cost_usd: f64,
    /// infra_cost_usd / resolved cases (automated or after an escalation).
    pub cost_per_resolved_case_usd: Option<f64>,
}

/// One intent's or one agent's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// The intent or agent name; [`NONE`] for cases without one.
    pub name: String,
    pub figures: Figures,
}

/// The group name of cases without an intent or an agent.
pub const NONE: &str = "(none)";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub period: Period,
    pub intent: Option<String>,
    pub totals: Figures,
    /// By intent name, in name order.
    pub by_intent: Vec<Group>,
    /// By agent name, in name order.
    pub by_agent: Vec<Group>,
    /// Per intent (cases without one left out), in name order.
    pub readiness: Vec<Readiness>,
}

/// Whether an intent qualifies for autonomy, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Readiness {
    pub intent: String,
    pub ready: bool,
    pub reviewed_drafts: u64,
    /// Each threshold missed, or one line saying why it qualifies.
    pub reasons: Vec<String>,
}

/// Readiness of one intent's figures against the thresholds. Pure.
pub fn readiness(intent: &str, figures: &Figures, thresholds: &ReportConfig) -> Readiness {
    let d = &figures.drafts;
    let reviewed = d.sent_unedited.saturating_add(d.sent_edited).saturating_add(d.discarded);
    let unedited = d.unedited_share.unwrap_or(0.0);
    let escalation = figures.escalation_rate.unwrap_or(0.0);
    let mut missed = Vec::new();
    if reviewed < thresholds.min_reviewed_drafts {
        missed.push(format!(
            "{reviewed} reviewed draft(s), fewer than the {} required",
            thresholds.min_reviewed_drafts
        ));
    }
    if reviewed > 0 && unedited < thresholds.min_unedited_share {
        missed.push(format!(
            "{:.0}% of reviewed drafts sent unedited, below {:.0}%",
            unedited * 100.0,
            thresholds.min_unedited_share * 100.0
        ));
    }
    if escalation > thresholds.max_escalation_rate {
        missed.push(format!(
            "{:.0}% of cases escalated, above {:.0}%",
            escalation * 100.0,
            thresholds.max_escalation_rate * 100.0
        ));
    }
    let ready = missed.is_empty();
    let reasons = if ready {
        vec![format!(
            "{reviewed} reviewed drafts, {:.0}% sent unedited, {:.0}% of cases escalated",
            unedited * 100.0,
            escalation * 100.0
        )]
    } else {
        missed
    };
    Readiness {
        intent: intent.to_string(),
        ready,
        reviewed_drafts: reviewed,
        reasons,
    }
}

/// [`aggregate_with`] the default `[report]` settings.
pub fn aggregate(facts: &[CaseFacts], period: &Period, intent: Option<&str>) -> Report {
    aggregate_with(facts, period, intent, &ReportConfig::default())
}

/// The report over the facts of cases created in `period` (and of `intent`,
/// when given), with the readiness thresholds and cost model of `settings`.
/// Pure: the same facts always give the same report.
pub fn aggregate_with(facts: &[CaseFacts], period: &Period, intent: Option<&str>, settings: &ReportConfig) -> Report {
    let selected: Vec<&CaseFacts> = facts
        .iter()
        .filter(|f| period.contains(f.created_at))
        .filter(|f| intent.is_none_or(|i| f.intent.as_deref() == Some(i)))
        .collect();
    let group_by = |key: fn(&CaseFacts) -> Option<&str>| -> Vec<Group> {
        let mut groups: BTreeMap<&str, Vec<&CaseFacts>> = BTreeMap::new();
        for f in &selected {
            groups.entry(key(f).unwrap_or(NONE)).or_default().push(f);
        }
        groups
            .into_iter()
            .map(|(name, members)| Group {
                name: name.to_string(),
                figures: figures(&members, settings),
            })
            .collect()
    };
    let by_intent = group_by(|f| f.intent.as_deref());
    let readiness = by_intent
        .iter()
        .filter(|g| g.name != NONE)
        .map(|g| readiness(&g.name, &g.figures, settings))
        .collect();
    Report {
        period: period.clone(),
        intent: intent.map(str::to_string),
        totals: figures(&selected, settings),
        by_intent,
        by_agent: group_by(|f| f.agent.as_deref()),
        readiness,
    }
}

fn figures(cases: &[&CaseFacts], settings: &ReportConfig) -> Figures {
    let mut out = Figures::default();
    let mut first_response = Vec::new();
    let mut to_resolution = Vec::new();
    let (mut mails_in, mut mails_sent) = (0u64, 0u64);
    let add = |n: &mut u64| *n = n.saturating_add(1);
    for f in cases {
        add(&mut out.cases);
        if let Some(outcome) = f.resolution {
            let r = &mut out.resolutions;
            if f.automated() {
                add(&mut r.automated);
                add(match outcome {
                    ResolutionOutcome::Confirmed => &mut r.confirmed,
                    ResolutionOutcome::Assumed => &mut r.assumed,
                    ResolutionOutcome::ClosedByAgent => &mut r.closed_by_agent,
                    ResolutionOutcome::Reopened => &mut r.reopened,
                });
            } else {
                add(&mut r.after_escalation);
            }
        }
        if !f.escalations.is_empty() {
            add(&mut out.escalated_cases);
        }
        for key in &f.escalations {
            add(out.escalation_reasons.entry(key.clone()).or_default());
        }
        for draft in &f.drafts {
            add(match draft {
                DraftOutcome::SentUnedited => &mut out.drafts.sent_unedited,
                DraftOutcome::SentEdited => &mut out.drafts.sent_edited,
                DraftOutcome::Discarded => &mut out.drafts.discarded,
            });
        }
        if let Some(at) = f.first_response_at {
            first_response.push(at.signed_duration_since(f.created_at).num_seconds());
        }
        if let Some(at) = f.resolved_at {
            to_resolution.push(at.signed_duration_since(f.created_at).num_seconds());
        }
        out.ai_mails_sent = out.ai_mails_sent.saturating_add(f.ai_mails_sent);
        mails_in = mails_in.saturating_add(f.mails_in);
        mails_sent = mails_sent.saturating_add(f.mails_sent);
        for kind in &f.agent_failures {
            let a = &mut out.agent_failures;
            add(&mut a.total);
            add(match kind {
                FailureKind::Timeout => &mut a.timeout,
                FailureKind::HttpStatus => &mut a.http_status,
                FailureKind::InvalidAnswer => &mut a.invalid_answer,
                FailureKind::Redirect => &mut a.redirect,
                FailureKind::Other => &mut a.other,
            });
        }
    }
    out.automated_resolution_rate = ratio(out.resolutions.automated, out.cases);
    out.escalation_rate = ratio(out.escalated_cases, out.cases);
    let reviewed = out
        .drafts
        .sent_unedited
        .saturating_add(out.drafts.sent_edited)
        .saturating_add(out.drafts.discarded);
    out.drafts.unedited_share = ratio(out.drafts.sent_unedited, reviewed);
    out.drafts.edited_share = ratio(out.drafts.sent_edited, reviewed);
    out.first_response = percentiles(first_response);
    out.time_to_resolution = percentiles(to_resolution);
    // Counts stay far below 2^53, so the conversions are exact.
    out.infra_cost_usd = mails_in as f64 * settings.cost_per_inbound_mail_usd + mails_sent as f64 * settings.cost_per_sent_mail_usd;
    let resolved = out.resolutions.automated.saturating_add(out.resolutions.after_escalation);
    out.cost_per_resolved_case_usd = (resolved > 0).then(|| out.infra_cost_usd / resolved as f64);
    out
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    // Counts stay far below 2^53, so the conversion is exact.
    (whole > 0).then(|| part as f64 / whole as f64)
}

fn percentiles(mut values: Vec<i64>) -> Percentiles {
    values.sort_unstable();
    Percentiles {
        count: u64::try_from(values.len()).unwrap_or(u64::MAX),
        p50_secs: nearest_rank(&values, 50),
        p90_secs: nearest_rank(&values, 90),
    }
}

/// The value at rank ceil(n * percent / 100) (1-based) of sorted values.
fn nearest_rank(sorted: &[i64], percent: usize) -> Option<i64> {
    let rank = sorted.len().checked_mul(percent)?.div_ceil(100);
    sorted.get(rank.checked_sub(1)?).copied()
}

/// A period's start: `YYYY-MM-DD` is that day's start (UTC); RFC 3339 is exact.
pub fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    parse_date(text, false)
}

/// A period's end: `YYYY-MM-DD` includes that whole day (the period ends at
/// the next midnight, UTC), as a lead reads "until the 30th"; RFC 3339 is an
/// exact, exclusive end.
pub fn parse_until(text: &str) -> Result<DateTime<Utc>, String> {
    parse_date(text, true)
}

fn parse_date(text: &str, end_of_day: bool) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    let day =
        chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| format!("{text:?} is neither YYYY-MM-DD nor an RFC 3339 time"))?;
    let day = if end_of_day {
        day.succ_opt().ok_or_else(|| format!("{text:?} is the last representable day"))?
    } else {
        day
    };
    day.and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
        .ok_or_else(|| format!("{text:?} has no midnight"))
}

/// Reads the facts of at most `limit` cases created in `[since, until)`,
/// through the Store port (`Store::scan_cases`: on SQLite one pass, elsewhere
/// case by case).
///
/// On the embedded store this is a local scan and fine. On DynamoDB
/// `list_case_ids` scans the table: this is for the CLI (an operator's run),
/// never for a request path; request paths on DynamoDB read the day
/// counters (`crate::daily`).
pub async fn load_facts<S: Store>(
    store: &S,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<CaseFacts>, StoreError> {
    let period = Period { since, until };
    // The limit counts cases of the period, so it is applied after the filter.
    store
        .scan_cases(
            &[
                RecordKind::Mail,
                RecordKind::Outbound,
                RecordKind::Draft,
                RecordKind::Turn,
                RecordKind::Event,
            ],
            limit,
            |case| period.contains(case.created_at),
            CaseFacts::from_case,
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};
    use proptest::prelude::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 2, 8, 0, 0).unwrap()
    }

    fn period() -> Period {
        Period {
            since: Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap(),
            until: Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(),
        }
    }

    fn facts(intent: &str, agent: &str) -> CaseFacts {
        CaseFacts {
            case_id: CaseId::generate("CB"),
            intent: Some(intent.into()),
            agent: Some(agent.into()),
            created_at: t0(),
            first_response_at: None,
            resolution: None,
            resolved_at: None,
            escalations: Vec::new(),
            drafts: Vec::new(),
            ai_mails_sent: 0,
            agent_failures: Vec::new(),
            mails_in: 1,
            mails_sent: 0,
        }
    }

    fn resolved(intent: &str, outcome: ResolutionOutcome, first_min: i64, resolved_min: i64) -> CaseFacts {
        CaseFacts {
            first_response_at: Some(t0() + Duration::minutes(first_min)),
            resolution: Some(outcome),
            resolved_at: (outcome != ResolutionOutcome::Reopened).then(|| t0() + Duration::minutes(resolved_min)),
            ai_mails_sent: 1,
            ..facts(intent, "bot")
        }
    }

    #[test]
    fn failure_reasons_are_classified() {
        let cases = [
            ("agent did not answer within 30000 ms (after 3 attempt(s))", FailureKind::Timeout),
            (
                "agent refunds accepted the turn but sent no answer by 2026-11-02 08:00:00 UTC",
                FailureKind::Timeout,
            ),
            ("agent answered HTTP 503 (after 3 attempt(s))", FailureKind::HttpStatus),
            (
                "agent answered a redirect (HTTP 302); redirects are never followed: configure the agent's final URL (after 1 attempt(s))",
                FailureKind::Redirect,
            ),
            (
                "agent answer is invalid: missing type (after 1 attempt(s))",
                FailureKind::InvalidAnswer,
            ),
            ("invalid callback answer: not json", FailureKind::InvalidAnswer),
            ("could not reach the agent: refused (after 3 attempt(s))", FailureKind::Other),
            ("agent \"x\" is not configured", FailureKind::Other),
        ];
        for (reason, kind) in cases {
            assert_eq!(FailureKind::of_reason(reason), kind, "{reason}");
        }
    }

    #[test]
    fn figures_are_the_hand_computed_ones() {
        let mut escalated = facts("refund", "bot");
        escalated.escalations = vec!["agent_failed".into(), "taken_over".into()];
        escalated.agent_failures = vec![FailureKind::Timeout, FailureKind::HttpStatus];
        escalated.resolution = Some(ResolutionOutcome::Confirmed);
        escalated.resolved_at = Some(t0() + Duration::minutes(100));
        let mut drafted = resolved("shipping", ResolutionOutcome::Assumed, 30, 600);
        drafted.agent = Some("ship-bot".into());
        drafted.drafts = vec![DraftOutcome::SentEdited, DraftOutcome::SentUnedited, DraftOutcome::Discarded];
        let mut outside = resolved("refund", ResolutionOutcome::Confirmed, 1, 2);
        outside.created_at = period().until;
        let all = vec![
            resolved("refund", ResolutionOutcome::Confirmed, 10, 60),
            resolved("refund", ResolutionOutcome::Confirmed, 20, 120),
            resolved("refund", ResolutionOutcome::Reopened, 5, 0),
            escalated,
            drafted,
            outside,
        ];
        let report = aggregate(&all, &period(), None);
        let t = &report.totals;
        assert_eq!(t.cases, 5, "the case created at `until` is outside");
        assert_eq!(
            t.resolutions,
            ResolutionCounts {
                automated: 4,
                confirmed: 2,
                assumed: 1,
                closed_by_agent: 0,
                reopened: 1,
                after_escalation: 1,
            }
        );
        assert_eq!(t.automated_resolution_rate, Some(0.8));
        assert_eq!(t.escalated_cases, 1);
        assert_eq!(t.escalation_rate, Some(0.2));
        assert_eq!(
            t.escalation_reasons,
            BTreeMap::from([("agent_failed".into(), 1), ("taken_over".into(), 1)])
        );
        assert_eq!(t.drafts.sent_edited, 1);
        assert_eq!(t.drafts.edited_share, Some(1.0 / 3.0));
        // First responses 5, 10, 20, 30 min: rank ceil(4*0.5)=2 → 10 min, ceil(4*0.9)=4 → 30 min.
        assert_eq!(
            t.first_response,
            Percentiles {
                count: 4,
                p50_secs: Some(600),
                p90_secs: Some(1800)
            }
        );
        // Resolutions 60, 100, 120, 600 min (the reopened one has no time).
        assert_eq!(
            t.time_to_resolution,
            Percentiles {
                count: 4,
                p50_secs: Some(6000),
                p90_secs: Some(36000)
            }
        );
        assert_eq!(t.ai_mails_sent, 4);
        assert_eq!(
            t.agent_failures,
            FailureCounts {
                total: 2,
                timeout: 1,
                http_status: 1,
                ..FailureCounts::default()
            }
        );
        let names: Vec<&str> = report.by_intent.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["refund", "shipping"]);
        assert_eq!(report.by_intent[0].figures.cases, 4);
        assert_eq!(report.by_intent[0].figures.automated_resolution_rate, Some(0.75));
        let agents: Vec<(&str, u64)> = report.by_agent.iter().map(|g| (g.name.as_str(), g.figures.cases)).collect();
        assert_eq!(agents, [("bot", 4), ("ship-bot", 1)]);

        let shipping = aggregate(&all, &period(), Some("shipping"));
        assert_eq!(shipping.totals, report.by_intent[1].figures);
        assert_eq!(shipping.by_intent.len(), 1);
    }

    #[test]
    fn cost_per_resolved_case_follows_the_cost_model() {
        let mut a = resolved("refund", ResolutionOutcome::Confirmed, 10, 60);
        a.mails_in = 2;
        a.mails_sent = 2;
        let mut b = facts("refund", "bot");
        b.mails_in = 1;
        b.mails_sent = 1;
        let settings = ReportConfig {
            cost_per_inbound_mail_usd: 0.25,
            cost_per_sent_mail_usd: 0.5,
            ..ReportConfig::default()
        };
        let report = aggregate_with(&[a, b], &period(), None, &settings);
        // 3 inbound × 0.25 + 3 sent × 0.5, over the one resolved case.
        assert_eq!(report.totals.infra_cost_usd, 2.25);
        assert_eq!(report.totals.cost_per_resolved_case_usd, Some(2.25));
        let unresolved = aggregate_with(&[facts("refund", "bot")], &period(), None, &settings);
        assert_eq!(
            unresolved.totals.cost_per_resolved_case_usd, None,
            "no resolved case, no per-case cost"
        );
    }

    #[test]
    fn readiness_names_every_threshold_an_intent_misses() {
        let settings = ReportConfig {
            min_reviewed_drafts: 4,
            min_unedited_share: 0.75,
            max_escalation_rate: 0.25,
            ..ReportConfig::default()
        };
        let reviewed = |outcomes: &[DraftOutcome]| {
            let mut f = resolved("refund", ResolutionOutcome::Confirmed, 1, 2);
            f.drafts = outcomes.to_vec();
            f
        };
        use DraftOutcome::*;
        // refund: 4 reviewed, 3 unedited (75%), no escalation → ready.
        let mut all = vec![reviewed(&[SentUnedited, SentUnedited]), reviewed(&[SentUnedited, SentEdited])];
        // shipping: 2 reviewed, 1 unedited, 1 of 2 cases escalated → three reasons.
        let mut s1 = reviewed(&[SentUnedited, Discarded]);
        s1.intent = Some("shipping".into());
        let mut s2 = facts("shipping", "bot");
        s2.escalations = vec!["agent_failed".into()];
        all.extend([s1, s2, {
            let mut none = facts("x", "bot");
            none.intent = None;
            none
        }]);
        let report = aggregate_with(&all, &period(), None, &settings);
        let names: Vec<&str> = report.readiness.iter().map(|r| r.intent.as_str()).collect();
        assert_eq!(names, ["refund", "shipping"], "cases without an intent have no readiness");
        let refund = &report.readiness[0];
        assert!(refund.ready, "{refund:?}");
        assert_eq!(refund.reviewed_drafts, 4);
        let shipping = &report.readiness[1];
        assert!(!shipping.ready);
        assert_eq!(shipping.reasons.len(), 3, "{:?}", shipping.reasons);
        assert!(shipping.reasons[0].contains("fewer than the 4 required"));
        assert!(shipping.reasons[1].contains("50% of reviewed drafts sent unedited, below 75%"));
        assert!(shipping.reasons[2].contains("50% of cases escalated, above 25%"));
    }

    #[test]
    fn empty_groups_have_no_rates() {
        let report = aggregate(&[], &period(), None);
        assert_eq!(report.totals, Figures::default());
        assert!(report.by_intent.is_empty());
    }

    #[test]
    fn facts_are_read_off_the_case_and_its_records() {
        use crate::model::*;
        let mut case = crate::testing::sample_case(&CaseId::generate("CB"));
        case.created_at = t0();
        case.resolution = Some(Resolution {
            kind: ResolutionKind::Assumed,
            at: t0() + Duration::hours(3),
        });
        let event = |id: &str, kind: &str, detail: &str, min: i64| {
            Record::Event(TimelineEvent {
                id: id.into(),
                at: t0() + Duration::minutes(min),
                kind: kind.into(),
                detail: detail.into(),
            })
        };
        let mail = |id: &str, kind, status, min: i64| {
            Record::Outbound(OutboundMail {
                id: id.into(),
                kind,
                origin: None,
                from: "support@example.com".into(),
                to: vec!["ann@customer.test".into()],
                subject: "Re".into(),
                body: "b".into(),
                message_id: format!("{id}@x"),
                in_reply_to: None,
                references: Vec::new(),
                status,
                provider_message_id: None,
                error: None,
                raw_mime: None,
                created_at: t0(),
                sent_at: Some(t0() + Duration::minutes(min)),
            })
        };
        let records = vec![
            mail("OUT#1", MailKind::EscalationNotice, OutboundStatus::Sent, 1),
            mail("OUT#2", MailKind::Question, OutboundStatus::Sent, 7),
            mail("OUT#3", MailKind::Resolution, OutboundStatus::Failed, 3),
            mail("OUT#4", MailKind::Reminder, OutboundStatus::Sent, 90),
            event("EVT#2", "taken_over", "rep took the case over; agents stop", 50),
            event(
                "EVT#1",
                "escalated",
                "to queue tier-1: agent failed: agent answered HTTP 500 (after 3 attempt(s))",
                40,
            ),
        ];
        let facts = CaseFacts::from_case(&case, &records);
        assert_eq!(facts.first_response_at, Some(t0() + Duration::minutes(7)));
        assert_eq!(facts.ai_mails_sent, 1);
        assert_eq!(facts.escalations, ["agent_failed", "taken_over"]);
        assert_eq!(facts.resolution, Some(ResolutionOutcome::Assumed));
        case.reopened = 1;
        let facts = CaseFacts::from_case(&case, &records);
        assert_eq!(facts.resolution, Some(ResolutionOutcome::Reopened));
        assert_eq!(facts.resolved_at, None);
    }

    fn arb_facts() -> impl Strategy<Value = CaseFacts> {
        let intent = prop::option::of(prop::sample::select(vec!["refund", "shipping", "billing"]));
        let agent = prop::option::of(prop::sample::select(vec!["a", "b"]));
        let outcome = prop::option::of(prop::sample::select(vec![
            ResolutionOutcome::Confirmed,
            ResolutionOutcome::Assumed,
            ResolutionOutcome::ClosedByAgent,
            ResolutionOutcome::Reopened,
        ]));
        let drafts = prop::collection::vec(
            prop::sample::select(vec![DraftOutcome::SentUnedited, DraftOutcome::SentEdited, DraftOutcome::Discarded]),
            0..3,
        );
        let failures = prop::collection::vec(
            prop::sample::select(vec![FailureKind::Timeout, FailureKind::HttpStatus, FailureKind::Other]),
            0..3,
        );
        let escalations = prop::collection::vec(
            prop::sample::select(vec!["agent_failed", "taken_over"]).prop_map(str::to_string),
            0..2,
        );
        (intent, agent, outcome, drafts, failures, escalations, 0i64..60 * 24 * 40, 0u64..3).prop_map(
            |(intent, agent, resolution, drafts, agent_failures, escalations, minutes, ai_mails_sent)| CaseFacts {
                case_id: CaseId::generate("CB"),
                intent: intent.map(str::to_string),
                agent: agent.map(str::to_string),
                created_at: period().since - Duration::days(5) + Duration::minutes(minutes),
                first_response_at: None,
                resolution,
                resolved_at: None,
                escalations,
                drafts,
                ai_mails_sent,
                agent_failures,
                mails_in: 1 + ai_mails_sent,
                mails_sent: ai_mails_sent,
            },
        )
    }

    proptest! {
        #[test]
        fn per_intent_and_per_agent_counts_sum_to_the_totals(all in prop::collection::vec(arb_facts(), 0..40)) {
            let report = aggregate(&all, &period(), None);
            for groups in [&report.by_intent, &report.by_agent] {
                let sum = |f: fn(&Figures) -> u64| groups.iter().map(|g| f(&g.figures)).sum::<u64>();
                let t = &report.totals;
                prop_assert_eq!(sum(|f| f.cases), t.cases);
                prop_assert_eq!(sum(|f| f.resolutions.automated), t.resolutions.automated);
                prop_assert_eq!(sum(|f| f.resolutions.reopened), t.resolutions.reopened);
                prop_assert_eq!(sum(|f| f.resolutions.after_escalation), t.resolutions.after_escalation);
                prop_assert_eq!(sum(|f| f.escalated_cases), t.escalated_cases);
                prop_assert_eq!(sum(|f| f.drafts.sent_edited), t.drafts.sent_edited);
                prop_assert_eq!(sum(|f| f.drafts.discarded), t.drafts.discarded);
                prop_assert_eq!(sum(|f| f.ai_mails_sent), t.ai_mails_sent);
                prop_assert_eq!(sum(|f| f.agent_failures.total), t.agent_failures.total);
            }
            let r = &report.totals.resolutions;
            prop_assert_eq!(r.automated, r.confirmed + r.assumed + r.closed_by_agent + r.reopened);
            let in_period = all.iter().filter(|f| period().contains(f.created_at)).count() as u64;
            prop_assert_eq!(report.totals.cases, in_period);
        }
    }
}
