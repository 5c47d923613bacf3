//! `casebridge replay`: historical mail through the real pipeline in shadow
//! mode, on a scratch embedded store, so a support lead sees what an agent
//! would have done for an intent before it may send on its own.
//!
//! Every workflow of the configuration is forced into shadow mode (every
//! mail a draft; nothing sent, closed or escalated). Mail is processed in
//! Date-header order and the pipeline's clock is the current mail's date, so
//! ages and follow-ups are computed in historical time; replies link to their
//! cases through In-Reply-To/References as in production. Queue notices and
//! pending-mail retries (the only steps that send outside the decision
//! table's shadow mode) are never run: the notices stay pending in the
//! scratch store and are counted. The mailer writes to a folder beside the
//! scratch store and nothing should ever reach it; what does is counted too.
//!
//! The scratch store is marked at creation (a `casebridge_replay` table); a
//! store without the mark, or DynamoDB, is refused. A re-run on the same
//! store resumes: stored mail is a duplicate (Message-ID and delivery
//! dedupe) and calls no agent; what an interruption left half done is
//! finished first (`LocalPipeline::recovery_jobs`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde_json::Value;

use casebridge::agent_client::{AgentCallError, AgentCallOutcome, AgentClient, AgentReply};
use casebridge::config::{AgentConfig, Config};
use casebridge::ids::CaseId;
use casebridge::inbound::Verdicts;
use casebridge::model::{MailKind, OutboundStatus, Record, RecordKind, TurnStatus};
use casebridge::pipeline::agent::{accept_callback, agent_request, run_turn, sweep_overdue, CallbackOutcome, TurnOutcome};
use casebridge::pipeline::inbound::{ingest, InboundDelivery, IngestOutcome};
use casebridge::pipeline::outcome::{carry_out, run_follow_ups};
use casebridge::pipeline::{Clock, PipelineError, StepEnv};
use casebridge::protocol::{parse_agent_response, AgentRequest};
use casebridge::report::{aggregate_with, load_facts, Period};
use casebridge::store::sqlite::SqliteStore;
use casebridge::store::{Commit, RecordWrite, Store};
use casebridge::triggers::Step;

use crate::backends::{AnyMailer, AnyStore};
use crate::local::{CliError, LocalPipeline};
use crate::report::{csv_field, render, Format};
use crate::runtime::{Job, ANSWERED_TURN, NEW_WORK_ITEM};

/// The global `--store` default: replay then puts its scratch store next to the input.
pub const DEFAULT_GLOBAL_STORE: &str = "sqlite:.casebridge/cases.db";
/// The table that marks a SQLite file as a replay's scratch store.
const MARKER_TABLE: &str = "casebridge_replay";
/// Due turns and reminders looked at per schedule run.
const SCHEDULE_LIMIT: usize = 1_000;
/// Characters of a draft's text shown on stdout.
const EXCERPT_CHARS: usize = 100;

/// `casebridge replay`'s own options (`--store` and `--config` are the global ones).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A folder of .eml files, a maildir (cur/, new/) or an mbox file.
    pub input: PathBuf,
    /// Answer agent calls from this recording (JSON lines) instead of calling agents.
    #[arg(long, value_name = "FILE", conflicts_with = "record")]
    pub agent_recording: Option<PathBuf>,
    /// Call the configured agents and append their answers to this recording.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Only mail dated from this day (YYYY-MM-DD, UTC) or RFC 3339 time; also the report's start.
    #[arg(long, value_parser = crate::report::parse_since)]
    pub since: Option<DateTime<Utc>>,
    /// Only mail dated before the end of this day (or this exclusive RFC 3339 time); also the report's end.
    #[arg(long, value_parser = crate::report::parse_until)]
    pub until: Option<DateTime<Utc>>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Write every draft in full to DIR/<intent>/<case>_<draft>.txt.
    #[arg(long, value_name = "DIR")]
    pub drafts_dir: Option<PathBuf>,
    /// Replay at most N new mails in this run and stop (the next run resumes).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

impl Args {
    pub fn options(&self, store: &str, config: Option<&Path>) -> Result<Options, CliError> {
        Ok(Options {
            input: self.input.clone(),
            store: store.to_string(),
            config: config
                .ok_or("--config FILE (or CASEBRIDGE_CONFIG_FILE) is required for replay")?
                .to_path_buf(),
            agent_recording: self.agent_recording.clone(),
            record: self.record.clone(),
            since: self.since,
            until: self.until,
            format: self.format,
            drafts_dir: self.drafts_dir.clone(),
            limit: self.limit,
        })
    }
}

pub struct Options {
    pub input: PathBuf,
    /// The global `--store` value (the scratch store when given).
    pub store: String,
    pub config: PathBuf,
    pub agent_recording: Option<PathBuf>,
    pub record: Option<PathBuf>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub format: Format,
    pub drafts_dir: Option<PathBuf>,
    /// New mails replayed in this run, at most (the rest on the next run).
    pub limit: Option<usize>,
}

// ---------------------------------------------------------------- input

/// One historical mail, ready to replay.
struct Mail {
    source: String,
    date: DateTime<Utc>,
    raw: Vec<u8>,
}

/// Input that is not a mail, with the reason.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BadInput {
    pub source: String,
    pub reason: String,
}

