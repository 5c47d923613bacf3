//! `casebridge report`: the support lead's numbers over a period, per intent
//! and per agent, as a table, JSON or CSV. The figures come from
//! `casebridge::report` (the same aggregation every surface uses); this
//! module only reads the facts and renders them.
//!
//! On DynamoDB the facts are read by scanning the case ids (an operator's
//! run, never a request path).

use chrono::{DateTime, Utc};

use casebridge::report::{aggregate_with, load_facts, Figures, Group, Percentiles, Period, Report};
use casebridge::store::Store;

use crate::local::CliError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// A `--since` date: `YYYY-MM-DD` is that day's start (UTC); RFC 3339 is exact.
pub fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    casebridge::report::parse_since(text)
}

/// An `--until` date: `YYYY-MM-DD` includes that whole day; RFC 3339 is an
/// exact, exclusive end.
pub fn parse_until(text: &str) -> Result<DateTime<Utc>, String> {
    casebridge::report::parse_until(text)
}

pub struct Options {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub intent: Option<String>,
    pub format: Format,
    /// Cases of the period looked at, at most.
    pub limit: usize,
    /// Readiness thresholds and the cost model (`[report]` of the configuration).
    pub settings: casebridge::config::ReportConfig,
}

pub async fn run<S: Store>(store: &S, options: Options) -> Result<(), CliError> {
    if options.since >= options.until {
        return Err("--since must be before --until".into());
    }
    let facts = load_facts(store, options.since, options.until, options.limit).await?;
    let period = Period {
        since: options.since,
        until: options.until,
    };
    let report = aggregate_with(&facts, &period, options.intent.as_deref(), &options.settings);
    print!("{}", render(&report, options.format)?);
    Ok(())
}

pub fn render(report: &Report, format: Format) -> Result<String, CliError> {
    Ok(match format {
        Format::Json => {
            let mut text = serde_json::to_string_pretty(report)?;
            text.push('\n');
            text
        }
        Format::Csv => csv(report),
        Format::Table => table(report),
    })
}

/// Every group of the report, with its scope: total, intent or agent.
fn rows(report: &Report) -> Vec<(&'static str, &str, &Figures)> {
    let mut rows = vec![("total", "all", &report.totals)];
    rows.extend(report.by_intent.iter().map(|g: &Group| ("intent", g.name.as_str(), &g.figures)));
    rows.extend(report.by_agent.iter().map(|g: &Group| ("agent", g.name.as_str(), &g.figures)));
    rows
}

const COLUMNS: [&str; 30] = [
    "scope",
    "name",
    "cases",
    "automated_resolutions",
    "automated_resolution_rate",
    "confirmed",
    "assumed",
    "closed_by_agent",
    "reopened",
    "resolved_after_escalation",
    "escalated_cases",
    "escalation_rate",
    "escalation_reasons",
    "drafts_sent_unedited",
    "drafts_sent_edited",
    "drafts_discarded",
    "drafts_edited_share",
    "first_response_p50_secs",
    "first_response_p90_secs",
    "time_to_resolution_p50_secs",
    "time_to_resolution_p90_secs",
    "ai_mails_sent",
    "agent_failures",
    "failures_timeout",
    "failures_http_status",
    "failures_invalid_answer",
    "failures_redirect",
    "failures_other",
    "infra_cost_usd",
    "cost_per_resolved_case_usd",
];

fn csv(report: &Report) -> String {
    let mut out = COLUMNS.join(",");
    out.push('\n');
    for (scope, name, f) in rows(report) {
        let reasons = f
            .escalation_reasons
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect::<Vec<_>>()
            .join(";");
        let failures = &f.agent_failures;
        let fields = [
            scope.to_string(),
            name.to_string(),
            f.cases.to_string(),
            f.resolutions.automated.to_string(),
            rate(f.automated_resolution_rate),
            f.resolutions.confirmed.to_string(),
            f.resolutions.assumed.to_string(),
            f.resolutions.closed_by_agent.to_string(),
            f.resolutions.reopened.to_string(),
            f.resolutions.after_escalation.to_string(),
            f.escalated_cases.to_string(),
            rate(f.escalation_rate),
            reasons,
            f.drafts.sent_unedited.to_string(),
            f.drafts.sent_edited.to_string(),
            f.drafts.discarded.to_string(),
            rate(f.drafts.edited_share),
            secs(f.first_response.p50_secs),
            secs(f.first_response.p90_secs),
            secs(f.time_to_resolution.p50_secs),
            secs(f.time_to_resolution.p90_secs),
            f.ai_mails_sent.to_string(),
            failures.total.to_string(),
            failures.timeout.to_string(),
            failures.http_status.to_string(),
            failures.invalid_answer.to_string(),
            failures.redirect.to_string(),
            failures.other.to_string(),
            format!("{:.6}", f.infra_cost_usd),
            f.cost_per_resolved_case_usd.map(|c| format!("{c:.6}")).unwrap_or_default(),
        ];
        let line: Vec<String> = fields.iter().map(|v| csv_field(v)).collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}

/// Quotes a field that holds a comma, a quote or a line break (RFC 4180);
/// a leading `=`, `+`, `-` or `@` is prefixed with `'` so a spreadsheet does
/// not run a name as a formula.
pub(crate) fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) {
        format!("'{value}")
    } else {
        value.to_string()
    };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

