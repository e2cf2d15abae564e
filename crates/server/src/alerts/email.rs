//! Alert e-mail over SMTP (lettre), the message rendered from templates (minijinja). The
//! default templates ship here; `[smtp] subject_template` / `body_template` replace them.

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::Fired;
use crate::config::smtp::{SmtpConfig, SmtpTls};
use crate::config::Config;

pub const DEFAULT_SUBJECT: &str = "[Cairn {{ severity }}] {{ rule }}: {{ count }} × {{ action }} ({{ tenant }})";
pub const DEFAULT_BODY: &str = "Alert rule \"{{ rule }}\" fired for tenant {{ tenant }} at {{ fired_at }}.

{{ count }} events matching {{ action }} in the last {{ window_secs }} s (threshold {{ threshold }})\
{% if group %} from {{ group }}{% endif %}.
{% if suppressed_since_last %}{{ suppressed_since_last }} further alerts of this rule were suppressed by its cool-down since the previous one.
{% endif %}
Severity: {{ severity }}
";

/// Renders (subject, body) for an alert.
pub fn render(cfg: &SmtpConfig, fired: &Fired) -> Result<(String, String), String> {
    let mut env = minijinja::Environment::new();
    env.add_template("subject", cfg.subject_template.as_deref().unwrap_or(DEFAULT_SUBJECT))
        .map_err(|e| format!("subject template: {e}"))?;
    env.add_template("body", cfg.body_template.as_deref().unwrap_or(DEFAULT_BODY))
        .map_err(|e| format!("body template: {e}"))?;
    let render = |name: &str| {
        env.get_template(name)
            .and_then(|t| t.render(fired))
            .map_err(|e| format!("{name} template: {e}"))
    };
    Ok((render("subject")?, render("body")?))
}

pub async fn send_alert(config: &Config, to: &str, fired: &Fired) -> Result<(), String> {
    let Some(cfg) = &config.smtp else {
        return Err("no [smtp] server configured".into());
    };
    let (subject, body) = render(cfg, fired)?;
    send(cfg, to, subject, body).await
}

/// Sends one plain-text message through the configured relay.
pub async fn send(cfg: &SmtpConfig, to: &str, subject: String, body: String) -> Result<(), String> {
    let message = Message::builder()
        .from(cfg.from.parse().map_err(|e| format!("smtp.from: {e}"))?)
        .to(to.parse().map_err(|e| format!("email_to: {e}"))?)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| e.to_string())?;
    let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.host);
    let builder = match cfg.tls {
        SmtpTls::None => builder,
        SmtpTls::Starttls => builder.tls(Tls::Required(tls_parameters(cfg)?)),
        SmtpTls::Tls => builder.tls(Tls::Wrapper(tls_parameters(cfg)?)),
    };
    let mut builder = builder
        .port(cfg.port)
        .timeout(Some(std::time::Duration::from_secs(cfg.timeout_secs)));
    if let (Some(user), Some(pass)) = (&cfg.username, &cfg.password) {
        builder = builder.credentials(Credentials::new(user.clone(), pass.clone()));
    }
    builder
        .build()
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The server's certificate must be valid for `host` and chain to a public root or to a
/// CA of `ca_file`. There is deliberately no way to accept an invalid certificate.
fn tls_parameters(cfg: &SmtpConfig) -> Result<TlsParameters, String> {
    let mut builder = TlsParameters::builder(cfg.host.clone());
    if let Some(pem) = cfg.ca_pem()? {
        let ca = Certificate::from_pem(&pem).map_err(|e| format!("smtp.ca_file: {e}"))?;
        builder = builder.add_root_certificate(ca);
    }
    builder.build_rustls().map_err(|e| e.to_string())
}
