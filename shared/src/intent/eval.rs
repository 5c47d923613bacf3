//! Measuring a classifier on labelled mail: accuracy, coverage and
//! precision at the threshold, how much out-of-scope mail is held, a
//! reliability table (is a confidence of 0.8 right 80% of the time?),
//! second-request detection, per-intent precision and recall, confusion
//! pairs, and cross-validation, which also fits the calibration.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::calibration::{self, Calibration, FitSample};
use super::{CatalogueClassifier, Classification, ClassifierOptions, RawScores, TrainingMail, OUT_OF_SCOPE};
use crate::inbound::extract_new_text;

/// One labelled mail (a line of the JSONL file). `intent` may be
/// [`OUT_OF_SCOPE`]; `second` is the other request of a mail that makes two.
#[derive(Debug, Clone, Deserialize)]
pub struct LabelledMail {
    pub subject: String,
    pub body: String,
    pub intent: String,
    #[serde(default)]
    pub second: Option<String>,
}

/// A catalogue file: `[[intents]]` and an optional `[classifier]` (the same
/// sections as in the full configuration).
#[derive(Debug, Clone, Deserialize)]
pub struct Catalogue {
    pub intents: Vec<crate::config::IntentConfig>,
    #[serde(default)]
    pub classifier: crate::config::ClassifierConfig,
}

impl Catalogue {
    /// The classes a classifier trained on `labelled` learns (see [`super::classes`]).
    pub fn classes(&self, labelled: &[TrainingMail]) -> Vec<crate::config::IntentConfig> {
        super::classes(&self.intents, &self.classifier.out_of_scope, labelled)
    }
}

/// What the classifier did with one labelled mail.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub truth: String,
    pub second_truth: Option<String>,
    pub predicted: Option<String>,
    pub confidence: f64,
    pub second_predicted: Option<String>,
}

impl Scored {
    fn new(mail: &LabelledMail, classification: &Classification) -> Scored {
        let best = classification.best();
        Scored {
            truth: mail.intent.clone(),
            second_truth: mail.second.clone(),
            predicted: best.map(|b| b.intent.clone()),
            confidence: best.map_or(0.0, |b| b.confidence),
            second_predicted: classification.second.as_ref().map(|s| s.intent.clone()),
        }
    }

    fn right(&self) -> bool {
        self.predicted.as_deref() == Some(self.truth.as_str())
    }

    fn out_of_scope(&self) -> bool {
        self.truth == OUT_OF_SCOPE
    }

