//! Labelled mail the catalogue classifier learns from at start-up
//! (`[classifier] training`): JSONL files, one `{"subject","body","intent"}`
//! a line, on disk or in S3. Past cases a team has labelled teach the
//! linear model the words real customers use, which a catalogue of example
//! phrases never covers.

use std::path::{Path, PathBuf};

use thiserror::Error;

use super::eval::LabelledMail;
use crate::config::IntentConfig;
use crate::inbound::extract_new_text;

#[derive(Debug, Error)]
pub enum TrainingError {
    #[error("cannot read training data {location}: {reason}")]
    Read { location: String, reason: String },
    #[error("training data {location}, line {line}: {reason}")]
    Line { location: String, line: usize, reason: String },
}

/// A labelled mail as the classifier sees it: the intent, the subject and
/// the new text (no quoted history or signature), as in production.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingMail {
    pub intent: String,
    pub subject: String,
    pub text: String,
}

impl TrainingMail {
    pub fn from_labelled(mail: &LabelledMail) -> TrainingMail {
        TrainingMail {
            intent: mail.intent.clone(),
            subject: mail.subject.clone(),
            text: extract_new_text(&mail.body),
        }
    }
}

/// Where one training file is.
#[derive(Debug, Clone, PartialEq)]
pub enum TrainingLocation {
    File(PathBuf),
    S3 { bucket: String, key: String },
}

impl TrainingLocation {
    /// `s3://bucket/key`, or a path (relative ones against `base`, the
    /// configuration file's folder).
    pub fn parse(location: &str, base: Option<&Path>) -> Result<TrainingLocation, TrainingError> {
        if let Some(rest) = location.strip_prefix("s3://") {
            return match rest.split_once('/') {
                Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => Ok(TrainingLocation::S3 {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                }),
                _ => Err(TrainingError::Read {
                    location: location.to_string(),
                    reason: "an S3 location is s3://bucket/key".into(),
                }),
            };
        }
        if location.trim().is_empty() {
            return Err(TrainingError::Read {
                location: location.to_string(),
                reason: "empty location".into(),
            });
        }
        let path = Path::new(location);
        Ok(TrainingLocation::File(match base {
            Some(base) if path.is_relative() => base.join(path),
            _ => path.to_path_buf(),
        }))
    }
}

impl std::fmt::Display for TrainingLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrainingLocation::File(path) => write!(f, "{}", path.display()),
            TrainingLocation::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}

/// Parses one training file. Every line must be a labelled mail whose
/// intent is in the catalogue, or [`OUT_OF_SCOPE`](super::OUT_OF_SCOPE): a
/// typo in a label would silently teach the model nothing, so it stops
/// start-up with the line instead.
pub fn parse(location: &str, text: &str, intents: &[IntentConfig]) -> Result<Vec<TrainingMail>, TrainingError> {
    let mut mails = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let failed = |reason: String| TrainingError::Line {
            location: location.to_string(),
            line: index + 1,
            reason,
        };
        let mail: LabelledMail = serde_json::from_str(line).map_err(|e| failed(e.to_string()))?;
        if mail.intent != super::OUT_OF_SCOPE && !intents.iter().any(|i| i.name == mail.intent) {
            return Err(failed(format!("intent {:?} is not in the catalogue", mail.intent)));
        }
        mails.push(TrainingMail::from_labelled(&mail));
    }
    Ok(mails)
}

