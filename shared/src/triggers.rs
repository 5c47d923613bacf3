//! One table of what runs which step: which stored change, and which
//! schedule. The Lambda functions select their stream records with it, the
//! template's stream filters and schedules are checked against it
//! (`infra/triggers.json`, written from this table by a test, is what
//! `infra/check_template.py` reads), and the local runtime (`casebridge
//! serve`, the CLI's one-shot verbs) chains steps with it: a step reports
//! the changes it stored, and the table says what runs next.

use serde::Serialize;

/// A unit of work of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Call the agent for a new work item (`pipeline::agent::run_turn`).
    AgentTurn,
    /// Carry out an answered turn (`pipeline::outcome::carry_out`).
    CarryOut,
    /// Send the queue notice of a new case held for representatives (`flush_origin`).
    SendNotice,
    /// Fail turns whose agent never answered or whose call was lost (`sweep_overdue`).
    SweepOverdue,
    /// Reminders and auto-close after a resolution (`run_follow_ups`).
    FollowUps,
    /// Send mail left pending by a transient failure (`flush_origin`).
    RetryMail,
}

/// The Lambda function that runs a step in AWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Function {
    AgentInvocationFunction,
    OutcomeActionsFunction,
}

/// Which way a stored record changed (DynamoDB stream event names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ChangeKind {
    Insert,
    Modify,
    Remove,
}

impl ChangeKind {
    pub fn parse(event_name: &str) -> Option<ChangeKind> {
        match event_name {
            "INSERT" => Some(ChangeKind::Insert),
            "MODIFY" => Some(ChangeKind::Modify),
            "REMOVE" => Some(ChangeKind::Remove),
            _ => None,
        }
    }
}

/// A stored change, as the stream (or a local step) reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change<'a> {
    pub kind: ChangeKind,
    pub record_type: &'a str,
    pub status: Option<&'a str>,
    pub origin: Option<&'a str>,
}

/// A stored change that runs a step.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct OnChange {
    pub step: Step,
    pub function: Function,
    pub kinds: &'static [ChangeKind],
    pub record_type: &'static str,
    pub status: Option<&'static str>,
    pub origin_prefix: Option<&'static str>,
}

/// A schedule that runs a step.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct OnSchedule {
    pub step: Step,
    /// The function the template schedules, or none where AWS needs no
    /// schedule (there, the stream's retries and dead-letter queue retry mail).
    pub function: Option<Function>,
    /// The scheduled event's `{"action": …}`.
    pub action: &'static str,
    /// The template's interval, and the local runtime's default.
    pub every_secs: u64,
}

pub const ON_CHANGE: &[OnChange] = &[
    OnChange {
        step: Step::AgentTurn,
        function: Function::AgentInvocationFunction,
        kinds: &[ChangeKind::Insert],
        record_type: "WorkItem",
        status: None,
        origin_prefix: None,
    },
    // INSERT or MODIFY: a sync answer is written with the turn, an async or
    // swept one updates it.
    OnChange {
        step: Step::CarryOut,
        function: Function::OutcomeActionsFunction,
        kinds: &[ChangeKind::Insert, ChangeKind::Modify],
        record_type: "Turn",
        status: Some("answered"),
        origin_prefix: None,
    },
    // Queue notices for new cases the inbound step held: their origin is the mail.
    OnChange {
        step: Step::SendNotice,
        function: Function::OutcomeActionsFunction,
        kinds: &[ChangeKind::Insert],
        record_type: "Outbound",
        status: None,
        origin_prefix: Some("MSG#"),
    },
];

pub const ON_SCHEDULE: &[OnSchedule] = &[
    OnSchedule {
        step: Step::SweepOverdue,
        function: Some(Function::AgentInvocationFunction),
        action: "sweep",
        every_secs: 60,
    },
    OnSchedule {
        step: Step::FollowUps,
        function: Some(Function::OutcomeActionsFunction),
        action: "follow_up",
        every_secs: 300,
    },
    OnSchedule {
        step: Step::RetryMail,
        function: None,
        action: "retry_mail",
        every_secs: 60,
    },
];

impl OnChange {
    pub fn matches(&self, change: &Change<'_>) -> bool {
        self.kinds.contains(&change.kind)
            && change.record_type == self.record_type
            && self.status.is_none_or(|s| change.status == Some(s))
            && self.origin_prefix.is_none_or(|p| change.origin.is_some_and(|o| o.starts_with(p)))
    }