/// Reads a folder of `.eml` files, a maildir (`cur/`, `new/`) or an mbox
/// file; mails come back in Date-header order (the envelope or file time
/// when a mail has no usable Date), bad input with its reason.
fn read_input(input: &Path) -> Result<(Vec<Mail>, Vec<BadInput>), CliError> {
    let meta = std::fs::metadata(input).map_err(|e| format!("cannot read {}: {e}", input.display()))?;
    let mut raws: Vec<(String, Vec<u8>, Option<DateTime<Utc>>)> = Vec::new();
    let mut bad = Vec::new();
    let mut take = |source: String, raw: Vec<u8>, fallback: Option<DateTime<Utc>>| raws.push((source, raw, fallback));
    if meta.is_file() {
        let file = std::fs::File::open(input).map_err(|e| format!("cannot open {}: {e}", input.display()))?;
        let mut reader = std::io::BufReader::new(file);
        let starts_as_mbox = reader.fill_buf().map(|b| b.starts_with(b"From ")).unwrap_or(false);
        if !starts_as_mbox {
            bad.push(BadInput {
                source: input.display().to_string(),
                reason: "not an mbox file (it does not start with a \"From \" line)".into(),
            });
        } else {
            let mut count = 0usize;
            for (n, message) in mail_parser::mailbox::mbox::MessageIterator::new(reader).enumerate() {
                let source = format!("{}#{}", input.display(), n + 1);
                match message {
                    Ok(message) => {
                        count += 1;
                        let envelope = envelope_date(message.internal_date());
                        take(source, message.unwrap_contents(), envelope);
                    }
                    Err(e) => bad.push(BadInput {
                        source,
                        reason: format!("cannot read the mbox: {e}"),
                    }),
                }
            }
            if count == 0 {
                bad.push(BadInput {
                    source: input.display().to_string(),
                    reason: "the mbox holds no mail".into(),
                });
            }
        }
    } else if input.join("cur").is_dir() || input.join("new").is_dir() {
        match mail_parser::mailbox::maildir::MessageIterator::new(input) {
            Ok(messages) => {
                for message in messages {
                    match message {
                        Ok(message) => {
                            let source = message.path().display().to_string();
                            let fallback = envelope_date(message.internal_date());
                            take(source, message.unwrap_contents(), fallback);
                        }
                        Err(e) => bad.push(BadInput {
                            source: input.display().to_string(),
                            reason: format!("cannot read a maildir entry: {e}"),
                        }),
                    }
                }
            }
            Err(e) => return Err(format!("cannot read the maildir {}: {e}", input.display()).into()),
        }
    } else {
        let entries = std::fs::read_dir(input).map_err(|e| format!("cannot list {}: {e}", input.display()))?;
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            let source = path.display().to_string();
            let hidden = path.file_name().and_then(|n| n.to_str()).is_none_or(|n| n.starts_with('.'));
            if hidden {
                continue;
            }
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    take_bad(&mut bad, source, format!("cannot read: {e}"));
                    continue;
                }
            };
            if !meta.is_file() {
                take_bad(&mut bad, source, "not a regular file".into());
                continue;
            }
            match std::fs::read(&path) {
                Ok(raw) => take(source, raw, meta.modified().ok().map(DateTime::<Utc>::from)),
                Err(e) => take_bad(&mut bad, source, format!("cannot read: {e}")),
            }
        }
    }
    let mut mails = Vec::with_capacity(raws.len());
    for (source, raw, fallback) in raws {
        match mail_date(&raw, fallback) {
            Ok(date) => mails.push(Mail { source, date, raw }),
            Err(reason) => bad.push(BadInput { source, reason }),
        }
    }
    mails.sort_by(|a, b| a.date.cmp(&b.date).then_with(|| a.source.cmp(&b.source)));
    Ok((mails, bad))
}

fn take_bad(bad: &mut Vec<BadInput>, source: String, reason: String) {
    bad.push(BadInput { source, reason });
}

fn envelope_date(secs: u64) -> Option<DateTime<Utc>> {
    i64::try_from(secs)
        .ok()
        .filter(|s| *s > 0)
        .and_then(|s| DateTime::from_timestamp(s, 0))
}

/// The mail's Date header, or the fallback; an error says why it is not a mail.
fn mail_date(raw: &[u8], fallback: Option<DateTime<Utc>>) -> Result<DateTime<Utc>, String> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err("empty file".into());
    }
    let message = mail_parser::MessageParser::new()
        .parse_headers(raw)
        .ok_or("not a mail: no header could be read")?;
    if message.from().is_none() && message.message_id().is_none() && message.date().is_none() {
        return Err("not a mail: no From, Message-ID or Date header".into());
    }
    message
        .date()
        .and_then(|d| DateTime::from_timestamp(d.to_timestamp(), 0))
        .or(fallback)
        .ok_or_else(|| "no Date header, and no envelope or file time".into())
}

// ---------------------------------------------------------------- store

/// The scratch store's path: `--store` when given (new, or a store a replay
/// created), else `<input>.replay.sqlite` beside the input.
fn scratch_path(store: &str, input: &Path) -> Result<PathBuf, CliError> {
    if store.starts_with("dynamodb:") {
        return Err(format!(
            "replay refuses --store {store}: it runs on a scratch embedded store only, never on DynamoDB (pass --store PATH for a new file, or leave --store out)"
        )
        .into());
    }
    let given = store != DEFAULT_GLOBAL_STORE || std::env::var_os("CASEBRIDGE_STORE").is_some();
    if !given {
        let name = input
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "input".into());
        return Ok(input.with_file_name(format!("{name}.replay.sqlite")));
    }
    Ok(PathBuf::from(store.strip_prefix("sqlite:").unwrap_or(store)))
}

/// Creates the scratch store with its mark, or checks the mark of an existing one.
fn open_scratch(path: &Path, input: &Path) -> Result<SqliteStore, CliError> {
    if path.exists() {
        let marked = (|| -> rusqlite::Result<bool> {
            let db = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
            db.query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [MARKER_TABLE],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)
        })()
        .unwrap_or(false);
        if !marked {
            return Err(format!(
                "replay refuses to touch {}: it is not a scratch store this command created (a live casebridge store, or another file); pass --store with a new path{}",
                path.display(),
                if std::env::var_os("CASEBRIDGE_STORE").is_some() {
                    " (CASEBRIDGE_STORE is set and was taken as --store)"
                } else {
                    ""
                }
            )
            .into());
        }
    } else {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let db = rusqlite::Connection::open(path)?;
        db.execute_batch(&format!(
            "CREATE TABLE {MARKER_TABLE} (created_at TEXT NOT NULL, input TEXT NOT NULL);"
        ))?;
        db.execute(
            &format!("INSERT INTO {MARKER_TABLE} (created_at, input) VALUES (?1, ?2)"),
            [Utc::now().to_rfc3339(), input.display().to_string()],
        )?;
    }
    // Its work can be redone (a resumed replay does), so it never syncs.
    Ok(SqliteStore::open_scratch(path)?)
}

