//! Intent classification cost: building the classifier (what the first
//! event after a Lambda cold start pays), from the catalogue alone and with
//! its 920 labelled training mails (out-of-scope class and calibration
//! included, as deployed), and classifying one mail.
//! `cargo bench -p casebridge --bench intent`

use casebridge::inbound::extract_new_text;
use casebridge::intent::eval::{parse_jsonl, Catalogue};
use casebridge::intent::training::{self, TrainingMail};
use casebridge::intent::{CatalogueClassifier, ClassifierOptions};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// The catalogue, its classes, its training mails and the mails to classify.
type Loaded = (
    Catalogue,
    Vec<casebridge::config::IntentConfig>,
    Vec<TrainingMail>,
    Vec<(String, String)>,
);

fn load() -> Loaded {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/intents");
    let catalogue: Catalogue = toml::from_str(&std::fs::read_to_string(root.join("catalogue.toml")).unwrap()).unwrap();
    let labelled: Vec<TrainingMail> = catalogue
        .classifier
        .training
        .iter()
        .flat_map(|file| training::parse(file, &std::fs::read_to_string(root.join(file)).unwrap(), &catalogue.intents).unwrap())
        .collect();
    let mails = parse_jsonl(&std::fs::read_to_string(root.join("labelled-heldout.jsonl")).unwrap()).unwrap();
    let classes = catalogue.classes(&labelled);
    (
        catalogue,
        classes,
        labelled,
        mails.into_iter().map(|m| (m.subject, extract_new_text(&m.body))).collect(),
    )
}

fn bench(c: &mut Criterion) {
    let (catalogue, classes, labelled, mails) = load();
    let options = ClassifierOptions::default();
    let calibration = catalogue.classifier.calibration.clone();
    c.bench_function("build classifier (10 intents + out-of-scope, catalogue only)", |b| {
        b.iter(|| CatalogueClassifier::trained(std::hint::black_box(&classes), &[], options))
    });
    c.bench_function("build classifier (10 intents + out-of-scope, 920 training mails)", |b| {
        b.iter(|| CatalogueClassifier::trained(std::hint::black_box(&classes), &labelled, options).with_calibration(calibration.clone()))
    });
    let classifier = CatalogueClassifier::trained(&classes, &labelled, options).with_calibration(calibration);
    let mut group = c.benchmark_group("classify");
    group.throughput(Throughput::Elements(mails.len() as u64));
    group.bench_function("held-out mails", |b| {
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
