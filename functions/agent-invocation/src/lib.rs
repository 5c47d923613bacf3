//! Agent invocation function: DynamoDB stream records of new work items →
//! one agent turn each. Returns batch item failures so only failed records
//! are retried; the turn claim in the store makes a retried record a no-op.

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use casebridge::agent_client::AgentClient;
use casebridge::config::Config;
use casebridge::pipeline::agent::run_turn;
use casebridge::pipeline::{Clock, StepEnv};
use casebridge::store::Store;
use casebridge::stream::{process_batch, RecordRef};

pub struct AgentFunction<S, A> {
    pub store: S,
    pub agents: A,
    pub config: Config,
    pub clock: Box<dyn Clock>,
}

impl<S: Store, A: AgentClient> AgentFunction<S, A> {
    pub async fn handle(&self, event: Event) -> DynamoDbEventResponse {
        let env = StepEnv {
            config: &self.config,
            clock: self.clock.as_ref(),
        };
        process_batch(event, RecordRef::is_new_work_item, |target| async move {
            run_turn(env, &self.store, &self.agents, &target.case_id, &target.key)
                .await
                .map(|_| ())
        })
        .await
    }
}
