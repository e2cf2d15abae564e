//! A real SMTP server on loopback (Python aiosmtpd) that writes what it receives into a
//! maildir: plain, STARTTLS (`--tlscert/--tlskey`, and then it refuses mail without
//! STARTTLS) or implicit TLS (`--smtpscert/--smtpskey`).

use std::ffi::OsStr;
use std::time::{Duration, Instant};

use crate::common::python;

pub struct SmtpSink {
    child: std::process::Child,
    pub port: u16,
    maildir: tempfile::TempDir,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts aiosmtpd with `extra` arguments (the TLS options) and waits until it accepts
/// connections.
pub async fn smtp_sink(extra: &[&OsStr]) -> SmtpSink {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let maildir = tempfile::tempdir().unwrap();
    let child = std::process::Command::new(python())
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
        .args(extra)
        .args(["-c", "aiosmtpd.handlers.Mailbox"])
        .arg(maildir.path().join("mail"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "aiosmtpd did not start (pip install aiosmtpd)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    SmtpSink { child, port, maildir }
}

impl SmtpSink {
    /// `[smtp]` for a Cairn that sends to this sink, in plain text on loopback.
    pub fn config(&self, from: &str) -> cairn_server::config::smtp::SmtpConfig {
        cairn_server::config::smtp::SmtpConfig {
            host: "127.0.0.1".into(),
            port: self.port,
            tls: cairn_server::config::smtp::SmtpTls::None,
            ca_file: None,
            username: None,
            password: None,
            from: from.into(),
            timeout_secs: 10,
            subject_template: None,
            body_template: None,
        }
    }

    pub fn messages(&self) -> Vec<String> {
        let dir = self.maildir.path().join("mail").join("new");
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
            .collect()
    }
}
