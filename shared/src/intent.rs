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
//! Mail that is not a support request at all is one more class,
//! [`OUT_OF_SCOPE`], learned from `[classifier.out_of_scope]` examples and
//! labelled mail. A [`Calibration`] fitted on cross-validation turns the
//! scores into estimates of the probability that the label is right.
//!
//! [`LlmClassifier`] asks an OpenAI-compatible chat-completions endpoint,
//! and [`BedrockClassifier`] the Amazon Bedrock Converse API, instead; both
//! fall back to the catalogue classifier (and say so) when the call fails
//! or the answer is not a valid label.

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use crate::config::IntentConfig;

/// The label of mail that is not a support request (job applications,
/// sales pitches, newsletters, …). Reserved: no intent may be called so.
pub const OUT_OF_SCOPE: &str = "out_of_scope";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntentScore {
    pub intent: String,
    pub confidence: f64,
    /// The mail also asks for this, besides the intent it is routed by.
    /// Kept with the case's scores (so the agent's context shows it);
    /// absent from JSON when false, as in cases stored before it existed.
    #[serde(default, rename = "secondRequest", skip_serializing_if = "std::ops::Not::not")]
    pub second_request: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    /// Best first; empty when nothing matched at all.
    pub ranked: Vec<IntentScore>,
    /// A second request in the same mail (another intent), when one stands
    /// out above the classifier's second-intent threshold. Routing keeps
    /// the best; this is recorded for the agent and representatives.
    #[serde(default)]
    pub second: Option<IntentScore>,
    /// How it was classified, e.g. `tfidf` (catalogue similarity),
    /// `tfidf+linear` (with the model trained on labelled mail),
    /// `llm:gpt-4o-mini`, `bedrock:…`, `tfidf+linear (llm failed: …)`.
    pub method: String,
}

impl Classification {
    pub fn best(&self) -> Option<&IntentScore> {
        self.ranked.first()
    }

    /// The best guess is that this is not a support request.
    pub fn is_out_of_scope(&self) -> bool {
        self.best().is_some_and(|b| b.intent == OUT_OF_SCOPE)
    }

    /// The scores kept on the case: the top three, and the second request
    /// (marked) when there is one, so the agent's context can show it.
    pub fn case_scores(&self) -> Vec<IntentScore> {
        let mut scores: Vec<IntentScore> = self.ranked.iter().take(3).cloned().collect();
        if let Some(second) = &self.second {
            scores.retain(|s| s.intent != second.intent);
            let at = scores.len().min(1);
            scores.insert(
                at,
                IntentScore {
                    second_request: true,
                    ..second.clone()
                },
            );
        }
        scores
    }
}

pub type ClassifyFuture<'a> = Pin<Box<dyn Future<Output = Classification> + Send + 'a>>;

pub trait IntentClassifier: Send + Sync {
    /// Classifies the new text of a mail and its subject.
    fn classify<'a>(&'a self, subject: &'a str, new_text: &'a str) -> ClassifyFuture<'a>;
}

/// What happens to mail the classifier takes for not a support request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutOfScopeAction {
    /// A representative gets the case (with the reason), as for low confidence.
    #[default]
    Hold,
    /// The case is recorded and closed without an answer or a queue notice,
    /// when the confidence is at least the routing threshold (below it, the
    /// mail is held: a real request must not vanish unseen).
    Record,
}

/// `[classifier.out_of_scope]`: examples of mail that is not a support
/// request, in the catalogue's languages, and what to do with such mail.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutOfScopeConfig {
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub examples: Vec<String>,
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default)]
    pub action: OutOfScopeAction,
}

