//! Test support for every crate's integration tests: a throwaway PostgreSQL database per
//! test, and unique names for AMQP exchanges and queues so tests never share broker state.

use anyhow::Context as _;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

use crate::db::DatabaseSettings;

/// The server tests create their databases on; override with `HUBSCORE_TEST_DATABASE_URL`.
pub fn admin_database_url() -> String {
    std::env::var("HUBSCORE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The broker tests use; override with `HUBSCORE_TEST_AMQP_URL`.
pub fn amqp_url() -> String {
    std::env::var("HUBSCORE_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// A received message's AMQP `type` (empty when it has none).
pub fn message_type(delivery: &lapin::message::Delivery) -> &str {
    delivery
        .properties
        .kind()
        .as_ref()
        .map_or("", |kind| kind.as_str())
}

/// `prefix` followed by a random suffix, safe as a database, exchange or queue name.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// CPU seconds (user + system) process `pid` has used so far, from `/proc/{pid}/stat`
/// (0 where there is no such file); benchmarks report it beside their figures.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name, in clock
    // ticks (100 a second on Linux).
    (ticks(11) + ticks(12)) / 100.0
}

/// A database that exists for one test and is dropped when this value is.
pub struct TestDatabase {
    /// Connection URL of the new database.
    pub url: String,
    name: String,
    admin_url: String,
}

impl TestDatabase {
    /// Creates an empty database with a unique name.
    pub async fn create() -> anyhow::Result<Self> {
        let admin_url = admin_database_url();
        let name = unique_name("hubscore_test");
        let mut admin = AsyncPgConnection::establish(&admin_url).await.context(
            "connecting to the test PostgreSQL server (is it running? see scripts/services)",
        )?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        let base = admin_url
            .rsplit_once('/')
            .map(|(base, _)| base)
            .unwrap_or(&admin_url);
        Ok(Self {
            url: format!("{base}/{name}"),
            name,
            admin_url,
        })
    }

    /// Pool settings pointing at this database.
    pub fn settings(&self) -> DatabaseSettings {
        DatabaseSettings {
            url: self.url.clone(),
            max_connections: 5,
            acquire_timeout_ms: 5000,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside or outside a runtime; a thread of its own works in both.
        let dropper = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut admin) = AsyncPgConnection::establish(&admin_url).await {
                    let _ = admin
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        });
        let _ = dropper.join();
    }
}

/// Takes a session-level advisory lock (bigint `key`) away from the session holding it in
/// the database at `url`, as a database restart or a cut connection would: queues a
/// session of its own for the lock, terminates the holder's backend, and returns the
/// queued session once the lock passed to it (never back to the holder's process).
/// Dropping the returned connection releases the lock.
pub async fn take_over_advisory_lock(url: &str, key: i64) -> anyhow::Result<AsyncPgConnection> {
    use diesel::sql_types::BigInt;
    use diesel_async::RunQueryDsl;

    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    // pg_locks shows a bigint key's high half as classid and its low half as objid.
    const LOCKS: &str = "FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1 \
        AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
        AND ((classid::bigint << 32) | objid::bigint) = $1";
    let mut waiter = AsyncPgConnection::establish(url).await?;
    let waiting = tokio::spawn(async move {
        diesel::sql_query("SELECT pg_advisory_lock($1)")
            .bind::<BigInt, _>(key)
            .execute(&mut waiter)
            .await
            .map(|_| waiter)
    });
    let mut admin = AsyncPgConnection::establish(url).await?;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let queued: Count =
            diesel::sql_query(format!("SELECT count(*) AS n {LOCKS} AND NOT granted"))
                .bind::<BigInt, _>(key)
                .get_result(&mut admin)
                .await?;
        if queued.n == 1 {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "never queued for the advisory lock {key}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let terminated: Count = diesel::sql_query(format!(
        "SELECT count(pg_terminate_backend(pid)) AS n {LOCKS} AND granted"
    ))
    .bind::<BigInt, _>(key)
    .get_result(&mut admin)
    .await?;
    anyhow::ensure!(terminated.n == 1, "nobody held the advisory lock {key}");
    let waiter = tokio::time::timeout(std::time::Duration::from_secs(30), waiting)
        .await
        .context("the lock never passed to the queued session")??;
    Ok(waiter?)
}

/// A service binary started by a test, with the port its HTTP server bound.
pub struct ServiceProcess {
    child: tokio::process::Child,
    port: u16,
}

impl ServiceProcess {
    /// Starts `binary serve` with `HUBSCORE__HTTP__PORT=0` plus `env`, and waits (up to
    /// 30 s) for its `listening` log line to learn the port.
    pub async fn start(binary: &str, env: &[(&str, String)]) -> anyhow::Result<Self> {
        use tokio::io::AsyncBufReadExt as _;
        let mut command = tokio::process::Command::new(binary);
        command
            .arg("serve")
            .env("HUBSCORE__HTTP__PORT", "0")
            .env("HUBSCORE__TELEMETRY__FORMAT", "json")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {binary}"))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let port = tokio::time::timeout(std::time::Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await? {
                if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line)
                    && value["message"] == "listening"
                    && let Some(port) = value["http.port"].as_u64()
                {
                    return Ok(u16::try_from(port)?);
                }
            }
            anyhow::bail!("{binary} exited before it was listening")
        })
        .await
        .with_context(|| format!("{binary} did not start listening within 30 s"))??;
        // Keep draining stdout so the service never blocks on a full pipe; with
        // HUBSCORE_TEST_LOG_DIR set, keep its lines in <dir>/<binary>-<port>.log.
        let keep = std::env::var_os("HUBSCORE_TEST_LOG_DIR").map(|dir| {
            let name = std::path::Path::new(binary)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            std::path::PathBuf::from(dir).join(format!("{name}-{port}.log"))
        });
        tokio::spawn(async move {
            use std::io::Write as _;
            let mut file = keep.and_then(|path| std::fs::File::create(path).ok());
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(file) = file.as_mut() {
                    let _ = writeln!(file, "{line}");
                }
            }
        });
        Ok(Self { child, port })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills the process with SIGKILL (no shutdown of any kind, as a crash or an OOM kill
    /// would) and reaps it.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill().await.context("kill -9")
    }

    /// Sends SIGTERM and waits up to `within` for the process to exit; returns its status.
    pub async fn terminate(
        mut self,
        within: std::time::Duration,
    ) -> anyhow::Result<std::process::ExitStatus> {
        let pid = self.child.id().context("process already exited")?;
        let status = tokio::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await?;
        anyhow::ensure!(status.success(), "kill -TERM {pid} failed");
        tokio::time::timeout(within, self.child.wait())
            .await
            .with_context(|| format!("still running {within:?} after SIGTERM"))?
            .context("waiting for the process")
    }
}

