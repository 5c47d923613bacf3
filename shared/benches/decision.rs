//! The decision table (answer × workflow × options → plan): every combination
//! of answer type, needsReview, workflow, case status and option switches.
//! `cargo bench -p casebridge --bench decision`

use casebridge::decision::{decide, Options, Situation};
use casebridge::model::{CaseStatus, TurnResult, WorkflowMode};
use casebridge::protocol::{AgentResponse, HandlingOptions, ResponseType};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn results() -> Vec<TurnResult> {
    let mut out = vec![TurnResult::Failed {
        reason: "agent timed out".into(),
    }];
    for response_type in [
        ResponseType::Question,
        ResponseType::Resolved,
        ResponseType::UnableToResolve,
        ResponseType::NoAction,
        ResponseType::ResolveCase,
    ] {
        for needs_review in [None, Some(false), Some(true)] {
            out.push(TurnResult::Answered {
                response: AgentResponse {
                    response_type,
                    message: Some("Your refund of $42 is on its way.".into()),
                    handling_options: needs_review.map(|n| HandlingOptions { needs_review: Some(n) }),
                },
            });
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let results = results();
    let statuses = [CaseStatus::AgentWorking, CaseStatus::Escalated, CaseStatus::Closed];
    let workflows = [WorkflowMode::FullyAutonomous, WorkflowMode::SemiAutonomous];
    let mut options = Vec::new();
    for bits in 0u8..16 {
        options.push(Options {
            shadow: bits & 1 != 0,
            kill_switch: bits & 2 != 0,
            follow_up: bits & 4 != 0,
            ai_mails_last_24h: if bits & 8 != 0 { 4 } else { 0 },
            ai_mail_cap: 4,
            closure_notice: Some("Your case is closed."),
        });
    }
    let combinations = results.len() * statuses.len() * workflows.len() * options.len();
    let mut group = c.benchmark_group("decision");
    group.throughput(Throughput::Elements(combinations as u64));
    group.bench_function("every combination", |b| {
        b.iter(|| {
            for result in &results {
                for &case_status in &statuses {
                    for &workflow in &workflows {
                        for &options in &options {
                            std::hint::black_box(decide(Situation {
                                case_status,
                                workflow,
                                options,
                                result: std::hint::black_box(result),
                            }));
                        }
                    }
                }
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
