//! The three steps of casebridge, each a plain async function over ports:
//! `inbound::ingest` (mail → case, work item), `agent::run_turn` (work item →
//! agent answer) and `outcome::carry_out` (answer → mail, draft, escalation,
//! closure). Each step writes everything it did to the store before the next
//! step can act on it, and each is safe to run twice for the same input.

pub mod agent;
pub mod inbound;
pub mod outcome;
pub mod representative;
pub(crate) mod step;

use chrono::{DateTime, Utc};
use thiserror::Error;

use crate::config::Config;
use crate::ids::CaseId;
use crate::mail::MailError;
use crate::model::{Case, Record, TimelineEvent};
use crate::store::{CommitError, StoreError};

/// How often a step re-reads and retries after another writer changed the case.
pub const MAX_CONFLICT_RETRIES: usize = 8;

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// What every step needs besides its ports.
#[derive(Clone, Copy)]
pub struct StepEnv<'a> {
    pub config: &'a Config,
    pub clock: &'a dyn Clock,
    /// When the invocation must be done (the Lambda deadline); None locally.
    pub deadline: Option<DateTime<Utc>>,
}

impl<'a> StepEnv<'a> {
    pub fn new(config: &'a Config, clock: &'a dyn Clock) -> StepEnv<'a> {
        StepEnv {
            config,
            clock,
            deadline: None,
        }
    }
}

#[derive(Debug, Error)]
pub enum PipelineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("case {0} does not exist")]
    CaseNotFound(CaseId),
    #[error("record {0} does not exist")]
    RecordNotFound(String),
    #[error("{0} kept conflicting with other writers; gave up after {MAX_CONFLICT_RETRIES} attempts")]
    Contention(String),
    #[error("sending mail failed: {0}")]
    Mail(#[from] MailError),
    #[error("unexpected commit failure: {0}")]
    Commit(String),
}

impl PipelineError {
    /// Whether the triggering event should be retried (store or provider
    /// trouble) or is final (the input names something that does not exist).
    pub fn is_retryable(&self) -> bool {
        match self {
            PipelineError::Store(_) | PipelineError::Contention(_) | PipelineError::Commit(_) => true,
            PipelineError::Mail(e) => e.is_retryable(),
            PipelineError::CaseNotFound(_) | PipelineError::RecordNotFound(_) => false,
        }
    }
}

impl From<CommitError> for PipelineError {
    fn from(e: CommitError) -> Self {
        match e {
            CommitError::Store(s) => PipelineError::Store(s),
            other => PipelineError::Commit(other.to_string()),
        }
    }
}

/// Collects timeline events for one commit and gives them ordered keys:
/// `EVT#<case version after the commit>#<n>`.
pub(crate) struct Timeline {
    version: u64,
    at: DateTime<Utc>,
    events: Vec<TimelineEvent>,
    /// The support lead's facts this commit makes true.
    facts: Vec<crate::metrics::Fact>,
}

impl Timeline {
    /// For a commit that will store the case with version `case.version + 1`
    /// (an update) or 1 (a create, where `case.version` is 0).
    pub(crate) fn for_commit(case: &Case, at: DateTime<Utc>) -> Timeline {
        Timeline {
            version: case.version + 1,
            at,
            events: Vec::new(),
            facts: Vec::new(),
        }
    }

    /// Counts `fact` with this commit (see [`Timeline::write_into`]).
    pub(crate) fn count(&mut self, fact: crate::metrics::Fact) {
        self.facts.push(fact);
    }

    /// Puts the timeline lines and the day's counters of the facts into
    /// `commit`. The counters ride on the commit's guards (the case version,
    /// a create-only claim), so a fact is counted exactly when its change lands.
    pub(crate) fn write_into(self, commit: &mut crate::store::Commit, case: &Case) {
        let intent = case.intent.as_deref().unwrap_or(crate::report::NONE);
        commit.counts.extend(self.facts.iter().map(|&fact| crate::store::Count {
            day: self.at.date_naive(),
            intent: intent.to_string(),
            agent: case.agent.clone(),
            fact,
        }));
        commit
            .records
            .extend(self.events.into_iter().map(|e| crate::store::RecordWrite::Create(Record::Event(e))));
    }

