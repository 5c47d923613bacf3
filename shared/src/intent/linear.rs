//! A multinomial logistic regression over the catalogue's TF-IDF features,
//! trained at start-up on the catalogue's own documents. Where the
//! similarity scores reward the words an intent shares with its examples,
//! this learns which words *separate* neighbouring intents ("delivery" in an
//! address change vs. a late parcel).

use super::Vector;

/// How the model is trained. The defaults were chosen by cross-validation
/// on the dev splits: more epochs cost start-up time and bought nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Training {
    pub epochs: usize,
    pub learning_rate: f32,
    /// L2 penalty per step: keeps weights small, so one rare term cannot
    /// carry a whole classification and confidences stay calibrated.
    pub l2: f32,
}

impl Default for Training {
    fn default() -> Training {
        Training {
            epochs: 10,
            learning_rate: 1.0,
            l2: 1e-5,
        }
    }
}

pub(super) struct LinearModel {
    classes: usize,
    /// Row-major by feature: `weights[feature * classes + class]`, times `scale`.
    weights: Vec<f32>,
    /// Weight decay is applied lazily by shrinking this one number, so a
    /// step costs the sample's features, not the whole weight matrix.
    scale: f32,
    bias: Vec<f32>,
}

impl LinearModel {
    /// Stochastic gradient descent on cross-entropy, in a fixed order per
    /// epoch (a deterministic shuffle): the same catalogue always gives the
    /// same model.
    pub(super) fn train(samples: &[(usize, Vector)], classes: usize, features: usize, training: Training) -> LinearModel {
        let mut model = LinearModel {
            classes,
            weights: vec![0.0; features * classes],
            scale: 1.0,
            bias: vec![0.0; classes],
        };
        if samples.is_empty() || classes == 0 {
            return model;
        }
        // Slices, not hash maps: every step walks the sample's features twice.
        let samples: Vec<(usize, Vec<(u32, f32)>)> = samples
            .iter()
            .map(|(label, x)| (*label, x.iter().map(|(f, v)| (*f, *v)).collect()))
            .collect();
        let mut order: Vec<usize> = (0..samples.len()).collect();
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut probabilities = vec![0.0f32; classes];
        for epoch in 0..training.epochs {
            for i in (1..order.len()).rev() {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                order.swap(i, (seed >> 33) as usize % (i + 1));
            }
            let rate = training.learning_rate / (1.0 + epoch as f32 * 0.1);
            for &s in &order {
                let (label, x) = &samples[s];
                model.probabilities_into(x.iter().copied(), &mut probabilities);
                model.scale *= 1.0 - rate * training.l2;
                if model.scale < 1e-3 {
                    model.fold_scale();
                }
                // The gradient of cross-entropy: predicted minus wanted.
                probabilities[*label] -= 1.0;
                for (bias, gradient) in model.bias.iter_mut().zip(&probabilities) {
                    *bias -= rate * gradient;
                }
                let step = rate / model.scale;
                for (feature, value) in x {
                    let row = *feature as usize * classes;
                    for (weight, gradient) in model.weights[row..row + classes].iter_mut().zip(&probabilities) {
                        *weight -= step * gradient * value;
                    }
                }
            }
        }
        model.fold_scale();
        model
    }

    fn fold_scale(&mut self) {
        for w in &mut self.weights {
            *w *= self.scale;
        }
        self.scale = 1.0;
    }

    /// Class probabilities (they sum to 1) for a feature vector.
    pub(super) fn probabilities(&self, x: &Vector) -> Vec<f32> {
        let mut out = vec![0.0; self.classes];
        self.probabilities_into(x.iter().map(|(f, v)| (*f, *v)), &mut out);
        out
    }

    fn probabilities_into(&self, x: impl Iterator<Item = (u32, f32)>, out: &mut [f32]) {
        out.copy_from_slice(&self.bias);
        for (feature, value) in x {
            let row = feature as usize * self.classes;
            if let Some(weights) = self.weights.get(row..row + self.classes) {
                for (o, w) in out.iter_mut().zip(weights) {
                    *o += self.scale * w * value;
                }
            }
        }
        let max = out.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut total = 0.0;
        for o in out.iter_mut() {
            *o = (*o - max).exp();
            total += *o;
        }
        for o in out.iter_mut() {
            *o /= total;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(pairs: &[(u32, f32)]) -> Vector {
        pairs.iter().copied().collect()
    }

    #[test]
    fn learns_the_feature_that_separates_two_classes_not_the_one_they_share() {
        // Feature 0 is in both classes; 1 only in class 0; 2 only in class 1.
        let samples = vec![
            (0, vector(&[(0, 0.7), (1, 0.7)])),
            (1, vector(&[(0, 0.7), (2, 0.7)])),
            (0, vector(&[(1, 1.0)])),
            (1, vector(&[(2, 1.0)])),
        ];
        let model = LinearModel::train(&samples, 2, 3, Training::default());
        let p = model.probabilities(&vector(&[(0, 0.5), (2, 0.5)]));
        assert!(p[1] > 0.8, "{p:?}");
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        // Only the shared feature: no reason to prefer either class.
        let shared = model.probabilities(&vector(&[(0, 1.0)]));
        assert!((shared[0] - shared[1]).abs() < 0.2, "{shared:?}");
        // A feature the model never saw changes nothing and does not panic.
        assert_eq!(model.probabilities(&vector(&[(99, 1.0)])), model.probabilities(&Vector::new()));
    }

    #[test]
    fn training_is_deterministic() {
        let samples = vec![(0, vector(&[(0, 1.0)])), (1, vector(&[(1, 1.0)]))];
        let a = LinearModel::train(&samples, 2, 2, Training::default());
        let b = LinearModel::train(&samples, 2, 2, Training::default());
        assert_eq!(a.weights, b.weights);
    }
}
