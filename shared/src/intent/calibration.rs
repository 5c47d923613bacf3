//! Calibrated confidence: the classifier's raw scores are a mixture of a
//! linear model and catalogue similarity, whose numbers are not
//! probabilities. A calibration fitted on cross-validation (`intent cv
//! --calibrate`) maps them so that the confidence of the best guess
//! estimates the probability that it is right, and records the precision
//! that routing at each threshold had there, so `route_at_precision` can
//! pick the threshold.
//!
//! The map has two parts:
//! - temperature scaling of the whole distribution (with the "none of
//!   these" share as one more option), which keeps the ranking and the sum;
//! - then an isotonic (monotone, piecewise-linear) map of the best guess's
//!   confidence, which corrects the shape temperature cannot.

use serde::{Deserialize, Serialize};

use super::IntentScore;

/// `[classifier.calibration]`: written by `intent cv --calibrate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// Scores are raised to 1/temperature and renormalised: above 1 softens
    /// an overconfident classifier, below 1 sharpens it.
    pub temperature: f64,
    /// Isotonic map of the best guess's confidence after temperature:
    /// `raw[i]` becomes `calibrated[i]`, linear in between; both ascending.
    /// Empty: temperature only.
    #[serde(default)]
    pub raw: Vec<f64>,
    #[serde(default)]
    pub calibrated: Vec<f64>,
    /// For `route_at_precision`: at each threshold (ascending), the share of
    /// the cross-validated mail routed to an agent that went to the right
    /// one, and the share of in-scope mail routed.
    #[serde(default)]
    pub thresholds: Vec<f64>,
    #[serde(default)]
    pub precision: Vec<f64>,
    #[serde(default)]
    pub coverage: Vec<f64>,
    /// Mails the fit saw (for the record).
    #[serde(default)]
    pub mails: usize,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CalibrationError {
    #[error("temperature {0} is not a positive number")]
    Temperature(f64),
    #[error("{0}")]
    Table(&'static str),
    #[error("no threshold in the calibration reaches precision {0}")]
    Unreachable(f64),
}

impl Calibration {
    /// Temperature scaling only, before an isotonic map is fitted.
    fn temperature_only(temperature: f64, mails: usize) -> Calibration {
        Calibration {
            temperature,
            raw: Vec::new(),
            calibrated: Vec::new(),
            thresholds: Vec::new(),
            precision: Vec::new(),
            coverage: Vec::new(),
            mails,
        }
    }

    /// Checks the tables: lengths agree, values are in [0, 1] and ascend
    /// where they must, so applying the map cannot go wrong later.
    pub fn validate(&self) -> Result<(), CalibrationError> {
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err(CalibrationError::Temperature(self.temperature));
        }
        let unit = |v: &[f64]| v.iter().all(|x| (0.0..=1.0).contains(x));
        let ascending = |v: &[f64]| v.windows(2).all(|w| w[0] <= w[1]);
        if self.raw.len() != self.calibrated.len() {
            return Err(CalibrationError::Table("raw and calibrated need the same length"));
        }
        if !(unit(&self.raw) && unit(&self.calibrated) && ascending(&self.raw) && ascending(&self.calibrated)) {
            return Err(CalibrationError::Table("raw and calibrated must ascend within [0, 1]"));
        }
        if self.thresholds.len() != self.precision.len() || self.thresholds.len() != self.coverage.len() {
            return Err(CalibrationError::Table("thresholds, precision and coverage need the same length"));
        }
        if !(unit(&self.thresholds) && unit(&self.precision) && unit(&self.coverage) && ascending(&self.thresholds)) {
            return Err(CalibrationError::Table("thresholds must ascend, and every share be within [0, 1]"));
        }
        Ok(())
    }

    /// The lowest threshold from which on routing was at least `precision`
    /// precise in the cross-validation (every higher threshold too, so the
    /// choice does not hang on one lucky step).
    pub fn threshold_for_precision(&self, precision: f64) -> Result<f64, CalibrationError> {
        let mut chosen = None;
        for (threshold, reached) in self.thresholds.iter().zip(&self.precision).rev() {
            if *reached + 1e-9 < precision {
                break;
            }
            chosen = Some(*threshold);
        }
        chosen.ok_or(CalibrationError::Unreachable(precision))
    }

    /// Calibrates a distribution in place (best first, as the classifier
    /// ranks). `none` is the share no intent took, which takes part in the
    /// temperature scaling and is then dropped.
    pub fn apply(&self, ranked: &mut [IntentScore], none: f64) {
        let power = 1.0 / self.temperature;
        let scaled: Vec<f64> = ranked.iter().map(|s| s.confidence.max(1e-12).powf(power)).collect();
        let total: f64 = scaled.iter().sum::<f64>() + if none > 0.0 { none.powf(power) } else { 0.0 };
        if total <= 0.0 {
            return;
        }
        for (score, value) in ranked.iter_mut().zip(scaled) {
            score.confidence = value / total;
        }
        // The isotonic map speaks for the best guess only; the others are
        // scaled by the same factor so the ranking cannot change.
        if let Some(best) = ranked.first().map(|s| s.confidence) {
            let mapped = self.map_best(best);
            if best > 0.0 {
                let factor = mapped / best;
                for score in ranked.iter_mut() {
                    score.confidence = (score.confidence * factor).clamp(0.0, mapped);
                }
            }
        }
    }

    fn map_best(&self, x: f64) -> f64 {
        // Validated tables have equal lengths; an unvalidated one maps nothing.
        let (raw, calibrated) = (&self.raw, &self.calibrated);
        if raw.len() != calibrated.len() {
            return x;
        }
        let (Some(first), Some(last), Some(low), Some(high)) = (raw.first(), raw.last(), calibrated.first(), calibrated.last()) else {
            return x;
        };
        if x <= *first {
            return *low;
        }
        if x >= *last {
            return *high;
        }
        // first < x < last, so 1 <= i < len.
        let i = raw.partition_point(|r| *r <= x).clamp(1, raw.len() - 1);
        let (x0, x1, y0, y1) = (raw[i - 1], raw[i], calibrated[i - 1], calibrated[i]);
        if x1 - x0 <= 1e-12 {
            y1
        } else {
            y0 + (y1 - y0) * (x - x0) / (x1 - x0)
        }
    }
}