/// Opens (`true`) or ends a batch on the scratch store (see
/// `SqliteStore::begin_batch`); replay only ever runs on SQLite.
fn batch(store: &AnyStore, begin: bool) -> Result<(), CliError> {
    if let AnyStore::Sqlite(store) = store {
        if begin {
            store.begin_batch()?;
        } else {
            store.end_batch()?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- clock

/// The pipeline's clock during a replay: the current mail's date.
struct ReplayClock(AtomicI64);

impl ReplayClock {
    fn set(&self, at: DateTime<Utc>) {
        self.0.store(at.timestamp_micros(), Ordering::SeqCst);
    }
}

impl Clock for ReplayClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.0.load(Ordering::SeqCst)).unwrap_or_default()
    }
}

// ---------------------------------------------------------------- agents

/// Where an agent answer is kept in a recording: the case's first
/// Message-ID (without angle brackets) and the agent call's number in the
/// case (1 for the first turn that called the agent).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RecordingKey {
    case: String,
    turn: u32,
}

/// A recording lacked what a turn needed.
#[derive(Debug, thiserror::Error)]
enum RecordingError {
    #[error("the agent recording has no answer for case {case} turn {turn}")]
    Missing { case: String, turn: u32 },
    #[error("the case of the turn could not be read for the recording: {0}")]
    Case(String),
}

enum AgentMode {
    Live,
    Record(Mutex<std::fs::File>),
    Playback(HashMap<RecordingKey, RecordedCall>),
}

/// The agent port of a replay: the configured agents, the same while
/// recording their answers, or a recording instead of any agent.
struct ReplayAgents<'a> {
    pipeline: &'a LocalPipeline,
    mode: AgentMode,
}

impl ReplayAgents<'_> {
    async fn key(&self, request: &AgentRequest) -> Result<RecordingKey, RecordingError> {
        let store = &self.pipeline.store;
        let id = CaseId::parse(&request.case_id).ok_or_else(|| RecordingError::Case(request.case_id.clone()))?;
        let case = store
            .get_case(&id)
            .await
            .map_err(|e| RecordingError::Case(e.to_string()))?
            .ok_or_else(|| RecordingError::Case(format!("case {id} does not exist")))?;
        let first = case.thread_message_ids.first().cloned().unwrap_or_default();
        let turns = store
            .list_records(&id, RecordKind::Turn)
            .await
            .map_err(|e| RecordingError::Case(e.to_string()))?
            .into_iter()
            .filter_map(Record::into_turn)
            .filter(|t| t.status != TurnStatus::Skipped)
            .count();
        Ok(RecordingKey {
            case: first.trim_start_matches('<').trim_end_matches('>').to_string(),
            turn: u32::try_from(turns.max(1)).unwrap_or(u32::MAX),
        })
    }
}

fn failed(error: AgentCallError) -> AgentCallOutcome {
    AgentCallOutcome::new(Err(error), 0)
}

/// One line of a recording: what one agent call gave. Written as JSON
/// lines by `--record`, read back by `--agent-recording`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct RecordedCall {
    /// The case's first Message-ID, without angle brackets.
    case: String,
    /// The agent call's number in the case, from 1.
    turn: u32,
    #[serde(default)]
    agent: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    intent: Option<String>,
    #[serde(default = "one")]
    attempts: u32,
    /// An A2A task the answer left waiting for the customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    remote_task: Option<String>,
    #[serde(flatten)]
    gave: Gave,
}

fn one() -> u32 {
    1
}

/// What the agent gave: an answer (kept as the agent's JSON, validated again
/// on playback), a 202 for an asynchronous agent, or a failure.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
enum Gave {
    Answer(Value),
    Accepted(bool),
    Error(RecordedError),
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
enum RecordedError {
    Timeout { ms: u64 },
    Status { code: u16 },
    Redirect { code: u16 },
    Other { message: String },
}

impl RecordedCall {
    fn new(key: &RecordingKey, agent: &AgentConfig, request: &AgentRequest, outcome: &AgentCallOutcome) -> Self {
        let gave = match &outcome.result {
            Ok(AgentReply::Answer(answer)) => match serde_json::to_value(answer) {
                Ok(value) => Gave::Answer(value),
                Err(e) => Gave::Error(RecordedError::Other { message: e.to_string() }),
            },
            Ok(AgentReply::Accepted) => Gave::Accepted(true),
            Err(AgentCallError::Timeout(ms)) => Gave::Error(RecordedError::Timeout { ms: *ms }),
            Err(AgentCallError::Status(code)) => Gave::Error(RecordedError::Status { code: *code }),
            Err(AgentCallError::Redirect(code)) => Gave::Error(RecordedError::Redirect { code: *code }),
            Err(other) => Gave::Error(RecordedError::Other {
                message: other.to_string(),
            }),
        };
        RecordedCall {
            case: key.case.clone(),
            turn: key.turn,
            agent: agent.name.clone(),
            intent: request.intent.clone(),
            attempts: outcome.attempts,
            remote_task: outcome.remote_task.clone(),
            gave,
        }
    }

    /// What the recorded call gives back to the pipeline.
    fn outcome(&self) -> AgentCallOutcome {
        let result = match &self.gave {
            Gave::Answer(answer) => {
                let bytes = serde_json::to_vec(answer).unwrap_or_default();
                parse_agent_response(&bytes)
                    .map(AgentReply::Answer)
                    .map_err(AgentCallError::Invalid)
            }
            Gave::Accepted(_) => Ok(AgentReply::Accepted),
            Gave::Error(RecordedError::Timeout { ms }) => Err(AgentCallError::Timeout(*ms)),
            Gave::Error(RecordedError::Status { code }) => Err(AgentCallError::Status(*code)),
            Gave::Error(RecordedError::Redirect { code }) => Err(AgentCallError::Redirect(*code)),
            Gave::Error(RecordedError::Other { message }) => Err(AgentCallError::Transport(format!("recorded failure: {message}"))),
        };
        AgentCallOutcome {
            result,
            attempts: self.attempts,
            remote_task: self.remote_task.clone(),
        }
    }
}

impl AgentClient for ReplayAgents<'_> {
    async fn call(&self, agent: &AgentConfig, request: &AgentRequest, deadline: Option<DateTime<Utc>>) -> AgentCallOutcome {
        match &self.mode {
            AgentMode::Live => self.pipeline.agents.call(agent, request, deadline).await,
            AgentMode::Record(file) => {
                let key = match self.key(request).await {
                    Ok(key) => key,
                    Err(e) => return failed(AgentCallError::Config(e.to_string())),
                };
                let outcome = self.pipeline.agents.call(agent, request, deadline).await;
                let line = serde_json::to_string(&RecordedCall::new(&key, agent, request, &outcome));
                let written = line.map_err(std::io::Error::other).and_then(|line| {
                    file.lock()
                        .map_err(|_| std::io::Error::other("recording lock poisoned"))
                        .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()).and_then(|()| f.flush()))
                });
                if let Err(e) = written {
                    tracing::error!(error = %e, "could not write the agent recording");
                }
                outcome
            }
            AgentMode::Playback(answers) => match self.key(request).await {
                Ok(key) => match answers.get(&key) {
                    Some(call) => call.outcome(),
                    None => failed(AgentCallError::Config(
                        RecordingError::Missing {
                            case: key.case,
                            turn: key.turn,
                        }
                        .to_string(),
                    )),
                },
                Err(e) => failed(AgentCallError::Config(e.to_string())),
            },
        }
    }
}

