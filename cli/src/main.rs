//! `casebridge` — the command-line tool.
//!
//! - `casebridge demo`: the refund scenario end to end in one process, on the
//!   embedded store, with the example agent on a loopback port and mail
//!   written to `./outbox`.
//! - `casebridge ingest FILE.eml`: one mail through the whole pipeline.
//! - `casebridge case show ID`: a case's state and timeline.

mod demo;
mod local;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "casebridge", version, about = "AI agents that work email cases")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the refund scenario end to end on the embedded store; mail goes to ./outbox.
    Demo {
        /// Folder for outgoing mail.
        #[arg(long, default_value = "outbox")]
        outbox: PathBuf,
        /// Embedded store file (recreated).
        #[arg(long, default_value = ".casebridge/demo.db")]
        db: PathBuf,
    },
    /// Run one .eml file through the pipeline (inbound → agent → outcome) on the embedded store.
    Ingest {
        file: PathBuf,
        #[arg(long, env = "CASEBRIDGE_CONFIG_FILE")]
        config: PathBuf,
        #[arg(long, default_value = ".casebridge/cases.db")]
        db: PathBuf,
        #[arg(long, default_value = "outbox")]
        outbox: PathBuf,
    },
    /// Inspect cases in the embedded store.
    Case {
        #[command(subcommand)]
        command: CaseCommand,
    },
}

#[derive(Subcommand)]
enum CaseCommand {
    /// Show a case's state and readable timeline.
    Show {
        id: String,
        #[arg(long, default_value = ".casebridge/cases.db")]
        db: PathBuf,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    casebridge::telemetry::init_cli();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo { outbox, db } => demo::run(&outbox, &db).await,
        Command::Ingest { file, config, db, outbox } => local::ingest_file(&file, &config, &db, &outbox).await,
        Command::Case {
            command: CaseCommand::Show { id, db },
        } => local::show_case(&id, &db).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
