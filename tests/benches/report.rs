//! `casebridge report` over 100,000 cases on the embedded store (SQLite in
//! memory): the facts read through the Store port (`load_facts`: every case
//! and its mail, outbound, draft, turn and timeline records) and aggregated.
//! Target: under 2 s. Seeding is not measured.
//! `cargo bench -p casebridge-tests --bench report`

use casebridge::ids::CaseId;
use casebridge::model::*;
use casebridge::report::{aggregate, load_facts, Period};
use casebridge::store::sqlite::SqliteStore;
use casebridge::store::{CaseWrite, Commit, RecordWrite, Store};
use chrono::{Duration, TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion};

const CASES: usize = 100_000;

fn seed(runtime: &tokio::runtime::Runtime) -> SqliteStore {
    let store = SqliteStore::in_memory().expect("in-memory store");
    let t0 = Utc.with_ymd_and_hms(2026, 11, 2, 8, 0, 0).single().expect("a time");
    let intents = ["refund", "shipping", "billing", "account"];
    runtime.block_on(async {
        for n in 0..CASES {
            let id = CaseId::generate("CB");
            let mut case = casebridge::testing::sample_case(&id);
            let created = t0 + Duration::seconds(i64::try_from(n).unwrap_or(0) * 20);
            case.created_at = created;
            case.intent = Some(intents[n % intents.len()].to_string());
            if n % 3 != 0 {
                case.status = CaseStatus::Closed;
                case.resolution = Some(Resolution {
                    kind: if n % 2 == 0 {
                        ResolutionKind::Confirmed
                    } else {
                        ResolutionKind::Assumed
                    },
                    at: created + Duration::hours(2),
                });
            }
            let mut commit = Commit::new(id.clone());
            commit.case = Some(CaseWrite::Create(case));
            commit.records.push(RecordWrite::Create(Record::Turn(AgentTurn {
                id: "TURN#0000000001".into(),
                work_item: "WORK#0000000001".into(),
                agent: "bot".into(),
                mail_ids: vec!["MSG#0000000001".into()],
                status: TurnStatus::Done,
                started_at: created,
                attempts: 1,
                result: (n % 10 == 0).then(|| TurnResult::Failed {
                    reason: "agent did not answer within 30000 ms (after 3 attempt(s))".into(),
                }),
                finished_at: Some(created),
                due_at: None,
                remote_task: None,
            })));
            for (i, kind) in ["mail_received", "agent_called", if n % 10 == 0 { "escalated" } else { "mail_sent" }]
                .into_iter()
                .enumerate()
            {
                commit.records.push(RecordWrite::Create(Record::Event(TimelineEvent {
                    id: format!("EVT#0000000001#{i:03}"),
                    at: created,
                    kind: kind.into(),
                    detail: "to queue support: agent failed".into(),
                })));
            }
            store.commit(commit).await.expect("seed commit");
        }
    });
    store
}

fn report(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let store = seed(&runtime);
    let period = Period {
        since: Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).single().expect("a time"),
        until: Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).single().expect("a time"),
    };
    let mut group = c.benchmark_group("report");
    group.sample_size(10);
    group.bench_function("100k cases on SQLite", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let facts = load_facts(&store, period.since, period.until, usize::MAX).await.expect("facts");
                assert_eq!(facts.len(), CASES);
                aggregate(&facts, &period, None)
            })
        })
    });
    group.finish();
}

criterion_group!(benches, report);
criterion_main!(benches);