/// One cross-validated mail for fitting: its raw distribution (best first),
/// the share no intent took, and the index in it of the right label (none
/// when the right label is not ranked at all).
#[derive(Debug, Clone)]
pub struct FitSample {
    pub ranked: Vec<IntentScore>,
    pub none: f64,
    pub truth: Option<usize>,
}

/// Fits temperature (by the log-likelihood of the right label) and then the
/// isotonic map of the best guess's confidence (pool adjacent violators over
/// bins of at least `min_bin` mails, so one mail cannot make a step).
pub fn fit(samples: &[FitSample], min_bin: usize) -> Calibration {
    let nll = |temperature: f64| -> f64 {
        let calibration = Calibration::temperature_only(temperature, 0);
        samples
            .iter()
            .map(|s| {
                let mut ranked = s.ranked.clone();
                calibration.apply(&mut ranked, s.none);
                let p = s.truth.and_then(|t| ranked.get(t)).map_or(1e-6, |r| r.confidence);
                -p.max(1e-6).ln()
            })
            .sum()
    };
    // Golden-section search over log(temperature) in [1/8, 8].
    let (mut low, mut high) = ((0.125f64).ln(), 8f64.ln());
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..60 {
        let a = high - ratio * (high - low);
        let b = low + ratio * (high - low);
        if nll(a.exp()) <= nll(b.exp()) {
            high = b;
        } else {
            low = a;
        }
    }
    let temperature = ((low + high) / 2.0).exp();
    let mut calibration = Calibration::temperature_only(temperature, samples.len());
    // (confidence after temperature, right) sorted by confidence.
    let mut points: Vec<(f64, f64)> = samples
        .iter()
        .map(|s| {
            let mut ranked = s.ranked.clone();
            calibration.apply(&mut ranked, s.none);
            (
                ranked.first().map_or(0.0, |r| r.confidence),
                if s.truth == Some(0) { 1.0 } else { 0.0 },
            )
        })
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (raw, calibrated) = isotonic(&points, min_bin.max(1));
    calibration.raw = raw;
    calibration.calibrated = calibrated;
    calibration
}

