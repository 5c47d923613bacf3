//! Measuring a classifier on labelled mail: accuracy, per-intent precision
//! and recall, confusion pairs, and coverage against accuracy at thresholds.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{CatalogueClassifier, TrainingMail};
use crate::inbound::extract_new_text;

/// One labelled mail (a line of the JSONL file).
#[derive(Debug, Clone, Deserialize)]
pub struct LabelledMail {
    pub subject: String,
    pub body: String,
    pub intent: String,
}

/// A catalogue file: `[[intents]]` and an optional `[classifier]` (the same
/// sections as in the full configuration).
#[derive(Debug, Clone, Deserialize)]
pub struct Catalogue {
    pub intents: Vec<crate::config::IntentConfig>,
    #[serde(default)]
    pub classifier: crate::config::ClassifierConfig,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IntentFigures {
    pub intent: String,
    pub precision: f64,
    pub recall: f64,
    pub support: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EvalReport {
    pub mails: usize,
    pub threshold: f64,
    /// Best guess right, whatever its confidence.
    pub accuracy: f64,
    /// Share of mails with a best guess at or above the threshold.
    pub coverage: f64,
    /// Accuracy among those covered mails.
    pub covered_accuracy: f64,
    pub per_intent: Vec<IntentFigures>,
    /// (true, predicted, count), most frequent first.
    pub confusions: Vec<(String, String, usize)>,
    /// (threshold, coverage, covered accuracy) at 0.0, 0.1, … 0.9.
    pub curve: Vec<(f64, f64, f64)>,
    /// Mails whose best guess was wrong: (line index, true, predicted, confidence).
    pub misses: Vec<(usize, String, String, f64)>,
}

pub fn parse_jsonl(text: &str) -> Result<Vec<LabelledMail>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}

pub fn evaluate(classifier: &CatalogueClassifier, mails: &[LabelledMail], threshold: f64) -> EvalReport {
    // (truth, prediction, confidence) per mail; the new text as in production.
    let results: Vec<(String, Option<String>, f64)> = mails
        .iter()
        .map(|m| {
            let c = classifier.classify_now(&m.subject, &extract_new_text(&m.body));
            let best = c.best().cloned();
            (
                m.intent.clone(),
                best.as_ref().map(|b| b.intent.clone()),
                best.map(|b| b.confidence).unwrap_or(0.0),
            )
        })
        .collect();
    let n = results.len().max(1) as f64;
    let correct = results.iter().filter(|(t, p, _)| p.as_deref() == Some(t.as_str())).count() as f64;
    let at = |th: f64| {
        let covered: Vec<_> = results.iter().filter(|(_, p, c)| p.is_some() && *c >= th).collect();
        let right = covered.iter().filter(|(t, p, _)| p.as_deref() == Some(t.as_str())).count() as f64;
        (
            covered.len() as f64 / n,
            if covered.is_empty() { 0.0 } else { right / covered.len() as f64 },
        )
    };
    let (coverage, covered_accuracy) = at(threshold);
    let mut intents: Vec<String> = results.iter().map(|(t, _, _)| t.clone()).collect();
    intents.sort();
    intents.dedup();
    let per_intent = intents
        .iter()
        .map(|intent| {
            let predicted = results.iter().filter(|(_, p, _)| p.as_deref() == Some(intent.as_str())).count() as f64;
            let actual = results.iter().filter(|(t, _, _)| t == intent).count();
            let hits = results
                .iter()
                .filter(|(t, p, _)| t == intent && p.as_deref() == Some(intent.as_str()))
                .count() as f64;
            IntentFigures {
                intent: intent.clone(),
                precision: if predicted > 0.0 { hits / predicted } else { 0.0 },
                recall: if actual > 0 { hits / actual as f64 } else { 0.0 },
                support: actual,
            }
        })
        .collect();
    let mut pairs: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (truth, predicted, _) in &results {
        let predicted = predicted.clone().unwrap_or_else(|| "(none)".into());
        if predicted != *truth {
            *pairs.entry((truth.clone(), predicted)).or_insert(0) += 1;
        }
    }
    let mut confusions: Vec<(String, String, usize)> = pairs.into_iter().map(|((t, p), c)| (t, p, c)).collect();
    confusions.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    let misses = results
        .iter()
        .enumerate()
        .filter(|(_, (t, p, _))| p.as_deref() != Some(t.as_str()))
        .map(|(i, (t, p, c))| (i, t.clone(), p.clone().unwrap_or_else(|| "(none)".into()), *c))
        .collect();
    let curve = (0..10)
        .map(|i| f64::from(i) / 10.0)
        .map(|th| {
            let (cov, acc) = at(th);
            (th, cov, acc)
        })
        .collect();
    EvalReport {
        mails: results.len(),
        threshold,
        accuracy: correct / n,
        coverage,
        covered_accuracy,
        per_intent,
        confusions,
        curve,
        misses,
    }
}

/// Leave-one-fold-out cross-validation: for each fold, a classifier
/// trained on the catalogue and every other fold scores that fold.
#[derive(Debug, Clone, PartialEq)]
pub struct CrossValidation {
    /// Accuracy of each fold's best guesses.
    pub fold_accuracy: Vec<f64>,
    /// Best-guess accuracy over every mail.
    pub accuracy: f64,
    /// At thresholds 0.00, 0.05, … 0.95: (threshold, pooled coverage, pooled
    /// covered accuracy, coverage of each fold).
    pub curve: Vec<(f64, f64, f64, Vec<f64>)>,
}

pub fn cross_validate(
    intents: &[crate::config::IntentConfig],
    folds: &[Vec<LabelledMail>],
    options: super::ClassifierOptions,
) -> CrossValidation {
    // (fold, right, confidence) per mail.
    let mut results: Vec<(usize, bool, f64)> = Vec::new();
    for (k, fold) in folds.iter().enumerate() {
        let training: Vec<TrainingMail> = folds
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != k)
            .flat_map(|(_, other)| other.iter().map(TrainingMail::from_labelled))
            .collect();
        let classifier = CatalogueClassifier::trained(intents, &training, options);
        for mail in fold {
            let best = classifier
                .classify_now(&mail.subject, &extract_new_text(&mail.body))
                .best()
                .cloned();
            let right = best.as_ref().is_some_and(|b| b.intent == mail.intent);
            results.push((k, right, best.map_or(0.0, |b| b.confidence)));
        }
    }
    let share = |count: usize, of: usize| if of == 0 { 0.0 } else { count as f64 / of as f64 };
    let fold_accuracy = (0..folds.len())
        .map(|k| share(results.iter().filter(|r| r.0 == k && r.1).count(), folds[k].len()))
        .collect();
    let curve = (0..20)
        .map(|i| {
            let threshold = f64::from(i) / 20.0;
            let covered: Vec<_> = results.iter().filter(|r| r.2 >= threshold).collect();
            let per_fold = (0..folds.len())
                .map(|k| share(covered.iter().filter(|r| r.0 == k).count(), folds[k].len()))
                .collect();
            (
                threshold,
                share(covered.len(), results.len()),
                share(covered.iter().filter(|r| r.1).count(), covered.len()),
                per_fold,
            )
        })
        .collect();
    CrossValidation {
        fold_accuracy,
        accuracy: share(results.iter().filter(|r| r.1).count(), results.len()),
        curve,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_accuracy_coverage_and_confusions() {
        let intents = vec![
            crate::config::IntentConfig {
                name: "refund".into(),
                description: String::new(),
                examples: vec!["refund my money".into()],
                keywords: vec!["refund".into()],
                agent: None,
                workflow: None,
            },
            crate::config::IntentConfig {
                name: "tracking".into(),
                description: String::new(),
                examples: vec!["where is my parcel".into()],
                keywords: vec!["tracking".into()],
                agent: None,
                workflow: None,
            },
        ];
        let classifier = CatalogueClassifier::new(&intents);
        let mails = parse_jsonl(
            "{\"subject\":\"refund\",\"body\":\"refund please\",\"intent\":\"refund\"}\n\
             {\"subject\":\"\",\"body\":\"tracking number?\",\"intent\":\"tracking\"}\n\
             {\"subject\":\"\",\"body\":\"refund refund\",\"intent\":\"tracking\"}\n",
        )
        .unwrap();
        let report = evaluate(&classifier, &mails, 0.0);
        assert_eq!(report.mails, 3);
        // Each mail is scored by a classifier that never trained on it. The
        // third mail's label contradicts its words: it is missed, and when it
        // is training data it teaches "refund" → tracking, so the first is too.
        let folds: Vec<Vec<LabelledMail>> = mails.iter().map(|m| vec![m.clone()]).collect();
        let options = crate::intent::ClassifierOptions {
            // Full weight for the linear model from one mail per intent.
            labelled_per_intent_for_full_weight: 1.0,
            ..Default::default()
        };
        let cv = cross_validate(&intents, &folds, options);
        assert_eq!(cv.fold_accuracy, vec![0.0, 1.0, 0.0]);
        assert!((cv.accuracy - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(cv.curve.len(), 20);
        assert_eq!(cv.curve[0].1, 1.0, "every mail is covered at threshold 0");
        assert!((report.accuracy - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(report.confusions, vec![("tracking".to_string(), "refund".to_string(), 1)]);
        let refund = report.per_intent.iter().find(|f| f.intent == "refund").unwrap();
        assert_eq!((refund.precision, refund.recall), (0.5, 1.0));
        assert!(parse_jsonl("{broken").is_err());
    }
}
