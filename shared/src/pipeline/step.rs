//! The one guarded-write loop every step runs: load → apply → one commit
//! guarded by the case version and the create-only / status conditions →
//! effects. An attempt that loses the race to another writer of the case is
//! run again from a fresh read; an attempt whose claim was already taken
//! (the mail stored, the turn claimed, the draft sent) ends with the step's
//! "already handled" answer. Conflicts are typed (`CommitError`), never read
//! from error text.

use std::future::Future;

use super::{PipelineError, MAX_CONFLICT_RETRIES};
use crate::metrics::{Dimensions, Fact};
use crate::store::{Commit, CommitError, Count, Existing, Store};

/// What one attempt of a step decided. Short-lived and moved once, so the
/// size difference between the variants costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Attempt<T> {
    /// Nothing to write: the step's answer.
    Done(T),
    /// Write `commit`; answer `written` once it is stored. When a claim in
    /// it is found taken, answer `lost`, or fail if the step has none.
    Write { commit: Commit, written: T, lost: Option<T> },
}

impl<T> Attempt<T> {
    pub(crate) fn write(commit: Commit, written: T, lost: T) -> Attempt<T> {
        Attempt::Write {
            commit,
            written,
            lost: Some(lost),
        }
    }
}

/// Runs `attempt` until its commit is written, a claim is found taken, or
/// the case keeps changing for [`MAX_CONFLICT_RETRIES`] attempts (then
/// `Contention(what)`, which the caller's trigger retries later).
pub(crate) async fn guarded<S, T, F, Fut>(store: &S, what: impl FnOnce() -> String, mut attempt: F) -> Result<T, PipelineError>
where
    S: Store,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Attempt<T>, PipelineError>>,
{
    for _ in 0..MAX_CONFLICT_RETRIES {
        let (commit, written, lost) = match attempt().await? {
            Attempt::Done(answer) => return Ok(answer),
            Attempt::Write { commit, written, lost } => (commit, written, lost),
        };
        // The facts are published only once their commit has landed.
        let counts = commit.counts.clone();
        match store.commit(commit).await {
            Ok(()) => {
                publish(&counts, chrono::Utc::now());
                return Ok(written);
            }
            // Another writer changed the case, or a freshly generated case
            // id was taken: read again and decide again.
            Err(CommitError::VersionConflict(_)) | Err(CommitError::AlreadyExists(Existing::Case(_))) => continue,
            Err(e @ (CommitError::AlreadyExists(_) | CommitError::StateMismatch(_))) => {
                return match lost {
                    Some(answer) => Ok(answer),
                    None => Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(PipelineError::Contention(what()))
}

/// The facts of one landed commit as metric lines, one per intent and agent
/// (a commit touches one case, so in practice one line).
fn publish(counts: &[Count], at: chrono::DateTime<chrono::Utc>) {
    for (dims, facts) in by_dimensions(counts) {
        crate::metrics::emit(&facts, &dims, at);
    }
}

fn by_dimensions(counts: &[Count]) -> Vec<(Dimensions<'_>, Vec<Fact>)> {
    let mut groups: Vec<(Dimensions<'_>, Vec<Fact>)> = Vec::new();
    for count in counts {
        let dims = Dimensions {
            intent: Some(count.intent.as_str()).filter(|i| *i != crate::report::NONE),
            agent: count.agent.as_deref(),
        };
        match groups.iter_mut().find(|(d, _)| *d == dims) {
            Some((_, facts)) => facts.push(count.fact),
            None => groups.push((dims, vec![count.fact])),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(intent: &str, agent: Option<&str>, fact: Fact) -> Count {
        Count {
            day: chrono::NaiveDate::from_ymd_opt(2026, 11, 3).unwrap_or_default(),
            intent: intent.to_string(),
            agent: agent.map(str::to_string),
            fact,
        }
    }

    #[test]
    fn facts_are_grouped_by_intent_and_agent_and_none_is_no_intent() {
        let counts = [
            count("refund", Some("refunds"), Fact::Escalated),
            count(crate::report::NONE, None, Fact::CaseOpened),
            count("refund", Some("refunds"), Fact::AgentFailed),
        ];
        let groups = by_dimensions(&counts);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].0.intent, Some("refund"));
        assert_eq!(groups[0].1, vec![Fact::Escalated, Fact::AgentFailed]);
        assert_eq!(groups[1].0, Dimensions { intent: None, agent: None });
        assert_eq!(groups[1].1, vec![Fact::CaseOpened]);
    }
}
