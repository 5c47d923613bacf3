//! SES v2 adapter: sends the composed MIME as a raw message so every
//! threading header is exactly as casebridge wrote it. SES replaces the
//! Message-ID with its own (`<MessageId@region.amazonses.com>`); the outcome
//! step indexes the returned MessageId so replies still link.

use aws_sdk_sesv2::error::{DisplayErrorContext, SdkError};
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{Destination, EmailContent, RawMessage};
use aws_sdk_sesv2::Client;

use super::{MailError, MailSender, OutgoingMail, SendReceipt};

pub struct SesMailer {
    client: Client,
    configuration_set: Option<String>,
}

impl SesMailer {
    pub fn new(client: Client, configuration_set: Option<String>) -> SesMailer {
        SesMailer { client, configuration_set }
    }
}

fn classify(err: SdkError<SendEmailError, aws_sdk_sesv2::config::http::HttpResponse>) -> MailError {
    let text = DisplayErrorContext(&err).to_string();
    match &err {
        SdkError::ServiceError(service) => match service.err() {
            SendEmailError::TooManyRequestsException(_) | SendEmailError::LimitExceededException(_) => MailError::Throttled(text),
            SendEmailError::MessageRejected(_)
            | SendEmailError::MailFromDomainNotVerifiedException(_)
            | SendEmailError::AccountSuspendedException(_)
            | SendEmailError::SendingPausedException(_)
            | SendEmailError::BadRequestException(_)
            | SendEmailError::NotFoundException(_) => MailError::Permanent(text),
            _ => {
                let status = service.raw().status().as_u16();
                if status == 429 {
                    MailError::Throttled(text)
                } else if (400..500).contains(&status) {
                    MailError::Permanent(text)
                } else {
                    MailError::Transient(text)
                }
            }
        },
        _ => MailError::Transient(text),
    }
}

impl MailSender for SesMailer {
    async fn send(&self, mail: &OutgoingMail) -> Result<SendReceipt, MailError> {
        let raw = RawMessage::builder()
            .data(Blob::new(mail.raw.clone()))
            .build()
            .map_err(|e| MailError::Compose(e.to_string()))?;
        let output = self
            .client
            .send_email()
            .from_email_address(&mail.from)
            .destination(Destination::builder().set_to_addresses(Some(mail.to.clone())).build())
            .content(EmailContent::builder().raw(raw).build())
            .set_configuration_set_name(self.configuration_set.clone())
            .send()
            .await
            .map_err(classify)?;
        let id = output
            .message_id
            .ok_or_else(|| MailError::Transient("SES returned no MessageId".into()))?;
        Ok(SendReceipt { provider_message_id: id })
    }
}