    pub(crate) fn add(&mut self, kind: &str, detail: impl Into<String>) {
        let id = format!("EVT#{:010}#{:03}", self.version, self.events.len());
        self.events.push(TimelineEvent {
            id,
            at: self.at,
            kind: kind.to_string(),
            detail: detail.into(),
        });
    }

    /// Key for one-per-commit records such as mail and work items.
    pub(crate) fn record_key(&self, prefix: &str) -> String {
        format!("{prefix}{:010}", self.version)
    }

    /// The key a turn opened by this commit gets.
    pub(crate) fn turn_key(&self) -> String {
        self.record_key("TURN#")
    }
}

/// Reads a record of one kind (`into` picks it out) or fails with a typed error.
pub(crate) async fn load_record<S: crate::store::Store, T>(
    store: &S,
    case_id: &CaseId,
    key: &str,
    into: fn(Record) -> Option<T>,
) -> Result<T, PipelineError> {
    store
        .get_record(case_id, key)
        .await?
        .and_then(into)
        .ok_or_else(|| PipelineError::RecordNotFound(format!("{case_id}/{key}")))
}

/// Reads a case or fails with a typed error.
pub(crate) async fn load_case<S: crate::store::Store>(store: &S, id: &CaseId) -> Result<Case, PipelineError> {
    store.get_case(id).await?.ok_or_else(|| PipelineError::CaseNotFound(id.clone()))
}

/// The reducer's view of the configuration for this case at `now`.
pub(crate) fn policy<'a>(env: StepEnv<'a>, case: &'a Case, next_turn: &'a str, now: DateTime<Utc>) -> crate::lifecycle::Policy<'a> {
    let workflow = env.config.workflow(case.workflow_name.as_deref());
    crate::lifecycle::Policy {
        now,
        queue: &env.config.mail.queue_name,
        agent: case.agent.as_deref(),
        next_turn,
        follow_up: workflow.follow_up.is_some(),
        close_on_thanks: workflow.follow_up.as_ref().is_some_and(|f| f.close_on_thanks),
        kill_switch: env.config.safety.kill_switch,
    }
}

/// Carries out the effects every step handles the same way: a timeline line,
/// or a work item for an opened turn. Hands back the effect otherwise.
pub(crate) fn common_effect(
    effect: crate::lifecycle::Effect,
    timeline: &mut Timeline,
    commit: &mut crate::store::Commit,
) -> Option<crate::lifecycle::Effect> {
    use crate::lifecycle::Effect;
    match effect {
        Effect::Note { kind, detail } => timeline.add(kind, detail),
        Effect::OpenTurn { turn, mails } => {
            commit
                .records
                .push(crate::store::RecordWrite::Create(Record::WorkItem(crate::model::WorkItem {
                    id: turn.replacen("TURN#", "WORK#", 1),
                    mail_ids: mails,
                    created_at: timeline.at,
                    status: crate::model::WorkItemStatus::Pending,
                })));
        }
        other => return Some(other),
    }
    None
}

/// Applies `event` to the case through the lifecycle reducer: the new
/// lifecycle is written on the case, and the effects are handed back in
/// order for the step to carry out (with [`common_effect`] for the shared ones).
pub(crate) fn enter(
    env: StepEnv<'_>,
    case: &mut Case,
    timeline: &mut Timeline,
    event: crate::lifecycle::CaseEvent<'_>,
) -> Result<Vec<crate::lifecycle::Effect>, crate::lifecycle::Refused> {
    let next_turn = timeline.turn_key();
    let transition = crate::lifecycle::apply(&case.lifecycle(), event, &policy(env, case, &next_turn, timeline.at))?;
    case.set_lifecycle(transition.next);
    for fact in transition.facts {
        timeline.count(fact);
    }
    Ok(transition.effects)
}
