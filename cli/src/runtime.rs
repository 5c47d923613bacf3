//! The local runtime: the steps the DynamoDB stream and the schedules run in
//! AWS, run in one process on the embedded store.
//!
//! Every step says what it stored, and the trigger table
//! (`casebridge::triggers`) says which step that runs next, exactly as the
//! stream filters do in AWS. Failures are retried with backoff up to the
//! template's stream retries; past them the job is written to the
//! dead-letter file (as Lambda sends it to the dead-letter queue), and
//! nothing stops the process. After a restart, [`LocalPipeline::recovery_jobs`]
//! finds what a crash left half done: work items without a turn, answered
//! turns not carried out, mail left pending. The sweep resolves turns lost
//! mid-call.

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use casebridge::ids::CaseId;
use casebridge::model::{OutboundStatus, Record, RecordKind, TurnStatus};
use casebridge::pipeline::agent::{run_turn, sweep_overdue, turn_key_for, TurnOutcome};
use casebridge::pipeline::inbound::IngestOutcome;
use casebridge::pipeline::outcome::{carry_out, flush_origin, run_follow_ups};
use casebridge::pipeline::{PipelineError, StepEnv, SystemClock};
use casebridge::store::Store;
use casebridge::triggers::{on_change, Change, ChangeKind, Step, ON_SCHEDULE};

use crate::local::LocalPipeline;

/// Attempts of one job: the first and the template's `MaximumRetryAttempts`
/// (5) retries, as Lambda gives a stream record.
pub const MAX_ATTEMPTS: u32 = 6;
/// Due turns and reminders looked at per scheduled run.
const SCHEDULE_LIMIT: usize = 100;

/// What a step did.
#[derive(Debug, Default)]
pub struct Ran {
    /// The jobs what it stored triggers.
    pub next: Vec<Job>,
    pub turn: Option<TurnOutcome>,
    pub report: Option<casebridge::pipeline::outcome::OutcomeReport>,
}

/// One step to run for one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub case_id: CaseId,
    pub step: Step,
    /// The record the step is about (work item, turn, or mail origin).
    pub key: String,
    pub attempts: u32,
}

impl Job {
    /// The job a stored change triggers, by the trigger table.
    pub(crate) fn for_change(case_id: &CaseId, key: &str, change: Change<'_>) -> Option<Job> {
        on_change(&change).map(|trigger| Job {
            case_id: case_id.clone(),
            step: trigger.step,
            key: key.to_string(),
            attempts: 0,
        })
    }

    fn label(&self) -> String {
        format!("{:?} {}/{}", self.step, self.case_id, self.key)
    }
}

/// The change an answered turn is (the stream's MODIFY to `answered`).
pub(crate) const ANSWERED_TURN: Change<'static> = Change {
    kind: ChangeKind::Modify,
    record_type: "Turn",
    status: Some("answered"),
    origin: None,
};

/// The change a new work item is.
pub(crate) const NEW_WORK_ITEM: Change<'static> = Change {
    kind: ChangeKind::Insert,
    record_type: "WorkItem",
    status: None,
    origin: None,
};

impl LocalPipeline {
    /// The jobs a stored mail triggers.
    pub fn jobs_after_ingest(outcome: &IngestOutcome) -> Vec<Job> {
        let IngestOutcome::Stored {
            case_id,
            mail_id,
            work_item,
            new_case,
            ..
        } = outcome
        else {
            return Vec::new();
        };
        match work_item {
            Some(work) => Job::for_change(case_id, work, NEW_WORK_ITEM).into_iter().collect(),
            // A new case held for representatives carries a queue notice, whose origin is the mail.
            None if *new_case => Job::for_change(
                case_id,
                mail_id,
                Change {
                    kind: ChangeKind::Insert,
                    record_type: "Outbound",
                    status: Some("pending"),
                    origin: Some(mail_id),
                },
            )
            .into_iter()
            .collect(),
            None => Vec::new(),
        }
    }