fn rate(value: Option<f64>) -> String {
    value.map(|v| format!("{v:.4}")).unwrap_or_default()
}

fn secs(value: Option<i64>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

fn table(report: &Report) -> String {
    let mut out = format!(
        "casebridge report, cases created {} .. {} (end exclusive){}\n",
        report.period.since.format("%Y-%m-%d %H:%M UTC"),
        report.period.until.format("%Y-%m-%d %H:%M UTC"),
        report.intent.as_deref().map(|i| format!(", intent {i}")).unwrap_or_default()
    );
    out.push_str(&format!(
        "\n{:<7} {:<20} {:>6} {:>18} {:>7} {:>7} {:>7} {:>6} {:>13} {:>9} {:>15} {:>14} {:>7} {:>8}\n",
        "scope",
        "name",
        "cases",
        "automated (rate)",
        "confirm",
        "assumed",
        "reopen",
        "closed",
        "escal. (rate)",
        "drafts",
        "1st resp p50/90",
        "resolve p50/90",
        "AI mail",
        "failures"
    ));
    for (scope, name, f) in rows(report) {
        out.push_str(&format!(
            "{:<7} {:<20} {:>6} {:>18} {:>7} {:>7} {:>7} {:>6} {:>13} {:>9} {:>15} {:>14} {:>7} {:>8}\n",
            scope,
            name,
            f.cases,
            format!("{} ({})", f.resolutions.automated, percent(f.automated_resolution_rate)),
            f.resolutions.confirmed,
            f.resolutions.assumed,
            f.resolutions.reopened,
            f.resolutions.closed_by_agent,
            format!("{} ({})", f.escalated_cases, percent(f.escalation_rate)),
            format!("{}/{}/{}", f.drafts.sent_unedited, f.drafts.sent_edited, f.drafts.discarded),
            pair(&f.first_response),
            pair(&f.time_to_resolution),
            f.ai_mails_sent,
            f.agent_failures.total,
        ));
    }
    out.push_str("\ndrafts: sent unedited/sent edited/discarded; times are p50/p90.\n");
    for (scope, name, f) in rows(report) {
        if let Some(share) = f.drafts.edited_share {
            out.push_str(&format!(
                "{scope} {name}: {} of reviewed drafts were edited\n",
                percent(Some(share))
            ));
        }
        if !f.escalation_reasons.is_empty() {
            let reasons: Vec<String> = f.escalation_reasons.iter().map(|(k, n)| format!("{k} {n}")).collect();
            out.push_str(&format!("{scope} {name}: escalations: {}\n", reasons.join(", ")));
        }
        let a = &f.agent_failures;
        if a.total > 0 {
            out.push_str(&format!(
                "{scope} {name}: agent failures: timeout {}, http status {}, invalid answer {}, redirect {}, other {}\n",
                a.timeout, a.http_status, a.invalid_answer, a.redirect, a.other
            ));
        }
        if f.cases > 0 {
            out.push_str(&format!(
                "{scope} {name}: infra cost ${:.4}{}\n",
                f.infra_cost_usd,
                f.cost_per_resolved_case_usd
                    .map(|c| format!(", ${c:.5} per resolved case"))
                    .unwrap_or_default()
            ));
        }
    }
    if !report.readiness.is_empty() {
        out.push_str("\nready for autonomy (nothing switches on its own):\n");
        for r in &report.readiness {
            out.push_str(&format!(
                "  {:<20} {:<4} {}\n",
                r.intent,
                if r.ready { "yes" } else { "no" },
                r.reasons.join("; ")
            ));
        }
    }
    out
}

fn percent(value: Option<f64>) -> String {
    value.map(|v| format!("{:.1}%", v * 100.0)).unwrap_or_else(|| "-".into())
}

/// A duration in the largest unit that keeps it short: 45s, 12m, 3.5h, 2.0d.
fn duration(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3_600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{:.1}h", s as f64 / 3_600.0),
        s => format!("{:.1}d", s as f64 / 86_400.0),
    }
}

fn pair(p: &Percentiles) -> String {
    match (p.p50_secs, p.p90_secs) {
        (Some(p50), Some(p90)) => format!("{}/{}", duration(p50), duration(p90)),
        _ => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_whole_days_or_exact_times() {
        assert_eq!(parse_since("2026-11-01").unwrap().to_rfc3339(), "2026-11-01T00:00:00+00:00");
        assert_eq!(parse_until("2026-11-30").unwrap().to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(
            parse_until("2026-11-30T12:00:00+01:00").unwrap().to_rfc3339(),
            "2026-11-30T11:00:00+00:00"
        );
        assert!(parse_since("yesterday").is_err());
    }

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(csv_field("refund"), "refund");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
    }

    #[test]
    fn every_format_renders_an_empty_report() {
        let period = Period {
            since: parse_since("2026-11-01").unwrap(),
            until: parse_until("2026-11-30").unwrap(),
        };
        let report = casebridge::report::aggregate(&[], &period, None);
        let csv = render(&report, Format::Csv).unwrap();
        assert_eq!(csv.lines().count(), 2, "header and the total row: {csv}");
        assert_eq!(csv.lines().nth(1).unwrap().split(',').count(), COLUMNS.len());
        let json: serde_json::Value = serde_json::from_str(&render(&report, Format::Json).unwrap()).unwrap();
        assert_eq!(json["totals"]["cases"], 0);
        assert!(render(&report, Format::Table).unwrap().contains("total"));
    }
}
