//! What a case costs in AWS requests: the refund scenario (two customer
//! mails, two agent turns, two mails sent) through the three handlers on the
//! local stack, with every DynamoDB request the functions make priced by
//! DynamoDB's rules (`casebridge_tests::meter`). Prints the figures and the
//! dollar model, and fails if a case gets more expensive than the budget.
//!
//! Stack only: what it measures is DynamoDB's request pricing, which the
//! embedded store has no equivalent of (the scenario's behaviour runs on
//! both backends in `pipeline_e2e.rs`).

use casebridge::agent_client::HttpAgentClient;
use casebridge::mail::ses::SesMailer;
use casebridge::model::CaseStatus;
use casebridge::store::Store;
use casebridge_agent_invocation::AgentFunction;
use casebridge_outcome_actions::OutcomeFunction;
use casebridge_tests::*;

/// us-east-1 on-demand prices used by the model (USD).
const PER_MILLION_WRITE_UNITS: f64 = 0.625;
const PER_MILLION_READ_UNITS: f64 = 0.125;
const PER_MILLION_LAMBDA_REQUESTS: f64 = 0.20;
const PER_GB_SECOND_ARM: f64 = 0.000_013_333_4;
const PER_THOUSAND_S3_PUTS: f64 = 0.005;
const PER_THOUSAND_S3_GETS: f64 = 0.000_4;
/// Assumed billed time per invocation, excluding the agent's own latency.
const BILLED_SECONDS: f64 = 0.1;
const MEMORY_GB: f64 = 0.25;
/// Fails the run if a case costs more than this per 1,000 cases (USD).
const BUDGET_PER_THOUSAND: f64 = 0.20;

#[tokio::test(flavor = "multi_thread")]
async fn cost_per_thousand_refund_cases() {
    let Some(stack) = stack().await else { return };
    // `dynamo` is the test's own unmetered view of the table (and the HTTP
    // API's, whose context reads the agent triggers are not in the figures).
    let dynamo = stack.table().await;
    let (store, meter) = stack.metered(&dynamo);
    let (s3, bucket, raw_mail) = stack.bucket().await;
    let api = spawn_api(
        dynamo.clone(),
        SesMailer::new(stack.ses(), None),
        "t",
        &config("http://127.0.0.1:9/invoke", "fully_autonomous"),
    )
    .await;
    let agent_url = spawn_refund_agent(api).await;
    let config = config(&agent_url, "fully_autonomous");
    let inbound = inbound_function(store.clone(), raw_mail, &config);
    let agent = AgentFunction {
        store: store.clone(),
        agents: HttpAgentClient::new(std::sync::Arc::new(casebridge::secrets::Secrets::env_only())).unwrap(),
        config: config.clone(),
        clock: clock(),
    };
    let outcome = OutcomeFunction {
        store: store.clone(),
        mailer: SesMailer::new(stack.ses(), None),
        config,
        clock: clock(),
    };
    let mut tap = stack.tap(&dynamo).await;
    let customer = format!("{}@customer.example", unique("cost"));
    let mut invocations = 0u32;

    let first_id = format!("{}@c.example", unique("m1"));
    let ses_id = deliver_to_s3(
        &s3,
        &bucket,
        &customer_mail(
            &customer,
            "Refund for order 1234",
            &first_id,
            None,
            "I would like a refund for order 1234.",
        ),
    )
    .await;
    let report = inbound.handle(ses_event(&ses_id, "PASS", "PASS")).await.unwrap();
    let case = casebridge::ids::CaseId::parse(report.records[0].case_id.as_deref().unwrap()).unwrap();
    invocations += 1;
    for _ in 0..2 {
        assert!(agent
            .handle(tap.next_event(&stack).await, None)
            .await
            .batch_item_failures
            .is_empty());
        assert!(outcome.handle(tap.next_event(&stack).await).await.batch_item_failures.is_empty());
        invocations += 2;
        if invocations == 3 {
            let question = dynamo.list_records(&case, casebridge::model::RecordKind::Outbound).await.unwrap();
            let sent = question
                .into_iter()
                .filter_map(casebridge::model::Record::into_outbound)
                .next()
                .unwrap();
            let reply = customer_mail(
                &customer,
                &format!("Re: {}", sent.subject),
                &format!("{}@c.example", unique("m2")),
                Some(&sent.message_id),
                "It was $42.50.",
            );
            let ses_id = deliver_to_s3(&s3, &bucket, &reply).await;
            inbound.handle(ses_event(&ses_id, "PASS", "PASS")).await.unwrap();
            invocations += 1;
        }
    }
    assert_eq!(dynamo.get_case(&case).await.unwrap().unwrap().status, CaseStatus::Resolved);

    let usage = meter.usage();
    assert_eq!(usage.unmetered, 0, "every DynamoDB request is priced: {usage:?}");
    let mails = 2.0;
    let dynamo_cost = usage.write_units * PER_MILLION_WRITE_UNITS / 1e6 + usage.read_units * PER_MILLION_READ_UNITS / 1e6;
    let lambda_cost = f64::from(invocations) * (PER_MILLION_LAMBDA_REQUESTS / 1e6 + BILLED_SECONDS * MEMORY_GB * PER_GB_SECOND_ARM);
    let s3_cost = mails * (PER_THOUSAND_S3_PUTS + PER_THOUSAND_S3_GETS) / 1e3;
    let per_thousand = 1000.0 * (dynamo_cost + lambda_cost + s3_cost);
    eprintln!(
        "refund case: {invocations} invocations, {} transactions ({} cancelled) and {} other writes touching {} items, {} write units ({} of them for {} index entries); {} reads + {} queries ({} read units)",
        usage.transactions,
        usage.cancelled,
        usage.writes,
        usage.items_written,
        usage.write_units,
        usage.index_write_units,
        usage.index_writes,
        usage.reads,
        usage.queries,
        usage.read_units
    );
    eprintln!(
        "per inbound mail: {:.1} write units, {:.1} read units",
        usage.write_units / mails,
        usage.read_units / mails
    );
    eprintln!(
        "per 1,000 cases: DynamoDB ${:.4}, Lambda ${:.4}, S3 ${:.4}, total ${per_thousand:.4} (SES and agents excluded)",
        1000.0 * dynamo_cost,
        1000.0 * lambda_cost,
        1000.0 * s3_cost
    );
    assert!(
        per_thousand < BUDGET_PER_THOUSAND,
        "a case costs ${per_thousand:.4} per 1,000, over the ${BUDGET_PER_THOUSAND} budget"
    );
}
