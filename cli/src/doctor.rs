//! `casebridge doctor`: checks a configuration and a store and says what to
//! fix, one line per check — `ok`, `WARN` (works, but look at it) or `FAIL`
//! (will not work) with what to do. Any FAIL makes the exit code non-zero.
//!
//! Doctor only looks: it creates nothing but a probe file it removes again,
//! and never prints a secret or a URL's credentials or query string.

use std::fmt::Display;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use casebridge::config::{AgentAuth, Config};
use casebridge::store::Store;

use crate::local::CliError;

/// Time a TCP connect to an agent may take (name lookup included).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Time DescribeTable may take (credentials and region lookup included).
const AWS_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Ok,
    Warn,
    Fail,
}

#[derive(Default)]
struct Report {
    failures: usize,
}

impl Report {
    fn line(&mut self, level: Level, check: &str, message: impl Display) {
        let label = match level {
            Level::Ok => "ok",
            Level::Warn => "WARN",
            Level::Fail => {
                self.failures += 1;
                "FAIL"
            }
        };
        println!("{label:<4}  {check}: {}", one_line(&message.to_string()));
    }
}

/// What to check: the CLI's global options and `doctor --inbox`.
pub struct Options<'a> {
    pub store: &'a str,
    pub outbox: &'a Path,
    pub config: Option<&'a Path>,
    pub inbox: Option<&'a Path>,
}

pub async fn run(options: Options<'_>) -> Result<(), CliError> {
    let mut report = Report::default();
    if let Some(config) = check_config(&mut report, options.config) {
        check_secrets(&mut report, &config).await;
        check_agents_reachable(&mut report, &config).await;
        check_intents(&mut report, &config);
    }
    let sqlite = check_store(&mut report, options.store, options.outbox).await;
    if sqlite {
        check_outbox(&mut report, options.outbox);
    } else {
        report.line(Level::Ok, "outbox", "not used: with DynamoDB mail goes through SES");
    }
    if let Some(inbox) = options.inbox {
        check_inbox(&mut report, inbox);
    }
    match report.failures {
        0 => Ok(()),
        n => Err(format!("{n} check(s) failed").into()),
    }
}

fn check_config(report: &mut Report, path: Option<&Path>) -> Option<Config> {
    let (source, loaded) = match path {
        Some(path) => (path.display().to_string(), Config::from_file(path)),
        None => match std::env::var(casebridge::config::CONFIG_ENV) {
            Ok(text) if !text.trim().is_empty() => (casebridge::config::CONFIG_ENV.to_string(), Config::from_toml(&text)),
            _ => {
                report.line(
                    Level::Fail,
                    "config",
                    "no configuration: pass --config FILE or set CASEBRIDGE_CONFIG_FILE (agents and intents are not checked)",
                );
                return None;
            }
        },
    };
    match loaded {
        Ok(config) => {
            report.line(
                Level::Ok,
                "config",
                format!(
                    "{source} loads ({} agent(s), {} intent(s))",
                    config.agents.len(),
                    config.intents.len()
                ),
            );
            Some(config)
        }
        Err(e) => {
            report.line(
                Level::Fail,
                "config",
                format!("{source}: {e} — fix it (agents and intents are not checked until it loads)"),
            );
            None
        }
    }
}

/// Each agent's secrets, through the same check the CLI and the functions
/// run at start, one agent at a time so every problem is listed.
async fn check_secrets(report: &mut Report, config: &Config) {
    let secrets = casebridge::secrets::Secrets::env_only();
    for agent in &config.agents {
        let check = format!("secrets {}", agent.name);
        let references: Vec<_> = agent.auth.secrets().collect();
        if matches!(agent.auth, AgentAuth::None) {
            report.line(
                Level::Warn,
                &check,
                "no authentication: fine on loopback; add [agents.auth] (bearer or hmac) before real use",
            );
        } else if references.iter().all(|r| r.env.is_some()) {
            let one = Config {
                agents: vec![agent.clone()],
                ..config.clone()
            };
            match casebridge::agent_auth::check_env_secrets(&one, &secrets).await {
                Ok(()) => {
                    let vars: Vec<_> = references.iter().filter_map(|r| r.env.as_deref()).collect();
                    report.line(Level::Ok, &check, format!("present and long enough ({})", vars.join(", ")));
                }
                Err(e) => report.line(
                    Level::Fail,
                    &check,
                    format!(
                        "{e} — set it (bearer tokens at least {} bytes, HMAC secrets at least {})",
                        casebridge::agent_auth::MIN_BEARER_BYTES,
                        casebridge::agent_auth::MIN_HMAC_BYTES
                    ),
                ),
            }
        } else {
            report.line(
                Level::Ok,
                &check,
                "in Secrets Manager: checked on first use (an unreadable or short secret fails that agent's turns)",
            );
        }
    }
}

