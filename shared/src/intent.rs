//! Intent classification (SPEC §4).
//!
//! [`CatalogueClassifier`] works offline: at start-up it builds TF-IDF
//! vectors (word unigrams and bigrams, plus character 3–5-grams inside words,
//! which survive typos and inflections across languages) for each intent's
//! description, keyword phrases and examples. A mail (its subject and new
//! text) is scored against each intent by its similarity to the intent's
//! closest example and to the intent as a whole, plus the keyword phrases it
//! contains; the scores become confidences in [0, 1] that sum to at most 1.
//! Given labelled past cases ([`training`]), a logistic regression over the
//! same terms (`linear.rs`) is trained too and takes most of the confidence.
//!
//! [`LlmClassifier`] asks an OpenAI-compatible chat-completions endpoint
//! instead, and falls back to the catalogue classifier (and says so) when
//! the call fails or the answer is not a valid label.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use crate::config::IntentConfig;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntentScore {
    pub intent: String,
    pub confidence: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    /// Best first; empty when nothing matched at all.
    pub ranked: Vec<IntentScore>,
    /// How it was classified, e.g. `tfidf` (catalogue similarity),
    /// `tfidf+linear` (with the model trained on labelled mail),
    /// `llm:gpt-4o-mini`, `tfidf+linear (llm failed: …)`.
    pub method: String,
}

impl Classification {
    pub fn best(&self) -> Option<&IntentScore> {
        self.ranked.first()
    }
}

pub type ClassifyFuture<'a> = Pin<Box<dyn Future<Output = Classification> + Send + 'a>>;

pub trait IntentClassifier: Send + Sync {
    /// Classifies the new text of a mail and its subject.
    fn classify<'a>(&'a self, subject: &'a str, new_text: &'a str) -> ClassifyFuture<'a>;
}

const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "can", "could", "do", "for", "from", "have", "hi", "hello", "hey", "i", "in",
    "is", "it", "its", "me", "my", "of", "on", "or", "please", "pls", "so", "that", "the", "this", "to", "was", "we", "with", "would",
    "you", "your", "thanks", "thank", "re", "aw", "fw", "fwd", "dear", "regards", "best", "kind", "ich", "mein", "meine", "die", "der",
    "das", "und", "ist", "bitte", "ein", "eine", "el", "la", "de", "que", "mi", "y", "en", "un", "una", "le", "les", "je", "ma", "mon",
    "est", "et", "des", "du", "an", "am", "just", "still", "yet", "been", "has", "had", "will", "did", "not", "no",
];

/// Every word, lowercased: keyword phrases match on these, so "not arrived"
/// stays a phrase of two words.
fn all_words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .map(|t| t.trim_matches('\'').to_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// The words that carry meaning: no stopwords, no bare numbers.
fn words(text: &str) -> Vec<String> {
    all_words(text)
        .into_iter()
        .filter(|t| !STOPWORDS.contains(&t.as_str()) && !t.chars().all(|c| c.is_ascii_digit()))
        .collect()
}

/// Calls `visit` with every term of a text: word bigrams, words (as `w:…`)
/// and character 3–5-grams of each word with its boundaries (`<word>`). One
/// buffer is reused, so scoring a mail allocates per word, not per term.
fn for_each_term(text: &str, mut visit: impl FnMut(&str)) {
    let words = words(text);
    let mut buffer = String::with_capacity(64);
    for pair in words.windows(2) {
        buffer.clear();
        buffer.push_str(&pair[0]);
        buffer.push(' ');
        buffer.push_str(&pair[1]);
        visit(&buffer);
    }
    let mut boundaries: Vec<usize> = Vec::with_capacity(32);
    for word in &words {
        buffer.clear();
        buffer.push_str("w:");
        buffer.push_str(word);
        visit(&buffer);
        buffer.clear();
        buffer.push('<');
        buffer.push_str(word);
        buffer.push('>');
        boundaries.clear();
        boundaries.extend(buffer.char_indices().map(|(i, _)| i));
        boundaries.push(buffer.len());
        let chars = boundaries.len() - 1;
        for n in 3..=5 {
            for start in 0..chars.saturating_sub(n - 1) {
                visit(&buffer[boundaries[start]..boundaries[start + n]]);
            }
        }
    }
}

/// A sparse unit vector, by term id.
type Vector = HashMap<u32, f32>;

/// One scored document: an intent's example, or the intent as a whole.
#[derive(Clone, Copy)]
enum Document {
    Example(usize),
    Centroid(usize),
}

struct IntentModel {
    name: String,
    keywords: Vec<Vec<String>>,
}

impl IntentModel {
    /// How many of the intent's keyword phrases the words contain (up to 3).
    fn keyword_hits(&self, words: &[String]) -> f32 {
        self.keywords
            .iter()
            .filter(|k| words.windows(k.len()).any(|w| w == k.as_slice()))
            .count()
            .min(3) as f32
    }
}

/// How the catalogue classifier is built. The defaults were chosen by
/// leave-one-split-out cross-validation on the dev splits (docs/intent.md).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassifierOptions {
    pub training: Training,
    /// Share of the confidence from the linear model once it has enough
    /// labelled mail; the rest comes from the similarity to the catalogue.
    pub linear_weight: f32,
    /// Labelled mails per intent at which the linear model gets its full
    /// share. With fewer it gets proportionally less, and with none it is
    /// not trained: a catalogue's few phrases are too little to learn
    /// from (a two-intent catalogue taught it that "arrived" means a late
    /// parcel even in "arrived broken, I want a refund").
    pub labelled_per_intent_for_full_weight: f32,
}

