//! Intent classification by a model on Amazon Bedrock, through the Bedrock
//! Runtime Converse API, with the catalogue classifier as fallback. The
//! call is signed with the function's own IAM role (the SDK's default
//! credentials): there is no API key to keep. The endpoint comes from the
//! SDK's usual environment, so `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` points it
//! elsewhere (a test server, a VPC endpoint).

use std::time::Duration;

use aws_sdk_bedrockruntime::error::{DisplayErrorContext, SdkError};
use aws_sdk_bedrockruntime::operation::converse::ConverseError;
use aws_sdk_bedrockruntime::types::{ContentBlock, ConversationRole, ConverseOutput, InferenceConfiguration, Message, SystemContentBlock};
use serde::Deserialize;

use super::llm::{fall_back, parse_label, system_prompt, user_message};
use super::{CatalogueClassifier, Classification, ClassifyFuture, IntentClassifier};
use crate::config::IntentConfig;

/// `[classifier.bedrock]` in the configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BedrockConfig {
    /// A model id or inference profile, e.g. `anthropic.claude-3-haiku-20240307-v1:0`.
    /// The template grants `bedrock:InvokeModel` on this model only.
    pub model_id: String,
    /// Default: the function's region (`AWS_REGION`).
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// The answer is one small JSON object; a cap keeps a rambling model cheap.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
}

fn default_timeout() -> u64 {
    5_000
}

fn default_max_tokens() -> u32 {
    100
}

impl BedrockConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.model_id.trim().is_empty() {
            return Err("classifier.bedrock.model_id is empty".into());
        }
        if self.region.as_deref().is_some_and(|r| r.trim().is_empty()) {
            return Err("classifier.bedrock.region is empty".into());
        }
        if self.timeout_ms == 0 || self.max_tokens == 0 || self.max_tokens > i32::MAX as u32 {
            return Err("classifier.bedrock needs timeout_ms and max_tokens above 0".into());
        }
        Ok(())
    }
}

/// A Bedrock Runtime client from the SDK's default configuration (role
/// credentials, `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`), in `region` if set.
pub async fn client(config: &BedrockConfig) -> aws_sdk_bedrockruntime::Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = &config.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    aws_sdk_bedrockruntime::Client::new(&loader.load().await)
}

pub struct BedrockClassifier {
    client: aws_sdk_bedrockruntime::Client,
    config: BedrockConfig,
    system_prompt: String,
    names: Vec<String>,
    fallback: CatalogueClassifier,
}

impl BedrockClassifier {
    /// `intents` are the classes to choose among (the catalogue's, and
    /// out-of-scope when the fallback knows it).
    pub fn new(
        config: BedrockConfig,
        client: aws_sdk_bedrockruntime::Client,
        intents: &[IntentConfig],
        fallback: CatalogueClassifier,
    ) -> BedrockClassifier {
        BedrockClassifier {
            client,
            config,
            system_prompt: system_prompt(intents),
            names: intents.iter().map(|i| i.name.clone()).collect(),
            fallback,
        }
    }

    async fn ask(&self, subject: &str, new_text: &str) -> Result<Classification, String> {
        let message = Message::builder()
            .role(ConversationRole::User)
            .content(ContentBlock::Text(user_message(subject, new_text)))
            .build()
            .map_err(|e| format!("request: {e}"))?;
        let inference = InferenceConfiguration::builder()
            // Validated to fit at start-up; saturate rather than wrap regardless.
            .max_tokens(i32::try_from(self.config.max_tokens).unwrap_or(i32::MAX))
            .temperature(0.0)
            .build();
        let call = self
            .client
            .converse()
            .model_id(&self.config.model_id)
            .system(SystemContentBlock::Text(self.system_prompt.clone()))
            .messages(message)
            .inference_config(inference)
            .send();
        // One deadline over the SDK's retries too: the mail must not wait longer.
        let output = match tokio::time::timeout(Duration::from_millis(self.config.timeout_ms), call).await {
            Err(_) => return Err("timed out".into()),
            Ok(Err(error)) => return Err(describe(&error)),
            Ok(Ok(output)) => output,
        };
        let text: String = match output.output() {
            Some(ConverseOutput::Message(message)) => message
                .content()
                .iter()
                .filter_map(|block| match block {
                    ContentBlock::Text(text) => Some(text.as_str()),
                    _ => None,
                })
                .collect(),
            _ => String::new(),
        };
        if text.trim().is_empty() {
            return Err("answer has no message text".into());
        }
        parse_label(&text, &self.names, format!("bedrock:{}", self.config.model_id))
    }
}

type ConverseFailure = SdkError<ConverseError, aws_sdk_bedrockruntime::config::http::HttpResponse>;

/// A short reason for the timeline: the HTTP status when the service
/// answered with an error, otherwise what kind of failure it was. Never
/// the body, which may echo the mail.
fn describe(error: &ConverseFailure) -> String {
    match error {
        SdkError::ServiceError(_) => match error.raw_response() {
            Some(response) => format!("HTTP {}", response.status().as_u16()),
            None => "service error".into(),
        },
        SdkError::TimeoutError(_) => "timed out".into(),
        SdkError::DispatchFailure(_) => "unreachable".into(),
        SdkError::ResponseError(_) => "answer is not a Converse response".into(),
        other => {
            tracing::debug!(error = %DisplayErrorContext(other), "Bedrock request failed");
            "request failed".into()
        }
    }
}

impl IntentClassifier for BedrockClassifier {
    fn classify<'a>(&'a self, subject: &'a str, new_text: &'a str) -> ClassifyFuture<'a> {
        Box::pin(async move {
            match self.ask(subject, new_text).await {
                Ok(classification) => classification,
                Err(reason) => fall_back(&self.fallback, "bedrock", &reason, subject, new_text),
            }
        })
    }
}