/// Pool adjacent violators: blocks of (sum x, sum y, count), merged while a
/// block's mean y is not above its predecessor's or it holds fewer than
/// `min_bin` points. Knots at each block's mean confidence and its
/// (smoothed) share right.
fn isotonic(points: &[(f64, f64)], min_bin: usize) -> (Vec<f64>, Vec<f64>) {
    let mut blocks: Vec<(f64, f64, usize)> = Vec::new();
    for chunk in points.chunks(min_bin) {
        let block = chunk.iter().fold((0.0, 0.0, 0), |(x, y, n), p| (x + p.0, y + p.1, n + 1));
        blocks.push(block);
        while blocks.len() >= 2 {
            let last = blocks[blocks.len() - 1];
            let previous = blocks[blocks.len() - 2];
            let small = last.2 < min_bin;
            if small || last.1 / last.2 as f64 <= previous.1 / previous.2 as f64 {
                blocks.pop();
                if let Some(merged) = blocks.last_mut() {
                    *merged = (merged.0 + last.0, merged.1 + last.1, merged.2 + last.2);
                }
            } else {
                break;
            }
        }
    }
    let raw: Vec<f64> = blocks.iter().map(|b| b.0 / b.2 as f64).collect();
    // Half a mail right and half wrong added to each step: a step where
    // every mail was right says 0.99, not a certainty the data cannot give.
    let calibrated: Vec<f64> = blocks.iter().map(|b| (b.1 + 0.5) / (b.2 as f64 + 1.0)).collect();
    (raw, calibrated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(intent: &str, confidence: f64) -> IntentScore {
        IntentScore {
            intent: intent.into(),
            confidence,
            second_request: false,
        }
    }

    #[test]
    fn an_overconfident_classifier_is_softened_and_the_ranking_kept() {
        // Says 0.9 but is right 60% of the time.
        let samples: Vec<FitSample> = (0..100)
            .map(|i| FitSample {
                ranked: vec![score("a", 0.9), score("b", 0.1)],
                none: 0.0,
                truth: Some(if i % 10 < 6 { 0 } else { 1 }),
            })
            .collect();
        let calibration = fit(&samples, 10);
        assert!(calibration.temperature > 1.0, "{calibration:?}");
        let mut ranked = vec![score("a", 0.9), score("b", 0.1)];
        calibration.apply(&mut ranked, 0.0);
        assert!((ranked[0].confidence - 0.6).abs() < 0.02, "{ranked:?}");
        assert!(ranked[0].confidence >= ranked[1].confidence);
        calibration.validate().unwrap();
    }

    #[test]
    fn isotonic_blocks_ascend_and_hold_enough_mail() {
        let points: Vec<(f64, f64)> = (0..40).map(|i| (f64::from(i) / 40.0, if i % 3 == 0 { 0.0 } else { 1.0 })).collect();
        let (raw, calibrated) = isotonic(&points, 10);
        assert!(raw.len() <= 4);
        assert!(calibrated.windows(2).all(|w| w[0] < w[1]), "{calibrated:?}");
        assert!(raw.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn the_threshold_for_a_precision_holds_at_every_higher_threshold() {
        let calibration = Calibration {
            temperature: 1.0,
            raw: vec![],
            calibrated: vec![],
            thresholds: vec![0.1, 0.2, 0.3, 0.4],
            precision: vec![0.90, 0.96, 0.94, 0.97],
            coverage: vec![1.0, 0.9, 0.8, 0.7],
            mails: 10,
        };
        assert_eq!(calibration.threshold_for_precision(0.95), Ok(0.4));
        assert_eq!(calibration.threshold_for_precision(0.9), Ok(0.1));
        assert_eq!(calibration.threshold_for_precision(0.99), Err(CalibrationError::Unreachable(0.99)));
        let bad = Calibration {
            raw: vec![0.5, 0.2],
            calibrated: vec![0.1, 0.2],
            ..calibration.clone()
        };
        assert!(bad.validate().is_err());
        let mut ranked = vec![score("a", 0.7)];
        calibration.apply(&mut ranked, 0.3);
        assert!((ranked[0].confidence - 0.7).abs() < 1e-9, "temperature 1 and no map change nothing");
    }
}