impl Default for ClassifierOptions {
    fn default() -> ClassifierOptions {
        ClassifierOptions {
            training: Training::default(),
            linear_weight: 0.85,
            labelled_per_intent_for_full_weight: 20.0,
        }
    }
}

pub struct CatalogueClassifier {
    vocabulary: HashMap<String, u32>,
    idf: Vec<f32>,
    intents: Vec<IntentModel>,
    documents: Vec<Document>,
    /// For each term, the documents containing it and its weight there: a
    /// mail's similarity to every document is one pass over its own terms.
    postings: Vec<Vec<(u32, f32)>>,
    /// Trained only when there is labelled mail (`linear_weight` > 0).
    linear: Option<LinearModel>,
    linear_weight: f32,
}

/// How much the parts of a score weigh.
const CLOSEST_EXAMPLE: f32 = 0.55;
const WHOLE_INTENT: f32 = 0.45;
const KEYWORD: f32 = 0.25;
/// Sharpness of the softmax that turns scores into confidences.
const TEMPERATURE: f32 = 0.06;

impl CatalogueClassifier {
    pub fn new(intents: &[IntentConfig]) -> CatalogueClassifier {
        CatalogueClassifier::trained(intents, &[], ClassifierOptions::default())
    }

    /// Also learns from labelled mails. Mails labelled with an intent the
    /// catalogue lacks are skipped ([`training::parse`] refuses them earlier).
    pub fn trained(intents: &[IntentConfig], labelled: &[TrainingMail], options: ClassifierOptions) -> CatalogueClassifier {
        // Documents: every example, the description, and the keywords together.
        let mut texts: Vec<(usize, String)> = intents
            .iter()
            .enumerate()
            .flat_map(|(i, intent)| {
                let mut docs: Vec<(usize, String)> = intent.examples.iter().map(|e| (i, e.clone())).collect();
                if !intent.description.is_empty() {
                    docs.push((i, intent.description.clone()));
                }
                if !intent.keywords.is_empty() {
                    docs.push((i, intent.keywords.join(" . ")));
                }
                docs
            })
            .collect();
        let catalogue_documents = texts.len();
        texts.extend(
            labelled
                .iter()
                .filter_map(|mail| Some((intents.iter().position(|i| i.name == mail.intent)?, mail.text.clone()))),
        );
        // Each document's term counts by id, building the vocabulary on the
        // way: a term is allocated once, when first seen.
        let mut vocabulary: HashMap<String, u32> = HashMap::new();
        let mut document_frequency: Vec<u32> = Vec::new();
        let counted: Vec<(usize, HashMap<u32, f32>)> = texts
            .iter()
            .map(|(i, text)| {
                let mut counts: HashMap<u32, f32> = HashMap::new();
                for_each_term(text, |term| {
                    let id = match vocabulary.get(term) {
                        Some(id) => *id,
                        None => {
                            let id = vocabulary.len() as u32;
                            vocabulary.insert(term.to_string(), id);
                            document_frequency.push(0);
                            id
                        }
                    };
                    *counts.entry(id).or_insert(0.0) += 1.0;
                });
                for id in counts.keys() {
                    document_frequency[*id as usize] += 1;
                }
                (*i, counts)
            })
            .collect();
        let n = counted.len().max(1) as f32;
        let idf: Vec<f32> = document_frequency
            .iter()
            .map(|df| ((1.0 + n) / (1.0 + *df as f32)).ln() + 1.0)
            .collect();
        let mut classifier = CatalogueClassifier {
            postings: vec![Vec::new(); vocabulary.len()],
            vocabulary,
            idf,
            intents: Vec::new(),
            documents: Vec::new(),
            linear: None,
            linear_weight: 0.0,
        };
        let labelled_mails = counted.len() - catalogue_documents;
        let full_weight_at = options.labelled_per_intent_for_full_weight * intents.len() as f32;
        classifier.linear_weight = options.linear_weight * (labelled_mails as f32 / full_weight_at.max(1.0)).min(1.0);
        let vectors: Vec<(usize, Vector)> = counted.into_iter().map(|(i, counts)| (i, classifier.weigh(counts))).collect();
        // Catalogue documents are scored by similarity; labelled mails only train.
        for (i, intent) in intents.iter().enumerate() {
            let examples: Vec<&Vector> = vectors[..catalogue_documents]
                .iter()
                .filter(|(owner, _)| *owner == i)
                .map(|(_, v)| v)
                .collect();
            let mut centroid: Vector = HashMap::new();
            for v in &examples {
                for (k, w) in *v {
                    *centroid.entry(*k).or_insert(0.0) += w;
                }
            }
            normalize(&mut centroid);
            for (document, vector) in examples
                .into_iter()
                .map(|v| (Document::Example(i), v))
                .chain(std::iter::once((Document::Centroid(i), &centroid)))
            {
                let id = classifier.documents.len() as u32;
                classifier.documents.push(document);
                for (term, weight) in vector {
                    classifier.postings[*term as usize].push((id, *weight));
                }
            }
            classifier.intents.push(IntentModel {
                name: intent.name.clone(),
                keywords: intent.keywords.iter().map(|k| all_words(k)).filter(|k| !k.is_empty()).collect(),
            });
        }
        // The linear model trains on every document, labelled mails
        // included, and on each keyword phrase on its own.
        if classifier.linear_weight > 0.0 {
            let keywords: Vec<(usize, Vector)> = intents
                .iter()
                .enumerate()
                .flat_map(|(i, intent)| intent.keywords.iter().map(move |k| (i, k)))
                .map(|(i, keyword)| {
                    let mut counts: HashMap<u32, f32> = HashMap::new();
                    for_each_term(keyword, |term| classifier.count(term, &mut counts));
                    (i, classifier.weigh(counts))
                })
                .collect();
            let samples: Vec<(usize, Vector)> = vectors.into_iter().chain(keywords).collect();
            classifier.linear = Some(LinearModel::train(
                &samples,
                classifier.intents.len(),
                classifier.vocabulary.len(),
                options.training,
            ));
        }
        classifier
    }

