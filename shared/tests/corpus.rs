//! Every mail of the shared real-world corpus (`../shared/corpus`, beside this
//! repository) goes through the inbound step without a panic, and ends up
//! stored on a case or recorded as rejected with a reason. Skipped, with a
//! note, when the corpus folder is absent.

use std::path::{Path, PathBuf};

use casebridge::config::Config;
use casebridge::inbound::Verdicts;
use casebridge::intent::CatalogueClassifier;
use casebridge::model::{Record, RecordKind};
use casebridge::pipeline::inbound::{ingest, InboundDelivery, IngestOutcome};
use casebridge::pipeline::{StepEnv, SystemClock};
use casebridge::store::sqlite::SqliteStore;
use casebridge::store::Store;

fn corpus_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
    dir.is_dir().then_some(dir)
}

fn mail_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            mail_files(&path, out);
        } else {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let is_data = name.ends_with(".json") || name == "README.md" || name == "COPYING";
            if !is_data {
                out.push(path);
            }
        }
    }
}

fn config() -> Config {
    Config::from_toml(include_str!("../../examples/demo.toml")).expect("demo config")
}

#[tokio::test]
async fn every_corpus_mail_is_processed_or_recorded_with_a_reason() {
    let Some(dir) = corpus_dir() else {
        eprintln!("skipped: no corpus at ../shared/corpus");
        return;
    };
    let mut files = Vec::new();
    mail_files(&dir, &mut files);
    files.sort();
    assert!(files.len() >= 250, "expected the ~300-mail corpus, found {}", files.len());

    let config = config();
    let classifier = CatalogueClassifier::new(&config.intents);
    let store = SqliteStore::in_memory().unwrap();
    let clock = SystemClock;
    let env = StepEnv::new(&config, &clock);
    let (mut stored, mut duplicate, mut rejected, mut answered_robots) = (0, 0, 0, Vec::new());
    for (i, file) in files.iter().enumerate() {
        let raw = std::fs::read(file).unwrap();
        let delivery = InboundDelivery {
            raw: &raw,
            delivery_id: format!("corpus-{i}"),
            raw_location: Some(file.display().to_string()),
            verdicts: Verdicts::default(),
            attachment_locations: Vec::new(),
        };
        let outcome = ingest(env, &store, &classifier, delivery)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        match outcome {
            IngestOutcome::Stored {
                case_id,
                mail_id,
                work_item,
                ..
            } => {
                stored += 1;
                let record = store.get_record(&case_id, &mail_id).await.unwrap().and_then(Record::into_mail);
                assert!(record.is_some(), "{}: stored mail missing", file.display());
                let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
                // RFC 3834 auto-replies and delivery reports must never reach an agent.
                if work_item.is_some() && (name.starts_with("rfc3834") || name.contains("dsn") || name.starts_with("bounce")) {
                    answered_robots.push(file.display().to_string());
                }
                let events = store.list_records(&case_id, RecordKind::Event).await.unwrap();
                assert!(!events.is_empty(), "{}: no timeline", file.display());
            }
            IngestOutcome::Duplicate { .. } => duplicate += 1,
            IngestOutcome::Rejected { reason } => {
                rejected += 1;
                assert!(!reason.is_empty(), "{}: rejected without a reason", file.display());
            }
        }
    }
    let recorded = store.list_rejected(usize::MAX >> 1).await.unwrap();
    assert_eq!(recorded.len(), rejected, "every rejection is recorded");
    assert!(recorded.iter().all(|r| !r.reason.is_empty()));
    eprintln!(
        "corpus: {} files → {stored} stored, {duplicate} duplicates, {rejected} rejected with a reason",
        files.len()
    );
    assert_eq!(stored + duplicate + rejected, files.len());
    assert!(answered_robots.is_empty(), "robot mail sent to an agent: {answered_robots:#?}");
}

#[test]
fn corpus_ses_events_decode_as_lambda_events() {
    let Some(dir) = corpus_dir() else {
        eprintln!("skipped: no corpus at ../shared/corpus");
        return;
    };
    let mut count = 0;
    for entry in std::fs::read_dir(dir.join("ses-events")).unwrap().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        // The S3 and SNS variants wrap the same `ses` object differently; the Lambda action is what casebridge receives.
        if entry.file_name().to_string_lossy().contains("lambda") {
            let event: aws_lambda_events::event::ses::SimpleEmailEvent = serde_json::from_value(value).unwrap();
            assert!(event.records[0].ses.mail.message_id.is_some());
            count += 1;
        }
    }
    assert!(count >= 1);
}