/// Reads a recording (JSON lines); a later line for the same key wins.
fn load_recording(path: &Path) -> Result<HashMap<RecordingKey, RecordedCall>, CliError> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read the agent recording {}: {e}", path.display()))?;
    let mut answers = HashMap::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| format!("{}: line {}: {e}", path.display(), n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let call: RecordedCall =
            serde_json::from_str(&line).map_err(|e| format!("{}: line {} is not a recorded agent call: {e}", path.display(), n + 1))?;
        let key = RecordingKey {
            case: call.case.clone(),
            turn: call.turn,
        };
        answers.insert(key, call);
    }
    Ok(answers)
}

// ---------------------------------------------------------------- steps

struct Replayer<'a> {
    pipeline: &'a LocalPipeline,
    agents: ReplayAgents<'a>,
    clock: ReplayClock,
    /// Steps that failed, with the mail they were for.
    failures: Vec<BadInput>,
    /// Agent calls made (or answered from the recording) in this run.
    agent_calls: usize,
}

impl Replayer<'_> {
    fn env(&self) -> StepEnv<'_> {
        StepEnv::new(&self.pipeline.config, &self.clock)
    }

    /// One step, by the trigger table as `casebridge serve` chains them.
    /// Queue notices and pending-mail retries send outside shadow mode: a
    /// replay never runs them (the notices stay pending and are counted).
    async fn run_job(&mut self, job: &Job) -> Result<Vec<Job>, PipelineError> {
        let p = self.pipeline;
        let env = StepEnv::new(&p.config, &self.clock);
        let case_id = &job.case_id;
        match job.step {
            Step::AgentTurn => {
                let outcome = run_turn(env, &p.store, &self.agents, case_id, &job.key).await?;
                match outcome {
                    TurnOutcome::Answered { turn, .. } => {
                        self.agent_calls += 1;
                        Ok(Job::for_change(case_id, &turn, ANSWERED_TURN).into_iter().collect())
                    }
                    TurnOutcome::AwaitingCallback { .. } => {
                        self.agent_calls += 1;
                        Ok(Vec::new())
                    }
                    TurnOutcome::AlreadyHandled { .. } | TurnOutcome::Skipped { .. } => Ok(Vec::new()),
                }
            }
            Step::CarryOut => {
                let report = carry_out(env, &p.store, &p.mailer, case_id, &job.key).await?;
                Ok(report
                    .next_work_item
                    .as_ref()
                    .and_then(|work| Job::for_change(case_id, work, NEW_WORK_ITEM))
                    .into_iter()
                    .collect())
            }
            // Schedules run from `run_schedules`; notices and retries never.
            Step::SweepOverdue | Step::FollowUps | Step::SendNotice | Step::RetryMail => Ok(Vec::new()),
        }
    }

    /// Runs `jobs` and what they trigger; a failed step is noted for `source`.
    async fn run_jobs(&mut self, source: &str, jobs: Vec<Job>) {
        let mut queue: VecDeque<Job> = jobs.into();
        while let Some(job) = queue.pop_front() {
            match self.run_job(&job).await {
                Ok(next) => queue.extend(next),
                Err(e) => {
                    tracing::warn!(case = %job.case_id, step = ?job.step, error = %e, "replay step failed");
                    self.failures.push(BadInput {
                        source: source.to_string(),
                        reason: format!("{:?} for case {} failed: {e}", job.step, job.case_id),
                    });
                }
            }
        }
    }

    /// The schedules (overdue sweep, follow-ups) at the clock's time, and
    /// what they trigger.
    async fn run_schedules(&mut self, source: &str) {
        let p = self.pipeline;
        let env = StepEnv::new(&p.config, &self.clock);
        let mut jobs = Vec::new();
        match sweep_overdue(env, &p.store, SCHEDULE_LIMIT).await {
            Ok(swept) => jobs.extend(
                swept
                    .into_iter()
                    .filter_map(|(case_id, turn)| Job::for_change(&case_id, &turn, ANSWERED_TURN)),
            ),
            Err(e) => self.failures.push(BadInput {
                source: source.to_string(),
                reason: format!("overdue sweep failed: {e}"),
            }),
        }
        if let Err(e) = run_follow_ups(env, &p.store, &p.mailer, SCHEDULE_LIMIT).await {
            self.failures.push(BadInput {
                source: source.to_string(),
                reason: format!("follow-ups failed: {e}"),
            });
        }
        self.run_jobs(source, jobs).await;
    }

    /// Turns a stopped run left `in_flight`: the scratch store belongs to the
    /// replay, so such a turn was lost with the previous process, not still
    /// being called. In production the sweep fails it and the case escalates;
    /// a replay asks the agent (or the recording) again, so a resumed run
    /// ends as one uninterrupted run would. The answer goes in through the
    /// callback path, the public way to store an answer for a claimed turn:
    /// the turn is moved `in_flight → awaiting_callback` first. If the agent
    /// fails this time, the turn is left for the sweep (it escalates).
    async fn redo_lost_turns(&mut self) -> Result<(), CliError> {
        let p = self.pipeline;
        for case_id in p.store.list_case_ids(usize::MAX >> 1).await? {
            let lost: Vec<_> = p
                .store
                .list_records(&case_id, RecordKind::Turn)
                .await?
                .into_iter()
                .filter_map(Record::into_turn)
                .filter(|t| t.status == TurnStatus::InFlight)
                .collect();
            for turn in lost {
                let (Some(case), Some(agent)) = (p.store.get_case(&case_id).await?, p.config.agent(&turn.agent).cloned()) else {
                    continue;
                };
                let request = agent_request(&p.store, &case, &turn, &agent).await?;
                let outcome = self.agents.call(&agent, &request, None).await;
                let Ok(AgentReply::Answer(answer)) = outcome.result else {
                    self.failures.push(BadInput {
                        source: "(resume)".into(),
                        reason: format!(
                            "case {case_id}: the turn lost when the previous run stopped got no answer again; the sweep escalates it"
                        ),
                    });
                    continue;
                };
                let body = serde_json::to_vec(&answer)?;
                let mut waiting = turn.clone();
                waiting.status = TurnStatus::AwaitingCallback;
                waiting.attempts = outcome.attempts;
                let mut commit = Commit::new(case_id.clone());
                commit.records.push(RecordWrite::ReplaceIfStatus {
                    record: Record::Turn(waiting),
                    expected_status: TurnStatus::InFlight.as_str(),
                });
                p.store.commit(commit).await.map_err(PipelineError::from)?;
                let env = StepEnv::new(&p.config, &self.clock);
                if accept_callback(env, &p.store, &case_id, &turn.id, &turn.agent, &body).await? == CallbackOutcome::Accepted {
                    self.agent_calls += 1;
                    let jobs = Job::for_change(&case_id, &turn.id, ANSWERED_TURN).into_iter().collect();
                    self.run_jobs("(resume)", jobs).await;
                }
            }
        }
        Ok(())
    }

    async fn ingest(&self, mail: &Mail) -> Result<IngestOutcome, PipelineError> {
        let delivery = InboundDelivery {
            raw: &mail.raw,
            delivery_id: delivery_id(&mail.raw),
            raw_location: None,
            verdicts: Verdicts::default(),
            attachment_locations: Vec::new(),
        };
        ingest(self.env(), &self.pipeline.store, self.pipeline.classifier.as_ref(), delivery).await
    }
}