    /// Runs one case step; returns the jobs what it stored triggers.
    pub async fn run_job(&self, job: &Job) -> Result<Vec<Job>, PipelineError> {
        Ok(self.run_job_traced(job).await?.next)
    }

    /// [`LocalPipeline::run_job`], also returning what the agent answered and
    /// what carrying it out did (for the demo's narration).
    pub async fn run_job_traced(&self, job: &Job) -> Result<Ran, PipelineError> {
        let clock = SystemClock;
        let env = StepEnv::new(&self.config, &clock);
        let case_id = &job.case_id;
        let mut ran = Ran::default();
        match job.step {
            Step::AgentTurn => {
                let outcome = run_turn(env, &self.store, &self.agents, case_id, &job.key).await?;
                if let TurnOutcome::Answered { turn, .. } = &outcome {
                    ran.next.extend(Job::for_change(case_id, turn, ANSWERED_TURN));
                }
                ran.turn = Some(outcome);
            }
            Step::CarryOut => {
                let report = carry_out(env, &self.store, &self.mailer, case_id, &job.key).await?;
                ran.next.extend(
                    report
                        .next_work_item
                        .as_ref()
                        .and_then(|work| Job::for_change(case_id, work, NEW_WORK_ITEM)),
                );
                ran.report = Some(report);
            }
            Step::SendNotice | Step::RetryMail => {
                flush_origin(env, &self.store, &self.mailer, case_id, &job.key).await?;
            }
            Step::SweepOverdue | Step::FollowUps => ran.next = self.run_schedule(job.step).await?,
        }
        Ok(ran)
    }

    /// Runs a scheduled step once; returns the jobs it triggers.
    pub async fn run_schedule(&self, step: Step) -> Result<Vec<Job>, PipelineError> {
        let clock = SystemClock;
        let env = StepEnv::new(&self.config, &clock);
        match step {
            Step::SweepOverdue => Ok(sweep_overdue(env, &self.store, SCHEDULE_LIMIT)
                .await?
                .into_iter()
                .filter_map(|(case_id, turn)| Job::for_change(&case_id, &turn, ANSWERED_TURN))
                .collect()),
            Step::FollowUps => {
                for done in run_follow_ups(env, &self.store, &self.mailer, SCHEDULE_LIMIT).await? {
                    tracing::info!(follow_up = %done, "follow-up");
                }
                Ok(Vec::new())
            }
            Step::RetryMail => self.pending_mail_jobs().await,
            Step::AgentTurn | Step::CarryOut | Step::SendNotice => Ok(Vec::new()),
        }
    }

    /// Mail left `pending` (a transient failure, or a crash before the send
    /// claim), one job per origin. Mail left `sending` is not among them: it
    /// may have reached the customer, and is never re-sent on its own.
    async fn pending_mail_jobs(&self) -> Result<Vec<Job>, PipelineError> {
        let mut jobs = Vec::new();
        for case_id in self.store.list_case_ids(usize::MAX >> 1).await? {
            jobs.extend(self.pending_mail_of(&case_id).await?);
        }
        Ok(jobs)
    }

    async fn pending_mail_of(&self, case_id: &CaseId) -> Result<Vec<Job>, PipelineError> {
        let mut origins = HashSet::new();
        Ok(self
            .store
            .list_records(case_id, RecordKind::Outbound)
            .await?
            .into_iter()
            .filter_map(Record::into_outbound)
            .filter(|o| o.status == OutboundStatus::Pending)
            .map(|mail| mail.origin.unwrap_or(mail.id))
            .filter(|origin| origins.insert(origin.clone()))
            .map(|origin| Job {
                case_id: case_id.clone(),
                step: Step::RetryMail,
                key: origin,
                attempts: 0,
            })
            .collect())
    }

