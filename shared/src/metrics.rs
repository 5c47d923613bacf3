//! The support lead's numbers as CloudWatch metrics, written as
//! embedded-metric-format (EMF) lines.
//!
//! A [`Fact`] is one thing that became true of a case: it was opened, an
//! automated resolution was confirmed, a draft was sent unedited… The
//! pipeline counts each fact once, when the write that made it true lands,
//! and hands the facts of that write to [`emit`] with the case's intent and
//! agent. [`emit`] prints one JSON line on stdout; in Lambda, stdout goes to
//! CloudWatch Logs, which extracts the metrics from the line by itself (no
//! `PutMetricData` call, no permission, no latency).
//!
//! Every metric is published in namespace [`NAMESPACE`] three times: per
//! intent (dimension `Intent`), per agent (dimension `Agent`) and as the
//! namespace-wide total (the empty dimension set, which the EMF
//! specification allows: "A DimensionSet MAY be empty"). The dashboard and
//! the alarms of `template.yaml` read these; `infra/metrics.json`, written
//! from [`catalogue_json`] by a test, is what `infra/check_template.py`
//! checks the template against.
//!
//! The line holds the timestamp, the two dimension values and the counts,
//! nothing else: intent and agent names come from the configuration, and
//! are still cleaned ([`dimension_value`]) so that a line can never carry
//! customer data, control characters or unbounded text.
//!
//! The line follows the CloudWatch "Specification: Embedded metric format":
//! a root object with the `_aws` metadata (`Timestamp` in milliseconds
//! after the epoch, `CloudWatchMetrics` with one MetricDirective of
//! `Namespace`, `Dimensions` and `Metrics`), no extra member in the objects
//! the specification defines, and every dimension key and metric name a
//! top-level member of the root (a string for a dimension, a number for a
//! metric). The tests validate lines against the specification's JSON
//! schema.

use std::collections::BTreeMap;
use std::io::Write;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// The CloudWatch namespace of every casebridge metric.
pub const NAMESPACE: &str = "casebridge";

/// Dimension name of the case's intent.
pub const INTENT_DIMENSION: &str = "Intent";

/// Dimension name of the case's agent.
pub const AGENT_DIMENSION: &str = "Agent";

/// The dimension value of an absent intent or agent (a case held for
/// representatives has no agent; a case opened by a representative may
/// have no intent).
pub const NONE_VALUE: &str = "(none)";

/// Longest dimension value written, in characters. Configured names are
/// short identifiers; the EMF limit (1024) is far above this.
pub const MAX_DIMENSION_CHARS: usize = 64;

/// Environment variable that turns EMF lines on or off (`on`/`off`).
pub const EMF_ENV: &str = "CASEBRIDGE_EMF";

/// The CloudWatch unit of every metric: each is a count of facts.
pub const UNIT: &str = "Count";

/// The dimension sets every line declares: per intent, per agent, and the
/// namespace-wide total (the empty set). Every set is one CloudWatch metric
/// per name, so the dashboard and the alarms may read any of the three.
pub const DIMENSION_SETS: [&[&str]; 3] = [&[INTENT_DIMENSION], &[AGENT_DIMENSION], &[]];

/// One fact of a case's life, counted once when the write that made it true lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fact {
    /// A customer mail opened a new case.
    CaseOpened,
    /// The agent resolved the case and the customer confirmed it.
    ResolvedConfirmed,
    /// The agent resolved the case and the follow-up window passed without
    /// the customer answering: the resolution is assumed.
    ResolvedAssumed,
    /// The agent closed the case itself (`ResolveCase`).
    ClosedByAgent,
    /// A resolved or closed case was reopened by the customer's mail.
    Reopened,
    /// The case was escalated to a representative.
    Escalated,
    /// A representative sent an agent's draft without changing it.
    DraftSentUnedited,
    /// A representative edited an agent's draft, then sent it.
    DraftSentEdited,
    /// A representative discarded an agent's draft.
    DraftDiscarded,
    /// A mail written by the agent (a question or a resolution, a reviewed draft
    /// included) was sent to the customer, as the report counts it.
    AiMailSent,
    /// An agent call failed for good (errors after retries, invalid answer,
    /// or no answer before the deadline).
    AgentFailed,
}

