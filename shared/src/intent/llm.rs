//! Intent classification by an LLM behind an OpenAI-compatible
//! chat-completions endpoint, with the catalogue classifier as fallback.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::{CatalogueClassifier, Classification, ClassifyFuture, IntentClassifier, IntentScore};
use crate::config::IntentConfig;

/// `[classifier.llm]` in the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmConfig {
    /// e.g. `https://api.openai.com/v1` or a local server's `/v1`.
    pub base_url: String,
    pub model: String,
    /// Where the API key is (never the key itself).
    #[serde(default)]
    pub api_key: Option<crate::config::SecretRef>,
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
}

fn default_timeout() -> u64 {
    5_000
}

/// Mail text sent to the model, at most.
pub(super) const MAX_PROMPT_CHARS: usize = 4_000;

pub struct LlmClassifier {
    http: reqwest::Client,
    config: LlmConfig,
    api_key: Option<String>,
    system_prompt: String,
    names: Vec<String>,
    fallback: CatalogueClassifier,
}

/// The system prompt both LLM providers send: the classes with their
/// descriptions and first example, and the JSON the answer must be.
pub(super) fn system_prompt(intents: &[IntentConfig]) -> String {
    let catalogue: String = intents
        .iter()
        .map(|i| {
            format!(
                "- {}: {}{}",
                i.name,
                i.description,
                i.examples.first().map(|e| format!(" (e.g. \"{e}\")")).unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    format!(
        "You classify customer-support emails into exactly one intent.\nIntents:\n{catalogue}\n\
         Answer with JSON only: {{\"intent\": \"<one of the names above, or none>\", \"confidence\": <number from 0 to 1>}}."
    )
}

/// The user message: the subject and at most [`MAX_PROMPT_CHARS`] of the text.
pub(super) fn user_message(subject: &str, new_text: &str) -> String {
    let text: String = new_text.chars().take(MAX_PROMPT_CHARS).collect();
    format!("Subject: {subject}\n\n{text}")
}

/// Reads the model's answer: `{"intent", "confidence"}` with a known label
/// (or `none`) and a confidence in [0, 1]; anything else is an error, and
/// the caller falls back to the catalogue classifier.
pub(super) fn parse_label(content: &str, names: &[String], method: String) -> Result<Classification, String> {
    // Some models wrap JSON in a code fence despite the instruction.
    let trimmed = content
        .trim()
        .trim_start_matches("```json")
        .trim_start_matches("```")
        .trim_end_matches("```")
        .trim();
    let label: serde_json::Value = serde_json::from_str(trimmed).map_err(|_| "label is not JSON".to_string())?;
    let intent = label["intent"].as_str().ok_or("label has no intent")?;
    let confidence = label["confidence"]
        .as_f64()
        .filter(|c| (0.0..=1.0).contains(c))
        .ok_or("confidence is not a number in [0, 1]")?;
    if intent == "none" {
        return Ok(Classification {
            ranked: Vec::new(),
            second: None,
            method,
        });
    }
    if !names.iter().any(|n| n == intent) {
        return Err(format!("unknown intent {intent:?}"));
    }
    Ok(Classification {
        ranked: vec![IntentScore {
            intent: intent.to_string(),
            confidence,
            second_request: false,
        }],
        second: None,
        method,
    })
}

impl LlmClassifier {
    /// `intents` are the classes to choose among (the catalogue's, and
    /// out-of-scope when the fallback knows it).
    pub fn new(config: LlmConfig, api_key: Option<String>, intents: &[IntentConfig], fallback: CatalogueClassifier) -> LlmClassifier {
        LlmClassifier {
            http: reqwest::Client::new(),
            config,
            api_key,
            system_prompt: system_prompt(intents),
            names: intents.iter().map(|i| i.name.clone()).collect(),
            fallback,
        }
    }

    async fn ask(&self, subject: &str, new_text: &str) -> Result<Classification, String> {
        let body = json!({
            "model": self.config.model,
            "temperature": 0,
            "response_format": {"type": "json_object"},
            "messages": [
                {"role": "system", "content": self.system_prompt},
                {"role": "user", "content": user_message(subject, new_text)},
            ],
        });
        let url = format!("{}/chat/completions", self.config.base_url.trim_end_matches('/'));
        let mut request = self
            .http
            .post(url)
            .timeout(Duration::from_millis(self.config.timeout_ms))
            .json(&body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                "timed out".to_string()
            } else {
                "unreachable".to_string()
            }
        })?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status().as_u16()));
        }
        let value: serde_json::Value = response.json().await.map_err(|_| "answer is not JSON".to_string())?;
        let content = value["choices"][0]["message"]["content"]
            .as_str()
            .ok_or("answer has no message content")?;
        parse_label(content, &self.names, format!("llm:{}", self.config.model))
    }
}

/// The catalogue classifier's answer, its method saying why it was asked.
pub(super) fn fall_back(fallback: &CatalogueClassifier, provider: &str, reason: &str, subject: &str, new_text: &str) -> Classification {
    tracing::warn!(%reason, provider, "LLM classification failed; using the catalogue classifier");
    let mut classification = fallback.classify_now(subject, new_text);
    classification.method = format!("{} ({provider} failed: {reason})", classification.method);
    classification
}

impl IntentClassifier for LlmClassifier {
    fn classify<'a>(&'a self, subject: &'a str, new_text: &'a str) -> ClassifyFuture<'a> {
        Box::pin(async move {
            match self.ask(subject, new_text).await {
                Ok(classification) => classification,
                Err(reason) => fall_back(&self.fallback, "llm", &reason, subject, new_text),
            }
        })
    }
}