/// Runs `binary` with `args` to completion and returns its exit status, stdout and stderr.
pub async fn run_binary(
    binary: &str,
    args: &[&str],
    env: &[(&str, String)],
) -> anyhow::Result<(std::process::ExitStatus, String, String)> {
    let mut command = tokio::process::Command::new(binary);
    command
        .args(args)
        .env("HUBSCORE__TELEMETRY__FORMAT", "json");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = tokio::time::timeout(std::time::Duration::from_secs(60), command.output())
        .await
        .with_context(|| format!("{binary} did not finish within 60 s"))?
        .with_context(|| format!("running {binary}"))?;
    Ok((
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

/// The checks every service binary must pass, driven through its real interface:
/// `migrate` applies to an empty database and again as a no-op (when the service owns a
/// schema), `serve` answers `/healthz`, `/readyz` and `/metrics`, and SIGTERM makes it exit
/// 0 within 10 seconds. `schemas` are the schemas its `migrate` must fill, in order.
/// Outside development mode, `serve` refuses the built-in development internal-token key.
pub async fn check_service_lifecycle(binary: &str, schemas: &[&str]) -> anyhow::Result<()> {
    let database = TestDatabase::create().await?;
    let production = vec![
        ("HUBSCORE__DATABASE__URL", database.url.clone()),
        ("HUBSCORE__AMQP__URL", amqp_url()),
    ];
    let (status, _, stderr) = run_binary(binary, &["serve"], &production).await?;
    anyhow::ensure!(
        !status.success() && stderr.contains("internal_jwt.public_keys"),
        "serve with the development key outside development mode gave {status} and stderr {stderr:?}"
    );
    let mut env = production;
    env.push(("HUBSCORE__RUNTIME__DEVELOPMENT", "true".to_owned()));
    // A bad value stops the binary at once, naming the key, before it touches anything.
    let mut bad = env.clone();
    bad.push(("HUBSCORE__HTTP__PORT", "not-a-port".to_owned()));
    let (status, _, stderr) = run_binary(binary, &["serve"], &bad).await?;
    anyhow::ensure!(
        !status.success() && stderr.contains("http.port"),
        "a bad http.port gave {status} and stderr {stderr:?}"
    );
    let (status, _, stderr) =
        run_binary(binary, &["--config", "/nonexistent/hubscore.toml"], &env).await?;
    anyhow::ensure!(
        !status.success() && stderr.contains("/nonexistent/hubscore.toml"),
        "a missing config file gave {status} and stderr {stderr:?}"
    );

    let (status, first, stderr) = run_binary(binary, &["migrate"], &env).await?;
    anyhow::ensure!(status.success(), "first migrate failed: {first}{stderr}");
    let (status, second, stderr) = run_binary(binary, &["migrate"], &env).await?;
    anyhow::ensure!(status.success(), "second migrate failed: {second}{stderr}");
    let (first, second) = (applied_counts(&first), applied_counts(&second));
    let migrated: Vec<&str> = first.iter().map(|(schema, _)| schema.as_str()).collect();
    anyhow::ensure!(
        migrated == schemas,
        "migrate filled {migrated:?}, expected {schemas:?}"
    );
    anyhow::ensure!(
        first.iter().all(|(_, n)| *n > 0),
        "first migrate left a schema without migrations: {first:?}"
    );
    anyhow::ensure!(
        second.iter().all(|(_, n)| *n == 0),
        "second migrate was not a no-op: {second:?}"
    );

    let service = ServiceProcess::start(binary, &env).await?;
    let client = reqwest::Client::new();
    let base = service.base_url();
    let health = client.get(format!("{base}/healthz")).send().await?;
    anyhow::ensure!(
        health.status() == 200,
        "/healthz answered {}",
        health.status()
    );
    // The broker connection may take a moment after start; readiness must come.
    let mut ready = None;
    for _ in 0..100 {
        let response = client.get(format!("{base}/readyz")).send().await?;
        if response.status() == 200 {
            ready = Some(response.json::<serde_json::Value>().await?);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let ready = ready.context("/readyz never answered 200 within 10 s")?;
    anyhow::ensure!(
        ready["status"] == "ready",
        "unexpected /readyz body {ready}"
    );
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    anyhow::ensure!(
        metrics.contains(r#"route="/healthz""#) && metrics.contains("hubscore_http_requests_total"),
        "/metrics does not show the /healthz request:\n{metrics}"
    );
    let status = service
        .terminate(std::time::Duration::from_secs(10))
        .await?;
    anyhow::ensure!(status.success(), "exited with {status} after SIGTERM");
    Ok(())
}

/// `(schema, migrations applied)` for every `migrations applied` line of a migrate log.
fn applied_counts(log: &str) -> Vec<(String, u64)> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["message"] == "migrations applied")
        .map(|line| {
            let schema = line["db.schema"].as_str().unwrap_or_default().to_owned();
            (
                schema,
                line["migrations.applied"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

/// Captures log output in memory: pass it as the writer of a `tracing` subscriber, then
/// read back the JSON lines.
#[derive(Clone, Default)]
pub struct LogCapture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogCapture {
    /// Every captured line that parses as JSON, in order.
    pub fn lines(&self) -> Vec<serde_json::Value> {
        let bytes = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

// Broker helpers (unique settings, cleanup, a cuttable TCP proxy) live next to the AMQP code.
pub use crate::amqp::testing::{
    BrokerCleanup, TcpProxy, amqp_settings, drain, eventually, header, ready_count, take_message,
    wait_for_message, x_death_reason,
};

/// A signer with the DEVELOPMENT internal-token key, which every service's default
/// `internal_jwt.public_keys` accepts: tests mint forwarded-caller tokens with it, as
/// auth-gateway would.
pub fn internal_token_signer() -> Result<crate::jwt::InternalTokenSigner, crate::jwt::JwtError> {
    crate::jwt::InternalTokenSigner::new(
        crate::jwt::DEVELOPMENT_PRIVATE_KEY_PEM,
        "hubscore",
        std::time::Duration::from_secs(60),
    )
}