/// The classes the catalogue classifier learns: the catalogue's intents
/// and, when the configuration gives out-of-scope examples or labelled
/// mail is labelled so, [`OUT_OF_SCOPE`].
pub fn classes(intents: &[IntentConfig], out_of_scope: &OutOfScopeConfig, labelled: &[TrainingMail]) -> Vec<IntentConfig> {
    let mut classes = intents.to_vec();
    if !out_of_scope.examples.is_empty() || !out_of_scope.keywords.is_empty() || labelled.iter().any(|m| m.intent == OUT_OF_SCOPE) {
        classes.push(IntentConfig {
            name: OUT_OF_SCOPE.into(),
            description: out_of_scope.description.clone(),
            examples: out_of_scope.examples.clone(),
            keywords: out_of_scope.keywords.clone(),
            agent: None,
            workflow: None,
        });
    }
    classes
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

fn meaningful(word: &str) -> bool {
    !STOPWORDS.contains(&word) && !word.chars().all(|c| c.is_ascii_digit())
}

/// Words that turn the next few words around: "not cancel", "kein Abo".
const NEGATIONS: &[&str] = &[
    "not", "no", "never", "don't", "dont", "didn't", "doesn't", "isn't", "wasn't", "haven't", "hasn't", "won't", "nothing", "nicht",
    "kein", "keine", "keinen", "nie", "nunca", "nada", "ni", "pas", "jamais", "aucun", "aucune", "sans", "sin", "ohne", "without",
];
/// How many meaningful words after a negation it covers.
const NEGATION_REACH: usize = 2;

/// Light suffix stripping for the catalogue's languages (English, German,
/// Spanish, French): "cancelled", "cancelling" and "cancellation" meet at
/// one stem ("cance"). Crude on purpose: the character n-grams carry the
/// rest. Off by default (cross-validation found no gain).
fn stem(word: &str) -> &str {
    const SUFFIXES: &[&str] = &[
        "ations", "ation", "ungen", "ciones", "ción", "ments", "ment", "ings", "ing", "ed", "es", "en", "er", "ung", "s", "e",
    ];
    let length = word.chars().count();
    for suffix in SUFFIXES {
        if length >= suffix.chars().count() + 4 {
            if let Some(stripped) = word.strip_suffix(suffix) {
                return stripped.trim_end_matches("ll");
            }
        }
    }
    word
}

/// Which terms a text becomes. The defaults were chosen by
/// cross-validation on the dev files (docs/intent.md).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Features {
    /// Word features (`w:` and bigrams) on light stems.
    pub stem: bool,
    /// The meaningful words after a negation also count as `!word`.
    pub negation: bool,
    /// Subject words also count on their own (`s:word`): a subject says
    /// in a few words what the mail is about, or misleads.
    pub subject_terms: bool,
    /// The subject of a reply or forward ("Re:", "AW:", "Fwd:", …) is left
    /// out: it names the thread's old topic, not what the new text asks.
    pub skip_reply_subjects: bool,
    /// Character n-grams inside words, from `char_min` to `char_max` long.
    pub char_min: usize,
    pub char_max: usize,
}

impl Default for Features {
    fn default() -> Features {
        Features {
            stem: false,
            negation: false,
            subject_terms: false,
            skip_reply_subjects: false,
            char_min: 3,
            char_max: 5,
        }
    }
}

/// Calls `visit` with every term of a text: word bigrams, words (as `w:…`)
/// and character n-grams of each word with its boundaries (`<word>`). One
/// buffer is reused, so scoring a mail allocates per word, not per term.
fn for_each_term(text: &str, features: Features, mut visit: impl FnMut(&str)) {
    let mut words: Vec<String> = Vec::new();
    let mut negated: Vec<String> = Vec::new();
    let mut reach = 0;
    for word in all_words(text) {
        if features.negation && NEGATIONS.contains(&word.as_str()) {
            reach = NEGATION_REACH;
            continue;
        }
        if !meaningful(&word) {
            continue;
        }
        if reach > 0 {
            reach -= 1;
            negated.push(format!("!{}", if features.stem { stem(&word) } else { &word }));
        }
        words.push(word);
    }
    let mut buffer = String::with_capacity(64);
    let term_word = |word: &str| if features.stem { stem(word).to_string() } else { word.to_string() };
    let stems: Vec<String> = words.iter().map(|w| term_word(w)).collect();
    for pair in stems.windows(2) {
        buffer.clear();
        buffer.push_str(&pair[0]);
        buffer.push(' ');
        buffer.push_str(&pair[1]);
        visit(&buffer);
    }
    for term in &negated {
        visit(term);
    }
    let mut boundaries: Vec<usize> = Vec::with_capacity(32);
    for (word, stemmed) in words.iter().zip(&stems) {
        buffer.clear();
        buffer.push_str("w:");
        buffer.push_str(stemmed);
        visit(&buffer);
        buffer.clear();
        buffer.push('<');
        buffer.push_str(word);
        buffer.push('>');
        boundaries.clear();
        boundaries.extend(buffer.char_indices().map(|(i, _)| i));
        boundaries.push(buffer.len());
        let chars = boundaries.len() - 1;
        for n in features.char_min..=features.char_max {
            for start in 0..chars.saturating_sub(n.max(1) - 1) {
                visit(&buffer[boundaries[start]..boundaries[start + n]]);
            }
        }
    }
}