/// Reads and parses every training file. S3 locations need a client.
pub async fn load(
    locations: &[String],
    base: Option<&Path>,
    s3: Option<&aws_sdk_s3::Client>,
    intents: &[IntentConfig],
) -> Result<Vec<TrainingMail>, TrainingError> {
    let mut mails = Vec::new();
    for location in locations {
        let parsed = TrainingLocation::parse(location, base)?;
        let unreadable = |reason: String| TrainingError::Read {
            location: parsed.to_string(),
            reason,
        };
        let text = match &parsed {
            TrainingLocation::File(path) => tokio::fs::read_to_string(path).await.map_err(|e| unreadable(e.to_string()))?,
            TrainingLocation::S3 { bucket, key } => {
                let s3 = s3.ok_or_else(|| unreadable("no S3 client here".into()))?;
                let object = s3
                    .get_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| unreadable(aws_sdk_s3::error::DisplayErrorContext(&e).to_string()))?;
                let bytes = object.body.collect().await.map_err(|e| unreadable(e.to_string()))?.into_bytes();
                String::from_utf8(bytes.to_vec()).map_err(|_| unreadable("not UTF-8".into()))?
            }
        };
        mails.extend(parse(&parsed.to_string(), &text, intents)?);
    }
    Ok(mails)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intents() -> Vec<IntentConfig> {
        vec![IntentConfig {
            name: "refund".into(),
            description: String::new(),
            examples: vec!["refund please".into()],
            keywords: Vec::new(),
            agent: None,
            workflow: None,
        }]
    }

    #[test]
    fn locations_resolve_against_the_configuration_folder() {
        let base = Path::new("/etc/casebridge");
        assert_eq!(
            TrainingLocation::parse("labelled.jsonl", Some(base)).unwrap(),
            TrainingLocation::File(PathBuf::from("/etc/casebridge/labelled.jsonl"))
        );
        assert_eq!(
            TrainingLocation::parse("/data/a.jsonl", Some(base)).unwrap(),
            TrainingLocation::File(PathBuf::from("/data/a.jsonl"))
        );
        assert_eq!(
            TrainingLocation::parse("s3://bucket/intents/a.jsonl", None).unwrap(),
            TrainingLocation::S3 {
                bucket: "bucket".into(),
                key: "intents/a.jsonl".into()
            }
        );
        for bad in ["s3://bucket", "s3:///key", "s3://bucket/", " "] {
            assert!(TrainingLocation::parse(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_labelled_lines_into_subject_and_new_text() {
        let text = "{\"subject\":\"Money\",\"body\":\"I want it back\\n\\nOn Mon, 1 Jan 2026, Shop <s@shop.example> wrote:\\n> old text\",\"intent\":\"refund\"}\n\n";
        let mails = parse("a.jsonl", text, &intents()).unwrap();
        assert_eq!(mails.len(), 1);
        assert_eq!(mails[0].intent, "refund");
        assert_eq!(mails[0].subject, "Money");
        assert!(mails[0].text.starts_with("I want it back"), "{:?}", mails[0].text);
        assert!(!mails[0].text.contains("old text"));
    }

    #[test]
    fn out_of_scope_is_a_label_without_an_intent() {
        let mails = parse(
            "a.jsonl",
            "{\"subject\":\"Job\",\"body\":\"my CV attached\",\"intent\":\"out_of_scope\"}",
            &intents(),
        )
        .unwrap();
        assert_eq!(mails[0].intent, super::super::OUT_OF_SCOPE);
    }

    #[test]
    fn a_bad_line_or_an_unknown_intent_names_the_file_and_line() {
        let unknown = parse("a.jsonl", "{\"subject\":\"\",\"body\":\"x\",\"intent\":\"refnud\"}", &intents()).unwrap_err();
        assert_eq!(
            unknown.to_string(),
            "training data a.jsonl, line 1: intent \"refnud\" is not in the catalogue"
        );
        let broken = parse(
            "a.jsonl",
            "{\"subject\":\"\",\"body\":\"x\",\"intent\":\"refund\"}\n{broken",
            &intents(),
        )
        .unwrap_err();
        assert!(matches!(broken, TrainingError::Line { line: 2, .. }), "{broken}");
    }

    #[tokio::test]
    async fn loads_files_and_says_which_one_is_missing() {
        let folder = std::env::temp_dir().join(format!("casebridge-training-{}", std::process::id()));
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(
            folder.join("a.jsonl"),
            "{\"subject\":\"s\",\"body\":\"refund\",\"intent\":\"refund\"}\n",
        )
        .unwrap();
        let mails = load(&["a.jsonl".into()], Some(&folder), None, &intents()).await.unwrap();
        assert_eq!(mails.len(), 1);
        let missing = load(&["b.jsonl".into()], Some(&folder), None, &intents()).await.unwrap_err();
        assert!(missing.to_string().contains("b.jsonl"), "{missing}");
        let no_client = load(&["s3://bucket/a.jsonl".into()], None, None, &intents()).await.unwrap_err();
        assert!(no_client.to_string().contains("no S3 client"), "{no_client}");
        std::fs::remove_dir_all(&folder).unwrap();
    }
}