    /// What a crash (or a stopped process) left half done: work items
    /// without a turn, answered turns, pending mail. Scans the cases once: the
    /// embedded store is small and this runs at start-up only.
    pub async fn recovery_jobs(&self) -> Result<Vec<Job>, PipelineError> {
        let mut jobs = Vec::new();
        for case_id in self.store.list_case_ids(usize::MAX >> 1).await? {
            let turns: Vec<_> = self
                .store
                .list_records(&case_id, RecordKind::Turn)
                .await?
                .into_iter()
                .filter_map(Record::into_turn)
                .collect();
            for work in self
                .store
                .list_records(&case_id, RecordKind::WorkItem)
                .await?
                .into_iter()
                .filter_map(Record::into_work_item)
            {
                if !turns.iter().any(|t| t.id == turn_key_for(&work.id)) {
                    jobs.extend(Job::for_change(&case_id, &work.id, NEW_WORK_ITEM));
                }
            }
            for turn in turns.iter().filter(|t| t.status == TurnStatus::Answered) {
                jobs.extend(Job::for_change(&case_id, &turn.id, ANSWERED_TURN));
            }
            jobs.extend(self.pending_mail_of(&case_id).await?);
        }
        Ok(jobs)
    }

    /// Runs `jobs` and everything they trigger until nothing is left (the
    /// CLI's one-shot verbs); the first error stops it. Returns the steps run.
    pub async fn run_to_completion(&self, jobs: Vec<Job>) -> Result<usize, PipelineError> {
        let mut queue: VecDeque<Job> = jobs.into();
        let mut steps = 0;
        while let Some(job) = queue.pop_front() {
            queue.extend(self.run_job(&job).await?);
            steps += 1;
        }
        Ok(steps)
    }
}

/// Jobs waiting to run, each no earlier than its time.
#[derive(Default)]
pub struct JobQueue {
    waiting: Vec<(Instant, Job)>,
}

impl JobQueue {
    pub fn push_now(&mut self, jobs: impl IntoIterator<Item = Job>) {
        let now = Instant::now();
        self.waiting.extend(jobs.into_iter().map(|j| (now, j)));
    }

    /// The next job that is due, oldest first.
    pub fn pop_due(&mut self, now: Instant) -> Option<Job> {
        let index = self
            .waiting
            .iter()
            .enumerate()
            .filter(|(_, (at, _))| *at <= now)
            .min_by_key(|(_, (at, _))| *at)
            .map(|(i, _)| i)?;
        Some(self.waiting.remove(index).1)
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Puts a failed job back after its backoff: 1 s, 2 s, 4 s … up to a minute.
    pub fn retry_later(&mut self, mut job: Job) {
        job.attempts = job.attempts.saturating_add(1);
        let wait = Duration::from_secs(1u64 << job.attempts.saturating_sub(1).min(6)).min(Duration::from_secs(60));
        self.waiting.push((Instant::now() + wait, job));
    }
}

/// When each schedule runs next.
pub struct Schedules {
    next: Vec<(Step, Duration, Instant)>,
}

impl Schedules {
    /// The trigger table's schedules, at its intervals or every `every`.
    pub fn new(every: Option<Duration>) -> Schedules {
        let now = Instant::now();
        Schedules {
            next: ON_SCHEDULE
                .iter()
                .map(|s| (s.step, every.unwrap_or(Duration::from_secs(s.every_secs)), now))
                .collect(),
        }
    }

    /// The schedules due now; each is moved to its next time.
    pub fn due(&mut self, now: Instant) -> Vec<Step> {
        let mut due = Vec::new();
        for (step, every, next) in &mut self.next {
            if *next <= now {
                due.push(*step);
                *next = now + *every;
            }
        }
        due
    }
}

/// Where jobs go that failed every attempt: one JSON line each, beside the
/// database, for an operator (`casebridge reprocess` takes the case from there).
pub struct DeadLetters {
    pub path: PathBuf,
}

impl DeadLetters {
    pub fn record(&self, job: &Job, error: &PipelineError) {
        let line = serde_json::json!({
            "at": chrono::Utc::now().to_rfc3339(),
            "caseId": job.case_id.to_string(),
            "step": job.step,
            "key": job.key,
            "attempts": job.attempts,
            "error": error.to_string(),
        });
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes()));
        if let Err(e) = written {
            tracing::error!(path = %self.path.display(), error = %e, "could not write the dead-letter record");
        }
    }
}