    /// Would go to an agent: a support intent at the threshold or above.
    fn routed(&self, threshold: f64) -> bool {
        self.predicted.as_deref().is_some_and(|p| p != OUT_OF_SCOPE) && self.confidence >= threshold
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct IntentFigures {
    pub intent: String,
    pub precision: f64,
    pub recall: f64,
    pub support: usize,
}

/// One confidence bin of the reliability table.
#[derive(Debug, Clone, PartialEq)]
pub struct ReliabilityBin {
    pub low: f64,
    pub high: f64,
    pub mails: usize,
    pub mean_confidence: f64,
    /// Share of the bin's best guesses that were right.
    pub accuracy: f64,
}

/// Second-request detection on mails labelled with a `second`.
#[derive(Debug, Clone, PartialEq)]
pub struct SecondFigures {
    pub two_request_mails: usize,
    /// The second request found, with the right intent.
    pub found: usize,
    /// A second request reported, but another intent.
    pub wrong_intent: usize,
    pub one_request_mails: usize,
    /// Mails with one request for which a second was reported.
    pub false_alarms: usize,
}

/// At one threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct AtThreshold {
    pub threshold: f64,
    /// Share of support mail routed to an agent.
    pub coverage: f64,
    /// Share of routed support mail routed right.
    pub covered_accuracy: f64,
    /// Share of all routed mail (out-of-scope included) routed right.
    pub precision: f64,
    /// Share of out-of-scope mail not routed.
    pub out_of_scope_held: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EvalReport {
    /// Support mails (labelled with an intent).
    pub mails: usize,
    pub out_of_scope_mails: usize,
    pub threshold: f64,
    /// Best guess right on support mail, whatever its confidence.
    pub accuracy: f64,
    pub at: AtThreshold,
    /// Share of out-of-scope mail whose best guess was out-of-scope.
    pub out_of_scope_recognised: f64,
    /// Share of support mail whose best guess was out-of-scope.
    pub support_taken_for_out_of_scope: f64,
    /// Confidence bins of 0.1 over every mail: out-of-scope mail is right
    /// when taken for out-of-scope.
    pub reliability: Vec<ReliabilityBin>,
    /// None when no mail has a `second` label.
    pub second: Option<SecondFigures>,
    pub per_intent: Vec<IntentFigures>,
    /// (true, predicted, count), most frequent first.
    pub confusions: Vec<(String, String, usize)>,
    /// At thresholds 0.00, 0.05, … 0.95.
    pub curve: Vec<AtThreshold>,
    /// Mails whose best guess was wrong: (line index, true, predicted, confidence).
    pub misses: Vec<(usize, String, String, f64)>,
}

impl EvalReport {
    /// The largest distance between observed accuracy and mean confidence
    /// over the bins with at least `min_mails` mails.
    pub fn reliability_gap(&self, min_mails: usize) -> f64 {
        self.reliability
            .iter()
            .filter(|b| b.mails >= min_mails)
            .map(|b| (b.accuracy - b.mean_confidence).abs())
            .fold(0.0, f64::max)
    }
}

pub fn parse_jsonl(text: &str) -> Result<Vec<LabelledMail>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}

fn raw_scores(classifier: &CatalogueClassifier, mail: &LabelledMail) -> RawScores {
    // The new text, as in production.
    classifier.raw_scores(&mail.subject, &extract_new_text(&mail.body))
}

pub fn evaluate(classifier: &CatalogueClassifier, mails: &[LabelledMail], threshold: f64) -> EvalReport {
    let scored: Vec<Scored> = mails
        .iter()
        .map(|m| {
            let c = classifier.classify_now(&m.subject, &extract_new_text(&m.body));
            Scored::new(m, &c)
        })
        .collect();
    report(&scored, threshold)
}

fn share(count: usize, of: usize) -> f64 {
    if of == 0 {
        0.0
    } else {
        count as f64 / of as f64
    }
}

fn at_threshold(scored: &[Scored], threshold: f64) -> AtThreshold {
    let support: Vec<&Scored> = scored.iter().filter(|s| !s.out_of_scope()).collect();
    let routed_support: Vec<&&Scored> = support.iter().filter(|s| s.routed(threshold)).collect();
    let routed = scored.iter().filter(|s| s.routed(threshold)).count();
    let routed_right = scored.iter().filter(|s| s.routed(threshold) && s.right()).count();
    let out_of_scope: Vec<&Scored> = scored.iter().filter(|s| s.out_of_scope()).collect();
    AtThreshold {
        threshold,
        coverage: share(routed_support.len(), support.len()),
        covered_accuracy: share(routed_support.iter().filter(|s| s.right()).count(), routed_support.len()),
        precision: share(routed_right, routed),
        out_of_scope_held: share(out_of_scope.iter().filter(|s| !s.routed(threshold)).count(), out_of_scope.len()),
    }
}

/// The report over scored mails (in the order of the labelled file).
pub fn report(scored: &[Scored], threshold: f64) -> EvalReport {
    let support: Vec<&Scored> = scored.iter().filter(|s| !s.out_of_scope()).collect();
    let out_of_scope: Vec<&Scored> = scored.iter().filter(|s| s.out_of_scope()).collect();
    let mut intents: Vec<String> = scored.iter().map(|s| s.truth.clone()).collect();
    intents.sort();
    intents.dedup();
    let per_intent = intents
        .iter()
        .map(|intent| {
            let predicted = scored.iter().filter(|s| s.predicted.as_deref() == Some(intent.as_str())).count();
            let actual = scored.iter().filter(|s| &s.truth == intent).count();
            let hits = scored.iter().filter(|s| &s.truth == intent && s.right()).count();
            IntentFigures {
                intent: intent.clone(),
                precision: share(hits, predicted),
                recall: share(hits, actual),
                support: actual,
            }
        })
        .collect();
    let mut pairs: BTreeMap<(String, String), usize> = BTreeMap::new();
    for s in scored.iter().filter(|s| !s.right()) {
        let predicted = s.predicted.clone().unwrap_or_else(|| "(none)".into());
        *pairs.entry((s.truth.clone(), predicted)).or_insert(0) += 1;
    }
    let mut confusions: Vec<(String, String, usize)> = pairs.into_iter().map(|((t, p), c)| (t, p, c)).collect();
    confusions.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    let misses = scored
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.right())
        .map(|(i, s)| {
            (
                i,
                s.truth.clone(),
                s.predicted.clone().unwrap_or_else(|| "(none)".into()),
                s.confidence,
            )
        })
        .collect();
    let reliability = (0..10)
        .map(|bin| {
            let (low, high) = (f64::from(bin) / 10.0, f64::from(bin + 1) / 10.0);
            let inside: Vec<&Scored> = scored
                .iter()
                .filter(|s| s.confidence >= low && (s.confidence < high || (bin == 9 && s.confidence <= high)))
                .collect();
            ReliabilityBin {
                low,
                high,
                mails: inside.len(),
                mean_confidence: if inside.is_empty() {
                    0.0
                } else {
                    inside.iter().map(|s| s.confidence).sum::<f64>() / inside.len() as f64
                },
                accuracy: share(inside.iter().filter(|s| s.right()).count(), inside.len()),
            }
        })
        .collect();
    let two: Vec<&&Scored> = support.iter().filter(|s| s.second_truth.is_some()).collect();
    let second = (!two.is_empty()).then(|| {
        let one: Vec<&&Scored> = support.iter().filter(|s| s.second_truth.is_none()).collect();
        SecondFigures {
            two_request_mails: two.len(),
            found: two
                .iter()
                .filter(|s| s.second_predicted.is_some() && s.second_predicted == s.second_truth)
                .count(),
            wrong_intent: two
                .iter()
                .filter(|s| s.second_predicted.is_some() && s.second_predicted != s.second_truth)
                .count(),
            one_request_mails: one.len(),
            false_alarms: one.iter().filter(|s| s.second_predicted.is_some()).count(),
        }
    });
    EvalReport {
        mails: support.len(),
        out_of_scope_mails: out_of_scope.len(),
        threshold,
        accuracy: share(support.iter().filter(|s| s.right()).count(), support.len()),
        at: at_threshold(scored, threshold),
        out_of_scope_recognised: share(out_of_scope.iter().filter(|s| s.right()).count(), out_of_scope.len()),
        support_taken_for_out_of_scope: share(
            support.iter().filter(|s| s.predicted.as_deref() == Some(OUT_OF_SCOPE)).count(),
            support.len(),
        ),
        reliability,
        second,
        per_intent,
        confusions,
        curve: (0..20).map(|i| at_threshold(scored, f64::from(i) / 20.0)).collect(),
        misses,
    }
}