// ---------------------------------------------------------------- run

/// What the replay did with the whole input. Counted over the input and the
/// scratch store, not over this run, so a resumed replay reports the same
/// figures as one uninterrupted run (the `this_run` fields excepted).
#[derive(Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    input: String,
    store: String,
    /// Mails found in the input (bad input not among them).
    mails_read: usize,
    outside_period: usize,
    /// Mails of the input stored in the scratch store, by this run or an earlier one.
    stored: usize,
    stored_this_run: usize,
    /// Mails with the Message-ID of a mail already stored (redeliveries).
    duplicates: usize,
    /// Mails the pipeline did not tie to a case, with its recorded reason.
    rejected: Vec<BadInput>,
    /// Input that is not a mail, with the reason.
    bad_input: Vec<BadInput>,
    /// Steps that failed in this run, with the mail they were for.
    step_failures: Vec<BadInput>,
    /// Mails not reached because the run stopped early.
    not_yet_replayed: usize,
    /// Agent turns in the scratch store (each one agent call or recorded answer).
    agent_turns: usize,
    agent_calls_this_run: usize,
    /// Notices to the queue left pending (a replay never sends them).
    queue_notices_not_sent: usize,
    /// Outbound mail marked sent or sending in the scratch store (always 0).
    mail_sent: usize,
    /// Files the scratch mailer wrote (always 0).
    outbox_files: usize,
    /// What shadow mode would have done, per intent (cases of the period).
    by_intent: BTreeMap<String, IntentShadow>,
    /// Stopped early (--limit or an interrupt); run again to resume.
    stopped_early: bool,
}

/// One intent's cases in shadow mode: what would have gone out or happened.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct IntentShadow {
    cases: usize,
    drafts: usize,
    questions: usize,
    resolutions: usize,
    /// Answers that would have escalated the case (UnableToResolve, agent failures, …).
    would_escalate: usize,
    /// Answers that would have closed the case (ResolveCase).
    would_close: usize,
    /// New cases held for representatives (no agent, low confidence): a queue notice each.
    held_for_representatives: usize,
}

/// `--format json`: the report, the drafts per intent, what the replay did.
#[derive(serde::Serialize)]
struct ReplayOutput<'a> {
    report: &'a casebridge::report::Report,
    drafts: BTreeMap<&'a str, Vec<&'a DraftLine>>,
    replay: &'a Summary,
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct DraftLine {
    intent: String,
    case: String,
    draft: String,
    kind: String,
    created_at: DateTime<Utc>,
    to: Vec<String>,
    subject: String,
    excerpt: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
}

/// The first non-blank line of a text, at most `EXCERPT_CHARS`, made printable.
fn excerpt(text: &str) -> String {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    casebridge::inbound::sanitize_header_text(line, EXCERPT_CHARS)
}

/// A name usable as one path component.
fn file_part(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    if cleaned.is_empty() {
        "_".into()
    } else {
        cleaned
    }
}

/// The delivery id a replayed mail is stored under: its content's digest,
/// so the same bytes are the same delivery in every run (the resume key).
fn delivery_id(raw: &[u8]) -> String {
    format!("replay-{}", &casebridge::ids::sha256_hex(raw)[..32])
}

/// Sets `interrupted` on the first Ctrl-C (the replay stops after the
/// current mail, resumable); a second Ctrl-C exits at once (still resumable:
/// a turn lost mid-call is asked again on the next run).
fn watch_interrupts(interrupted: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            interrupted.store(true, Ordering::SeqCst);
            eprintln!("interrupted: stopping after the current mail (Ctrl-C again to stop now)");
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    })
}

/// The progress bar, on stderr and only when stderr is a terminal (a
/// redirected run's output stays the report alone).
fn progress_bar(len: usize) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::with_draw_target(Some(len as u64), indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} mails {per_sec} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

