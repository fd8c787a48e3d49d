//! Mailing enrolment codes (lettre over SMTP). The code goes only to the address it proves;
//! the HTTP reply never carries it.

use crate::config::SmtpConfig;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// The relay enrolment codes go through.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    /// Builds the transport from `[ca.smtp]` (nothing is sent or connected yet).
    pub fn new(cfg: &SmtpConfig) -> anyhow::Result<Mailer> {
        let from: Mailbox = cfg
            .from
            .parse()
            .map_err(|e| anyhow::anyhow!("ca.smtp.from {:?}: {e}", cfg.from))?;
        let mut builder = match cfg.security.as_str() {
            "none" => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.host),
            "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(&cfg.host)?,
            _ => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&cfg.host)?,
        }
        .port(cfg.port)
        .timeout(Some(std::time::Duration::from_secs(10)));
        if let Some(user) = &cfg.username {
            let password = match &cfg.password_file {
                Some(p) => std::fs::read_to_string(p)
                    .map_err(|e| anyhow::anyhow!("ca.smtp.password_file {}: {e}", p.display()))?
                    .trim_end_matches(['\r', '\n'])
                    .to_owned(),
                None => anyhow::bail!("ca.smtp.username needs ca.smtp.password_file"),
            };
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(Mailer {
            transport: builder.build(),
            from,
        })
    }

    /// Sends the code for `email`.
    pub async fn send_code(
        &self,
        email: &str,
        reference: &str,
        secret: &str,
        expires_at: i64,
        server: &str,
    ) -> anyhow::Result<()> {
        let to: Mailbox = email
            .parse()
            .map_err(|e| anyhow::anyhow!("{email:?}: {e}"))?;
        let until = time::OffsetDateTime::from_unix_timestamp(expires_at)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default();
        let body = format!(
            "Someone (we hope you) asked for an email certificate for {email}.\r\n\
             \r\n\
             reference: {reference}\r\n\
             secret: {secret}\r\n\
             \r\n\
             The code works once, until {until}. To enrol:\r\n\
             \r\n\
             \x20   stamp enroll --server {server} --email {email}\r\n\
             \r\n\
             If you did not ask for it, ignore this message: without the code nobody can\r\n\
             obtain a certificate for your address.\r\n"
        );
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject("Your Sigillum enrolment code")
            .body(body)?;
        self.transport.send(message).await?;
        Ok(())
    }
}