/// Leave-one-fold-out cross-validation: for each fold, a classifier
/// trained on the catalogue and every other fold scores that fold.
#[derive(Debug, Clone)]
pub struct CrossValidation {
    /// Accuracy of each fold's best guesses (support and out-of-scope mail).
    pub fold_accuracy: Vec<f64>,
    /// Every mail, fold after fold, as `calibration` left it.
    pub scored: Vec<(usize, Scored)>,
    /// Fitted on these out-of-fold scores when asked to.
    pub fitted: Option<Calibration>,
}

impl CrossValidation {
    pub fn report(&self, threshold: f64) -> EvalReport {
        let scored: Vec<Scored> = self.scored.iter().map(|(_, s)| s.clone()).collect();
        report(&scored, threshold)
    }

    /// The report of one fold's mails alone.
    pub fn fold_report(&self, fold: usize, threshold: f64) -> EvalReport {
        let scored: Vec<Scored> = self.scored.iter().filter(|(k, _)| *k == fold).map(|(_, s)| s.clone()).collect();
        report(&scored, threshold)
    }
}

/// How `intent cv --calibrate` fits.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    /// Mails per isotonic step, at least.
    pub min_bin: usize,
    /// The folds whose out-of-fold scores the fit (and its precision table)
    /// uses; empty: every fold.
    pub folds: Vec<usize>,
}