pub async fn run(options: Options) -> Result<(), CliError> {
    if options.agent_recording.is_some() && options.record.is_some() {
        return Err("--agent-recording and --record exclude each other".into());
    }
    let path = scratch_path(&options.store, &options.input)?;
    let mut config = Config::from_file(&options.config)?;
    // Shadow mode everywhere: every mail a draft; nothing sent, closed or escalated.
    config.workflow.shadow = true;
    for workflow in config.workflows.values_mut() {
        workflow.shadow = true;
    }
    let (mails, bad) = read_input(&options.input)?;
    let store = open_scratch(&path, &options.input)?;
    let outbox = PathBuf::from(format!("{}.outbox", path.display()));
    let mailer = casebridge::mail::outbox::OutboxMailer::new(&outbox)?;
    let pipeline = LocalPipeline::new(
        config,
        AnyStore::Sqlite(store),
        AnyMailer::Outbox(mailer),
        Arc::new(casebridge::secrets::Secrets::env_only()),
    )
    .await?;
    let mode = match (&options.agent_recording, &options.record) {
        (Some(recording), _) => AgentMode::Playback(load_recording(recording)?),
        (None, Some(record)) => AgentMode::Record(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(record)
                .map_err(|e| format!("cannot write the agent recording {}: {e}", record.display()))?,
        )),
        (None, None) => AgentMode::Live,
    };
    let mut replayer = Replayer {
        pipeline: &pipeline,
        agents: ReplayAgents { pipeline: &pipeline, mode },
        clock: ReplayClock(AtomicI64::new(0)),
        failures: Vec::new(),
        agent_calls: 0,
    };
    let mut summary = Summary {
        input: options.input.display().to_string(),
        store: path.display().to_string(),
        mails_read: mails.len(),
        bad_input: bad,
        ..Summary::default()
    };
    // Mails an earlier run rejected: their reasons are in the store already.
    let mut rejected: HashMap<String, String> = pipeline
        .store
        .list_rejected(usize::MAX >> 1)
        .await?
        .into_iter()
        .map(|r| (r.key, r.reason))
        .collect();

    let interrupted = Arc::new(AtomicBool::new(false));
    let watcher = watch_interrupts(interrupted.clone());
    let in_period = |at: DateTime<Utc>| options.since.is_none_or(|s| at >= s) && options.until.is_none_or(|u| at < u);
    let bar = progress_bar(mails.len());
    let mut recovered = false;
    let mut last_date: Option<DateTime<Utc>> = None;
    let mut new_this_run = 0usize;
    for (n, mail) in mails.iter().enumerate() {
        if interrupted.load(Ordering::SeqCst) || options.limit.is_some_and(|limit| new_this_run >= limit) {
            summary.stopped_early = true;
            summary.not_yet_replayed = mails[n..].iter().filter(|m| in_period(m.date)).count();
            break;
        }
        bar.inc(1);
        if !in_period(mail.date) {
            summary.outside_period += 1;
            continue;
        }
        let delivery = delivery_id(&mail.raw);
        // A stored mail is a duplicate: nothing is written and no agent called.
        if pipeline.store.case_for_message_id(&format!("delivery:{delivery}")).await?.is_some() {
            summary.stored += 1;
            last_date = Some(mail.date);
            continue;
        }
        if let Some(reason) = rejected.get(&delivery) {
            summary.rejected.push(BadInput {
                source: mail.source.clone(),
                reason: reason.clone(),
            });
            continue;
        }
        if !recovered {
            // What a stopped run left half done, at the time it stopped.
            recovered = true;
            replayer.clock.set(last_date.unwrap_or(mail.date));
            replayer.redo_lost_turns().await?;
            let jobs = pipeline.recovery_jobs().await?;
            replayer.run_jobs("(resume)", jobs).await;
        }
        replayer.clock.set(mail.date);
        last_date = Some(mail.date);
        // The mail's steps in one scratch-store transaction: a run killed
        // mid-mail leaves the store as the previous mail ended, and the
        // resumed run does this mail again (its agent call included).
        batch(&pipeline.store, true)?;
        replayer.run_schedules(&mail.source).await;
        match replayer.ingest(mail).await {
            Ok(outcome) => {
                match &outcome {
                    IngestOutcome::Stored { .. } => {
                        summary.stored += 1;
                        summary.stored_this_run += 1;
                        new_this_run += 1;
                    }
                    IngestOutcome::Duplicate { .. } => summary.duplicates += 1,
                    IngestOutcome::Rejected { reason } => {
                        new_this_run += 1;
                        rejected.insert(delivery, reason.clone());
                        summary.rejected.push(BadInput {
                            source: mail.source.clone(),
                            reason: reason.clone(),
                        });
                    }
                }
                let jobs = LocalPipeline::jobs_after_ingest(&outcome);
                replayer.run_jobs(&mail.source, jobs).await;
            }
            Err(e) => replayer.failures.push(BadInput {
                source: mail.source.clone(),
                reason: format!("inbound failed: {e}"),
            }),
        }
        batch(&pipeline.store, false)?;
        bar.set_message(format!("{} agent call(s)", replayer.agent_calls));
    }
    if !recovered && !summary.stopped_early {
        // Every mail was stored already: finish what the last run left.
        if let Some(at) = last_date {
            replayer.clock.set(at);
            replayer.redo_lost_turns().await?;
            let jobs = pipeline.recovery_jobs().await?;
            replayer.run_jobs("(resume)", jobs).await;
        }
    }
    bar.finish_and_clear();
    watcher.abort();
    summary.step_failures = std::mem::take(&mut replayer.failures);
    summary.agent_calls_this_run = replayer.agent_calls;

    let period = report_period(&options, &mails)?;
    let facts = load_facts(&pipeline.store, period.since, period.until, usize::MAX >> 1).await?;
    let report = aggregate_with(&facts, &period, None, &pipeline.config.report);
    let scan = scan_store(&pipeline.store, &period, options.drafts_dir.as_deref()).await?;
    summary.queue_notices_not_sent = scan.notices_pending;
    summary.mail_sent = scan.mail_sent;
    summary.agent_turns = scan.agent_turns;
    summary.by_intent = scan.by_intent;
    summary.outbox_files = std::fs::read_dir(&outbox).map(|d| d.count()).unwrap_or(0);
    let drafts = scan.drafts;

    let out = match options.format {
        Format::Json => {
            let mut by_intent: BTreeMap<&str, Vec<&DraftLine>> = BTreeMap::new();
            for d in &drafts {
                by_intent.entry(d.intent.as_str()).or_default().push(d);
            }
            let mut text = serde_json::to_string_pretty(&ReplayOutput {
                report: &report,
                drafts: by_intent,
                replay: &summary,
            })?;
            text.push('\n');
            text
        }
        Format::Csv => {
            let mut text = render(&report, Format::Csv)?;
            text.push('\n');
            text.push_str("intent,case,draft,kind,created_at,subject,excerpt,file\n");
            for d in &drafts {
                let fields = [
                    d.intent.clone(),
                    d.case.clone(),
                    d.draft.clone(),
                    d.kind.clone(),
                    d.created_at.to_rfc3339(),
                    d.subject.clone(),
                    d.excerpt.clone(),
                    d.file.clone().unwrap_or_default(),
                ];
                let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
                text.push_str(&line.join(","));
                text.push('\n');
            }
            text
        }
        Format::Table => render(&report, Format::Table)? + &table(&summary, &drafts, options.drafts_dir.is_some()),
    };
    print!("{out}");
    if summary.stopped_early {
        eprintln!(
            "replay stopped early ({} mail(s) not yet replayed); run the same command again to resume from {}",
            summary.not_yet_replayed,
            path.display()
        );
    }
    Ok(())
}

