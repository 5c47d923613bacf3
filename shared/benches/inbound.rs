//! Inbound cost per mail over real mail: the project's corpus (`tests/mail`)
//! and, when it is beside the repository, the shared real-world corpus
//! (`../shared/corpus`).
//!
//! - `inbound/decide`: parse + new text + screening + link candidates, pure.
//! - `inbound/ingest`: the whole inbound step on the embedded store (in-memory
//!   SQLite): the above plus dedupe and link lookups, intent, and the commit.
//!
//! `cargo bench -p casebridge --bench inbound`

use std::path::{Path, PathBuf};

use casebridge::config::Config;
use casebridge::inbound::{link_candidates, parse_mail, screen, Verdicts};
use casebridge::intent::CatalogueClassifier;
use casebridge::pipeline::inbound::{ingest, InboundDelivery};
use casebridge::pipeline::{StepEnv, SystemClock};
use casebridge::store::sqlite::SqliteStore;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
        if path.is_dir() {
            files(&path, out);
        } else if !(name.ends_with(".json") || name.ends_with(".toml") || name == "README.md" || name == "COPYING") {
            out.push(path);
        }
    }
}

fn corpus() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = Vec::new();
    files(&root.join("../tests/mail"), &mut paths);
    files(&root.join("../../shared/corpus"), &mut paths);
    paths.sort();
    paths.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

fn bench(c: &mut Criterion) {
    let mails = corpus();
    let config = Config::from_toml(include_str!("../../examples/demo.toml")).expect("demo config");
    let verdicts = Verdicts::default();
    eprintln!(
        "{} mails, {} bytes on average",
        mails.len(),
        mails.iter().map(Vec::len).sum::<usize>() / mails.len().max(1)
    );

    let mut group = c.benchmark_group("inbound");
    group.throughput(Throughput::Elements(mails.len() as u64));
    group.bench_function("decide", |b| {
        b.iter(|| {
            for raw in &mails {
                if let Ok(mail) = parse_mail(raw, config.inbound.max_mail_bytes) {
                    std::hint::black_box(screen(&mail, &verdicts, &config));
                    std::hint::black_box(link_candidates(&mail, &config));
                }
            }
        })
    });

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let classifier = CatalogueClassifier::new(&config.intents);
    let clock = SystemClock;
    group.sample_size(10);
    group.bench_function("ingest", |b| {
        b.iter_batched(
            || SqliteStore::in_memory().expect("store"),
            |store| {
                runtime.block_on(async {
                    let env = StepEnv::new(&config, &clock);
                    for (i, raw) in mails.iter().enumerate() {
                        let delivery = InboundDelivery {
                            raw,
                            delivery_id: format!("bench-{i}"),
                            raw_location: None,
                            verdicts: Verdicts::default(),
                            attachment_locations: Vec::new(),
                        };
                        std::hint::black_box(ingest(env, &store, &classifier, delivery).await.expect("ingest"));
                    }
                })
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