/// Cross-validates. The classes are the catalogue's plus out-of-scope when
/// the catalogue or the folds have it. With `calibration`, each mail's
/// confidence goes through it; with `fit`, a calibration is fitted on the
/// raw out-of-fold scores and then used instead, with its table of
/// precision at each threshold filled in.
pub fn cross_validate(
    catalogue: &Catalogue,
    folds: &[Vec<LabelledMail>],
    options: ClassifierOptions,
    calibration: Option<&Calibration>,
    fit: Option<&Fit>,
) -> CrossValidation {
    let every: Vec<TrainingMail> = folds.iter().flatten().map(TrainingMail::from_labelled).collect();
    let classes = catalogue.classes(&every);
    // (fold, mail, its classifier's raw scores); classifiers kept per fold
    // to conclude with the calibration.
    let mut raw: Vec<(usize, &LabelledMail, RawScores)> = Vec::new();
    let mut classifiers = Vec::new();
    for (k, fold) in folds.iter().enumerate() {
        let training: Vec<TrainingMail> = folds
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != k)
            .flat_map(|(_, other)| other.iter().map(TrainingMail::from_labelled))
            .collect();
        let classifier = CatalogueClassifier::trained(&classes, &training, options);
        raw.extend(fold.iter().map(|mail| (k, mail, raw_scores(&classifier, mail))));
        classifiers.push(classifier);
    }
    let in_fit = |k: usize| fit.is_some_and(|f| f.folds.is_empty() || f.folds.contains(&k));
    let fitted = fit.map(|fit| {
        let samples: Vec<FitSample> = raw
            .iter()
            .filter(|(k, _, _)| in_fit(*k))
            .map(|(_, mail, scores)| FitSample {
                ranked: scores.ranked.clone(),
                none: scores.none,
                truth: scores.ranked.iter().position(|s| s.intent == mail.intent),
            })
            .collect();
        calibration::fit(&samples, fit.min_bin)
    });
    let used = fitted.as_ref().or(calibration);
    let scored: Vec<(usize, Scored)> = raw
        .into_iter()
        .map(|(k, mail, scores)| (k, Scored::new(mail, &classifiers[k].conclude(scores, used))))
        .collect();
    let fitted = fitted.map(|mut calibration| {
        let plain: Vec<Scored> = scored.iter().filter(|(k, _)| in_fit(*k)).map(|(_, s)| s.clone()).collect();
        let table: Vec<AtThreshold> = (0..20).map(|i| at_threshold(&plain, f64::from(i) / 20.0)).collect();
        calibration.thresholds = table.iter().map(|t| t.threshold).collect();
        calibration.precision = table.iter().map(|t| round(t.precision)).collect();
        calibration.coverage = table.iter().map(|t| round(t.coverage)).collect();
        calibration.temperature = round(calibration.temperature);
        calibration.raw = calibration.raw.iter().map(|x| round(*x)).collect();
        calibration.calibrated = calibration.calibrated.iter().map(|x| round(*x)).collect();
        calibration
    });
    let fold_accuracy = (0..folds.len())
        .map(|k| {
            let fold: Vec<&Scored> = scored.iter().filter(|(j, _)| *j == k).map(|(_, s)| s).collect();
            share(fold.iter().filter(|s| s.right()).count(), fold.len())
        })
        .collect();
    CrossValidation {
        fold_accuracy,
        scored,
        fitted,
    }
}

