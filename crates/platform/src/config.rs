//! Layered, typed configuration.
//!
//! Sources, later ones winning: the defaults every service shares ([`COMMON_DEFAULTS`]),
//! the service's own built-in defaults, an optional TOML file, then environment
//! variables named `HUBSCORE__SECTION__KEY` (for example `HUBSCORE__HTTP__PORT=9000`).
//! A value that is missing or of the wrong type fails start-up with an error naming the
//! key, never a half-configured service.
//!
//! Secrets (keys, client secrets) belong in environment variables or in files they name;
//! the built-in values are development values and say so. `[runtime] development` is
//! `false` unless set (`HUBSCORE__RUNTIME__DEVELOPMENT=true`, as `scripts/run` does): a
//! service refuses to serve with a development value outside development mode
//! ([`refuse_development_values`]).

use std::path::Path;

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Defaults shared by every service: production mode, local PostgreSQL and RabbitMQ,
/// JSON logs, the development internal-token public key. The connection strings and
/// keys are development values only.
pub const COMMON_DEFAULTS: &str = concat!(
    r#"
[runtime]
# Production is the default; scripts/run and local tooling set
# HUBSCORE__RUNTIME__DEVELOPMENT=true to accept the built-in development keys.
development = false

[http]
host = "127.0.0.1"

[database]
url = "postgres://postgres@127.0.0.1:5432/hubscore"
max_connections = 10
acquire_timeout_ms = 5000

[amqp]
url = "amqp://guest:guest@127.0.0.1:5672/%2f"
exchange = "hubscore.events"
dead_letter_exchange = "hubscore.dlx"
prefetch = 32
delivery_limit = 5
reconnect_initial_backoff_ms = 200
reconnect_max_backoff_ms = 10000

[telemetry]
level = "info"
format = "json"

[internal_jwt]
issuer = "hubscore"
ttl_secs = 60
# DEVELOPMENT ONLY key, refused outside development mode. Production sets
# HUBSCORE__INTERNAL_JWT__PUBLIC_KEYS to the gateway's public key(s).
public_keys = """"#,
    crate::development_internal_jwt_public_key!(),
    r#""""
"#
);

/// The environment variable prefix; `HUBSCORE__HTTP__PORT` sets `http.port`.
pub const ENV_PREFIX: &str = "HUBSCORE";

/// Configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A source could not be read or parsed (the file is missing, not TOML, ...).
    #[error("configuration source: {0}")]
    Source(String),
    /// A key is missing or holds a value of the wrong type.
    #[error("configuration key `{key}`: {message}")]
    Invalid {
        /// Dotted path of the offending key, e.g. `database.max_connections`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

/// Loads settings from the process environment. See the module docs for the order.
pub fn load<T: DeserializeOwned>(
    service_defaults: &str,
    file: Option<&Path>,
) -> Result<T, ConfigError> {
    load_with_env(service_defaults, file, std::env::vars())
}

/// Like [`load`], with the environment given explicitly (tests must not mutate the
/// process environment, which other threads read).
pub fn load_with_env<T: DeserializeOwned>(
    service_defaults: &str,
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<T, ConfigError> {
    let prefix = format!("{ENV_PREFIX}__");
    let env: config::Map<String, String> = env
        .into_iter()
        .filter(|(key, _)| key.starts_with(&prefix))
        .collect();
    let mut builder = Config::builder()
        .add_source(File::from_str(COMMON_DEFAULTS, FileFormat::Toml))
        .add_source(File::from_str(service_defaults, FileFormat::Toml));
    if let Some(path) = file {
        builder = builder.add_source(File::from(path).format(FileFormat::Toml).required(true));
    }
    let config = builder
        .add_source(
            Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(env)),
        )
        .build()
        .map_err(|e| ConfigError::Source(e.to_string()))?;
    serde_path_to_error::deserialize(config).map_err(|e| {
        let key = e.path().to_string();
        let message = e.into_inner().to_string();
        ConfigError::Invalid { key, message }
    })
}

/// How the process runs: `[runtime]`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub struct RuntimeSettings {
    /// Development mode accepts the built-in development keys and secrets; production
    /// (the default) refuses to start with them. `scripts/run` sets
    /// `HUBSCORE__RUNTIME__DEVELOPMENT=true`.
    #[serde(default)]
    pub development: bool,
}