    /// The Lambda event-source filter pattern (EventBridge pattern syntax)
    /// the template must carry for this trigger.
    pub fn filter_pattern(&self) -> serde_json::Value {
        let mut image = serde_json::Map::new();
        image.insert("record_type".into(), serde_json::json!({"S": [self.record_type]}));
        if let Some(status) = self.status {
            image.insert("status".into(), serde_json::json!({"S": [status]}));
        }
        if let Some(prefix) = self.origin_prefix {
            image.insert("origin".into(), serde_json::json!({"S": [{"prefix": prefix}]}));
        }
        let mut pattern = serde_json::Map::new();
        // A REMOVE has no new image, so it never matches a NewImage filter:
        // INSERT+MODIFY needs no eventName filter.
        if self.kinds == [ChangeKind::Insert] {
            pattern.insert("eventName".into(), serde_json::json!(["INSERT"]));
        }
        pattern.insert("dynamodb".into(), serde_json::json!({"NewImage": image}));
        serde_json::Value::Object(pattern)
    }
}

/// The step a stored change runs, if any.
pub fn on_change(change: &Change<'_>) -> Option<&'static OnChange> {
    ON_CHANGE.iter().find(|t| t.matches(change))
}

/// The schedule of a scheduled event's action (`{"action": "sweep"}`).
pub fn on_schedule(action: &str) -> Option<&'static OnSchedule> {
    ON_SCHEDULE.iter().find(|s| s.action == action)
}

/// The table as `infra/triggers.json` holds it, for the template check.
pub fn table_json() -> serde_json::Value {
    let changes: Vec<serde_json::Value> = ON_CHANGE
        .iter()
        .map(|t| serde_json::json!({"step": t.step, "function": t.function, "pattern": t.filter_pattern()}))
        .collect();
    serde_json::json!({"on_change": changes, "on_schedule": ON_SCHEDULE})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change<'a>(kind: ChangeKind, record_type: &'a str, status: Option<&'a str>, origin: Option<&'a str>) -> Change<'a> {
        Change {
            kind,
            record_type,
            status,
            origin,
        }
    }

    #[test]
    fn each_change_runs_the_right_step_or_none() {
        use ChangeKind::*;
        let step = |c: Change<'_>| on_change(&c).map(|t| t.step);
        assert_eq!(step(change(Insert, "WorkItem", None, None)), Some(Step::AgentTurn));
        assert_eq!(step(change(Modify, "WorkItem", None, None)), None, "a work item runs once");
        assert_eq!(step(change(Insert, "Turn", Some("answered"), None)), Some(Step::CarryOut));
        assert_eq!(step(change(Modify, "Turn", Some("answered"), None)), Some(Step::CarryOut));
        assert_eq!(step(change(Modify, "Turn", Some("in_flight"), None)), None);
        assert_eq!(step(change(Remove, "Turn", Some("answered"), None)), None);
        assert_eq!(
            step(change(Insert, "Outbound", Some("pending"), Some("MSG#abc"))),
            Some(Step::SendNotice)
        );
        assert_eq!(
            step(change(Insert, "Outbound", Some("pending"), Some("TURN#0000000001"))),
            None,
            "sent by carry-out"
        );
        assert_eq!(step(change(Insert, "Case", None, None)), None);
    }

    #[test]
    fn the_committed_table_file_is_this_table() {
        // infra/check_template.py checks the template against infra/triggers.json.
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/triggers.json");
        let expected = format!("{}\n", serde_json::to_string_pretty(&table_json()).unwrap_or_default());
        if std::env::var_os("CASEBRIDGE_WRITE_TRIGGERS").is_some() {
            std::fs::write(&path, &expected).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            committed, expected,
            "infra/triggers.json is stale: run CASEBRIDGE_WRITE_TRIGGERS=1 cargo test -p casebridge --lib triggers"
        );
    }

    #[test]
    fn schedules_are_found_by_action() {
        assert_eq!(on_schedule("sweep").map(|s| s.step), Some(Step::SweepOverdue));
        assert_eq!(on_schedule("follow_up").map(|s| s.step), Some(Step::FollowUps));
        assert!(on_schedule("nonsense").is_none());
    }
}