/// Four decimals: the calibration is written into a configuration file.
fn round(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalogue() -> Catalogue {
        toml::from_str(
            r#"
            [[intents]]
            name = "refund"
            examples = ["refund my money"]
            keywords = ["refund"]
            [[intents]]
            name = "tracking"
            examples = ["where is my parcel"]
            keywords = ["tracking"]
            "#,
        )
        .unwrap()
    }

    #[test]
    fn counts_accuracy_coverage_and_confusions() {
        let catalogue = catalogue();
        let classifier = CatalogueClassifier::new(&catalogue.intents);
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
        let cv = cross_validate(&catalogue, &folds, options, None, None);
        assert_eq!(cv.fold_accuracy, vec![0.0, 1.0, 0.0]);
        let pooled = cv.report(0.0);
        assert!((pooled.accuracy - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(pooled.curve.len(), 20);
        assert_eq!(pooled.curve[0].coverage, 1.0, "every mail is covered at threshold 0");
        assert!((report.accuracy - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(report.confusions, vec![("tracking".to_string(), "refund".to_string(), 1)]);
        let refund = report.per_intent.iter().find(|f| f.intent == "refund").unwrap();
        assert_eq!((refund.precision, refund.recall), (0.5, 1.0));
        assert!(parse_jsonl("{broken").is_err());
    }

    fn scored(truth: &str, predicted: &str, confidence: f64, second: Option<(&str, Option<&str>)>) -> Scored {
        Scored {
            truth: truth.into(),
            second_truth: second.map(|s| s.0.to_string()),
            predicted: Some(predicted.into()),
            confidence,
            second_predicted: second.and_then(|s| s.1.map(str::to_string)),
        }
    }

    #[test]
    fn out_of_scope_mail_held_precision_reliability_and_second_requests() {
        let mut mails = vec![
            // Support mail: right at 0.95, right at 0.35 (below 0.5), wrong at 0.9.
            scored("refund", "refund", 0.95, Some(("tracking", Some("tracking")))),
            scored("refund", "refund", 0.35, Some(("tracking", None))),
            scored("tracking", "refund", 0.9, None),
            // Out-of-scope: recognised, held by the threshold, routed.
            scored(OUT_OF_SCOPE, OUT_OF_SCOPE, 0.8, None),
            scored(OUT_OF_SCOPE, "refund", 0.3, None),
            scored(OUT_OF_SCOPE, "tracking", 0.7, None),
        ];
        mails[2].second_predicted = Some("tracking".into());
        let report = report(&mails, 0.5);
        assert_eq!((report.mails, report.out_of_scope_mails), (3, 3));
        assert!((report.at.coverage - 2.0 / 3.0).abs() < 1e-9);
        assert!((report.at.covered_accuracy - 0.5).abs() < 1e-9);
        // Routed: two support mails (one right) and one out-of-scope mail.
        assert!((report.at.precision - 1.0 / 3.0).abs() < 1e-9);
        assert!((report.at.out_of_scope_held - 2.0 / 3.0).abs() < 1e-9);
        assert!((report.out_of_scope_recognised - 1.0 / 3.0).abs() < 1e-9);
        let top = &report.reliability[9];
        assert_eq!((top.mails, top.accuracy), (2, 0.5));
        assert!((top.mean_confidence - 0.925).abs() < 1e-9);
        assert!((report.reliability_gap(2) - 0.425).abs() < 1e-9);
        assert_eq!(report.reliability_gap(3), 0.0, "no bin has three mails");
        assert_eq!(
            report.second,
            Some(SecondFigures {
                two_request_mails: 2,
                found: 1,
                wrong_intent: 0,
                one_request_mails: 1,
                false_alarms: 1,
            })
        );
    }

    #[test]
    fn cross_validation_fits_a_calibration_with_its_precision_table() {
        let catalogue = catalogue();
        let fold = |n: usize| -> Vec<LabelledMail> {
            (0..n)
                .map(|i| LabelledMail {
                    subject: String::new(),
                    body: if i % 2 == 0 {
                        format!("refund for order {i} please")
                    } else {
                        format!("tracking for parcel {i}?")
                    },
                    intent: if i % 2 == 0 { "refund" } else { "tracking" }.into(),
                    second: None,
                })
                .collect()
        };
        let folds = vec![fold(20), fold(20)];
        let fit = Fit {
            min_bin: 5,
            folds: Vec::new(),
        };
        let cv = cross_validate(&catalogue, &folds, ClassifierOptions::default(), None, Some(&fit));
        let fitted = cv.fitted.clone().unwrap();
        fitted.validate().unwrap();
        assert_eq!(fitted.mails, 40);
        assert_eq!(fitted.thresholds.len(), 20);
        assert!(fitted.threshold_for_precision(0.9).is_ok(), "{fitted:?}");
    }
}