/// `--since`/`--until`, or the whole days the input's mail spans.
fn report_period(options: &Options, mails: &[Mail]) -> Result<Period, CliError> {
    let first = mails.first().map(|m| m.date);
    let last = mails.last().map(|m| m.date);
    let day = |at: DateTime<Utc>| at.date_naive().and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    let since = options.since.or_else(|| first.and_then(day)).unwrap_or_default();
    let until = options
        .until
        .or_else(|| last.and_then(day).map(|d| d + chrono::Duration::days(1)))
        .unwrap_or(since + chrono::Duration::days(1));
    if since >= until {
        return Err("--since must be before --until".into());
    }
    Ok(Period { since, until })
}

/// What the scratch store holds, read in one pass over its cases.
struct Scan {
    /// Every draft of the cases created in the period, by intent (name order).
    drafts: Vec<DraftLine>,
    by_intent: BTreeMap<String, IntentShadow>,
    /// Over the whole store: pending outbound mail (queue notices).
    notices_pending: usize,
    /// Over the whole store: outbound mail marked sent or sending.
    mail_sent: usize,
    /// Over the whole store: turns that called an agent (not skipped).
    agent_turns: usize,
}

/// Reads drafts, shadow decisions, outbound mail and turns off the scratch
/// store; each draft is written in full under `dir/<intent>/` when asked.
async fn scan_store(store: &AnyStore, period: &Period, dir: Option<&Path>) -> Result<Scan, CliError> {
    let mut scan = Scan {
        drafts: Vec::new(),
        by_intent: BTreeMap::new(),
        notices_pending: 0,
        mail_sent: 0,
        agent_turns: 0,
    };
    let kinds = [RecordKind::Outbound, RecordKind::Turn, RecordKind::Event, RecordKind::Draft];
    for case in store.scan_cases(&kinds, usize::MAX, |_| true, CaseScan::of).await? {
        scan.notices_pending += case.pending;
        scan.mail_sent += case.sent;
        scan.agent_turns += case.turns;
        if !period.contains(case.created_at) {
            continue;
        }
        let (id, intent) = (&case.id, &case.intent);
        let shadow = scan.by_intent.entry(intent.clone()).or_default();
        shadow.cases += 1;
        shadow.held_for_representatives += case.notices.min(1);
        shadow.would_escalate += case.would_escalate;
        shadow.would_close += case.would_close;
        for draft in &case.drafts {
            shadow.drafts += 1;
            match draft.kind {
                MailKind::Question => shadow.questions += 1,
                MailKind::Resolution => shadow.resolutions += 1,
                _ => {}
            }
            let public = casebridge_http_api::public_draft_id(&draft.id);
            let file = match dir {
                Some(dir) => {
                    let folder = dir.join(file_part(intent));
                    std::fs::create_dir_all(&folder)?;
                    let path = folder.join(format!("{}_{}.txt", file_part(&id.to_string()), file_part(&public)));
                    let text = format!(
                        "Case: {id}\nIntent: {intent}\nDraft: {public} ({})\nReason: {}\nTo: {}\nSubject: {}\nCreated: {}\n\n{}\n",
                        draft.kind.as_str(),
                        draft.reason,
                        draft.to.join(", "),
                        draft.subject,
                        draft.created_at.to_rfc3339(),
                        draft.body
                    );
                    std::fs::write(&path, text)?;
                    Some(path.display().to_string())
                }
                None => None,
            };
            scan.drafts.push(DraftLine {
                intent: intent.clone(),
                case: id.to_string(),
                draft: public,
                kind: draft.kind.as_str().to_string(),
                created_at: draft.created_at,
                to: draft.to.clone(),
                subject: casebridge::inbound::sanitize_header_text(&draft.subject, EXCERPT_CHARS),
                excerpt: excerpt(&draft.body),
                file,
            });
        }
    }
    scan.drafts
        .sort_by(|a, b| (&a.intent, a.created_at, &a.case).cmp(&(&b.intent, b.created_at, &b.case)));
    Ok(scan)
}

/// What one case of the scratch store contributes to the summary, read in
/// the store's one pass over cases and records.
struct CaseScan {
    id: CaseId,
    intent: String,
    created_at: DateTime<Utc>,
    /// Outbound mail left pending, and how many of it are queue notices.
    pending: usize,
    notices: usize,
    /// Outbound mail marked sent or sending.
    sent: usize,
    /// Turns that called an agent (not skipped).
    turns: usize,
    would_escalate: usize,
    would_close: usize,
    drafts: Vec<casebridge::model::Draft>,
}

impl CaseScan {
    fn of(case: &casebridge::model::Case, records: &[Record]) -> CaseScan {
        let mut scan = CaseScan {
            id: case.id.clone(),
            intent: case.intent.clone().unwrap_or_else(|| casebridge::report::NONE.to_string()),
            created_at: case.created_at,
            pending: 0,
            notices: 0,
            sent: 0,
            turns: 0,
            would_escalate: 0,
            would_close: 0,
            drafts: Vec::new(),
        };
        for record in records {
            match record {
                Record::Outbound(mail) => match mail.status {
                    OutboundStatus::Pending => {
                        scan.pending += 1;
                        scan.notices += usize::from(mail.kind == MailKind::EscalationNotice);
                    }
                    OutboundStatus::Sent | OutboundStatus::Sending => scan.sent += 1,
                    _ => {}
                },
                Record::Turn(turn) if turn.status != TurnStatus::Skipped => scan.turns += 1,
                // The decision table's shadow notes: "shadow mode: would escalate (…)" / "would close (…)".
                Record::Event(event) if event.kind == "answer_recorded" => {
                    if event.detail.starts_with("shadow mode: would escalate") {
                        scan.would_escalate += 1;
                    } else if event.detail.starts_with("shadow mode: would close") {
                        scan.would_close += 1;
                    }
                }
                Record::Draft(draft) => scan.drafts.push(draft.clone()),
                _ => {}
            }
        }
        scan
    }
}