impl Fact {
    /// Every fact, in the order of the catalogue (`infra/metrics.json`).
    pub const ALL: [Fact; 11] = [
        Fact::CaseOpened,
        Fact::ResolvedConfirmed,
        Fact::ResolvedAssumed,
        Fact::ClosedByAgent,
        Fact::Reopened,
        Fact::Escalated,
        Fact::DraftSentUnedited,
        Fact::DraftSentEdited,
        Fact::DraftDiscarded,
        Fact::AiMailSent,
        Fact::AgentFailed,
    ];

    /// The CloudWatch metric name (PascalCase, unit `Count`):
    ///
    /// | fact | metric |
    /// |---|---|
    /// | `CaseOpened` | `CasesOpened` |
    /// | `ResolvedConfirmed` | `ResolutionsConfirmed` |
    /// | `ResolvedAssumed` | `ResolutionsAssumed` |
    /// | `ClosedByAgent` | `CasesClosedByAgent` |
    /// | `Reopened` | `CasesReopened` |
    /// | `Escalated` | `Escalations` |
    /// | `DraftSentUnedited` | `DraftsSentUnedited` |
    /// | `DraftSentEdited` | `DraftsSentEdited` |
    /// | `DraftDiscarded` | `DraftsDiscarded` |
    /// | `AiMailSent` | `AiMailsSent` |
    /// | `AgentFailed` | `AgentFailures` |
    pub fn metric_name(self) -> &'static str {
        match self {
            Fact::CaseOpened => "CasesOpened",
            Fact::ResolvedConfirmed => "ResolutionsConfirmed",
            Fact::ResolvedAssumed => "ResolutionsAssumed",
            Fact::ClosedByAgent => "CasesClosedByAgent",
            Fact::Reopened => "CasesReopened",
            Fact::Escalated => "Escalations",
            Fact::DraftSentUnedited => "DraftsSentUnedited",
            Fact::DraftSentEdited => "DraftsSentEdited",
            Fact::DraftDiscarded => "DraftsDiscarded",
            Fact::AiMailSent => "AiMailsSent",
            Fact::AgentFailed => "AgentFailures",
        }
    }

    /// What counts one, in a sentence (for the catalogue and the docs).
    pub fn description(self) -> &'static str {
        match self {
            Fact::CaseOpened => "a customer mail opened a new case",
            Fact::ResolvedConfirmed => "an automated resolution the customer confirmed",
            Fact::ResolvedAssumed => "an automated resolution assumed after the follow-up window passed unanswered",
            Fact::ClosedByAgent => "the agent closed the case (ResolveCase)",
            Fact::Reopened => "a resolved or closed case reopened by a customer mail",
            Fact::Escalated => "a case escalated to a representative",
            Fact::DraftSentUnedited => "an agent draft a representative sent unchanged",
            Fact::DraftSentEdited => "an agent draft a representative edited, then sent",
            Fact::DraftDiscarded => "an agent draft a representative discarded",
            Fact::AiMailSent => "an agent-written mail (question or resolution, reviewed drafts included) sent to the customer",
            Fact::AgentFailed => "an agent call that failed for good (errors after retries, invalid answer, deadline)",
        }
    }
}

/// Dimensions: the case's intent and agent ("(none)" when absent). Never customer data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dimensions<'a> {
    pub intent: Option<&'a str>,
    pub agent: Option<&'a str>,
}

/// A dimension value as written: printable ASCII only (control, format and
/// non-ASCII characters are dropped; CloudWatch takes ASCII dimension
/// values only), surrounding blanks trimmed, at most
/// [`MAX_DIMENSION_CHARS`] characters, and [`NONE_VALUE`] when nothing is
/// left.
pub fn dimension_value(value: Option<&str>) -> String {
    let cleaned: String = value
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .collect();
    let bounded: String = cleaned.trim().chars().take(MAX_DIMENSION_CHARS).collect();
    let bounded = bounded.trim_end();
    if bounded.is_empty() {
        NONE_VALUE.to_string()
    } else {
        bounded.to_string()
    }
}

// The EMF document, as the specification names its parts.

