//! Intent classification cost: building the classifier from the catalogue
//! (what a Lambda cold start pays) and classifying one mail.
//! `cargo bench -p casebridge --bench intent`

use casebridge::inbound::extract_new_text;
use casebridge::intent::eval::{parse_jsonl, Catalogue};
use casebridge::intent::CatalogueClassifier;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn load() -> (Catalogue, Vec<(String, String)>) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/intents");
    let catalogue: Catalogue = toml::from_str(&std::fs::read_to_string(root.join("catalogue.toml")).unwrap()).unwrap();
    let mails = parse_jsonl(&std::fs::read_to_string(root.join("labelled-dev2.jsonl")).unwrap()).unwrap();
    (
        catalogue,
        mails.into_iter().map(|m| (m.subject, extract_new_text(&m.body))).collect(),
    )
}

fn bench(c: &mut Criterion) {
    let (catalogue, mails) = load();
    c.bench_function("build classifier (10 intents)", |b| {
        b.iter(|| CatalogueClassifier::new(std::hint::black_box(&catalogue.intents)))
    });
    let classifier = CatalogueClassifier::new(&catalogue.intents);
    let mut group = c.benchmark_group("classify");
    group.throughput(Throughput::Elements(mails.len() as u64));
    group.bench_function("labelled mails", |b| {
        b.iter(|| {
            for (subject, text) in &mails {
                std::hint::black_box(classifier.classify_now(subject, text));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
