//! Alert e-mail over TLS, against a real SMTP server on loopback (aiosmtpd) with
//! certificates made here (rcgen): a private CA signs the server's certificate for
//! 127.0.0.1 and Cairn trusts that CA through `smtp.ca_file`. STARTTLS (the server refuses
//! mail before it) and implicit TLS both deliver; a server whose certificate chains to
//! another CA gets nothing, and the failure is recorded in the `alert.fired` event.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cairn_server::config::smtp::{SmtpConfig, SmtpTls};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::TestApp;
use crate::smtp_sink::smtp_sink;

/// A CA and a server certificate it signed for 127.0.0.1, as PEM files.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "Cairn test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let mut server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        server.distinguished_name.push(DnType::CommonName, "127.0.0.1");
        let server_key = KeyPair::generate().unwrap();
        let server_cert = server.signed_by(&server_key, &issuer).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), server_cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), server_key.serialize_pem()).unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// aiosmtpd's options to serve with this certificate, STARTTLS or implicit TLS.
fn sink_args(pki: &Pki, tls: SmtpTls) -> Vec<PathBuf> {
    let (cert, key) = match tls {
        SmtpTls::Starttls => ("--tlscert", "--tlskey"),
        SmtpTls::Tls => ("--smtpscert", "--smtpskey"),
        SmtpTls::None => return Vec::new(),
    };
    vec![cert.into(), pki.path("cert.pem"), key.into(), pki.path("key.pem")]
}

/// Starts aiosmtpd (certificate of `server`) and Cairn (trusting `trusted`'s CA), makes one
/// failed login fire a rule with `email_to`, and returns the `email` field of the
/// `alert.fired` event and what the SMTP server received.
async fn fire_one_alert(tls: SmtpTls, server: &Pki, trusted: &Pki) -> (Value, Vec<String>) {
    let args = sink_args(server, tls);
    let args: Vec<&OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let sink = smtp_sink(&args).await;
    let (port, ca_file) = (sink.port, trusted.path("ca.pem"));
    let app = TestApp::start_with(|c| {
        c.smtp = Some(SmtpConfig {
            host: "127.0.0.1".into(),
            port,
            tls,
            ca_file: Some(ca_file),
            username: None,
            password: None,
            from: "Cairn <alerts@cairn.test>".into(),
            timeout_secs: 10,
            subject_template: None,
            body_template: None,
        });
    })
    .await;
    app.tenant("acme").await;
    let (status, rule) = app
        .post(
            "/api/v1/tenants/acme/alert-rules",
            json!({"name": "tls-check", "action": "auth.failed", "threshold": 1, "window_secs": 60,
                   "email_to": "security@acme.test", "webhook": false}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rule}");
    let resp = app
        .client
        .post(format!("http://{}/t/acme/mcp", app.addr))
        .bearer_auth("cairn_live_nope_0000000000000000000000000000000000000000")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // `alert.fired` is recorded once the delivery attempt is over (sent or failed).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = app.tenant_events("acme").await;
        if let Some(fired) = events.iter().find(|e| e.action == "alert.fired") {
            return (fired.details["email"].clone(), sink.messages());
        }
        assert!(Instant::now() < deadline, "the alert did not fire");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_delivered(email: &Value, mails: &[String]) {
    assert_eq!(email, "sent", "{email}");
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(mails[0].contains("To: security@acme.test"), "{}", mails[0]);
    assert!(mails[0].contains("tls-check"), "{}", mails[0]);
    assert!(mails[0].contains("1 events matching auth.failed"), "{}", mails[0]);
}

#[tokio::test]
async fn alert_email_goes_over_starttls_to_a_server_of_the_configured_ca() {
    let pki = Pki::new();
    let (email, mails) = fire_one_alert(SmtpTls::Starttls, &pki, &pki).await;
    assert_delivered(&email, &mails);
}

#[tokio::test]
async fn alert_email_goes_over_implicit_tls_to_a_server_of_the_configured_ca() {
    let pki = Pki::new();
    let (email, mails) = fire_one_alert(SmtpTls::Tls, &pki, &pki).await;
    assert_delivered(&email, &mails);
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_refused_and_recorded() {
    let (trusted, other) = (Pki::new(), Pki::new());
    for tls in [SmtpTls::Starttls, SmtpTls::Tls] {
        let (email, mails) = fire_one_alert(tls, &other, &trusted).await;
        let email = email.as_str().unwrap_or_default();
        assert!(email.starts_with("failed:"), "{tls:?}: {email}");
        assert!(
            email.to_lowercase().contains("certificate"),
            "{tls:?}: the reason names the certificate: {email}"
        );
        assert!(mails.is_empty(), "{tls:?}: {mails:?}");
    }
}