/// A TCP connect to every agent's host and port, all at once.
async fn check_agents_reachable(report: &mut Report, config: &Config) {
    let mut probes = Vec::new();
    for agent in &config.agents {
        let target = Target::parse(agent.address());
        let probe = tokio::spawn(async move {
            let target = target?;
            let address = (target.host.clone(), target.port);
            match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(address)).await {
                Ok(Ok(_)) => Ok(target.shown),
                Ok(Err(e)) => Err(format!("{} is not reachable ({e})", target.shown)),
                Err(_) => Err(format!("{} is not reachable (no connection within 3 s)", target.shown)),
            }
        });
        probes.push((agent.name.clone(), probe));
    }
    for (name, probe) in probes {
        let check = format!("agent {name}");
        match probe.await {
            Ok(Ok(shown)) => report.line(Level::Ok, &check, format!("{shown} reachable (TCP connect)")),
            Ok(Err(problem)) => report.line(
                Level::Fail,
                &check,
                format!("{problem} — start the agent, or correct its url in the configuration"),
            ),
            Err(e) => report.line(Level::Fail, &check, format!("the check did not finish: {e}")),
        }
    }
}

fn check_intents(report: &mut Report, config: &Config) {
    for intent in &config.intents {
        let check = format!("intent {}", intent.name);
        match &intent.agent {
            Some(agent) if config.agent(agent).is_some() => report.line(Level::Ok, &check, format!("handled by agent {agent}")),
            // Validation refuses this; kept so doctor never claims it is fine.
            Some(agent) => report.line(Level::Fail, &check, format!("names agent {agent}, which is not configured")),
            None => report.line(
                Level::Warn,
                &check,
                "no agent: representatives handle it (set agent = \"…\" to have an agent work it)",
            ),
        }
    }
}

/// Checks the store; returns whether it is the embedded one (which has an outbox).
async fn check_store(report: &mut Report, store: &str, outbox: &Path) -> bool {
    if let Some(table) = store.strip_prefix("dynamodb:") {
        check_table(report, store, table, outbox).await;
        return false;
    }
    let Some(path) = store.strip_prefix("sqlite:") else {
        report.line(
            Level::Fail,
            "store",
            format!("--store {store:?}: use sqlite:PATH or dynamodb:TABLE"),
        );
        return false;
    };
    let check = format!("store {store}");
    let path = PathBuf::from(path);
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !folder.exists() {
        match creatable(&folder) {
            Ok(()) => report.line(
                Level::Warn,
                &check,
                format!(
                    "folder {} does not exist; casebridge creates it on first use (is that where the cases should be?)",
                    folder.display()
                ),
            ),
            Err(problem) => report.line(Level::Fail, &check, format!("folder {} {problem}", folder.display())),
        }
        return true;
    }
    if !folder.is_dir() {
        report.line(
            Level::Fail,
            &check,
            format!("{} is not a folder — pick another --store path", folder.display()),
        );
        return true;
    }
    if let Err(e) = probe_write(&folder) {
        report.line(
            Level::Fail,
            &check,
            format!(
                "folder {} is not writable ({e}) — fix its permissions: the database writes its journal there",
                folder.display()
            ),
        );
        return true;
    }
    if !path.exists() {
        report.line(
            Level::Ok,
            &check,
            "no database yet; it is created on first use (the folder is writable)",
        );
        return true;
    }
    let opened = casebridge::store::sqlite::SqliteStore::open(&path);
    let read = match opened {
        Ok(sqlite) => sqlite.list_case_ids(1).await.map(|_| ()),
        Err(e) => Err(e),
    };
    match read {
        Ok(()) => report.line(Level::Ok, &check, "opens, schema ok"),
        Err(e) => report.line(
            Level::Fail,
            &check,
            format!("does not open ({e}) — is it a casebridge database? restore it from a backup, or move it aside"),
        ),
    }
    true
}

