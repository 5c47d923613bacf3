//! Representatives' and operators' verbs: drafts, reprocessing, replaying
//! failed mail, and a local server.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use casebridge::ids::CaseId;
use casebridge::model::Record;
use casebridge::pipeline::outcome::{send_draft as send_draft_step, DraftSendOutcome};
use casebridge::pipeline::representative::{
    discard_draft as discard_step, replay_failed as replay_step, reprocess as reprocess_step, ActionOutcome, Step,
};
use casebridge::pipeline::{StepEnv, SystemClock};
use casebridge::store::{Queue, Store};
use casebridge_http_api::{draft_key, public_draft_id};

use crate::backends::AnyStore;
use crate::local::{CliError, LocalPipeline};

fn parse_case(id: &str) -> Result<CaseId, CliError> {
    CaseId::parse(id).ok_or_else(|| format!("{id:?} is not a case id").into())
}

fn parse_draft(id: &str) -> Result<String, CliError> {
    draft_key(id).ok_or_else(|| format!("{id:?} is not a draft id (e.g. 0000000002.question)").into())
}

/// With the embedded store nothing else runs the later steps: run them now.
async fn continue_locally(pipeline: &LocalPipeline) -> Result<(), CliError> {
    if let AnyStore::Sqlite(_) = pipeline.store {
        let steps = pipeline.drain().await?;
        if steps > 0 {
            println!("ran {steps} pipeline step(s)");
        }
    } else {
        println!("the agent and outcome functions take it from the table's stream");
    }
    Ok(())
}

pub async fn list_drafts(store: &AnyStore) -> Result<(), CliError> {
    let queue = store.list_queue(Queue::Drafts, 1000).await?;
    if queue.is_empty() {
        println!("no drafts waiting for review");
    }
    for item in queue {
        if let Some(draft) = store.get_record(&item.case_id, &item.key).await?.and_then(Record::into_draft) {
            println!(
                "{}  {}  {}  to {}  ({})",
                item.case_id,
                public_draft_id(&draft.id),
                draft.kind.as_str(),
                draft.to.join(", "),
                draft.reason
            );
            println!("    {}", draft.subject);
            for line in draft.body.lines().take(6) {
                println!("    | {line}");
            }
        }
    }
    Ok(())
}

pub async fn send_draft(pipeline: &LocalPipeline, case: &str, draft: &str, body: Option<String>) -> Result<(), CliError> {
    let clock = SystemClock;
    let env = StepEnv::new(&pipeline.config, &clock);
    match send_draft_step(
        env,
        &pipeline.store,
        &pipeline.mailer,
        &parse_case(case)?,
        &parse_draft(draft)?,
        body,
    )
    .await?
    {
        DraftSendOutcome::Sent { outbound } => println!("sent ({outbound})"),
        DraftSendOutcome::AlreadyHandled => return Err("the draft was already sent or discarded".into()),
    }
    Ok(())
}

fn report(outcome: ActionOutcome) -> Result<(), CliError> {
    match outcome {
        ActionOutcome::Done { detail } => {
            println!("{detail}");
            Ok(())
        }
        ActionOutcome::Refused { reason } => Err(reason.into()),
    }
}

pub async fn discard_draft(pipeline: &LocalPipeline, case: &str, draft: &str) -> Result<(), CliError> {
    let clock = SystemClock;
    let env = StepEnv::new(&pipeline.config, &clock);
    report(discard_step(env, &pipeline.store, &parse_case(case)?, &parse_draft(draft)?, "cli").await?)
}

pub async fn reprocess(pipeline: &LocalPipeline, case: &str, from: Step) -> Result<(), CliError> {
    let clock = SystemClock;
    let env = StepEnv::new(&pipeline.config, &clock);
    report(
        reprocess_step(
            env,
            &pipeline.store,
            &pipeline.mailer,
            pipeline.classifier.as_ref(),
            &parse_case(case)?,
            from,
        )
        .await?,
    )?;
    if from != Step::Outcome {
        continue_locally(pipeline).await?;
    }
    Ok(())
}