/// Refuses to go on when a setting still holds its built-in development value outside
/// development mode. `checks` pairs each setting's dotted name with whether it holds its
/// development value (for example [`crate::jwt::InternalJwtSettings::development_values`]).
/// The error names every such setting, never its value. A service calls this before it
/// starts serving.
pub fn refuse_development_values(development: bool, checks: &[(&str, bool)]) -> anyhow::Result<()> {
    if development {
        return Ok(());
    }
    let offending: Vec<&str> = checks
        .iter()
        .filter(|(_, is_development_value)| *is_development_value)
        .map(|(name, _)| *name)
        .collect();
    anyhow::ensure!(
        offending.is_empty(),
        "built-in DEVELOPMENT values outside development mode: {}; set real values through \
         the environment, or set runtime.development = true \
         (HUBSCORE__RUNTIME__DEVELOPMENT=true) on a developer's machine",
        offending.join(", ")
    );
    Ok(())
}

/// Where a service's HTTP server listens.
#[derive(Debug, Clone, Deserialize)]
pub struct HttpSettings {
    /// Interface to bind, e.g. `127.0.0.1` or `0.0.0.0`.
    pub host: String,
    /// Port to bind; 0 picks a free one (tests).
    pub port: u16,
}

/// Log level and format.
#[derive(Debug, Clone, Deserialize)]
pub struct TelemetrySettings {
    /// A `tracing` filter directive such as `info` or `info,sync_worker=debug`.
    pub level: String,
    /// `json` for machines, `pretty` for a developer's terminal.
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Pretty,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Settings {
        http: HttpSettings,
        telemetry: TelemetrySettings,
        custom: Custom,
    }

    #[derive(Debug, Deserialize)]
    struct Custom {
        batch_size: u32,
        name: String,
    }

    const DEFAULTS: &str = "[http]\nport = 8082\n[custom]\nbatch_size = 100\nname = \"built-in\"\n";

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn write_file(contents: &str) -> std::path::PathBuf {
        let path =
            std::env::temp_dir().join(format!("hubscore-config-{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn built_in_defaults_alone_give_a_complete_configuration() {
        let s: Settings = load_with_env(DEFAULTS, None, env(&[])).unwrap();
        assert_eq!(s.http.port, 8082);
        assert_eq!(s.http.host, "127.0.0.1");
        assert_eq!(s.telemetry.format, LogFormat::Json);
        assert_eq!(s.custom.name, "built-in");
    }

    #[test]
    fn file_overrides_defaults_and_env_overrides_file() {
        let path = write_file("[http]\nport = 9100\n[custom]\nbatch_size = 50\n");
        let s: Settings = load_with_env(
            DEFAULTS,
            Some(&path),
            env(&[("HUBSCORE__CUSTOM__BATCH_SIZE", "7")]),
        )
        .unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(s.http.port, 9100, "file value beats the built-in default");
        assert_eq!(s.custom.batch_size, 7, "environment beats the file");
        assert_eq!(
            s.custom.name, "built-in",
            "untouched keys keep their default"
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_names_its_key() {
        let err =
            load_with_env::<Settings>(DEFAULTS, None, env(&[("HUBSCORE__HTTP__PORT", "eighty")]))
                .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("http.port"), "{text}");
    }

    #[test]
    fn a_missing_value_names_its_key() {
        let err =
            load_with_env::<Settings>("[http]\nport = 1\n[custom]\nname = \"x\"\n", None, env(&[]))
                .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("custom") && text.contains("batch_size"),
            "{text}"
        );
    }

    #[test]
    fn a_named_file_that_does_not_exist_fails() {
        let missing = Path::new("/nonexistent/hubscore.toml");
        let err = load_with_env::<Settings>(DEFAULTS, Some(missing), env(&[])).unwrap_err();
        assert!(matches!(err, ConfigError::Source(_)), "{err}");
    }

    #[test]
    fn unrelated_environment_variables_are_ignored() {
        let s: Settings = load_with_env(
            DEFAULTS,
            None,
            env(&[("HTTP__PORT", "1"), ("HUBSCOREX__HTTP__PORT", "2")]),
        )
        .unwrap();
        assert_eq!(s.http.port, 8082);
    }
}