/// "Re: …", "AW: …", "Fwd: …" and their kin in the catalogue's languages.
fn is_reply_subject(subject: &str) -> bool {
    const PREFIXES: &[&str] = &["re", "aw", "fw", "fwd", "wg", "rv", "tr", "r", "antw", "réf", "ref"];
    let Some((prefix, _)) = subject.trim_start().split_once(':') else {
        return false;
    };
    let prefix = prefix.trim().to_lowercase();
    PREFIXES.contains(&prefix.as_str())
}

/// The terms of a mail: those of its subject and text together and, when
/// `subject_terms` is on, the subject's words again as `s:word`.
fn for_each_mail_term(subject: &str, text: &str, features: Features, mut visit: impl FnMut(&str)) {
    let subject = if features.skip_reply_subjects && is_reply_subject(subject) {
        ""
    } else {
        subject
    };
    let whole = format!("{subject}\n{text}");
    for_each_term(&whole, features, &mut visit);
    if features.subject_terms {
        let mut buffer = String::with_capacity(32);
        for word in all_words(subject).into_iter().filter(|w| meaningful(w)) {
            buffer.clear();
            buffer.push_str("s:");
            buffer.push_str(if features.stem { stem(&word) } else { &word });
            visit(&buffer);
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
/// leave-one-file-out cross-validation on the dev files (docs/intent.md).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassifierOptions {
    pub training: Training,
    pub features: Features,
    /// Share of the confidence from the linear model once it has enough
    /// labelled mail; the rest comes from the similarity to the catalogue.
    pub linear_weight: f32,
    /// Labelled mails per intent at which the linear model gets its full
    /// share. With fewer it gets proportionally less, and with none it is
    /// not trained: a catalogue's few phrases are too little to learn
    /// from (a two-intent catalogue taught it that "arrived" means a late
    /// parcel even in "arrived broken, I want a refund").
    pub labelled_per_intent_for_full_weight: f32,
    /// A second request is a sentence of the mail that the linear model
    /// gives to another support intent with at least this probability…
    pub second_at: f64,
    /// …while the whole mail gives that intent at least this share. Or the
    /// whole mail's runner-up has at least `second_runner_up`.
    pub second_share: f64,
    pub second_runner_up: f64,
}

impl Default for ClassifierOptions {
    fn default() -> ClassifierOptions {
        ClassifierOptions {
            training: Training::default(),
            features: Features::default(),
            linear_weight: 0.85,
            labelled_per_intent_for_full_weight: 20.0,
            second_at: 0.7,
            second_share: 0.1,
            second_runner_up: 0.3,
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
    features: Features,
    second_at: f64,
    second_share: f64,
    second_runner_up: f64,
    calibration: Option<Calibration>,
}

/// How much the parts of a score weigh.
const CLOSEST_EXAMPLE: f32 = 0.55;
const WHOLE_INTENT: f32 = 0.45;
const KEYWORD: f32 = 0.25;
/// Sharpness of the softmax that turns scores into confidences.
const TEMPERATURE: f32 = 0.06;

/// A classification before calibration: every class's share, best first,
/// and the share no class took (the similarity's "none of these").
#[derive(Debug, Clone, PartialEq)]
pub struct RawScores {
    pub ranked: Vec<IntentScore>,
    pub none: f64,
    /// For each sentence of the new text (when it has two or more), the
    /// linear model's best class for it and that class's probability.
    pub sentences: Vec<(usize, f32)>,
}

impl CatalogueClassifier {
    pub fn new(intents: &[IntentConfig]) -> CatalogueClassifier {
        CatalogueClassifier::trained(intents, &[], ClassifierOptions::default())
    }

    /// Also learns from labelled mails. Mails labelled with an intent the
    /// catalogue lacks are skipped ([`training::parse`] refuses them earlier).
    /// `intents` are the classes: pass [`classes`] to include out-of-scope.
    pub fn trained(intents: &[IntentConfig], labelled: &[TrainingMail], options: ClassifierOptions) -> CatalogueClassifier {
        let features = options.features;
        // Documents: every example, the description, and the keywords together.
        let mut texts: Vec<(usize, &str, Cow<str>)> = intents
            .iter()
            .enumerate()
            .flat_map(|(i, intent)| {
                let mut docs: Vec<(usize, &str, Cow<str>)> = intent.examples.iter().map(|e| (i, "", Cow::from(e.as_str()))).collect();
                if !intent.description.is_empty() {
                    docs.push((i, "", Cow::from(intent.description.as_str())));
                }
                if !intent.keywords.is_empty() {
                    docs.push((i, "", Cow::from(intent.keywords.join(" . "))));
                }
                docs
            })
            .collect();
        let catalogue_documents = texts.len();
        texts.extend(labelled.iter().filter_map(|mail| {
            Some((
                intents.iter().position(|i| i.name == mail.intent)?,
                mail.subject.as_str(),
                Cow::from(mail.text.as_str()),
            ))
        }));
        // Each document's term counts by id, building the vocabulary on the
        // way: a term is allocated once, when first seen.
        let mut vocabulary: HashMap<String, u32> = HashMap::new();
        let mut document_frequency: Vec<u32> = Vec::new();
        let counted: Vec<(usize, HashMap<u32, f32>)> = texts
            .iter()
            .map(|(i, subject, text)| {
                let mut counts: HashMap<u32, f32> = HashMap::new();
                for_each_mail_term(subject, text, features, |term| {
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
            features,
            second_at: options.second_at,
            second_share: options.second_share,
            second_runner_up: options.second_runner_up,
            calibration: None,
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
                    for_each_term(keyword, features, |term| classifier.count(term, &mut counts));
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

    /// Confidences from now on go through `calibration` (fitted by
    /// `intent cv --calibrate` on this catalogue and training data).
    pub fn with_calibration(mut self, calibration: Option<Calibration>) -> CatalogueClassifier {
        self.calibration = calibration;
        self
    }

    /// Whether out-of-scope is one of this classifier's classes.
    pub fn knows_out_of_scope(&self) -> bool {
        self.intents.iter().any(|i| i.name == OUT_OF_SCOPE)
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
        match (self.linear_weight > 0.0, self.calibration.is_some()) {
            (true, true) => "tfidf+linear, calibrated",
            (true, false) => "tfidf+linear",
            (false, true) => "tfidf, calibrated",
            (false, false) => "tfidf",
        }
    }

    /// Synchronous scoring, for benchmarks and the evaluation command:
    /// calibrated (when a calibration is set), with a second request.
    pub fn classify_now(&self, subject: &str, new_text: &str) -> Classification {
        self.conclude(self.raw_scores(subject, new_text), self.calibration.as_ref())
    }

    /// Raw scores → the classification: calibrated with `calibration`,
    /// tiny shares dropped, the second request found. Cross-validation
    /// scores each mail once and concludes it under several calibrations.
    pub fn conclude(&self, raw: RawScores, calibration: Option<&Calibration>) -> Classification {
        let mut ranked = raw.ranked;
        if let Some(calibration) = calibration {
            calibration.apply(&mut ranked, raw.none);
        }
        ranked.retain(|s| s.confidence > 0.001);
        let second = self.second_request(&ranked, &raw.sentences);
        Classification {
            ranked,
            second,
            method: self.method().into(),
        }
    }

    /// Every class's share before calibration (what a calibration is fitted
    /// on); empty when the mail has no term the classifier knows.
    pub fn raw_scores(&self, subject: &str, new_text: &str) -> RawScores {
        let mut counts: HashMap<u32, f32> = HashMap::new();
        for_each_mail_term(subject, new_text, self.features, |term| self.count(term, &mut counts));
        let mail = self.weigh(counts);
        let subject = if self.features.skip_reply_subjects && is_reply_subject(subject) {
            ""
        } else {
            subject
        };
        let mail_words = all_words(&format!("{subject}\n{new_text}"));
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
        let scores: Vec<f32> = self
            .intents
            .iter()
            .enumerate()
            .map(|(i, intent)| CLOSEST_EXAMPLE * closest[i] + WHOLE_INTENT * whole[i] + KEYWORD * intent.keyword_hits(&mail_words))
            .collect();
        let best = scores.iter().copied().fold(0.0f32, f32::max);
        // No term the classifier knows (from the catalogue or training data)
        // and no keyword: nothing to go on.
        if best <= 0.0 && mail.is_empty() {
            return RawScores {
                ranked: Vec::new(),
                none: 1.0,
                sentences: Vec::new(),
            };
        }
        // Softmax over the scores, with a "none of these" option at score 0.1
        // so a mail unlike every intent gets low confidence everywhere.
        let none = ((0.1f32 - best) / TEMPERATURE).exp();
        let exps: Vec<f32> = scores.iter().map(|s| ((s - best) / TEMPERATURE).exp()).collect();
        let total: f32 = exps.iter().sum::<f32>() + none;
        let share = self.linear_weight;
        let linear = match &self.linear {
            Some(model) => model.probabilities(&mail),
            None => vec![0.0; scores.len()],
        };
        let mut ranked: Vec<IntentScore> = self
            .intents
            .iter()
            .zip(exps.iter().zip(&linear))
            .map(|(intent, (e, l))| IntentScore {
                intent: intent.name.clone(),
                confidence: f64::from((1.0 - share) * e / total + share * l),
                second_request: false,
            })
            .collect();
        ranked.sort_by(|a, b| b.confidence.total_cmp(&a.confidence).then_with(|| a.intent.cmp(&b.intent)));
        RawScores {
            ranked,
            none: f64::from((1.0 - share) * none / total),
            sentences: self.sentences(new_text),
        }
    }

    /// Each sentence's best class by the linear model, when the text has
    /// two sentences or more of three words or more: a mail that asks two
    /// things mostly asks them in different sentences.
    fn sentences(&self, new_text: &str) -> Vec<(usize, f32)> {
        let Some(model) = &self.linear else {
            return Vec::new();
        };
        let sentences: Vec<&str> = new_text
            .split(['.', '!', '?', ';', '\n'])
            .filter(|s| s.split_whitespace().count() >= 3)
            .collect();
        if sentences.len() < 2 {
            return Vec::new();
        }
        sentences
            .into_iter()
            .filter_map(|sentence| {
                let mut counts: HashMap<u32, f32> = HashMap::new();
                for_each_term(sentence, self.features, |term| self.count(term, &mut counts));
                let probabilities = model.probabilities(&self.weigh(counts));
                probabilities
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map(|(class, p)| (class, *p))
            })
            .collect()
    }

    /// The second request: a sentence given to another support intent than
    /// the best with at least `second_at`, when the whole mail gives that
    /// intent at least `second_share` (so one stray sentence is not enough).
    fn second_request(&self, ranked: &[IntentScore], sentences: &[(usize, f32)]) -> Option<IntentScore> {
        let best = ranked.first().filter(|b| b.intent != OUT_OF_SCOPE)?;
        let runner_up = ranked
            .iter()
            .skip(1)
            .find(|s| s.intent != OUT_OF_SCOPE)
            .filter(|s| s.confidence >= self.second_runner_up)
            .cloned();
        sentences
            .iter()
            .filter(|(_, p)| f64::from(*p) >= self.second_at)
            .filter_map(|(class, _)| {
                let name = &self.intents.get(*class)?.name;
                let whole = ranked.iter().find(|s| &s.intent == name)?;
                (name != &best.intent && name != OUT_OF_SCOPE && whole.confidence >= self.second_share).then(|| IntentScore {
                    intent: name.clone(),
                    confidence: whole.confidence,
                    second_request: false,
                })
            })
            .chain(runner_up)
            .max_by(|a, b| a.confidence.total_cmp(&b.confidence))
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

pub use bedrock::{client as bedrock_client, BedrockClassifier, BedrockConfig};
pub use calibration::Calibration;
pub use linear::Training;
pub use llm::{LlmClassifier, LlmConfig};
pub use training::{TrainingError, TrainingMail};

mod bedrock;
pub mod calibration;
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

/// The offline classifier the configuration describes: the catalogue's
/// intents (and out-of-scope examples), trained on `[classifier] training`
/// when set (S3 locations need `s3`), with its calibration.
pub async fn catalogue_from_config(
    config: &crate::config::Config,
    s3: Option<&aws_sdk_s3::Client>,
) -> Result<CatalogueClassifier, ClassifierSetupError> {
    Ok(load_catalogue(config, s3).await?.0)
}

/// The catalogue classifier and the classes it chose among.
async fn load_catalogue(
    config: &crate::config::Config,
    s3: Option<&aws_sdk_s3::Client>,
) -> Result<(CatalogueClassifier, Vec<IntentConfig>), ClassifierSetupError> {
    let labelled = training::load(&config.classifier.training, config.source_dir.as_deref(), s3, &config.intents).await?;
    let classes = classes(&config.intents, &config.classifier.out_of_scope, &labelled);
    let classifier = CatalogueClassifier::trained(&classes, &labelled, ClassifierOptions::default())
        .with_calibration(config.classifier.calibration.clone());
    Ok((classifier, classes))
}

/// The classifier the configuration asks for: the catalogue classifier;
/// with `[classifier.llm]` or `[classifier.bedrock]`, that model with the
/// catalogue classifier as its fallback. Both models choose among the same
/// classes, out-of-scope included.
pub async fn from_config(
    config: &crate::config::Config,
    secrets: &dyn crate::secrets::SecretResolver,
    s3: Option<&aws_sdk_s3::Client>,
) -> Result<Box<dyn IntentClassifier>, ClassifierSetupError> {
    let (catalogue, classes) = load_catalogue(config, s3).await?;
    if let Some(bedrock) = &config.classifier.bedrock {
        let client = bedrock::client(bedrock).await;
        return Ok(Box::new(BedrockClassifier::new(bedrock.clone(), client, &classes, catalogue)));
    }
    match &config.classifier.llm {
        Some(llm) => {
            let key = match &llm.api_key {
                Some(reference) => Some(secrets.resolve(reference).await?),
                None => None,
            };
            Ok(Box::new(LlmClassifier::new(llm.clone(), key, &classes, catalogue)))
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
                subject: String::new(),
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
    fn feature_options_stem_mark_negations_and_skip_reply_subjects() {
        assert_eq!([stem("cancelled"), stem("cancelling"), stem("cancellation")], ["cance"; 3]);
        assert_eq!(stem("box"), "box", "short words stay");
        let terms = |text: &str, features: Features| {
            let mut all = Vec::new();
            for_each_term(text, features, |t| all.push(t.to_string()));
            all
        };
        let negation = Features {
            negation: true,
            ..Features::default()
        };
        assert!(terms("I do not want to cancel", negation).contains(&"!want".to_string()));
        assert!(!terms("I do not want to cancel", Features::default())
            .iter()
            .any(|t| t.starts_with('!')));
        assert!(is_reply_subject("Re: your refund") && is_reply_subject("AW: Bestellung") && is_reply_subject("Fwd: x"));
        assert!(!is_reply_subject("Refund: order 12") && !is_reply_subject("Where is my order"));
        let mut subject_terms = Vec::new();
        let skip = Features {
            skip_reply_subjects: true,
            subject_terms: true,
            ..Features::default()
        };
        for_each_mail_term("Re: refund", "where is my parcel", skip, |t| subject_terms.push(t.to_string()));
        assert!(!subject_terms.iter().any(|t| t.contains("refund")), "{subject_terms:?}");
    }

    #[test]
    fn a_sentence_for_another_intent_is_a_second_request() {
        let intents = intents();
        let labelled: Vec<TrainingMail> = (0..40)
            .map(|i| TrainingMail {
                intent: if i % 2 == 0 { "order_status" } else { "refund" }.into(),
                subject: String::new(),
                text: if i % 2 == 0 {
                    format!("where is parcel {i}, tracking shows nothing")
                } else {
                    format!("please refund order {i}, I want my money back")
                },
            })
            .collect();
        let classifier = CatalogueClassifier::trained(&intents, &labelled, ClassifierOptions::default());
        let two = classifier.classify_now(
            "Refund and tracking",
            "Please refund order 7, I want my money back now.\nAnd where is parcel 9, the tracking shows nothing at all.",
        );
        let (best, second) = (two.best().unwrap().intent.clone(), two.second.clone().map(|s| s.intent));
        assert!(
            (best.as_str(), second.as_deref()) == ("refund", Some("order_status"))
                || (best.as_str(), second.as_deref()) == ("order_status", Some("refund")),
            "{two:?}"
        );
        let one = classifier.classify_now("Refund", "Please refund order 7, I want my money back now.");
        assert_eq!(one.second, None, "{one:?}");
        let scores = two.case_scores();
        assert_eq!(scores.iter().filter(|s| s.second_request).count(), 1);
        assert_eq!(scores[0].intent, best);
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