/// DescribeTable: the table exists with a stream and the `due` and `queue`
/// indexes, as `init-table` (and the SAM template) make it.
async fn check_table(report: &mut Report, store: &str, table: &str, outbox: &Path) {
    use casebridge::store::dynamo::{DUE_INDEX, QUEUE_INDEX};
    let check = format!("store {store}");
    let dynamo = match crate::backends::open(store, outbox).await {
        Ok((crate::backends::AnyStore::Dynamo(dynamo), _)) => dynamo,
        Ok(_) => return report.line(Level::Fail, &check, "is not a DynamoDB store"),
        Err(e) => return report.line(Level::Fail, &check, format!("cannot be opened: {e}")),
    };
    let call = dynamo.client().describe_table().table_name(dynamo.table()).send();
    let described = match tokio::time::timeout(AWS_TIMEOUT, call).await {
        Err(_) => {
            return report.line(
                Level::Fail,
                &check,
                "DynamoDB did not answer within 15 s — check the region, endpoint and network",
            )
        }
        Ok(Err(e)) if e.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => {
            return report.line(
                Level::Fail,
                &check,
                format!("table {table} does not exist — deploy the stack, or: casebridge init-table --store {store}"),
            )
        }
        Ok(Err(e)) => {
            return report.line(
                Level::Fail,
                &check,
                format!(
                    "DescribeTable failed ({}) — check AWS credentials, region, endpoint and network",
                    error_chain(&e)
                ),
            )
        }
        Ok(Ok(described)) => described,
    };
    let Some(description) = described.table() else {
        return report.line(Level::Fail, &check, "DescribeTable returned no table");
    };
    let status = description.table_status().map(|s| s.as_str().to_string());
    match status.as_deref() {
        Some("ACTIVE") => report.line(Level::Ok, &check, format!("table {table} is active")),
        Some(other) => report.line(Level::Warn, &check, format!("table {table} is {other}; wait until it is ACTIVE")),
        None => report.line(Level::Warn, &check, format!("table {table} has no status")),
    }
    let stream = description.stream_specification();
    let view = stream.and_then(|s| s.stream_view_type()).map(|v| v.as_str().to_string());
    match (stream.is_some_and(|s| s.stream_enabled()), view.as_deref()) {
        (true, Some("NEW_AND_OLD_IMAGES")) => report.line(Level::Ok, &format!("{check} stream"), "enabled (new and old images)"),
        (true, other) => report.line(
            Level::Fail,
            &format!("{check} stream"),
            format!(
                "shows {} — the functions need NEW_AND_OLD_IMAGES, as the template declares",
                other.unwrap_or("no view type")
            ),
        ),
        (false, _) => report.line(
            Level::Fail,
            &format!("{check} stream"),
            "no stream: nothing would call the agents — enable it with NEW_AND_OLD_IMAGES, as the template declares",
        ),
    }
    let indexes: Vec<_> = description
        .global_secondary_indexes()
        .iter()
        .filter_map(|i| i.index_name())
        .collect();
    let missing: Vec<_> = [DUE_INDEX, QUEUE_INDEX]
        .into_iter()
        .filter(|want| !indexes.contains(want))
        .collect();
    if missing.is_empty() {
        report.line(
            Level::Ok,
            &format!("{check} indexes"),
            format!("{DUE_INDEX} and {QUEUE_INDEX} present"),
        );
    } else {
        report.line(
            Level::Fail,
            &format!("{check} indexes"),
            format!(
                "missing {} — the sweep, reminders and queues need them; recreate the table as the template declares it",
                missing.join(", ")
            ),
        );
    }
}

fn check_outbox(report: &mut Report, outbox: &Path) {
    let check = format!("outbox {}", outbox.display());
    if !outbox.exists() {
        match creatable(outbox) {
            Ok(()) => report.line(
                Level::Warn,
                &check,
                "does not exist yet; casebridge creates it when it writes the first mail",
            ),
            Err(problem) => report.line(Level::Fail, &check, problem),
        }
    } else if !outbox.is_dir() {
        report.line(Level::Fail, &check, "is not a folder — pass another --outbox");
    } else {
        match probe_write(outbox) {
            Ok(()) => report.line(Level::Ok, &check, "writable"),
            Err(e) => report.line(
                Level::Fail,
                &check,
                format!("is not writable ({e}) — fix its permissions, or pass another --outbox"),
            ),
        }
    }
}

fn check_inbox(report: &mut Report, inbox: &Path) {
    let check = format!("inbox {}", inbox.display());
    if !inbox.exists() {
        report.line(
            Level::Fail,
            &check,
            "does not exist — mkdir -p it, or pass the folder mail is delivered to",
        );
    } else if !inbox.is_dir() {
        report.line(Level::Fail, &check, "is not a folder — pass the folder mail is delivered to");
    } else if let Err(e) = probe_write(inbox) {
        report.line(
            Level::Fail,
            &check,
            format!("is not writable ({e}): ingested mail could not be moved to done/ — fix its permissions"),
        );
    } else {
        let layout = if inbox.join("new").is_dir() && inbox.join("cur").is_dir() {
            "a maildir (new/ and cur/ are read)"
        } else {
            "a folder (*.eml files are read)"
        };
        report.line(Level::Ok, &check, format!("{layout}, writable"));
    }
}

