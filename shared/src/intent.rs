//! Intent classification (SPEC §4). This is the first, keyword-and-example
//! classifier; it works offline and reports a confidence in [0, 1].

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
    pub method: String,
}

impl Classification {
    pub fn best(&self) -> Option<&IntentScore> {
        self.ranked.first()
    }
}

pub trait IntentClassifier: Send + Sync {
    /// Classifies the new text of a mail and its subject.
    fn classify(&self, subject: &str, new_text: &str) -> Classification;
}

const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "can", "could", "do", "for", "from", "have", "hi", "hello", "i", "in", "is",
    "it", "me", "my", "of", "on", "or", "please", "so", "that", "the", "this", "to", "was", "we", "with", "would", "you", "your", "thanks",
    "thank", "re", "fw", "fwd", "dear", "regards",
];

fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(|t| t.to_lowercase())
        .filter(|t| !STOPWORDS.contains(&t.as_str()))
        .collect()
}

struct IntentModel {
    name: String,
    /// Keyword phrases as token sequences.
    keywords: Vec<Vec<String>>,
    example_tokens: std::collections::HashSet<String>,
}

/// Scores intents by keyword phrases found (strong) and words shared with the
/// intent's examples (weak).
pub struct KeywordClassifier {
    intents: Vec<IntentModel>,
}

impl KeywordClassifier {
    pub fn new(intents: &[IntentConfig]) -> KeywordClassifier {
        let intents = intents
            .iter()
            .map(|i| IntentModel {
                name: i.name.clone(),
                keywords: i.keywords.iter().map(|k| tokens(k)).filter(|k| !k.is_empty()).collect(),
                example_tokens: i.examples.iter().flat_map(|e| tokens(e)).collect(),
            })
            .collect();
        KeywordClassifier { intents }
    }
}

fn contains_phrase(haystack: &[String], phrase: &[String]) -> bool {
    !phrase.is_empty() && haystack.windows(phrase.len()).any(|w| w == phrase)
}

impl IntentClassifier for KeywordClassifier {
    fn classify(&self, subject: &str, new_text: &str) -> Classification {
        let mut words = tokens(subject);
        words.extend(tokens(new_text));
        let distinct: std::collections::HashSet<&String> = words.iter().collect();
        let mut scored: Vec<(String, f64)> = self
            .intents
            .iter()
            .map(|intent| {
                let keyword_hits = intent.keywords.iter().filter(|k| contains_phrase(&words, k)).count() as f64;
                let shared = distinct.iter().filter(|w| intent.example_tokens.contains(w.as_str())).count() as f64;
                (intent.name.clone(), 2.0 * keyword_hits + 0.25 * shared)
            })
            .filter(|(_, score)| *score > 0.0)
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let total: f64 = scored.iter().map(|(_, s)| s).sum();
        let ranked = scored
            .into_iter()
            .map(|(intent, score)| IntentScore {
                intent,
                confidence: (score / (total + 0.5)).clamp(0.0, 1.0),
            })
            .collect();
        Classification {
            ranked,
            method: "keyword".into(),
        }
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
            make("refund", &["refund", "money back"], &["I would like my money returned"]),
            make("order_status", &["where is my order", "tracking"], &["my parcel has not arrived"]),
        ]
    }

    #[test]
    fn picks_the_intent_with_matching_phrases() {
        let c = KeywordClassifier::new(&intents());
        let result = c.classify("Refund request", "I want my money back for order 42");
        assert_eq!(result.best().unwrap().intent, "refund");
        assert!(result.best().unwrap().confidence > 0.7);
        let result = c.classify("Hi", "Where is my order? No tracking number yet");
        assert_eq!(result.best().unwrap().intent, "order_status");
    }

    #[test]
    fn nothing_matches_gives_no_intent_and_mixed_mail_lower_confidence() {
        let c = KeywordClassifier::new(&intents());
        assert!(c.classify("", "lorem ipsum").best().is_none());
        let clear = c.classify("", "refund please").best().unwrap().confidence;
        let mixed = c.classify("", "refund, and where is my order").best().unwrap().confidence;
        assert!(mixed < clear);
    }
}