/// Runs one due job; a failure is retried later or dead-lettered, never
/// returned: the runtime keeps going.
pub async fn run_one(pipeline: &LocalPipeline, queue: &mut JobQueue, dead: &DeadLetters, job: Job) {
    match pipeline.run_job(&job).await {
        Ok(next) => queue.push_now(next),
        Err(e) if e.is_retryable() && job.attempts.saturating_add(1) < MAX_ATTEMPTS => {
            tracing::warn!(job = %job.label(), attempt = job.attempts + 1, error = %e, "step failed; retrying with backoff");
            queue.retry_later(job);
        }
        Err(e) => {
            let mut job = job;
            job.attempts = job.attempts.saturating_add(1);
            tracing::error!(job = %job.label(), attempts = job.attempts, error = %e, "step failed for good; dead-lettered");
            dead.record(&job, &e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(key: &str) -> Job {
        Job {
            case_id: CaseId::generate("CB"),
            step: Step::CarryOut,
            key: key.into(),
            attempts: 0,
        }
    }

    #[test]
    fn failed_jobs_wait_their_backoff() {
        let mut queue = JobQueue::default();
        queue.push_now([job("a")]);
        let a = queue.pop_due(Instant::now()).expect("due now");
        queue.retry_later(a);
        assert!(queue.pop_due(Instant::now()).is_none(), "not before its backoff");
        let later = Instant::now() + Duration::from_millis(1_100);
        let again = queue.pop_due(later).expect("due after a second");
        assert_eq!(again.attempts, 1);
        let mut many = again;
        for _ in 0..20 {
            many.attempts += 1;
        }
        queue.retry_later(many);
        assert!(queue.pop_due(Instant::now() + Duration::from_secs(59)).is_none());
        assert!(
            queue.pop_due(Instant::now() + Duration::from_secs(61)).is_some(),
            "capped at a minute"
        );
    }

    #[test]
    fn schedules_come_round_at_their_interval() {
        let mut schedules = Schedules::new(Some(Duration::from_secs(2)));
        let start = Instant::now();
        assert_eq!(schedules.due(start).len(), ON_SCHEDULE.len(), "all run at start");
        assert!(schedules.due(start + Duration::from_secs(1)).is_empty());
        assert_eq!(schedules.due(start + Duration::from_secs(2)).len(), ON_SCHEDULE.len());
    }

    #[test]
    fn a_held_new_case_triggers_its_notice_and_a_work_item_its_turn() {
        let case_id = CaseId::generate("CB");
        let held = IngestOutcome::Stored {
            case_id: case_id.clone(),
            mail_id: "MSG#abc".into(),
            new_case: true,
            work_item: None,
            disposition: casebridge::model::Disposition::Accepted,
        };
        let jobs = LocalPipeline::jobs_after_ingest(&held);
        assert_eq!(
            jobs.iter().map(|j| (j.step, j.key.as_str())).collect::<Vec<_>>(),
            [(Step::SendNotice, "MSG#abc")]
        );
        let work = IngestOutcome::Stored {
            case_id,
            mail_id: "MSG#abc".into(),
            new_case: false,
            work_item: Some("WORK#0000000002".into()),
            disposition: casebridge::model::Disposition::Accepted,
        };
        let jobs = LocalPipeline::jobs_after_ingest(&work);
        assert_eq!(
            jobs.iter().map(|j| (j.step, j.key.as_str())).collect::<Vec<_>>(),
            [(Step::AgentTurn, "WORK#0000000002")]
        );
    }
}