    fn count(&self, term: &str, counts: &mut HashMap<u32, f32>) {
        if let Some(id) = self.vocabulary.get(term) {
            *counts.entry(*id).or_insert(0.0) += 1.0;
        }
    }

    /// Term counts → a unit TF-IDF vector (sublinear term frequency).
    fn weigh(&self, counts: HashMap<u32, f32>) -> Vector {
        let mut vector: Vector = counts
            .into_iter()
            .map(|(id, tf)| (id, (1.0 + tf.ln()) * self.idf[id as usize]))
            .collect();
        normalize(&mut vector);
        vector
    }

    /// What the timeline calls this classifier.
    pub fn method(&self) -> &'static str {
        if self.linear_weight > 0.0 {
            "tfidf+linear"
        } else {
            "tfidf"
        }
    }

    /// Synchronous scoring, for benchmarks and the evaluation command.
    pub fn classify_now(&self, subject: &str, new_text: &str) -> Classification {
        let text = format!("{subject}\n{new_text}");
        let mut counts: HashMap<u32, f32> = HashMap::new();
        for_each_term(&text, |term| self.count(term, &mut counts));
        let mail = self.weigh(counts);
        let mail_words = all_words(&text);
        // Cosine similarity to every document at once, through the postings.
        let mut similarity = vec![0.0f32; self.documents.len()];
        for (term, weight) in &mail {
            for (document, document_weight) in &self.postings[*term as usize] {
                similarity[*document as usize] += weight * document_weight;
            }
        }
        let mut closest = vec![0.0f32; self.intents.len()];
        let mut whole = vec![0.0f32; self.intents.len()];
        for (document, score) in self.documents.iter().zip(&similarity) {
            match *document {
                Document::Example(i) => closest[i] = closest[i].max(*score),
                Document::Centroid(i) => whole[i] = *score,
            }
        }
        let hits: Vec<f32> = self.intents.iter().map(|intent| intent.keyword_hits(&mail_words)).collect();
        let scores: Vec<(String, f32)> = self
            .intents
            .iter()
            .enumerate()
            .map(|(i, intent)| {
                (
                    intent.name.clone(),
                    CLOSEST_EXAMPLE * closest[i] + WHOLE_INTENT * whole[i] + KEYWORD * hits[i],
                )
            })
            .collect();
        let best = scores.iter().map(|(_, s)| *s).fold(0.0f32, f32::max);
        // No term the classifier knows (from the catalogue or training data)
        // and no keyword: nothing to go on.
        if best <= 0.0 && mail.is_empty() {
            return Classification {
                ranked: Vec::new(),
                method: self.method().into(),
            };
        }
        // Softmax over the scores, with a "none of these" option at score 0.1
        // so a mail unlike every intent gets low confidence everywhere.
        let none = ((0.1f32 - best) / TEMPERATURE).exp();
        let exps: Vec<f32> = scores.iter().map(|(_, s)| ((s - best) / TEMPERATURE).exp()).collect();
        let total: f32 = exps.iter().sum::<f32>() + none;
        let share = self.linear_weight;
        let linear = match &self.linear {
            Some(model) => model.probabilities(&mail),
            None => vec![0.0; scores.len()],
        };
        let mut ranked: Vec<IntentScore> = scores
            .into_iter()
            .zip(exps.iter().zip(&linear))
            .map(|((intent, _), (e, l))| IntentScore {
                intent,
                confidence: f64::from((1.0 - share) * e / total + share * l),
            })
            .filter(|s| s.confidence > 0.001)
            .collect();
        ranked.sort_by(|a, b| b.confidence.total_cmp(&a.confidence).then_with(|| a.intent.cmp(&b.intent)));
        Classification {
            ranked,
            method: self.method().into(),
        }
    }
}