pub async fn replay_failed(pipeline: &LocalPipeline, limit: usize) -> Result<(), CliError> {
    let clock = SystemClock;
    let env = StepEnv::new(&pipeline.config, &clock);
    let cases = pipeline.store.list_case_ids(limit).await?;
    let bar = indicatif::ProgressBar::new(cases.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} cases, {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let (mut sent, mut still_failing) = (0, 0);
    for case in &cases {
        for (_, ok) in replay_step(env, &pipeline.store, &pipeline.mailer, case).await? {
            if ok {
                sent += 1;
            } else {
                still_failing += 1;
            }
        }
        bar.set_message(format!("{sent} re-sent, {still_failing} still failing"));
        bar.inc(1);
    }
    bar.finish();
    println!(
        "{} cases looked at: {sent} mail(s) re-sent, {still_failing} still failing",
        cases.len()
    );
    if still_failing > 0 {
        return Err(format!("{still_failing} mail(s) could not be sent").into());
    }
    Ok(())
}

/// How `serve` runs.
pub struct ServeOptions {
    pub listen: std::net::SocketAddr,
    pub inbox: std::path::PathBuf,
    pub token: Option<String>,
    /// Every schedule at this interval instead of the template's (a trial run).
    pub schedules_every: Option<Duration>,
}

/// The HTTP API on `listen`, plus the local runtime: mail dropped in the
/// inbox is ingested, every step it causes runs by the trigger table, the
/// template's schedules run (overdue-turn sweep, follow-ups, pending mail),
/// and a failure is retried or dead-lettered without stopping the process.
/// SIGINT or SIGTERM stops it between steps.
pub async fn serve(pipeline: LocalPipeline, db_path: &Path, outbox: &Path, options: ServeOptions) -> Result<(), CliError> {
    use crate::runtime::{run_one, DeadLetters, JobQueue, Schedules};
    let AnyStore::Sqlite(_) = &pipeline.store else {
        return Err("serve runs on the embedded store (--store sqlite:PATH)".into());
    };
    // A token given by flag or environment is the operator's secret: it is
    // never printed. Only one casebridge made up is shown, so it can be used.
    let (token, generated) = match options.token {
        Some(token) if token.len() < casebridge::agent_auth::MIN_BEARER_BYTES => {
            return Err(format!(
                "the representative token is {} bytes; at least {} are required",
                token.len(),
                casebridge::agent_auth::MIN_BEARER_BYTES
            )
            .into())
        }
        Some(token) => (token, false),
        None => (crate::local::random_token(), true),
    };
    let api_state = Arc::new(casebridge_http_api::ApiState {
        store: casebridge::store::sqlite::SqliteStore::open(db_path)?,
        mailer: casebridge::mail::outbox::OutboxMailer::new(outbox)?,
        config: pipeline.config.clone(),
        secrets: Arc::new(casebridge::secrets::Secrets::env_only()),
        clock: Arc::new(SystemClock),
        representatives: casebridge_http_api::RepresentativeAuth::StaticToken(token.clone()),
    });
    let bound = casebridge_http_api::spawn_local(options.listen, api_state).await?;
    let mut inbox = crate::inbox::Inbox::open(&options.inbox)?;
    if generated {
        println!("casebridge API on http://{bound} (representative token: {token})");
    } else {
        println!("casebridge API on http://{bound} (representative token: the one given)");
    }
    println!(
        "drop .eml files into {}/ (write elsewhere, then rename in) to ingest them; Ctrl-C stops",
        options.inbox.display()
    );
    let dead = DeadLetters {
        path: db_path.with_extension("dead-letters.jsonl"),
    };
    let mut queue = JobQueue::default();
    // What a crash or stop left half done runs first.
    match pipeline.recovery_jobs().await {
        Ok(jobs) => {
            if !jobs.is_empty() {
                tracing::info!(jobs = jobs.len(), "resuming work left from the last run");
            }
            queue.push_now(jobs);
        }
        Err(e) => tracing::error!(error = %e, "could not look for unfinished work; the schedules will find it"),
    }
    let mut schedules = Schedules::new(options.schedules_every);
    // A stop request is honoured between steps, never inside one: every step
    // has stored what it did before the next one starts.
    let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let wake = Arc::new(tokio::sync::Notify::new());
    {
        let (stopping, wake) = (stopping.clone(), wake.clone());
        tokio::spawn(async move {
            shutdown_signal().await;
            stopping.store(true, std::sync::atomic::Ordering::SeqCst);
            wake.notify_one();
        });
    }
    let stop_requested = || stopping.load(std::sync::atomic::Ordering::SeqCst);
    loop {
        for entry in inbox.ready() {
            let result = match inbox.read(&entry) {
                Ok(raw) => {
                    let delivery_id = format!("file-{}", &casebridge::ids::sha256_hex(&raw)[..16]);
                    pipeline
                        .ingest(&raw, &delivery_id)
                        .await
                        .map_err(|e| (e.is_retryable(), e.to_string()))
                }
                Err(e) => Err((false, e.to_string())),
            };
            let moved = match result {
                Ok(outcome) => {
                    queue.push_now(LocalPipeline::jobs_after_ingest(&outcome));
                    inbox.done(&entry)
                }
                // The store did not answer: the file stays for the next round.
                Err((true, reason)) => {
                    tracing::warn!(mail = %entry.name, %reason, "could not store the mail; trying again");
                    Ok(())
                }
                Err((false, reason)) => {
                    tracing::warn!(mail = %entry.name, %reason, "mail moved to failed/");
                    inbox.failed(&entry, &reason)
                }
            };
            if let Err(e) = moved {
                tracing::error!(mail = %entry.name, error = %e, "could not move the mail out of the inbox");
            }
        }
        for step in schedules.due(Instant::now()) {
            match pipeline.run_schedule(step).await {
                Ok(jobs) => queue.push_now(jobs),
                Err(e) => tracing::warn!(schedule = ?step, error = %e, "scheduled run failed; it runs again at its next time"),
            }
        }
        while !stop_requested() {
            let Some(job) = queue.pop_due(Instant::now()) else { break };
            run_one(&pipeline, &mut queue, &dead, job).await;
        }
        if stop_requested() {
            println!("stopping: {} step(s) left for the next start", queue.len());
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = wake.notified() => {}
        }
    }
}

/// SIGINT (Ctrl-C) or, on Unix, SIGTERM (systemd, `kill`).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "SIGTERM cannot be caught; Ctrl-C still stops");
                    std::future::pending::<()>().await
                }
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `run-schedules`: every schedule of the trigger table once (the overdue
/// sweep, follow-ups, pending mail) and what they trigger, for cron or an
/// operator.
pub async fn run_schedules(pipeline: &LocalPipeline) -> Result<(), CliError> {
    let mut jobs = Vec::new();
    for schedule in casebridge::triggers::ON_SCHEDULE {
        let found = pipeline.run_schedule(schedule.step).await?;
        println!("{}: {} step(s) to run", schedule.action, found.len());
        jobs.extend(found);
    }
    if let AnyStore::Sqlite(_) = pipeline.store {
        let steps = pipeline.run_to_completion(jobs).await?;
        println!("ran {steps} step(s)");
    } else {
        println!("the agent and outcome functions take the rest from the table's stream");
    }
    Ok(())
}
