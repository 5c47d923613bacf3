//! Outcome actions function: DynamoDB stream records of answered turns → the
//! decision table's plan carried out (mail sent or drafted, escalation,
//! closure). Returns batch item failures so only failed records are retried;
//! the outbound claim makes a retried record never send twice.

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use casebridge::config::Config;
use casebridge::mail::MailSender;
use casebridge::pipeline::outcome::carry_out;
use casebridge::pipeline::{Clock, StepEnv};
use casebridge::store::Store;
use casebridge::stream::{process_batch, RecordRef};

pub struct OutcomeFunction<S, M> {
    pub store: S,
    pub mailer: M,
    pub config: Config,
    pub clock: Box<dyn Clock>,
}

impl<S: Store, M: MailSender> OutcomeFunction<S, M> {
    pub async fn handle(&self, event: Event) -> DynamoDbEventResponse {
        let env = StepEnv::new(&self.config, self.clock.as_ref());
        process_batch(event, RecordRef::is_answered_turn, |target| async move {
            carry_out(env, &self.store, &self.mailer, &target.case_id, &target.key)
                .await
                .map(|_| ())
        })
        .await
    }
}