fn normalize(vector: &mut Vector) {
    let norm = vector.values().map(|w| w * w).sum::<f32>().sqrt();
    if norm > 0.0 {
        for w in vector.values_mut() {
            *w /= norm;
        }
    }
}

impl IntentClassifier for CatalogueClassifier {
    fn classify<'a>(&'a self, subject: &'a str, new_text: &'a str) -> ClassifyFuture<'a> {
        let result = self.classify_now(subject, new_text);
        Box::pin(async move { result })
    }
}

pub use linear::Training;
pub use llm::{LlmClassifier, LlmConfig};
pub use training::{TrainingError, TrainingMail};

pub mod eval;
mod linear;
mod llm;
pub mod training;

use linear::LinearModel;

#[derive(Debug, thiserror::Error)]
pub enum ClassifierSetupError {
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
    #[error(transparent)]
    Training(#[from] TrainingError),
}

/// The classifier the configuration asks for: the catalogue classifier,
/// trained on `[classifier] training` when set (S3 locations need `s3`);
/// with `[classifier.llm]`, the LLM with that classifier as its fallback.
pub async fn from_config(
    config: &crate::config::Config,
    secrets: &dyn crate::secrets::SecretResolver,
    s3: Option<&aws_sdk_s3::Client>,
) -> Result<Box<dyn IntentClassifier>, ClassifierSetupError> {
    let labelled = training::load(&config.classifier.training, config.source_dir.as_deref(), s3, &config.intents).await?;
    let catalogue = CatalogueClassifier::trained(&config.intents, &labelled, ClassifierOptions::default());
    match &config.classifier.llm {
        Some(llm) => {
            let key = match &llm.api_key {
                Some(reference) => Some(secrets.resolve(reference).await?),
                None => None,
            };
            Ok(Box::new(LlmClassifier::new(llm.clone(), key, &config.intents, catalogue)))
        }
        None => Ok(Box::new(catalogue)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intents() -> Vec<IntentConfig> {
        let make = |name: &str, keywords: &[&str], examples: &[&str]| IntentConfig {
            name: name.into(),
            description: String::new(),
            examples: examples.iter().map(|s| s.to_string()).collect(),
            keywords: keywords.iter().map(|s| s.to_string()).collect(),
            agent: None,
            workflow: None,
        };
        vec![
            make(
                "refund",
                &["refund", "money back"],
                &["I would like my money returned", "refund my order please"],
            ),
            make(
                "order_status",
                &["where is my order", "tracking"],
                &["my parcel has not arrived", "when will my package come"],
            ),
        ]
    }

    #[test]
    fn picks_the_intent_with_matching_phrases_and_survives_typos() {
        let c = CatalogueClassifier::new(&intents());
        let result = c.classify_now("Refund request", "I want my money back for order 42");
        assert_eq!(result.best().unwrap().intent, "refund");
        assert!(result.best().unwrap().confidence > 0.7, "{result:?}");
        assert_eq!(
            c.classify_now("Hi", "Where is my order? No tracking number yet")
                .best()
                .unwrap()
                .intent,
            "order_status"
        );
        assert_eq!(c.classify_now("", "my parcell hasnt arived").best().unwrap().intent, "order_status");
    }

    #[test]
    fn the_linear_model_speaks_in_proportion_to_the_labelled_mail_it_learned_from() {
        let intents = intents();
        // Catalogue only: similarity and keywords decide, and "arrived"
        // (an order_status word) does not outweigh "refund".
        let mail = (
            "My blender arrived broken",
            "It arrived with a cracked jug. I would like a refund, please.",
        );
        let catalogue_only = CatalogueClassifier::new(&intents);
        assert_eq!(catalogue_only.linear_weight, 0.0);
        assert_eq!(catalogue_only.classify_now(mail.0, mail.1).best().unwrap().intent, "refund");
        // Forty labelled mails (20 per intent: full weight) teach it a word
        // the catalogue never had.
        let labelled: Vec<TrainingMail> = (0..40)
            .map(|i| TrainingMail {
                intent: if i % 2 == 0 { "order_status" } else { "refund" }.into(),
                text: if i % 2 == 0 {
                    format!("the gizmo {i} is late")
                } else {
                    format!("money for order {i} please")
                },
            })
            .collect();
        let trained = CatalogueClassifier::trained(&intents, &labelled, ClassifierOptions::default());
        assert!((trained.linear_weight - 0.85).abs() < 1e-6);
        assert_eq!((catalogue_only.method(), trained.method()), ("tfidf", "tfidf+linear"));
        let best = trained.classify_now("Gizmo", "any news about the gizmo?").best().cloned().unwrap();
        assert_eq!(best.intent, "order_status");
        assert!(best.confidence > 0.5, "{best:?}");
        // Four mails: a tenth of the share.
        let few = CatalogueClassifier::trained(&intents, &labelled[..4], ClassifierOptions::default());
        assert!((few.linear_weight - 0.085).abs() < 1e-6);
    }

    #[test]
    fn unrelated_text_gets_low_confidence_and_mixed_mail_less_than_clear_mail() {
        let c = CatalogueClassifier::new(&intents());
        let unrelated = c.classify_now("", "lorem ipsum dolor");
        assert!(unrelated.best().is_none_or(|b| b.confidence < 0.5), "{unrelated:?}");
        let clear = c.classify_now("", "refund please").best().unwrap().confidence;
        let mixed = c.classify_now("", "refund, and where is my order").best().unwrap().confidence;
        assert!(mixed < clear);
        let sum: f64 = c.classify_now("", "refund and tracking").ranked.iter().map(|s| s.confidence).sum();
        assert!(sum <= 1.0 + 1e-6);
    }
}