/// Whether a missing folder could be created: its nearest existing
/// ancestor is a writable folder. Err says what is wrong.
fn creatable(missing: &Path) -> Result<(), String> {
    let absolute = std::path::absolute(missing).map_err(|e| format!("does not exist and cannot be resolved ({e})"))?;
    let Some(ancestor) = absolute.ancestors().skip(1).find(|a| a.exists()) else {
        return Err("does not exist, and no folder above it does".into());
    };
    if !ancestor.is_dir() {
        return Err(format!(
            "does not exist and cannot be created: {} is not a folder",
            ancestor.display()
        ));
    }
    probe_write(ancestor).map_err(|e| {
        format!(
            "does not exist and cannot be created: {} is not writable ({e}) — create it, or pick another path",
            ancestor.display()
        )
    })
}

/// Creates and removes a probe file. Its name starts with a dot, so an
/// inbox never takes it for mail.
fn probe_write(folder: &Path) -> std::io::Result<()> {
    let probe = folder.join(format!(
        ".casebridge-doctor-{}-{}",
        std::process::id(),
        crate::local::random_token()
    ));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .and_then(|mut file| file.write_all(b"probe\n"));
    let removed = std::fs::remove_file(&probe);
    written.and(removed)
}

/// An error and its sources, on one line.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// One line: newlines (a TOML error's excerpt) become spaces, and any URL
/// loses its query string and credentials.
fn one_line(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    joined.split(' ').map(redact_url).collect::<Vec<_>>().join(" ")
}

fn redact_url(word: &str) -> String {
    let Some(scheme_end) = word.find("://") else {
        return word.to_string();
    };
    // A URL quoted in an error message ends at its quote.
    let end = word[scheme_end..].find(['"', '\'', '`']).map_or(word.len(), |i| scheme_end + i);
    let (url, rest) = word.split_at(end);
    let (head, _) = url.split_at(url.find(['?', '#']).unwrap_or(url.len()));
    let after_scheme = scheme_end + 3;
    let authority_end = head[after_scheme..].find('/').map_or(head.len(), |i| after_scheme + i);
    let authority = &head[after_scheme..authority_end];
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    format!("{}{host}{}{rest}", &head[..after_scheme], &head[authority_end..])
}

/// Where an agent listens, and its URL as shown (no credentials, no query).
#[derive(Debug)]
struct Target {
    host: String,
    port: u16,
    shown: String,
}

impl Target {
    /// Never echoes the URL in an error: it may carry a token.
    fn parse(url: &str) -> Result<Target, String> {
        let (scheme, rest) = url.split_once("://").ok_or("the url is not an http(s) URL")?;
        let default_port = match scheme.to_ascii_lowercase().as_str() {
            "http" => 80,
            "https" => 443,
            _ => return Err("the url is not an http(s) URL".into()),
        };
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let path = &tail[..tail.find(['?', '#']).unwrap_or(tail.len())];
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
        let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']').ok_or("the url has an unclosed [ in its host")?;
            match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None if after.is_empty() => (host, None),
                None => return Err("the url has text after its [host]".into()),
            }
        } else {
            match host_port.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (host_port, None),
            }
        };
        if host.is_empty() {
            return Err("the url has no host".into());
        }
        let port = match port {
            Some(port) => port.parse::<u16>().map_err(|_| "the url's port is not a number from 0 to 65535")?,
            None => default_port,
        };
        let shown_host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        let shown_port = if authority.ends_with(&format!(":{port}")) {
            format!(":{port}")
        } else {
            String::new()
        };
        Ok(Target {
            host: host.to_string(),
            port,
            shown: format!("{scheme}://{shown_host}{shown_port}{path}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_host_and_port_and_is_shown_without_secrets() {
        let t = Target::parse("https://user:pw@agents.shop.example/refund?token=abc#x").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("agents.shop.example", 443));
        assert_eq!(t.shown, "https://agents.shop.example/refund");
        let t = Target::parse("http://127.0.0.1:8080/invoke?k=v").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.shown.as_str()),
            ("127.0.0.1", 8080, "http://127.0.0.1:8080/invoke")
        );
        let t = Target::parse("http://[::1]:9000").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.shown.as_str()), ("::1", 9000, "http://[::1]:9000"));
        let t = Target::parse("HTTP://example.com?q=1").unwrap();
        assert_eq!((t.port, t.shown.as_str()), (80, "HTTP://example.com"));
        for bad in ["ftp://x/", "no-scheme", "http://:80/", "http://x:99999/", "http://[::1/"] {
            let error = Target::parse(bad).unwrap_err();
            assert!(!error.contains(bad), "{error} echoes the URL");
        }
    }

    #[test]
    fn lines_lose_newlines_query_strings_and_credentials() {
        assert_eq!(
            one_line("invalid:\n  url \"http://u:p@h/x?token=s3cret\" is bad\n"),
            "invalid: url \"http://h/x\" is bad"
        );
        assert_eq!(one_line("see https://h:1/a#frag."), "see https://h:1/a");
        assert_eq!(one_line("plain text, no url"), "plain text, no url");
    }
}