/// The root node: metadata, the dimension targets and the metric targets.
#[derive(Debug, Serialize)]
struct RootNode {
    #[serde(rename = "_aws")]
    aws: Metadata,
    #[serde(rename = "Intent")]
    intent: String,
    #[serde(rename = "Agent")]
    agent: String,
    /// Metric name → count (the metric targets).
    #[serde(flatten)]
    values: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Metadata {
    /// Milliseconds since the Unix epoch.
    timestamp: i64,
    #[serde(rename = "CloudWatchMetrics")]
    cloud_watch_metrics: Vec<MetricDirective>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct MetricDirective {
    namespace: &'static str,
    /// Dimension sets: per intent, per agent, and the total (empty set).
    dimensions: Vec<Vec<&'static str>>,
    metrics: Vec<MetricDefinition>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct MetricDefinition {
    name: &'static str,
    unit: &'static str,
}

/// [`DIMENSION_SETS`] as the MetricDirective holds them.
fn dimension_sets() -> Vec<Vec<&'static str>> {
    DIMENSION_SETS.iter().map(|set| set.to_vec()).collect()
}

/// The EMF JSON line for these facts at `at` (one line, no newline), namespace `casebridge`.
///
/// Each distinct fact is one metric whose value is how often it occurs in
/// `facts`. `None` for no facts, and for a time before 1970: the
/// specification's `Timestamp` counts milliseconds *after* the epoch, and
/// CloudWatch would drop such a metric anyway.
pub fn emf_line(facts: &[Fact], dims: &Dimensions<'_>, at: DateTime<Utc>) -> Option<String> {
    let timestamp = at.timestamp_millis();
    if facts.is_empty() || timestamp < 0 {
        return None;
    }
    let mut values: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut metrics = Vec::new();
    for fact in facts {
        let count = values.entry(fact.metric_name()).or_insert(0);
        if *count == 0 {
            metrics.push(MetricDefinition {
                name: fact.metric_name(),
                unit: UNIT,
            });
        }
        *count = count.saturating_add(1);
    }
    let root = RootNode {
        aws: Metadata {
            timestamp,
            cloud_watch_metrics: vec![MetricDirective {
                namespace: NAMESPACE,
                dimensions: dimension_sets(),
                metrics,
            }],
        },
        intent: dimension_value(dims.intent),
        agent: dimension_value(dims.agent),
        values,
    };
    // Serialising these plain structs cannot fail; no line rather than a panic if it did.
    serde_json::to_string(&root).ok()
}

/// Writes the line to stdout (Lambda sends stdout to CloudWatch Logs, which extracts EMF) when enabled.
///
/// Writes nothing else, and never fails the caller: a closed or full stdout
/// loses the line, not the step.
pub fn emit(facts: &[Fact], dims: &Dimensions<'_>, at: DateTime<Utc>) {
    if !enabled() {
        return;
    }
    if let Some(mut line) = emf_line(facts, dims, at) {
        line.push('\n');
        // One write under the lock, so the line is never interleaved with log lines.
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
    }
}

/// Whether `emit` writes: on in Lambda (AWS_LAMBDA_FUNCTION_NAME set) unless CASEBRIDGE_EMF=off; off elsewhere unless CASEBRIDGE_EMF=on.
pub fn enabled() -> bool {
    let in_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some_and(|v| !v.is_empty());
    let setting = std::env::var(EMF_ENV).ok();
    enabled_with(in_lambda, setting.as_deref())
}

/// [`enabled`] for a given environment: `CASEBRIDGE_EMF` = `on`/`true`/`1`
/// turns the lines on, `off`/`false`/`0` off (any case, surrounding blanks
/// ignored); anything else, or unset, leaves the default (on in Lambda).
pub fn enabled_with(in_lambda: bool, setting: Option<&str>) -> bool {
    match setting.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        Some("on" | "true" | "1") => true,
        Some("off" | "false" | "0") => false,
        _ => in_lambda,
    }
}

/// The metric catalogue as `infra/metrics.json` holds it, for the template check.
///
/// `infra/check_template.py` reads it to check that every metric the
/// dashboard and the alarms name is one the functions emit, in this
/// namespace and with one of these dimension sets, and that every metric
/// emitted is on the dashboard. The file is written from here by
/// `shared/tests/metrics_catalogue.rs`, so the two cannot drift apart.
pub fn catalogue_json() -> serde_json::Value {
    // Built with `json!` rather than serialised from structs: it cannot fail,
    // so there is no error to hide behind a default value.
    let metrics: Vec<serde_json::Value> = Fact::ALL
        .iter()
        .map(|f| {
            serde_json::json!({
                "fact": format!("{f:?}"),
                "name": f.metric_name(),
                "unit": UNIT,
                "counts": f.description(),
            })
        })
        .collect();
    serde_json::json!({
        "namespace": NAMESPACE,
        "dimensions": [INTENT_DIMENSION, AGENT_DIMENSION],
        "dimension_sets": DIMENSION_SETS,
        "none_value": NONE_VALUE,
        "max_dimension_chars": MAX_DIMENSION_CHARS,
        "metrics": metrics,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_700_000_000_123).unwrap_or_default()
    }

    fn parse(line: &str) -> Value {
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {e}: {line}"))
    }

    fn dims<'a>(intent: &'a str, agent: &'a str) -> Dimensions<'a> {
        Dimensions {
            intent: Some(intent),
            agent: Some(agent),
        }
    }

    /// The JSON schema published with the EMF specification, with the
    /// limits of its prose: at most 100 MetricDefinitions, at most 9
    /// dimension keys per set (the older text's limit; the current one
    /// allows 30, so a line within 9 is valid under both), and — because
    /// "objects defined by this specification MUST NOT contain any
    /// additional members" — no member the specification does not define
    /// in `_aws`, a MetricDirective or a MetricDefinition.
    fn specification_schema() -> jsonschema::Validator {
        let name = json!({"type": "string", "pattern": "^(.*)$", "minLength": 1, "maxLength": 255});
        let schema = json!({
            "type": "object",
            "required": ["_aws"],
            "properties": {"_aws": {
                "type": "object",
                "required": ["Timestamp", "CloudWatchMetrics"],
                "additionalProperties": false,
                "properties": {
                    "Timestamp": {"type": "integer", "minimum": 0},
                    "CloudWatchMetrics": {"type": "array", "items": {
                        "type": "object",
                        "required": ["Namespace", "Dimensions", "Metrics"],
                        "additionalProperties": false,
                        "properties": {
                            "Namespace": name,
                            "Dimensions": {"type": "array", "minItems": 1, "items": {
                                "type": "array", "minItems": 0, "maxItems": 9, "items": name
                            }},
                            "Metrics": {"type": "array", "maxItems": 100, "items": {
                                "type": "object",
                                "required": ["Name"],
                                "additionalProperties": false,
                                "properties": {
                                    "Name": name,
                                    "Unit": {"type": "string", "pattern": "^(Seconds|Microseconds|Milliseconds|Bytes|Kilobytes|Megabytes|Gigabytes|Terabytes|Bits|Kilobits|Megabits|Gigabits|Terabits|Percent|Count|Bytes\\/Second|Kilobytes\\/Second|Megabytes\\/Second|Gigabytes\\/Second|Terabytes\\/Second|Bits\\/Second|Kilobits\\/Second|Megabits\\/Second|Gigabits\\/Second|Terabits\\/Second|Count\\/Second|None)$"},
                                    "StorageResolution": {"enum": [1, 60]}
                                }
                            }}
                        }
                    }}
                }
            }}
        });
        jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("schema: {e}"))
    }

