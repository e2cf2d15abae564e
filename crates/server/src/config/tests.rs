use super::*;

#[test]
fn defaults_are_valid_and_sqlite() -> Result<(), ConfigError> {
    let cfg = Config::default();
    cfg.validate()?;
    assert_eq!(cfg.database_url(), "sqlite://./cairn-data/cairn.db");
    assert_eq!(cfg.public_base_url(), "http://127.0.0.1:8080");
    assert_eq!(cfg.store_config().tenant_max_concurrency, 5);
    Ok(())
}

#[test]
fn layered_sources_and_validation() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "cairn.toml",
            "listen = \"127.0.0.1:9000\"\ncors_allowed_origins = [\"https://App.example.com/\"]\n",
        )?;
        jail.set_env("CAIRN_LISTEN", "127.0.0.1:9100");
        jail.set_env("CAIRN_UNRELATED_THING", "ignored");
        jail.set_env("DATABASE_URL", "postgres://u:pw@db/cairn");
        let cfg = Config::load(&ConfigArgs::default()).map_err(|e| e.to_string())?;
        assert_eq!(cfg.listen.port(), 9100);
        assert_eq!(cfg.database_url(), "postgres://u:pw@db/cairn");
        assert_eq!(cfg.cors_origins(), vec!["https://app.example.com".to_string()]);
        assert!(!format!("{cfg:?}").contains("pw@"));

        let args = ConfigArgs {
            listen: Some("127.0.0.1:9200".into()),
            ..ConfigArgs::default()
        };
        let cfg = Config::load(&args).map_err(|e| e.to_string())?;
        assert_eq!(cfg.listen.port(), 9200);

        jail.set_env(
            "CAIRN_CORS_ALLOWED_ORIGINS",
            "https://a.example, https://b.example:8443",
        );
        let cfg = Config::load(&ConfigArgs::default()).map_err(|e| e.to_string())?;
        assert_eq!(cfg.cors_origins().len(), 2);

        jail.set_env("CAIRN_CORS_ALLOWED_ORIGINS", "*");
        assert!(Config::load(&ConfigArgs::default()).is_err());
        jail.set_env("CAIRN_CORS_ALLOWED_ORIGINS", "");
        jail.set_env("CAIRN_DATABASE_URL", "mysql://nope");
        let err = Config::load(&ConfigArgs::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.to_lowercase().contains("database_url"), "{err}");
        jail.set_env("CAIRN_DATABASE_URL", "sqlite::memory:");
        jail.set_env("CAIRN_LISTEN", "not an address");
        let err = Config::load(&ConfigArgs::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.to_lowercase().contains("listen"), "{err}");
        Ok(())
    });
}

#[test]
fn nested_tiers_from_file_and_env() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("cairn.toml", "[tiers.gold]\nburst_per_minute = 99\nmonthly_quota = 5\n")?;
        jail.set_env("CAIRN_TIERS__TRIAL__BURST_PER_MINUTE", "7");
        jail.set_env("CAIRN_REDIS_URL", "redis://127.0.0.1:6379/0");
        jail.set_env("CAIRN_REDIS_FAILURE_MODE", "fail_closed");
        let cfg = Config::load(&ConfigArgs::default()).map_err(|e| e.to_string())?;
        assert_eq!(cfg.tiers["gold"].burst_per_minute, 99);
        assert_eq!(cfg.tiers["trial"].burst_per_minute, 7);
        assert_eq!(
            cfg.tiers["trial"].expires_after_days,
            Some(14),
            "other fields keep their defaults"
        );
        assert_eq!(cfg.redis_failure_mode, RedisFailureMode::FailClosed);
        jail.set_env("CAIRN_DEFAULT_TIER", "platinum");
        let err = Config::load(&ConfigArgs::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("default_tier"), "{err}");
        Ok(())
    });
}

#[test]
fn unknown_file_keys_are_rejected() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("cairn.toml", "lisen = \"127.0.0.1:9000\"\n")?;
        let err = Config::load(&ConfigArgs::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("lisen"), "{err}");
        Ok(())
    });
}

#[test]
fn smtp_ca_file_must_hold_a_certificate_and_needs_tls() {
    figment::Jail::expect_with(|jail| {
        let smtp = "[smtp]\nhost = \"smtp.example.com\"\nport = 587\nfrom = \"a@example.com\"\n";
        jail.create_file(
            "ca.pem",
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )?;
        jail.create_file("empty.pem", "")?;
        let load = |rest: &str| -> Result<Config, String> {
            std::fs::write("cairn.toml", format!("{smtp}{rest}")).map_err(|e| e.to_string())?;
            Config::load(&ConfigArgs::default()).map_err(|e| e.to_string())
        };
        let cfg = load("tls = \"starttls\"\nca_file = \"ca.pem\"\n")?;
        let ca = cfg.smtp.as_ref().and_then(|s| s.ca_file.clone());
        assert_eq!(ca, Some(std::path::PathBuf::from("ca.pem")));
        for (rest, why) in [
            ("tls = \"starttls\"\nca_file = \"missing.pem\"\n", "missing.pem"),
            ("tls = \"tls\"\nca_file = \"empty.pem\"\n", "no PEM certificate"),
            ("tls = \"none\"\nca_file = \"ca.pem\"\n", "needs tls"),
        ] {
            let err = load(rest).err().unwrap_or_default();
            assert!(err.contains("smtp") && err.contains(why), "{rest}: {err}");
        }
        Ok(())
    });
}
