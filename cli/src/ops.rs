//! Representatives' and operators' verbs: drafts, reprocessing, replaying
//! failed mail, and a local server.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

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

/// The HTTP API on `listen`, plus a loop that ingests `.eml` files dropped in
/// `inbox` and runs the steps the stream would run.
pub async fn serve(
    pipeline: LocalPipeline,
    db_path: &Path,
    outbox: &Path,
    listen: std::net::SocketAddr,
    inbox: &Path,
    token: Option<String>,
) -> Result<(), CliError> {
    let AnyStore::Sqlite(_) = &pipeline.store else {
        return Err("serve runs on the embedded store (--store sqlite:PATH)".into());
    };
    // A token given by flag or environment is the operator's secret: it is
    // never printed. Only one casebridge made up is shown, so it can be used.
    let (token, generated) = match token {
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
    let bound = casebridge_http_api::spawn_local(listen, api_state).await?;
    std::fs::create_dir_all(inbox.join("done"))?;
    if generated {
        println!("casebridge API on http://{bound} (representative token: {token})");
    } else {
        println!("casebridge API on http://{bound} (representative token: the one given)");
    }
    println!("drop .eml files into {}/ to ingest them; Ctrl-C stops", inbox.display());
    loop {
        for entry in std::fs::read_dir(inbox)?.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) == Some("eml") {
                crate::local::ingest_file(&pipeline, &path).await?;
                if let Some(name) = path.file_name() {
                    std::fs::rename(&path, inbox.join("done").join(name))?;
                }
            }
        }
        pipeline.drain().await?;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
