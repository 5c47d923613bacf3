//! Configuration: intents, agents, workflow and addresses come from a TOML
//! document (a file or an environment variable), never from code.

use serde::Deserialize;
use thiserror::Error;

use crate::model::WorkflowMode;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("no configuration: set CASEBRIDGE_CONFIG (TOML text) or CASEBRIDGE_CONFIG_FILE (a path)")]
    Missing,
    #[error("cannot read configuration file {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("configuration is not valid TOML: {0}")]
    Parse(String),
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("environment variable {0} is required")]
    MissingEnv(&'static str),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub mail: MailConfig,
    /// The default workflow.
    #[serde(default)]
    pub workflow: WorkflowConfig,
    /// Further named workflows; an intent picks one with `workflow = "name"`.
    #[serde(default)]
    pub workflows: std::collections::BTreeMap<String, WorkflowConfig>,
    #[serde(default)]
    pub safety: SafetyConfig,
    #[serde(default)]
    pub inbound: InboundConfig,
    #[serde(default)]
    pub classifier: ClassifierConfig,
    #[serde(default)]
    pub agents: Vec<AgentConfig>,
    #[serde(default)]
    pub intents: Vec<IntentConfig>,
    /// Readiness thresholds and the cost model of the support lead's report.
    #[serde(default)]
    pub report: ReportConfig,
    /// The folder of the configuration file, when it came from one: relative
    /// paths in it (training data) are read from there.
    #[serde(skip)]
    pub source_dir: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailConfig {
    /// The address casebridge writes from (and that customers write to).
    pub from_address: String,
    #[serde(default)]
    pub from_name: Option<String>,
    /// Other addresses that are casebridge's own: mail from them is never answered.
    #[serde(default)]
    pub own_addresses: Vec<String>,
    /// Where escalation notices go.
    pub queue_address: String,
    #[serde(default = "default_queue_name")]
    pub queue_name: String,
    /// Domain used in the Message-IDs casebridge generates.
    #[serde(default)]
    pub message_id_domain: Option<String>,
    /// Prefix of case ids (and so of the subject reference).
    #[serde(default = "default_case_prefix")]
    pub case_prefix: String,
    /// Signature for every workflow that sets none of its own.
    #[serde(default)]
    pub signature: Option<String>,
    /// Reply-To on outbound mail, when replies should go elsewhere than From.
    #[serde(default)]
    pub reply_to: Option<String>,
}

fn default_queue_name() -> String {
    "support".into()
}
fn default_case_prefix() -> String {
    "CB".into()
}

impl MailConfig {
    pub fn message_id_domain(&self) -> &str {
        self.message_id_domain
            .as_deref()
            .unwrap_or_else(|| self.from_address.rsplit_once('@').map(|(_, d)| d).unwrap_or("casebridge.invalid"))
    }

    /// Whether mail from `address` is casebridge's own: the from address, the
    /// queue's, or a configured one, compared in normal form and without a
    /// plus-tag on either side (`escalations+x@…` is still the queue).
    pub fn is_own_address(&self, address: &str) -> bool {
        let Some(address) = crate::address::normalize(address) else {
            return false;
        };
        let base = crate::address::without_tag(&address);
        std::iter::once(&self.from_address)
            .chain(std::iter::once(&self.queue_address))
            .chain(&self.own_addresses)
            .filter_map(|own| crate::address::normalize(own))
            .any(|own| crate::address::without_tag(&own) == base)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowConfig {
    pub mode: WorkflowMode,
    /// Put before the agent's text; `{name}` is the customer's name (or "there").
    #[serde(default)]
    pub greeting: Option<String>,
    /// Put after the agent's text, after a `-- ` separator.
    #[serde(default)]
    pub signature: Option<String>,
    /// Last lines of every mail (legal text, links).
    #[serde(default)]
    pub footer: Option<String>,
    /// Follow-up and closure after a resolution is sent; none = off.
    #[serde(default)]
    pub follow_up: Option<FollowUpConfig>,
    /// Decide and record everything, send and close nothing (every mail becomes a draft).
    #[serde(default)]
    pub shadow: bool,
    /// AI-written mails per case in any 24 hours; beyond it the case escalates.
    #[serde(default = "default_mail_cap")]
    pub max_ai_mails_per_day: u32,
    /// Text sent to the customer when an agent closes the case (ResolveCase); none = no notice.
    #[serde(default)]
    pub closure_notice: Option<String>,
}

impl Default for WorkflowConfig {
    fn default() -> Self {
        WorkflowConfig {
            mode: WorkflowMode::FullyAutonomous,
            greeting: None,
            signature: None,
            footer: None,
            follow_up: None,
            shadow: false,
            max_ai_mails_per_day: default_mail_cap(),
            closure_notice: None,
        }
    }
}

fn default_mail_cap() -> u32 {
    4
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FollowUpConfig {
    /// Reminders sent while the customer stays silent after a resolution.
    pub reminders: u32,
    /// Hours between the resolution and the first reminder, and between reminders.
    pub interval_hours: u32,
    /// Hours after the last reminder before the case closes on its own.
    pub close_after_hours: u32,
    /// For trying follow-ups on one machine: seconds that replace
    /// `interval_hours` (and `close_after_hours`), so a reminder shows within a minute.
    #[serde(default)]
    pub interval_secs: Option<u32>,
    #[serde(default)]
    pub close_after_secs: Option<u32>,
    /// Reminder text; `{name}` is the customer's name.
    #[serde(default = "default_reminder")]
    pub reminder_text: String,
    /// A reply that only says thanks closes the case (resolution confirmed).
    #[serde(default)]
    pub close_on_thanks: bool,
}

impl FollowUpConfig {
    pub fn interval(&self) -> chrono::Duration {
        self.interval_secs.map_or_else(
            || chrono::Duration::hours(i64::from(self.interval_hours)),
            |s| chrono::Duration::seconds(i64::from(s)),
        )
    }

    pub fn close_after(&self) -> chrono::Duration {
        self.close_after_secs.map_or_else(
            || chrono::Duration::hours(i64::from(self.close_after_hours)),
            |s| chrono::Duration::seconds(i64::from(s)),
        )
    }

    /// For the timeline: "24 h", or "20 s" when given in seconds.
    pub fn describe_interval(&self) -> String {
        match self.interval_secs {
            Some(s) => format!("{s} s"),
            None => format!("{} h", self.interval_hours),
        }
    }
}

fn default_reminder() -> String {
    "We wanted to check that our last answer solved your problem. If you still need help, just reply to this mail.".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SafetyConfig {
    /// Turns every mail to a customer into a draft, for every workflow.
    #[serde(default)]
    pub kill_switch: bool,
    /// A customer writing within this many days of closure reopens the case; later opens a new one.
    #[serde(default = "default_reopen_days")]
    pub reopen_window_days: u32,
}

impl Default for SafetyConfig {
    fn default() -> Self {
        SafetyConfig {
            kill_switch: false,
            reopen_window_days: default_reopen_days(),
        }
    }
}

fn default_reopen_days() -> u32 {
    14
}

/// `[report]`: when an intent counts as ready for autonomy, and what a mail
/// costs. Nothing switches on its own: the report only says which intents
/// qualify and why.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportConfig {
    /// Reviewed drafts (sent or discarded) an intent needs before it can qualify.
    #[serde(default = "default_min_reviewed_drafts")]
    pub min_reviewed_drafts: u64,
    /// The share of reviewed drafts sent unedited it needs, at least.
    #[serde(default = "default_min_unedited_share")]
    pub min_unedited_share: f64,
    /// The share of its cases escalated it may have, at most.
    #[serde(default = "default_max_escalation_rate")]
    pub max_escalation_rate: f64,
    /// Infra cost of one inbound mail's cycle in USD (DynamoDB, Lambda, S3;
    /// the cost test's figure, docs/performance.md "Cost per case").
    #[serde(default = "default_cost_per_inbound_mail")]
    pub cost_per_inbound_mail_usd: f64,
    /// SES's price of one sent mail in USD.
    #[serde(default = "default_cost_per_sent_mail")]
    pub cost_per_sent_mail_usd: f64,
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            min_reviewed_drafts: default_min_reviewed_drafts(),
            min_unedited_share: default_min_unedited_share(),
            max_escalation_rate: default_max_escalation_rate(),
            cost_per_inbound_mail_usd: default_cost_per_inbound_mail(),
            cost_per_sent_mail_usd: default_cost_per_sent_mail(),
        }
    }
}

fn default_min_reviewed_drafts() -> u64 {
    30
}
fn default_min_unedited_share() -> f64 {
    0.8
}
fn default_max_escalation_rate() -> f64 {
    0.2
}
/// $0.0863 per 1,000 refund cases of two inbound mails each.
fn default_cost_per_inbound_mail() -> f64 {
    0.000_043_2
}
/// SES: $0.10 per 1,000 mails.
fn default_cost_per_sent_mail() -> f64 {
    0.000_1
}

impl ReportConfig {
    fn validate(&self) -> Result<(), String> {
        for (key, share) in [
            ("min_unedited_share", self.min_unedited_share),
            ("max_escalation_rate", self.max_escalation_rate),
        ] {
            if !(0.0..=1.0).contains(&share) {
                return Err(format!("report.{key} = {share} must be between 0 and 1"));
            }
        }
        for (key, cost) in [
            ("cost_per_inbound_mail_usd", self.cost_per_inbound_mail_usd),
            ("cost_per_sent_mail_usd", self.cost_per_sent_mail_usd),
        ] {
            if !cost.is_finite() || cost < 0.0 {
                return Err(format!("report.{key} = {cost} must be a cost of 0 or more"));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundConfig {
    /// Open a new case for mail that links to none. Off: the mail is still
    /// stored, on a case held for representatives (never an agent), and the
    /// queue's address is notified.
    #[serde(default = "yes")]
    pub create_cases: bool,
    /// Mail larger than this is recorded with the reason and not parsed.
    #[serde(default = "default_max_mail_bytes")]
    pub max_mail_bytes: usize,
    /// Attachments are copied under this key prefix (then `<SES id>/<n>`) so agents can fetch them.
    #[serde(default = "default_attachment_prefix")]
    pub attachment_prefix: String,
    #[serde(default)]
    pub verdicts: VerdictPolicy,
}

impl Default for InboundConfig {
    fn default() -> Self {
        InboundConfig {
            create_cases: true,
            max_mail_bytes: default_max_mail_bytes(),
            attachment_prefix: default_attachment_prefix(),
            verdicts: VerdictPolicy::default(),
        }
    }
}

/// What a FAIL verdict from SES does to a mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictAction {
    /// Stored, never sent to an agent, never answered.
    Quarantine,
    /// Processed as usual; the failure is logged and noted on the timeline.
    Log,
    /// Processed as usual, silently.
    Ignore,
}

/// The verdicts policy (SES spam, virus, SPF, DKIM, DMARC).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerdictPolicy {
    #[serde(default = "quarantine")]
    pub virus: VerdictAction,
    #[serde(default = "quarantine")]
    pub spam: VerdictAction,
    /// Applies when DMARC fails and the sender's policy is quarantine or reject.
    #[serde(default = "quarantine")]
    pub dmarc: VerdictAction,
    #[serde(default = "log")]
    pub spf: VerdictAction,
    #[serde(default = "log")]
    pub dkim: VerdictAction,
}

impl Default for VerdictPolicy {
    fn default() -> Self {
        VerdictPolicy {
            virus: VerdictAction::Quarantine,
            spam: VerdictAction::Quarantine,
            dmarc: VerdictAction::Quarantine,
            spf: VerdictAction::Log,
            dkim: VerdictAction::Log,
        }
    }
}

fn quarantine() -> VerdictAction {
    VerdictAction::Quarantine
}
fn log() -> VerdictAction {
    VerdictAction::Log
}
fn default_attachment_prefix() -> String {
    "attachments/".into()
}

fn yes() -> bool {
    true
}
fn default_max_mail_bytes() -> usize {
    10 * 1024 * 1024
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierConfig {
    /// Below this confidence the case goes to a representative (default
    /// 0.3). Not together with `route_at_precision`.
    #[serde(default)]
    pub threshold: Option<f64>,
    /// Instead of a threshold, the precision routing should have: the
    /// threshold is the lowest at which the calibration's cross-validated
    /// precision is at least this (needs `[classifier.calibration]`).
    #[serde(default)]
    pub route_at_precision: Option<f64>,
    /// Labelled mail (JSONL files, one `{"subject","body","intent"}` a line;
    /// paths relative to this file, or `s3://bucket/key`) the classifier
    /// learns from at start-up.
    #[serde(default)]
    pub training: Vec<String>,
    /// Maps the classifier's scores to probabilities; written by `intent cv --calibrate`.
    #[serde(default)]
    pub calibration: Option<crate::intent::Calibration>,
    /// Examples of mail that is not a support request, and what to do with it.
    #[serde(default)]
    pub out_of_scope: crate::intent::OutOfScopeConfig,
    /// Ask an LLM (OpenAI-compatible) instead; the catalogue classifier stays as fallback.
    #[serde(default)]
    pub llm: Option<crate::intent::LlmConfig>,
    /// Ask a model on Amazon Bedrock instead (the function's IAM role); the
    /// catalogue classifier stays as fallback.
    #[serde(default)]
    pub bedrock: Option<crate::intent::BedrockConfig>,
}

impl ClassifierConfig {
    /// The confidence a best guess needs to go to an agent: `threshold`, or
    /// the one the calibration gives for `route_at_precision` (validated to
    /// exist), or 0.3.
    pub fn routing_threshold(&self) -> f64 {
        match (self.threshold, self.route_at_precision, &self.calibration) {
            (Some(threshold), _, _) => threshold,
            (None, Some(precision), Some(calibration)) => calibration.threshold_for_precision(precision).unwrap_or(1.0),
            _ => default_threshold(),
        }
    }

    fn validate(&self, intents: &[IntentConfig]) -> Result<(), String> {
        if let Some(threshold) = self.threshold {
            if !(0.0..=1.0).contains(&threshold) {
                return Err(format!("classifier.threshold {threshold} is not in [0, 1]"));
            }
        }
        if let Some(calibration) = &self.calibration {
            calibration.validate().map_err(|e| format!("classifier.calibration: {e}"))?;
        }
        if let Some(precision) = self.route_at_precision {
            if self.threshold.is_some() {
                return Err("classifier: set threshold or route_at_precision, not both".into());
            }
            if !(precision > 0.0 && precision <= 1.0) {
                return Err(format!("classifier.route_at_precision {precision} is not in (0, 1]"));
            }
            let calibration = self
                .calibration
                .as_ref()
                .ok_or("classifier.route_at_precision needs [classifier.calibration] (intent cv --calibrate)")?;
            calibration
                .threshold_for_precision(precision)
                .map_err(|e| format!("classifier.route_at_precision: {e}"))?;
        }
        for location in &self.training {
            if let Err(e) = crate::intent::training::TrainingLocation::parse(location, None) {
                return Err(format!("classifier.training: {e}"));
            }
        }
        if self.llm.is_some() && self.bedrock.is_some() {
            return Err("classifier: set llm or bedrock, not both".into());
        }
        if let Some(bedrock) = &self.bedrock {
            bedrock.validate()?;
        }
        if let Some(intent) = intents.iter().find(|i| i.name == crate::intent::OUT_OF_SCOPE) {
            return Err(format!(
                "intent {:?} is reserved for mail that is not a support request ([classifier.out_of_scope])",
                intent.name
            ));
        }
        Ok(())
    }
}

fn default_threshold() -> f64 {
    0.3
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub name: String,
    /// Where the agent is called: casebridge's protocol POSTs here; for A2A
    /// it is the JSON-RPC endpoint. An A2A agent may name its agent card
    /// (`card_url`) instead.
    #[serde(default)]
    pub url: String,
    /// A2A only: the agent card (`…/.well-known/agent-card.json`) that names
    /// the JSON-RPC endpoint and the authentication the agent demands; read
    /// on the first call and again every few minutes.
    #[serde(default)]
    pub card_url: Option<String>,
    #[serde(default = "default_agent_timeout_ms")]
    pub timeout_ms: u64,
    /// Total attempts per turn for timeouts, 429 and 5xx.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// How casebridge proves to the agent that a request is its own.
    #[serde(default)]
    pub auth: AgentAuth,
    /// `sync`: the answer comes in the HTTP response. `async`: the agent may
    /// answer 202 and post the answer to the callback route later.
    #[serde(default)]
    pub mode: AgentMode,
    /// How long an async agent has to post its answer before the case escalates.
    #[serde(default = "default_async_answer_secs")]
    pub async_answer_within_secs: u64,
    /// What the agent speaks: casebridge's own JSON (the default) or A2A 1.0
    /// over JSON-RPC, `url` then being the agent's JSON-RPC endpoint.
    #[serde(default)]
    pub protocol: AgentProtocol,
}

impl AgentConfig {
    /// The address casebridge first contacts: the agent card if it has one,
    /// else its url.
    pub fn address(&self) -> &str {
        self.card_url.as_deref().unwrap_or(&self.url)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentProtocol {
    /// `POST {caseId, conversationId, turnId, intent}`, the answer in the
    /// response or, for `mode = "async"`, on the callback route.
    #[default]
    Casebridge,
    /// Agent2Agent 1.0, JSON-RPC binding (`crate::a2a`).
    A2a,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentMode {
    #[default]
    Sync,
    Async,
}

/// Where a secret lives: an environment variable, or AWS Secrets Manager.
/// The secret's value never appears in configuration or logs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    #[serde(default)]
    pub env: Option<String>,
    #[serde(default)]
    pub secret_arn: Option<String>,
}

impl SecretRef {
    pub fn describe(&self) -> String {
        match (&self.env, &self.secret_arn) {
            (Some(var), _) => format!("environment variable {var}"),
            (None, Some(arn)) => format!("secret {arn}"),
            (None, None) => "nothing".into(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AgentAuth {
    /// No authentication (local development only).
    #[default]
    None,
    /// `Authorization: Bearer <token>` both ways (at least 16 bytes).
    Bearer { token: SecretRef },
    /// HMAC-SHA256 signatures (`crate::agent_auth`; secrets of at least 32 bytes).
    Hmac {
        /// The current key: signs casebridge's requests and verifies the agent's.
        secret: SecretRef,
        /// `v2` (default) signs method, path, direction and a body digest;
        /// `v1` is the body-only scheme, for agents not yet migrated.
        #[serde(default)]
        scheme: HmacScheme,
        /// Sent in `X-Casebridge-Key-Id`, so the agent knows which key signed.
        #[serde(default = "default_key_id")]
        key_id: String,
        /// During a rotation: the key being retired, still accepted from the agent.
        #[serde(default)]
        previous: Option<PreviousKey>,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HmacScheme {
    V1,
    #[default]
    V2,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviousKey {
    pub key_id: String,
    pub secret: SecretRef,
}

fn default_key_id() -> String {
    "1".into()
}

impl AgentAuth {
    /// Every secret the agent's authentication reads.
    pub fn secrets(&self) -> impl Iterator<Item = &SecretRef> {
        let (first, second) = match self {
            AgentAuth::None => (None, None),
            AgentAuth::Bearer { token } => (Some(token), None),
            AgentAuth::Hmac { secret, previous, .. } => (Some(secret), previous.as_ref().map(|p| &p.secret)),
        };
        first.into_iter().chain(second)
    }
}

fn default_async_answer_secs() -> u64 {
    900
}

fn default_agent_timeout_ms() -> u64 {
    10_000
}
fn default_attempts() -> u32 {
    3
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntentConfig {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub examples: Vec<String>,
    #[serde(default)]
    pub keywords: Vec<String>,
    /// The agent that handles it; none means a representative does.
    #[serde(default)]
    pub agent: Option<String>,
    /// A named workflow from `[workflows.*]`; none = the default `[workflow]`.
    #[serde(default)]
    pub workflow: Option<String>,
}

pub const CONFIG_ENV: &str = "CASEBRIDGE_CONFIG";
pub const CONFIG_FILE_ENV: &str = "CASEBRIDGE_CONFIG_FILE";

impl Config {
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn from_file(path: &std::path::Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut config = Config::from_toml(&text)?;
        config.source_dir = path.parent().map(std::path::Path::to_path_buf);
        Ok(config)
    }

    /// `CASEBRIDGE_CONFIG` (inline TOML) wins over `CASEBRIDGE_CONFIG_FILE`.
    pub fn from_env() -> Result<Config, ConfigError> {
        // Set but blank counts as unset.
        if let Ok(text) = std::env::var(CONFIG_ENV) {
            if !text.trim().is_empty() {
                return Config::from_toml(&text);
            }
        }
        match std::env::var(CONFIG_FILE_ENV) {
            Ok(path) => Config::from_file(std::path::Path::new(&path)),
            Err(_) => Err(ConfigError::Missing),
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        for (key, address) in [
            ("from_address", &self.mail.from_address),
            ("queue_address", &self.mail.queue_address),
        ]
        .into_iter()
        .chain(self.mail.own_addresses.iter().map(|a| ("own_addresses", a)))
        {
            if crate::address::normalize(address).is_none() {
                return invalid(format!("mail.{key}: {address:?} is not an address"));
            }
        }
        if crate::ids::CaseId::parse(&format!("{}-0000000000", self.mail.case_prefix)).is_none() {
            return invalid(format!("mail.case_prefix {:?} must be 2 to 6 letters", self.mail.case_prefix));
        }
        if let Err(message) = self.classifier.validate(&self.intents) {
            return invalid(message);
        }
        if let Err(message) = self.report.validate() {
            return invalid(message);
        }
        let mut seen = std::collections::HashSet::new();
        for agent in &self.agents {
            if !seen.insert(agent.name.as_str()) {
                return invalid(format!("agent {:?} is declared twice", agent.name));
            }
            match (&agent.card_url, agent.protocol) {
                (Some(_), AgentProtocol::Casebridge) => {
                    return invalid(format!(
                        "agent {:?}: card_url is for protocol = \"a2a\"; casebridge's own protocol needs url",
                        agent.name
                    ));
                }
                (Some(_), AgentProtocol::A2a) if !agent.url.is_empty() => {
                    return invalid(format!(
                        "agent {:?}: give url (the JSON-RPC endpoint) or card_url (the agent card), not both",
                        agent.name
                    ));
                }
                _ => {}
            }
            let address = agent.address();
            if !(address.starts_with("http://") || address.starts_with("https://")) {
                let key = if agent.card_url.is_some() { "card_url" } else { "url" };
                return invalid(format!("agent {:?} has {key} {address:?}, which is not http(s)", agent.name));
            }
            for secret in agent.auth.secrets() {
                if secret.env.is_some() == secret.secret_arn.is_some() {
                    return invalid(format!("agent {:?}: its secret needs exactly one of env or secret_arn", agent.name));
                }
            }
            if let AgentAuth::Hmac { key_id, previous, .. } = &agent.auth {
                let key_ids = std::iter::once(key_id).chain(previous.as_ref().map(|p| &p.key_id));
                if key_ids
                    .clone()
                    .any(|id| id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_graphic()))
                {
                    return invalid(format!(
                        "agent {:?}: a key_id must be 1 to 64 printable ASCII characters",
                        agent.name
                    ));
                }
                if previous.as_ref().is_some_and(|p| &p.key_id == key_id) {
                    return invalid(format!("agent {:?}: the previous key needs a key_id of its own", agent.name));
                }
            }
            if agent.max_attempts == 0 || agent.timeout_ms == 0 || agent.async_answer_within_secs == 0 {
                return invalid(format!("agent {:?} needs max_attempts and timeout_ms above 0", agent.name));
            }
            if agent.protocol == AgentProtocol::A2a && agent.mode == AgentMode::Async {
                // A2A's own long-running path is push notifications and GetTask,
                // not casebridge's callback route; neither is built yet.
                return invalid(format!(
                    "agent {:?}: protocol = \"a2a\" answers in the SendMessage reply; mode = \"async\" is for casebridge's own protocol",
                    agent.name
                ));
            }
        }
        let mut intents = std::collections::HashSet::new();
        for intent in &self.intents {
            if !intents.insert(intent.name.as_str()) {
                return invalid(format!("intent {:?} is declared twice", intent.name));
            }
            if intent.examples.is_empty() && intent.keywords.is_empty() {
                return invalid(format!("intent {:?} has neither examples nor keywords", intent.name));
            }
            if let Some(agent) = &intent.agent {
                if self.agent(agent).is_none() {
                    return invalid(format!("intent {:?} names unknown agent {:?}", intent.name, agent));
                }
            }
            if let Some(workflow) = &intent.workflow {
                if !self.workflows.contains_key(workflow) {
                    return invalid(format!("intent {:?} names unknown workflow {:?}", intent.name, workflow));
                }
            }
        }
        Ok(())
    }

    /// The workflow by name; `None` or an unknown name gives the default.
    pub fn workflow(&self, name: Option<&str>) -> &WorkflowConfig {
        name.and_then(|n| self.workflows.get(n)).unwrap_or(&self.workflow)
    }

    pub fn agent(&self, name: &str) -> Option<&AgentConfig> {
        self.agents.iter().find(|a| a.name == name)
    }

    pub fn intent(&self, name: &str) -> Option<&IntentConfig> {
        self.intents.iter().find(|i| i.name == name)
    }
}

/// Reads a required environment variable with a typed error.
pub fn required_env(name: &'static str) -> Result<String, ConfigError> {
    std::env::var(name).map_err(|_| ConfigError::MissingEnv(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[mail]
from_address = "support@example.com"
queue_address = "escalations@example.com"
[[agents]]
name = "refunds"
url = "http://127.0.0.1:9/invoke"
[[intents]]
name = "refund"
keywords = ["refund"]
agent = "refunds"
"#;

    #[test]
    fn the_shipped_configurations_load_and_know_their_folder() {
        // The demo's, and the one deployed as the functions' configuration layer.
        for file in ["../examples/demo.toml", "../infra/config/casebridge.toml"] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
            let config = Config::from_file(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(config.source_dir.as_deref(), path.parent(), "{file}");
            assert!(!config.intents.is_empty(), "{file}");
        }
    }

    #[test]
    fn an_a2a_agent_names_its_endpoint_or_its_card_and_only_a2a_has_cards() {
        let agent_at = |lines: &str| BASE.replace("url = \"http://127.0.0.1:9/invoke\"", lines);
        assert!(BASE.contains("url = \"http://127.0.0.1:9/invoke\""));
        let card = agent_at("protocol = \"a2a\"\ncard_url = \"https://agent.example/.well-known/agent-card.json\"");
        let config = Config::from_toml(&card).unwrap();
        assert_eq!(config.agents[0].address(), "https://agent.example/.well-known/agent-card.json");
        assert!(config.agents[0].url.is_empty());
        for (lines, says) in [
            (
                "protocol = \"a2a\"\nurl = \"http://127.0.0.1:9/a2a\"\ncard_url = \"https://a.example/card\"",
                "not both",
            ),
            ("card_url = \"https://a.example/card\"", "card_url is for protocol"),
            ("protocol = \"a2a\"\ncard_url = \"file:///etc/card\"", "has card_url"),
            ("protocol = \"a2a\"", "has url \"\""),
        ] {
            assert!(
                matches!(Config::from_toml(&agent_at(lines)), Err(ConfigError::Invalid(m)) if m.contains(says)),
                "{lines}"
            );
        }
    }

    #[test]
    fn loads_and_validates() {
        let config = Config::from_toml(BASE).unwrap();
        assert_eq!(config.workflow.mode, WorkflowMode::FullyAutonomous);
        assert_eq!(config.mail.message_id_domain(), "example.com");
        assert!(config.mail.is_own_address("Support+cb-x@example.com"));
        // The queue's address with a tag is still casebridge's own.
        assert!(config.mail.is_own_address("escalations+x@example.com"));
        assert!(config.mail.is_own_address("Escalations@Example.COM"));
        assert!(!config.mail.is_own_address("ann@customer.example"));
        assert!(!config.mail.is_own_address("@example.com"));
    }

    #[test]
    fn an_agent_speaks_casebridge_unless_it_says_a2a() {
        let config = Config::from_toml(BASE).unwrap();
        assert_eq!(config.agents[0].protocol, AgentProtocol::Casebridge);
        let a2a = BASE.replace(
            "url = \"http://127.0.0.1:9/invoke\"",
            "url = \"http://127.0.0.1:9/a2a\"\nprotocol = \"a2a\"",
        );
        assert_eq!(Config::from_toml(&a2a).unwrap().agents[0].protocol, AgentProtocol::A2a);
        // A2A answers in the SendMessage reply: casebridge's async callback is not its path.
        let a2a_async = a2a.replace("protocol = \"a2a\"", "protocol = \"a2a\"\nmode = \"async\"");
        assert!(matches!(Config::from_toml(&a2a_async), Err(ConfigError::Invalid(m)) if m.contains("a2a")));
        let unknown = BASE.replace(
            "url = \"http://127.0.0.1:9/invoke\"",
            "url = \"http://127.0.0.1:9/x\"\nprotocol = \"grpc\"",
        );
        assert!(matches!(Config::from_toml(&unknown), Err(ConfigError::Parse(_))));
    }

    #[test]
    fn refuses_unknown_agent_duplicates_and_empty_intents() {
        let unknown = BASE.replace("agent = \"refunds\"", "agent = \"nobody\"");
        assert!(matches!(Config::from_toml(&unknown), Err(ConfigError::Invalid(m)) if m.contains("unknown agent")));
        let dup = format!("{BASE}\n[[intents]]\nname = \"refund\"\nkeywords = [\"x\"]\n");
        assert!(matches!(Config::from_toml(&dup), Err(ConfigError::Invalid(m)) if m.contains("twice")));
        let empty = format!("{BASE}\n[[intents]]\nname = \"other\"\n");
        assert!(matches!(Config::from_toml(&empty), Err(ConfigError::Invalid(m)) if m.contains("neither")));
        assert!(matches!(Config::from_toml("[mail"), Err(ConfigError::Parse(_))));
        let typo = BASE.replace("from_address", "from_adress");
        assert!(matches!(Config::from_toml(&typo), Err(ConfigError::Parse(_))));
    }

    #[test]
    fn the_classifier_routes_at_a_threshold_or_at_a_precision_but_not_both() {
        let classifier = |section: &str| Config::from_toml(&format!("{BASE}\n[classifier]\n{section}\n"));
        let invalid = |section: &str, needle: &str| match classifier(section) {
            Err(ConfigError::Invalid(m)) => assert!(m.contains(needle), "{section}: {m}"),
            other => panic!("{section}: {other:?}"),
        };
        assert_eq!(Config::from_toml(BASE).unwrap().classifier.routing_threshold(), 0.3);
        assert_eq!(classifier("threshold = 0.45").unwrap().classifier.routing_threshold(), 0.45);
        let calibration = "[classifier.calibration]\ntemperature = 1.5\nthresholds = [0.5, 0.6, 0.7]\nprecision = [0.93, 0.95, 0.97]\ncoverage = [0.9, 0.85, 0.8]";
        let at_precision = classifier(&format!("route_at_precision = 0.95\n{calibration}")).unwrap();
        assert_eq!(at_precision.classifier.routing_threshold(), 0.6);
        invalid(&format!("threshold = 0.5\nroute_at_precision = 0.95\n{calibration}"), "not both");
        invalid("route_at_precision = 0.95", "needs [classifier.calibration]");
        invalid(&format!("route_at_precision = 0.99\n{calibration}"), "no threshold");
        invalid("route_at_precision = 1.5", "not in (0, 1]");
        invalid("threshold = 2", "not in [0, 1]");
        invalid("[classifier.calibration]\ntemperature = 0", "temperature");
        invalid(
            "[classifier.llm]\nbase_url = \"http://x\"\nmodel = \"m\"\n[classifier.bedrock]\nmodel_id = \"m\"",
            "not both",
        );
        invalid("[classifier.bedrock]\nmodel_id = \"m\"\nmax_tokens = 0", "max_tokens");
        let bedrock =
            classifier("[classifier.bedrock]\nmodel_id = \"anthropic.claude-3-haiku-20240307-v1:0\"\nregion = \"eu-central-1\"").unwrap();
        assert_eq!(bedrock.classifier.bedrock.map(|b| (b.timeout_ms, b.max_tokens)), Some((5_000, 100)));
        let out_of_scope =
            classifier("[classifier.out_of_scope]\nexamples = [\"I am applying for the job\"]\naction = \"record\"").unwrap();
        assert_eq!(out_of_scope.classifier.out_of_scope.action, crate::intent::OutOfScopeAction::Record);
        let reserved = format!("{BASE}\n[[intents]]\nname = \"out_of_scope\"\nkeywords = [\"x\"]\n");
        assert!(matches!(Config::from_toml(&reserved), Err(ConfigError::Invalid(m)) if m.contains("reserved")));
        for unknown in [
            "treshold = 0.5",
            "[classifier.out_of_scope]\nexampels = []",
            "[classifier.bedrock]\nmodel = \"m\"",
        ] {
            assert!(matches!(classifier(unknown), Err(ConfigError::Parse(_))), "{unknown}");
        }
    }
}
