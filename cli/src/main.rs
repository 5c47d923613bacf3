//! `casebridge` — the command-line tool. Every verb has `--help`.
//!
//! Works on the embedded store (`--store sqlite:PATH`, mail to a local
//! outbox) or on DynamoDB in AWS (`--store dynamodb:TABLE`, mail through
//! SES). With the embedded store the CLI also runs the agent and outcome
//! steps that the DynamoDB stream runs in AWS.

mod backends;
mod demo;
mod doctor;
mod inbox;
mod intent_tools;
mod local;
mod ops;
mod replay;
mod report;
mod runtime;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "casebridge", version, about = "AI agents that work email cases")]
struct Cli {
    /// Where cases are: sqlite:PATH (embedded) or dynamodb:TABLE.
    #[arg(long, global = true, env = "CASEBRIDGE_STORE", default_value = "sqlite:.casebridge/cases.db")]
    store: String,
    /// Folder for outgoing mail with the embedded store (DynamoDB sends through SES).
    #[arg(long, global = true, default_value = "outbox")]
    outbox: PathBuf,
    /// casebridge configuration (TOML).
    #[arg(long, global = true, env = "CASEBRIDGE_CONFIG_FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the refund scenario end to end on a fresh embedded store; mail goes to ./outbox.
    Demo {
        /// Embedded store file (recreated).
        #[arg(long, default_value = ".casebridge/demo.db")]
        db: PathBuf,
        /// Play it with the example LLM agent (examples/llm-agent) and its
        /// scripted fake model, over casebridge's protocol (the default) or A2A.
        #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "casebridge", value_name = "PROTOCOL")]
        llm_agent: Option<demo::LlmDemo>,
    },
    /// Run one .eml file through the pipeline (inbound → agent → outcome).
    Ingest { file: PathBuf },
    /// Inspect a case.
    Case {
        #[command(subcommand)]
        command: CaseCommand,
    },
    /// Drafts waiting for review.
    Drafts {
        #[command(subcommand)]
        command: DraftsCommand,
    },
    /// Reprocess a case from a step: inbound (route again), agent (new turn) or outcome (carry out, send what is pending or failed).
    Reprocess {
        case: String,
        #[arg(long)]
        from: casebridge::pipeline::representative::Step,
    },
    /// Re-send every failed mail, over all cases.
    ReplayFailed {
        /// Cases looked at, at most.
        #[arg(long, default_value_t = 10_000)]
        limit: usize,
    },
    /// Create the DynamoDB table (with its stream and indexes) named by --store dynamodb:TABLE, e.g. on the local stack.
    InitTable,
    /// Intent classification tools.
    Intent {
        #[command(subcommand)]
        command: IntentCommand,
    },
    /// Serve the HTTP API and run the pipeline locally (embedded store), for trying an agent.
    Serve {
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: std::net::SocketAddr,
        /// .eml files dropped here are ingested (then moved to DIR/done).
        #[arg(long, default_value = "inbox")]
        inbox: PathBuf,
        /// Representatives' bearer token, at least 16 bytes (generated and printed when absent).
        #[arg(long, env = "CASEBRIDGE_REPRESENTATIVE_TOKEN")]
        representative_token: Option<String>,
        /// Run every schedule (overdue sweep, follow-ups, pending mail) every SECS
        /// seconds instead of the deployed intervals (60 s, 300 s, 60 s): for trials.
        #[arg(long, value_name = "SECS")]
        schedules_every: Option<u64>,
    },
    /// Run every schedule once (overdue-turn sweep, follow-up reminders and
    /// auto-close, pending mail) and what they trigger: for cron or an operator.
    RunSchedules,
    /// The support lead's numbers over cases created in a period, per intent and
    /// per agent: automated resolutions, escalations, drafts (share edited),
    /// response and resolution times, AI mails, agent failures. On DynamoDB this
    /// scans the table (an operator's run).
    Report {
        /// First day (YYYY-MM-DD, UTC) or an exact RFC 3339 time.
        #[arg(long, value_parser = report::parse_since)]
        since: chrono::DateTime<chrono::Utc>,
        /// Last day, included (YYYY-MM-DD, UTC), or an exact, exclusive RFC 3339 time.
        #[arg(long, value_parser = report::parse_until)]
        until: chrono::DateTime<chrono::Utc>,
        /// Only cases of this intent.
        #[arg(long)]
        intent: Option<String>,
        #[arg(long, value_enum, default_value_t = report::Format::Table)]
        format: report::Format,
        /// Cases looked at, at most.
        #[arg(long, default_value_t = 100_000)]
        limit: usize,
    },
    /// Replay historical mail (a folder of .eml, a maildir or an mbox) through
    /// the pipeline in shadow mode on a scratch embedded store, and print the
    /// report and the drafts that would have gone out, per intent. Resumable:
    /// run it again on the same input to finish an interrupted replay.
    Replay(replay::Args),
    /// Check the configuration and the store and say what to fix: one line per
    /// check (ok, WARN, FAIL); the exit code is non-zero when any check fails.
    Doctor {
        /// Also check this inbox folder (as `serve --inbox` would use it).
        #[arg(long)]
        inbox: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum IntentCommand {
    /// Measure the catalogue classifier on labelled mail (JSONL: {"subject","body","intent"} a line,
    /// optionally "second"; the intent may be out_of_scope).
    Eval {
        #[arg(long)]
        data: PathBuf,
        /// Mail that is not a support request (every label out_of_scope): how much of it is held.
        #[arg(long)]
        out_of_scope: Option<PathBuf>,
        /// Catalogue ([[intents]] and optional [classifier]); default: the --config file's intents.
        #[arg(long)]
        catalogue: Option<PathBuf>,
        /// Confidence threshold; default: the catalogue's (threshold or route_at_precision).
        #[arg(long)]
        threshold: Option<f64>,
        /// Also list every mail whose best guess was wrong.
        #[arg(long)]
        misses: bool,
        /// Ignore the catalogue's [classifier] training data (the catalogue alone).
        #[arg(long)]
        without_training: bool,
        /// Ignore the catalogue's [classifier.calibration] (raw scores).
        #[arg(long)]
        uncalibrated: bool,
    },
    /// Cross-validate on labelled files: each file in turn is scored by a
    /// classifier trained on the catalogue and the other files.
    Cv {
        /// Two or more labelled files (JSONL), one fold each.
        #[arg(long, num_args = 1.., required = true)]
        data: Vec<PathBuf>,
        #[arg(long)]
        catalogue: Option<PathBuf>,
        /// Confidence threshold; default: the catalogue's.
        #[arg(long)]
        threshold: Option<f64>,
        /// Fit a calibration on the cross-validated scores (isotonic steps of at least N mails),
        /// report with it, and print it as a [classifier.calibration] section.
        #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "40")]
        calibrate: Option<usize>,
        /// Fit on these --data files' cross-validated scores only (default: all).
        #[arg(long, num_args = 1..)]
        calibrate_on: Vec<PathBuf>,
        /// Ignore the catalogue's [classifier.calibration].
        #[arg(long)]
        uncalibrated: bool,
        /// Change a classifier option for this run (key=value), e.g. stem=true.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
}

#[derive(Subcommand)]
enum CaseCommand {
    /// Show a case's state and readable timeline.
    Show { id: String },
    /// List cases: id, status, intent, subject (the embedded store scans; DynamoDB is not listed).
    List {
        #[arg(long, default_value_t = 1_000)]
        limit: usize,
    },
}

#[derive(Subcommand)]
enum DraftsCommand {
    /// List drafts waiting for review.
    List,
    /// Send a draft, optionally with an edited body.
    Send {
        case: String,
        /// Draft id as listed (e.g. 0000000002.question).
        draft: String,
        /// File with the edited body.
        #[arg(long)]
        body_file: Option<PathBuf>,
    },
    /// Discard a draft.
    Discard { case: String, draft: String },
}

#[tokio::main]
async fn main() -> ExitCode {
    casebridge::telemetry::init_cli();
    let cli = Cli::parse();
    let result = run(cli).await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), local::CliError> {
    if let Command::Demo { db, llm_agent } = &cli.command {
        return demo::run(&cli.outbox, db, *llm_agent).await;
    }
    if let Command::Intent { command } = &cli.command {
        return match command {
            IntentCommand::Eval {
                data,
                out_of_scope,
                catalogue,
                threshold,
                misses,
                without_training,
                uncalibrated,
            } => {
                let options = intent_tools::EvalOptions {
                    threshold: *threshold,
                    show_misses: *misses,
                    without_training: *without_training,
                    uncalibrated: *uncalibrated,
                };
                intent_tools::eval(data, out_of_scope.as_deref(), catalogue.as_ref().or(cli.config.as_ref()), options).await
            }
            IntentCommand::Cv {
                data,
                catalogue,
                threshold,
                calibrate,
                calibrate_on,
                uncalibrated,
                set,
            } => {
                let options = intent_tools::CvOptions {
                    threshold: *threshold,
                    calibrate: *calibrate,
                    calibrate_on: calibrate_on.clone(),
                    uncalibrated: *uncalibrated,
                    set: set.clone(),
                };
                intent_tools::cv(data, catalogue.as_ref().or(cli.config.as_ref()), options)
            }
        };
    }
    if let Command::Doctor { inbox } = &cli.command {
        let options = doctor::Options {
            store: &cli.store,
            outbox: &cli.outbox,
            config: cli.config.as_deref(),
            inbox: inbox.as_deref(),
        };
        return doctor::run(options).await;
    }
    if let Command::Replay(args) = &cli.command {
        // Before the global store is opened: a replay opens (and may refuse) its own scratch store.
        return replay::run(args.options(&cli.store, cli.config.as_deref())?).await;
    }
    let (store, mailer) = backends::open(&cli.store, &cli.outbox).await?;
    let db_path = PathBuf::from(cli.store.strip_prefix("sqlite:").unwrap_or_default());
    let config = || -> Result<casebridge::config::Config, local::CliError> {
        let path = cli
            .config
            .as_ref()
            .ok_or("--config FILE (or CASEBRIDGE_CONFIG_FILE) is required for this command")?;
        Ok(casebridge::config::Config::from_file(path)?)
    };
    let pipeline = async |store: backends::AnyStore, mailer: backends::AnyMailer| -> Result<local::LocalPipeline, local::CliError> {
        local::LocalPipeline::new(
            config()?,
            store,
            mailer,
            std::sync::Arc::new(casebridge::secrets::Secrets::env_only()),
        )
        .await
    };
    match cli.command {
        Command::Demo { .. } | Command::Intent { .. } | Command::Doctor { .. } | Command::Replay(_) => Ok(()),
        Command::InitTable => match &store {
            backends::AnyStore::Dynamo(dynamo) => {
                dynamo.create_table().await?;
                println!("table {} created", dynamo.table());
                Ok(())
            }
            backends::AnyStore::Sqlite(_) => Err("init-table is for --store dynamodb:TABLE; the embedded store creates itself".into()),
        },
        Command::Ingest { file } => local::ingest_file(&pipeline(store, mailer).await?, &file).await,
        Command::Case {
            command: CaseCommand::Show { id },
        } => local::show_case(&store, &id).await,
        Command::Case {
            command: CaseCommand::List { limit },
        } => local::list_cases(&store, limit).await,
        Command::Drafts {
            command: DraftsCommand::List,
        } => ops::list_drafts(&store).await,
        Command::Drafts {
            command: DraftsCommand::Send { case, draft, body_file },
        } => {
            let body = body_file.map(std::fs::read_to_string).transpose()?;
            ops::send_draft(&pipeline(store, mailer).await?, &case, &draft, body).await
        }
        Command::Drafts {
            command: DraftsCommand::Discard { case, draft },
        } => ops::discard_draft(&pipeline(store, mailer).await?, &case, &draft).await,
        Command::Reprocess { case, from } => ops::reprocess(&pipeline(store, mailer).await?, &case, from).await,
        Command::ReplayFailed { limit } => ops::replay_failed(&pipeline(store, mailer).await?, limit).await,
        Command::Serve {
            listen,
            inbox,
            representative_token,
            schedules_every,
        } => {
            let options = ops::ServeOptions {
                listen,
                inbox,
                token: representative_token,
                schedules_every: schedules_every.map(std::time::Duration::from_secs),
            };
            ops::serve(pipeline(store, mailer).await?, &db_path, &cli.outbox, options).await
        }
        Command::RunSchedules => ops::run_schedules(&pipeline(store, mailer).await?).await,
        Command::Report {
            since,
            until,
            intent,
            format,
            limit,
        } => {
            // The thresholds and cost model come from `[report]` when a
            // configuration is given; the report runs without one.
            let settings = match &cli.config {
                Some(_) => config()?.report,
                None => casebridge::config::ReportConfig::default(),
            };
            let options = report::Options {
                since,
                until,
                intent,
                format,
                limit,
                settings,
            };
            report::run(&store, options).await
        }
    }
}
