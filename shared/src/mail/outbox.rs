//! Local outbox: every mail becomes an `.eml` file in a folder, exactly as it
//! would have gone to SES. For the demo, and for trying casebridge offline.

use std::path::{Path, PathBuf};

use super::{MailError, MailSender, OutgoingMail, SendReceipt};
use crate::ids::sha256_hex;

pub struct OutboxMailer {
    dir: PathBuf,
}

impl OutboxMailer {
    pub fn new(dir: impl Into<PathBuf>) -> Result<OutboxMailer, MailError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| MailError::Permanent(format!("cannot create outbox {}: {e}", dir.display())))?;
        Ok(OutboxMailer { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file a receipt names.
    pub fn path_of(&self, receipt: &SendReceipt) -> PathBuf {
        self.dir.join(&receipt.provider_message_id)
    }
}

impl MailSender for OutboxMailer {
    async fn send(&self, mail: &OutgoingMail) -> Result<SendReceipt, MailError> {
        // Name files by time then Message-ID hash: sorted listing = send order, no clashes.
        let name = format!(
            "{}-{}.eml",
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ"),
            &sha256_hex(mail.message_id.as_bytes())[..12]
        );
        let path = self.dir.join(&name);
        tokio::fs::write(&path, &mail.raw)
            .await
            .map_err(|e| MailError::Transient(format!("cannot write {}: {e}", path.display())))?;
        Ok(SendReceipt { provider_message_id: name })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conformance_and_exact_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = OutboxMailer::new(dir.path().join("outbox")).unwrap();
        crate::testing::run_mail_conformance(&outbox, |receipt| {
            let path = outbox.path_of(&receipt);
            async move { std::fs::read(path).unwrap() }
        })
        .await;
        let mail = crate::testing::conformance_mail("c@customer.test");
        let receipt = outbox.send(&mail).await.unwrap();
        assert_eq!(
            std::fs::read(outbox.path_of(&receipt)).unwrap(),
            mail.raw,
            "the outbox keeps the exact MIME"
        );
    }
}
