//! The support lead's numbers from the per-day counters, for stores where
//! reading every case of a period is a table scan (DynamoDB).
//!
//! The counters ([`crate::store::Count`]) are added to in the same commit as
//! the change that made a fact true, so each is counted exactly once, on the
//! day it happened. That makes them a different view from
//! [`crate::report`], which follows the cases *created* in a period to
//! wherever they are now:
//!
//! | | `report` (cases) | counters (days) |
//! |---|---|---|
//! | a case resolved the day after the period ends | in the period's resolutions | in the next period's |
//! | a resolution later reopened | counted as reopened only | one resolution, then one reopening |
//! | a case escalated, then taken over | 1 escalated case, 2 reasons | 1 escalation (the case entered the queue once) |
//! | time to first response / resolution | p50 / p90 | not available |
//!
//! Rates are over the cases opened in the period.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::metrics::Fact;
use crate::store::DailyCount;

/// Each fact's count, by its metric name (`CasesOpened`, `Escalations`, …;
/// see [`Fact::metric_name`]); facts with no count are 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CounterFigures {
    pub counts: BTreeMap<String, u64>,
    /// (confirmed + assumed + closed by the agent) / cases opened.
    pub automated_resolution_rate: Option<f64>,
    /// Escalations / cases opened.
    pub escalation_rate: Option<f64>,
    /// Drafts sent unedited / drafts reviewed (sent or discarded).
    pub unedited_draft_share: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IntentCounters {
    pub intent: String,
    pub figures: CounterFigures,
}

/// The answer of `GET /metrics/summary` on a store without cheap case listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CounterSummary {
    /// Always `"daily_counters"`: tells this shape from the case report.
    pub source: String,
    /// First day counted.
    pub since: NaiveDate,
    /// Last day counted (inclusive).
    pub until: NaiveDate,
    pub intent: Option<String>,
    pub totals: CounterFigures,
    /// By intent, in name order.
    pub by_intent: Vec<IntentCounters>,
}

pub const SOURCE: &str = "daily_counters";

fn figures(counts: &BTreeMap<&'static str, u64>) -> CounterFigures {
    let get = |f: Fact| counts.get(f.metric_name()).copied().unwrap_or(0);
    let ratio = |num: u64, den: u64| (den > 0).then(|| num as f64 / den as f64);
    let opened = get(Fact::CaseOpened);
    let automated = get(Fact::ResolvedConfirmed)
        .saturating_add(get(Fact::ResolvedAssumed))
        .saturating_add(get(Fact::ClosedByAgent));
    let reviewed = get(Fact::DraftSentUnedited)
        .saturating_add(get(Fact::DraftSentEdited))
        .saturating_add(get(Fact::DraftDiscarded));
    CounterFigures {
        counts: Fact::ALL.iter().map(|&f| (f.metric_name().to_string(), get(f))).collect(),
        automated_resolution_rate: ratio(automated, opened),
        escalation_rate: ratio(get(Fact::Escalated), opened),
        unedited_draft_share: ratio(get(Fact::DraftSentUnedited), reviewed),
    }
}

/// Sums `counts` (as [`crate::store::Store::daily_counts`] returns them) over
/// the days `since ..= until`, in total and per intent; with `intent`, only
/// that intent's. Pure and total: counts outside the days are left out.
pub fn summarize(counts: &[DailyCount], since: NaiveDate, until: NaiveDate, intent: Option<&str>) -> CounterSummary {
    let mut totals: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut per_intent: BTreeMap<&str, BTreeMap<&'static str, u64>> = BTreeMap::new();
    for count in counts {
        if count.day < since || count.day > until || intent.is_some_and(|i| i != count.intent) {
            continue;
        }
        let total = totals.entry(count.fact.metric_name()).or_default();
        *total = total.saturating_add(count.value);
        let one = per_intent
            .entry(count.intent.as_str())
            .or_default()
            .entry(count.fact.metric_name())
            .or_default();
        *one = one.saturating_add(count.value);
    }
    CounterSummary {
        source: SOURCE.to_string(),
        since,
        until,
        intent: intent.map(str::to_string),
        totals: figures(&totals),
        by_intent: per_intent
            .into_iter()
            .map(|(intent, counts)| IntentCounters {
                intent: intent.to_string(),
                figures: figures(&counts),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap_or_default()
    }

    fn c(d: u32, intent: &str, fact: Fact, value: u64) -> DailyCount {
        DailyCount {
            day: day(d),
            intent: intent.into(),
            fact,
            value,
        }
    }

    #[test]
    fn sums_days_and_intents_and_derives_the_rates() {
        let counts = [
            c(1, "refund", Fact::CaseOpened, 8),
            c(2, "refund", Fact::CaseOpened, 2),
            c(2, "refund", Fact::ResolvedAssumed, 3),
            c(3, "refund", Fact::ResolvedConfirmed, 1),
            c(3, "refund", Fact::ClosedByAgent, 1),
            c(3, "refund", Fact::Escalated, 2),
            c(3, "refund", Fact::DraftSentUnedited, 3),
            c(3, "refund", Fact::DraftSentEdited, 1),
            c(2, "billing", Fact::CaseOpened, 5),
            c(2, "billing", Fact::Escalated, 5),
            // Outside the days.
            c(9, "refund", Fact::CaseOpened, 100),
        ];
        let s = summarize(&counts, day(1), day(3), None);
        assert_eq!(s.source, SOURCE);
        assert_eq!(s.totals.counts["CasesOpened"], 15);
        assert_eq!(s.totals.counts["Escalations"], 7);
        assert_eq!(s.totals.counts["AgentFailures"], 0);
        assert_eq!(s.by_intent.len(), 2);
        assert_eq!(s.by_intent[0].intent, "billing");
        assert_eq!(s.by_intent[0].figures.escalation_rate, Some(1.0));
        let refund = &s.by_intent[1].figures;
        assert_eq!(refund.counts["CasesOpened"], 10);
        assert_eq!(refund.automated_resolution_rate, Some(0.5));
        assert_eq!(refund.escalation_rate, Some(0.2));
        assert_eq!(refund.unedited_draft_share, Some(0.75));

        let only = summarize(&counts, day(1), day(3), Some("billing"));
        assert_eq!(only.totals.counts["CasesOpened"], 5);
        assert_eq!(only.by_intent.len(), 1);
    }

    #[test]
    fn no_cases_means_no_rates_not_a_division_by_zero() {
        let s = summarize(&[], day(1), day(2), None);
        assert_eq!(s.totals.automated_resolution_rate, None);
        assert_eq!(s.totals.escalation_rate, None);
        assert_eq!(s.totals.unedited_draft_share, None);
        assert!(s.by_intent.is_empty());
        let huge = [c(1, "x", Fact::CaseOpened, u64::MAX), c(1, "x", Fact::CaseOpened, 5)];
        assert_eq!(summarize(&huge, day(1), day(1), None).totals.counts["CasesOpened"], u64::MAX);
    }
}