fn table(summary: &Summary, drafts: &[DraftLine], wrote_files: bool) -> String {
    let mut out = format!(
        "\nreplay of {} (shadow mode, scratch store {}):\n  {} mail(s) read: {} stored ({} in this run), {} duplicate(s), {} rejected, {} outside the period{}\n  {} agent turn(s) ({} call(s) in this run); sent: {} mail(s); queue notices not sent: {}\n",
        summary.input,
        summary.store,
        summary.mails_read,
        summary.stored,
        summary.stored_this_run,
        summary.duplicates,
        summary.rejected.len(),
        summary.outside_period,
        if summary.not_yet_replayed > 0 {
            format!(", {} not yet replayed", summary.not_yet_replayed)
        } else {
            String::new()
        },
        summary.agent_turns,
        summary.agent_calls_this_run,
        summary.mail_sent + summary.outbox_files,
        summary.queue_notices_not_sent,
    );
    out.push_str(&format!(
        "\nin shadow mode, per intent:\n  {:<20} {:>5} {:>6} {:>9} {:>11} {:>14} {:>11} {:>7}\n",
        "intent", "cases", "drafts", "questions", "resolutions", "would escalate", "would close", "held"
    ));
    for (intent, s) in &summary.by_intent {
        out.push_str(&format!(
            "  {:<20} {:>5} {:>6} {:>9} {:>11} {:>14} {:>11} {:>7}\n",
            intent, s.cases, s.drafts, s.questions, s.resolutions, s.would_escalate, s.would_close, s.held_for_representatives
        ));
    }
    let mut current: Option<&str> = None;
    out.push_str(&format!("\ndrafts that would have gone out: {}\n", drafts.len()));
    for d in drafts {
        if current != Some(d.intent.as_str()) {
            let n = drafts.iter().filter(|x| x.intent == d.intent).count();
            out.push_str(&format!("intent {} ({n})\n", d.intent));
            current = Some(d.intent.as_str());
        }
        out.push_str(&format!(
            "  {}  {:<20} {:<10} {}  {}\n      | {}\n",
            d.case,
            d.draft,
            d.kind,
            d.created_at.format("%Y-%m-%d %H:%M"),
            d.subject,
            d.excerpt
        ));
    }
    if !drafts.is_empty() && !wrote_files {
        out.push_str("(full texts: --drafts-dir DIR writes each draft to DIR/<intent>/)\n");
    }
    for (title, list) in [
        ("bad input", &summary.bad_input),
        ("rejected by the pipeline", &summary.rejected),
        ("failed steps", &summary.step_failures),
    ] {
        if !list.is_empty() {
            out.push_str(&format!("\n{title}: {}\n", list.len()));
            for item in list {
                out.push_str(&format!("  {}: {}\n", item.source, item.reason));
            }
        }
    }
    if summary.stopped_early {
        out.push_str("\nstopped early: run again to resume\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_come_from_the_header_or_the_fallback() {
        let mail = b"From: a@b.example\r\nDate: Mon, 2 Nov 2026 09:00:00 +0000\r\n\r\nhi\r\n";
        assert_eq!(mail_date(mail, None).unwrap().to_rfc3339(), "2026-11-02T09:00:00+00:00");
        let undated = b"From: a@b.example\r\nSubject: x\r\n\r\nhi\r\n";
        let fallback = DateTime::from_timestamp(1_800_000_000, 0);
        assert_eq!(mail_date(undated, fallback).ok(), fallback);
        assert!(mail_date(undated, None).is_err());
        assert!(mail_date(b"   \n", None).is_err());
        assert!(mail_date(b"just some notes\nno headers here\n", None).is_err());
    }

    #[test]
    fn recorded_lines_give_back_what_the_agent_gave() {
        let read = |line: &str| serde_json::from_str::<RecordedCall>(line).map(|c| c.outcome());
        let answer = read(r#"{"case":"a@b","turn":1,"attempts":2,"answer":{"responseType":"Question","message":"Which order?"}}"#).unwrap();
        assert_eq!(answer.attempts, 2);
        assert!(matches!(answer.result, Ok(AgentReply::Answer(_))));
        let status = read(r#"{"case":"a@b","turn":1,"error":{"kind":"status","code":503}}"#).unwrap();
        assert_eq!(status.result, Err(AgentCallError::Status(503)));
        assert_eq!(status.attempts, 1);
        // An answer the contract refuses is refused again on playback.
        let invalid = read(r#"{"case":"a@b","turn":1,"answer":{"responseType":"Nope"}}"#).unwrap();
        assert!(matches!(invalid.result, Err(AgentCallError::Invalid(_))));
        // A line that says nothing about what the agent gave is not a recording.
        assert!(read(r#"{"case":"a@b","turn":1}"#).is_err());
        assert!(read(r#"{"turn":1,"answer":{}}"#).is_err());
    }

    #[test]
    fn a_recorded_call_reads_back_as_written() {
        let call = RecordedCall {
            case: "a@b".into(),
            turn: 3,
            agent: "refund-agent".into(),
            intent: Some("refund".into()),
            attempts: 1,
            remote_task: None,
            gave: Gave::Error(RecordedError::Timeout { ms: 2000 }),
        };
        let line = serde_json::to_string(&call).unwrap();
        assert_eq!(serde_json::from_str::<RecordedCall>(&line).unwrap(), call);
        assert_eq!(call.outcome().result, Err(AgentCallError::Timeout(2000)));
    }

    #[test]
    fn excerpts_are_one_short_line() {
        assert_eq!(excerpt("\n\n  Hello Ann,  \nmore"), "Hello Ann,");
        assert!(excerpt(&"x".repeat(500)).chars().count() <= EXCERPT_CHARS + 1);
        assert_eq!(file_part("CB-1/../x"), "CB-1____x");
    }
}