    /// Whether `value` is what [`dimension_value`] may write: printable
    /// ASCII, no surrounding blank, 1 to [`MAX_DIMENSION_CHARS`] characters
    /// (CloudWatch takes ASCII dimension values with a non-blank character,
    /// at most 1024).
    fn is_clean_dimension(value: &str) -> bool {
        !value.is_empty()
            && value.len() <= MAX_DIMENSION_CHARS
            && value.chars().all(|c| c.is_ascii_graphic() || c == ' ')
            && value.trim() == value
    }

    /// Everything a line must be, from the specification and from this
    /// module's promises; `Err` says what is wrong. Used by the unit tests
    /// and by the property test over arbitrary input.
    fn check_line(line: &str, facts: &[Fact], d: &Dimensions<'_>, at: DateTime<Utc>) -> Result<(), String> {
        // One log event: one line, a JSON object with nothing before or after it.
        if line.contains(['\n', '\r']) || line.trim() != line {
            return Err(format!("not exactly one line: {line:?}"));
        }
        let doc: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
        let errors: Vec<String> = specification_schema().iter_errors(&doc).map(|e| e.to_string()).collect();
        if !errors.is_empty() {
            return Err(format!("against the specification's schema: {errors:?}"));
        }
        let root = doc.as_object().ok_or("root is not an object")?;
        if doc["_aws"]["Timestamp"] != json!(at.timestamp_millis()) {
            return Err(format!("Timestamp {} is not {}", doc["_aws"]["Timestamp"], at.timestamp_millis()));
        }
        let directives = doc["_aws"]["CloudWatchMetrics"].as_array().ok_or("no CloudWatchMetrics")?;
        let [directive] = directives.as_slice() else {
            return Err(format!("{} MetricDirectives, not one", directives.len()));
        };
        if directive["Namespace"] != json!(NAMESPACE) {
            return Err(format!("namespace {}", directive["Namespace"]));
        }
        if directive["Dimensions"] != json!(DIMENSION_SETS) {
            return Err(format!("dimension sets {}", directive["Dimensions"]));
        }
        // Dimension targets: top-level strings, cleaned, the cleaned configured names.
        for (key, given) in [(INTENT_DIMENSION, d.intent), (AGENT_DIMENSION, d.agent)] {
            let value = root
                .get(key)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("dimension {key} is not a string member"))?;
            if !is_clean_dimension(value) || value != dimension_value(given) {
                return Err(format!("dimension {key} = {value:?} from {given:?}"));
            }
        }
        // Metric targets: one top-level number per declared metric, the count of its fact.
        let declared: Vec<&str> = directive["Metrics"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["Name"].as_str())
            .collect();
        let mut expected: Vec<&str> = Vec::new();
        for fact in facts {
            if !expected.contains(&fact.metric_name()) {
                expected.push(fact.metric_name());
            }
        }
        if declared != expected {
            return Err(format!("declared metrics {declared:?}, facts give {expected:?}"));
        }
        for metric in directive["Metrics"].as_array().into_iter().flatten() {
            if metric["Unit"] != json!(UNIT) {
                return Err(format!("unit of {metric}"));
            }
        }
        for fact in Fact::ALL {
            let count = facts.iter().filter(|f| **f == fact).count() as u64;
            let member = root.get(fact.metric_name());
            match (count, member) {
                (0, None) => {}
                (n, Some(v)) if v.as_u64() == Some(n) && n > 0 => {}
                (n, v) => return Err(format!("{} is {v:?}, counted {n}", fact.metric_name())),
            }
        }
        // Nothing else on the line: metadata, two dimensions, the metrics.
        if root.len() != 3 + declared.len() {
            return Err(format!("{} members, expected {}", root.len(), 3 + declared.len()));
        }
        // No value other than the configured names (cleaned) and counts:
        // every string on the line is a name this module defines or one of
        // the two dimension values, every number the timestamp or a count.
        let mut allowed: Vec<String> = [NAMESPACE, INTENT_DIMENSION, AGENT_DIMENSION, UNIT].map(String::from).to_vec();
        allowed.extend(Fact::ALL.iter().map(|f| f.metric_name().to_string()));
        allowed.push(dimension_value(d.intent));
        allowed.push(dimension_value(d.agent));
        let mut numbers = vec![json!(at.timestamp_millis())];
        numbers.extend(declared.iter().map(|name| doc[*name].clone()));
        let mut leaves = Vec::new();
        collect_leaves(&doc, &mut leaves);
        for leaf in leaves {
            let ok = match leaf {
                Value::String(s) => allowed.contains(s),
                Value::Number(_) => numbers.contains(leaf),
                _ => false,
            };
            if !ok {
                return Err(format!("unexpected value {leaf} on the line"));
            }
        }
        // Keys too: the root's keys are the ones checked above, and the keys of nested objects are the specification's.
        let mut keys = Vec::new();
        collect_keys(&doc, &mut keys);
        for key in keys {
            let spec = [
                "_aws",
                "Timestamp",
                "CloudWatchMetrics",
                "Namespace",
                "Dimensions",
                "Metrics",
                "Name",
                "Unit",
            ];
            if !spec.contains(&key.as_str()) && !allowed.contains(&key) {
                return Err(format!("unexpected key {key:?}"));
            }
        }
        Ok(())
    }

    fn collect_leaves<'v>(value: &'v Value, into: &mut Vec<&'v Value>) {
        match value {
            Value::Object(map) => map.values().for_each(|v| collect_leaves(v, into)),
            Value::Array(items) => items.iter().for_each(|v| collect_leaves(v, into)),
            leaf => into.push(leaf),
        }
    }

    fn collect_keys(value: &Value, into: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    into.push(k.clone());
                    collect_keys(v, into);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| collect_keys(v, into)),
            _ => {}
        }
    }

    #[test]
    fn the_line_has_exactly_the_specification_shape() {
        let line = emf_line(&[Fact::CaseOpened, Fact::Escalated], &dims("refund", "refund-agent"), at());
        let line = line.unwrap_or_default();
        assert_eq!(
            parse(&line),
            json!({
                "_aws": {
                    "Timestamp": 1_700_000_000_123_i64,
                    "CloudWatchMetrics": [{
                        "Namespace": "casebridge",
                        "Dimensions": [["Intent"], ["Agent"], []],
                        "Metrics": [
                            {"Name": "CasesOpened", "Unit": "Count"},
                            {"Name": "Escalations", "Unit": "Count"}
                        ]
                    }]
                },
                "Intent": "refund",
                "Agent": "refund-agent",
                "CasesOpened": 1,
                "Escalations": 1
            })
        );
        assert_eq!(
            check_line(&line, &[Fact::CaseOpened, Fact::Escalated], &dims("refund", "refund-agent"), at()),
            Ok(())
        );
    }

    #[test]
    fn every_line_validates_against_the_specification() {
        let hostile = "x\u{0}\n\"}{".repeat(500);
        let cases: [(Vec<Fact>, Dimensions<'_>); 4] = [
            (Fact::ALL.to_vec(), dims("refund", "refund-agent")),
            (vec![Fact::AiMailSent], Dimensions::default()),
            (vec![Fact::AgentFailed; 3], dims(&hostile, "")),
            (
                Fact::ALL.iter().chain(Fact::ALL.iter()).copied().collect(),
                dims("billing", "billing-agent"),
            ),
        ];
        for (facts, d) in cases {
            let line = emf_line(&facts, &d, at()).unwrap_or_default();
            assert_eq!(check_line(&line, &facts, &d, at()), Ok(()), "{line}");
        }
    }

    /// The checker itself rejects what the specification forbids, so the
    /// property test below cannot pass by checking nothing.
    #[test]
    fn the_checker_rejects_lines_off_the_specification() {
        let facts = [Fact::CaseOpened];
        let d = dims("refund", "refund-agent");
        let good = parse(&emf_line(&facts, &d, at()).unwrap_or_default());
        let mut broken: Vec<(&str, Value)> = Vec::new();
        let mut v = good.clone();
        v["_aws"]["Timestamp"] = json!("1700000000123");
        broken.push(("timestamp as a string", v));
        let mut v = good.clone();
        v["CasesOpened"] = json!("1");
        broken.push(("metric target a string", v));
        let mut v = good.clone();
        v["Intent"] = json!(3);
        broken.push(("dimension target a number", v));
        let mut v = good.clone();
        v["customer"] = json!("ann@customer.example");
        broken.push(("an extra member", v));
        let mut v = good.clone();
        v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] = json!("Cases");
        broken.push(("not a CloudWatch unit", v));
        let mut v = good.clone();
        v["_aws"]["CloudWatchMetrics"][0]["Dimensions"] = json!([]);
        broken.push(("no dimension set", v));
        let mut v = good.clone();
        v["_aws"]["CloudWatchMetrics"][0]["Trace"] = json!(true);
        broken.push(("an extra member in the directive", v));
        let mut v = good;
        v["Intent"] = json!("ann@customer.example");
        broken.push(("a dimension value that is not the configured name", v));
        for (what, doc) in broken {
            let line = doc.to_string();
            assert!(check_line(&line, &facts, &d, at()).is_err(), "{what} passed: {line}");
        }
        let pretty = serde_json::to_string_pretty(&parse(&emf_line(&facts, &d, at()).unwrap_or_default())).unwrap_or_default();
        assert!(check_line(&pretty, &facts, &d, at()).is_err(), "a multi-line document passed");
    }

    #[test]
    fn values_sum_per_fact() {
        let facts = [Fact::AiMailSent, Fact::CaseOpened, Fact::AiMailSent];
        let doc = parse(&emf_line(&facts, &dims("refund", "refund-agent"), at()).unwrap_or_default());
        assert_eq!(doc["AiMailsSent"], json!(2));
        assert_eq!(doc["CasesOpened"], json!(1));
        let names: Vec<&str> = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["Name"].as_str())
            .collect();
        assert_eq!(
            names,
            ["AiMailsSent", "CasesOpened"],
            "each metric declared once, in first-seen order"
        );
    }

    #[test]
    fn no_facts_or_a_time_before_1970_no_line() {
        assert_eq!(emf_line(&[], &dims("refund", "refund-agent"), at()), None);
        let before = DateTime::from_timestamp_millis(-1).unwrap_or_default();
        assert_eq!(emf_line(&[Fact::CaseOpened], &dims("refund", "refund-agent"), before), None);
        let epoch = DateTime::from_timestamp_millis(0).unwrap_or_default();
        let line = emf_line(&[Fact::CaseOpened], &dims("refund", "refund-agent"), epoch).unwrap_or_default();
        assert_eq!(parse(&line)["_aws"]["Timestamp"], json!(0));
    }

    #[test]
    fn absent_dimensions_are_none() {
        let doc = parse(&emf_line(&[Fact::Escalated], &Dimensions::default(), at()).unwrap_or_default());
        assert_eq!(doc["Intent"], json!("(none)"));
        assert_eq!(doc["Agent"], json!("(none)"));
    }

    #[test]
    fn hostile_dimension_values_are_cleaned() {
        // Control characters, line breaks and escapes go; what is left is printable ASCII.
        assert_eq!(
            dimension_value(Some("refund\r\n\"CasesOpened\": 999")),
            "refund\"CasesOpened\": 999"
        );
        assert_eq!(dimension_value(Some("\u{202e}gnp.exe\u{0}\u{7}\t")), "gnp.exe");
        assert_eq!(dimension_value(Some("re\u{1b}[31mfund\u{7f}")), "re[31mfund");
        assert_eq!(dimension_value(Some("  billing  ")), "billing");
        assert_eq!(dimension_value(Some("remboursement é ☺")), "remboursement");
        // Empty, blank or nothing printable: the absent value, never an empty dimension.
        assert_eq!(dimension_value(Some("\n\t \u{200b}")), "(none)");
        assert_eq!(dimension_value(Some("☺☺")), "(none)");
        assert_eq!(dimension_value(Some("")), "(none)");
        assert_eq!(dimension_value(None), "(none)");
        // Long text is cut to a bound far below CloudWatch's 1024.
        let long = "a".repeat(10_000);
        assert_eq!(dimension_value(Some(&long)).len(), MAX_DIMENSION_CHARS);
        let wide = "é".repeat(100) + &"b".repeat(100);
        assert_eq!(dimension_value(Some(&wide)), "b".repeat(MAX_DIMENSION_CHARS));
        // Cut before trimming would leave a trailing blank.
        let spaced = format!("{} b", "a".repeat(MAX_DIMENSION_CHARS - 1));
        assert_eq!(dimension_value(Some(&spaced)), "a".repeat(MAX_DIMENSION_CHARS - 1));

        // On the line: still one line, still JSON, and the injected member is a string, not a count.
        let d = dims("refund\n{\"CasesOpened\": 999}", "agent\u{0}\u{1b}[31m");
        let line = emf_line(&[Fact::CaseOpened], &d, at()).unwrap_or_default();
        assert!(
            !line.contains('\n') && !line.contains('\u{0}') && !line.contains('\u{1b}'),
            "{line}"
        );
        let doc = parse(&line);
        assert_eq!(doc["CasesOpened"], json!(1));
        assert_eq!(doc["Intent"], json!("refund{\"CasesOpened\": 999}"));
        assert_eq!(doc["Agent"], json!("agent[31m"));
        assert_eq!(check_line(&line, &[Fact::CaseOpened], &d, at()), Ok(()));
    }

    #[test]
    fn metric_names_are_distinct_pascal_case() {
        let mut names: Vec<&str> = Fact::ALL.iter().map(|f| f.metric_name()).collect();
        for name in &names {
            assert!(name.chars().next().is_some_and(|c| c.is_ascii_uppercase()), "{name}");
            assert!(name.chars().all(|c| c.is_ascii_alphanumeric()), "{name}");
            assert!(![INTENT_DIMENSION, AGENT_DIMENSION, "_aws"].contains(name), "{name} collides");
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Fact::ALL.len());
        for fact in Fact::ALL {
            assert!(!fact.description().is_empty(), "{fact:?} says what it counts");
        }
    }

    #[test]
    fn enabled_in_lambda_unless_off_elsewhere_only_if_on() {
        assert!(enabled_with(true, None));
        assert!(!enabled_with(true, Some("off")));
        assert!(!enabled_with(true, Some(" OFF ")));
        assert!(!enabled_with(true, Some("0")));
        assert!(enabled_with(true, Some("maybe")));
        assert!(!enabled_with(false, None));
        assert!(enabled_with(false, Some("on")));
        assert!(enabled_with(false, Some("True")));
        assert!(!enabled_with(false, Some("")));
    }

    #[test]
    fn the_catalogue_names_every_fact_once_with_the_line_s_namespace_and_dimensions() {
        let catalogue = catalogue_json();
        assert_eq!(catalogue["namespace"], json!(NAMESPACE));
        assert_eq!(catalogue["dimension_sets"], json!([["Intent"], ["Agent"], []]));
        let names: Vec<&str> = catalogue["metrics"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["name"].as_str())
            .collect();
        let expected: Vec<&str> = Fact::ALL.iter().map(|f| f.metric_name()).collect();
        assert_eq!(names, expected);
        let line = parse(&emf_line(&Fact::ALL, &Dimensions::default(), at()).unwrap_or_default());
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], catalogue["namespace"]);
        assert_eq!(directive["Dimensions"], catalogue["dimension_sets"]);
    }

    fn any_fact() -> impl Strategy<Value = Fact> {
        prop::sample::select(Fact::ALL.to_vec())
    }

    /// Dimension input of every kind: absent, any Unicode (control and
    /// format characters included), long ASCII, blank.
    fn any_dimension() -> impl Strategy<Value = Option<String>> {
        prop::option::of(prop_oneof![
            any::<String>(),
            "[\\x00-\\x7f]{0,300}",
            "[ \\t\\r\\n\\u{200b}\\u{feff}]{0,8}",
            "[a-z][a-z0-9_-]{0,80}",
        ])
    }

    proptest! {
        /// Any facts, any dimension text and any time give a line that
        /// passes every check, or no line — and no line only for no facts
        /// or a time before the epoch.
        #[test]
        fn any_input_gives_a_valid_line_or_none(
            facts in prop::collection::vec(any_fact(), 0..30),
            intent in any_dimension(),
            agent in any_dimension(),
            millis in prop_oneof![-10_000_000_000_000i64..10_000_000_000_000, Just(0i64), Just(-1i64)],
        ) {
            let at = DateTime::from_timestamp_millis(millis).unwrap_or_default();
            let d = Dimensions { intent: intent.as_deref(), agent: agent.as_deref() };
            match emf_line(&facts, &d, at) {
                None => prop_assert!(facts.is_empty() || at.timestamp_millis() < 0, "no line for {facts:?} at {millis}"),
                Some(line) => {
                    prop_assert!(!facts.is_empty() && at.timestamp_millis() >= 0);
                    let checked = check_line(&line, &facts, &d, at);
                    prop_assert!(checked.is_ok(), "{:?}: {}", checked, line);
                }
            }
        }

        #[test]
        fn any_text_cleans_to_a_valid_dimension(text in any_dimension()) {
            let value = dimension_value(text.as_deref());
            prop_assert!(is_clean_dimension(&value), "{:?} -> {:?}", text, value);
        }
    }
}
