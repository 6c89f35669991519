//! The life of a service process, shared by all five binaries: parse the command line,
//! load settings, start logging, then `migrate`, `serve` until a shutdown signal, or run an
//! operator's `dlq list` / `dlq replay` over the service's [`Service::QUEUES`].
//!
//! A service describes itself with [`Service`]; its `main` is one call to [`run_main`].
//! [`Running`] holds what a started service runs (its HTTP server and background tasks)
//! and stops them in order: stop accepting work, let in-flight work finish, exit.

use std::future::Future;

use actix_web::dev::Server;
use futures::FutureExt as _;
use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use tokio::task::JoinHandle;

use crate::cli::{DlqArgs, DlqCommand, ServiceCli, ServiceCommand};
use crate::config::TelemetrySettings;
use crate::shutdown::Shutdown;

/// What a service binary is.
pub trait Service {
    /// Binary and package name, e.g. `sync-worker`.
    const NAME: &'static str;
    /// One line for `--help`.
    const ABOUT: &'static str;
    /// The service's built-in defaults (TOML), layered over the common ones.
    const DEFAULTS: &'static str;
    /// The service's typed settings.
    type Settings: DeserializeOwned + Send + 'static;
    /// The queues the service consumes, whose DLQs `dlq list` and `dlq replay` work on when
    /// no `--queue` is given. None by default.
    const QUEUES: &'static [&'static str] = &[];

    /// The logging section of the settings.
    fn telemetry(settings: &Self::Settings) -> &TelemetrySettings;

    /// Applies the service's migrations and returns.
    fn migrate(settings: Self::Settings) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Starts the service and runs it until `shutdown` is cancelled.
    fn serve(
        settings: Self::Settings,
        shutdown: Shutdown,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// The whole of a service's `main`. A failure is logged (once telemetry is up) and printed
/// to stderr as one line with its causes, without a backtrace, and exits 1.
pub async fn run_main<S: Service>() -> std::process::ExitCode {
    match run::<S>().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{}: error: {error:#}", S::NAME);
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run<S: Service>() -> anyhow::Result<()> {
    let cli = ServiceCli::parse_for(S::NAME, S::ABOUT);
    let settings: S::Settings = crate::config::load(S::DEFAULTS, cli.config.as_deref())?;
    let command = cli.subcommand();
    if let ServiceCommand::Dlq { command } = &command {
        // stdout carries the listing; logs go to stderr.
        crate::telemetry::init_with_writer(S::NAME, S::telemetry(&settings), std::io::stderr)?;
        let section: AmqpSection = crate::config::load(S::DEFAULTS, cli.config.as_deref())?;
        let mut out = std::io::stdout();
        return run_dlq(command, &section.amqp, S::QUEUES, &mut out).await;
    }
    crate::telemetry::init(S::NAME, S::telemetry(&settings))?;
    let result = match command {
        ServiceCommand::Migrate => S::migrate(settings).await,
        ServiceCommand::Serve => S::serve(settings, crate::shutdown::on_signal()).await,
        ServiceCommand::Dlq { .. } => Ok(()),
    };
    match &result {
        Ok(()) => tracing::info!(service = S::NAME, "stopped"),
        Err(error) => tracing::error!(service = S::NAME, error = format!("{error:#}"), "failed"),
    }
    result
}

/// The part of any service's settings that `dlq` needs.
#[derive(serde::Deserialize)]
struct AmqpSection {
    amqp: crate::amqp::AmqpSettings,
}

/// How long `dlq` waits for the broker.
const DLQ_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Runs `dlq list` or `dlq replay` over `--queue` or else every queue in `queues`, writing
/// its report to `out`: for `list` one line per dead letter (see
/// [`crate::amqp::DeadLetter`]), for `replay` one line per message replayed or left behind
/// and a summary. Fails if the broker cannot be reached, a DLQ does not exist, or a message
/// could not be replayed.
pub async fn run_dlq(
    command: &DlqCommand,
    amqp: &crate::amqp::AmqpSettings,
    queues: &[&str],
    out: &mut (dyn std::io::Write + Send),
) -> anyhow::Result<()> {
    let args = match command {
        DlqCommand::List(args) | DlqCommand::Replay(args) => args,
    };
    let queues: Vec<String> = match &args.queue {
        Some(queue) => vec![queue.clone()],
        None if queues.is_empty() => {
            anyhow::bail!("this service declares no queues; name one with --queue")
        }
        None => queues.iter().map(|q| (*q).to_owned()).collect(),
    };
    let broker = crate::amqp::Broker::start(amqp.clone(), Vec::new());
    anyhow::ensure!(
        broker.wait_connected(DLQ_CONNECT_TIMEOUT).await,
        "cannot reach the broker at {} within {} s",
        amqp.redacted_url(),
        DLQ_CONNECT_TIMEOUT.as_secs()
    );
    let result = match command {
        DlqCommand::List(args) => list_dlqs(&broker, &queues, args, out).await,
        DlqCommand::Replay(args) => replay_dlqs(&broker, &queues, args, out).await,
    };
    broker.close();
    result
}

async fn list_dlqs(
    broker: &crate::amqp::Broker,
    queues: &[String],
    args: &DlqArgs,
    out: &mut (dyn std::io::Write + Send),
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    for queue in queues {
        let letters = crate::amqp::list_dead_letters(broker, queue, args.limit.unwrap_or(100))
            .await
            .with_context(|| format!("reading {}", crate::amqp::dead_letter_queue_name(queue)))?;
        for letter in letters {
            writeln!(out, "{queue}\t{letter}")?;
        }
    }
    Ok(())
}

async fn replay_dlqs(
    broker: &crate::amqp::Broker,
    queues: &[String],
    args: &DlqArgs,
    out: &mut (dyn std::io::Write + Send),
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let mut failed = 0;
    for queue in queues {
        let report = crate::amqp::replay_dead_letters(broker, queue, args.limit)
            .await
            .with_context(|| format!("replaying {}", crate::amqp::dead_letter_queue_name(queue)))?;
        for letter in &report.replayed {
            writeln!(out, "{queue}\treplayed\t{}", letter.message_id)?;
        }
        for (letter, error) in &report.failed {
            writeln!(
                out,
                "{queue}\tleft in the DLQ\t{}\t{error}",
                letter.message_id
            )?;
        }
        writeln!(
            out,
            "{queue}: {} replayed, {} left in the DLQ",
            report.replayed.len(),
            report.failed.len()
        )?;
        failed += report.failed.len();
    }
    anyhow::ensure!(
        failed == 0,
        "{failed} dead letter(s) could not be replayed and stay in the DLQ"
    );
    Ok(())
}

/// A started service: its HTTP server and the background tasks (consumers, relays) that
/// watch the same shutdown token.
pub struct Running {
    port: u16,
    server: Server,
    tasks: Vec<(&'static str, TaskFn)>,
}

/// A background task, started with the run's shutdown token.
type TaskFn = Box<dyn FnOnce(Shutdown) -> BoxFuture<'static, anyhow::Result<()>> + Send>;

impl Running {
    /// Wraps a started HTTP server listening on `port`.
    pub fn new(port: u16, server: Server) -> Self {
        Self {
            port,
            server,
            tasks: Vec::new(),
        }
    }

    /// Adds a background task, started when the service runs. It gets the run's shutdown
    /// token and must return once it is cancelled, after finishing its in-flight work.
    pub fn with_task<F, Fut>(mut self, name: &'static str, task: F) -> Self
    where
        F: FnOnce(Shutdown) -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.tasks
            .push((name, Box::new(move |shutdown| task(shutdown).boxed())));
        self
    }

    /// Adds a task that analyzes those of `tables` (in `pool`'s schema) that outgrew their
    /// statistics, checked every 2 s ([`crate::db::keep_statistics_fresh`]).
    pub fn with_fresh_statistics(
        self,
        pool: crate::db::Pool,
        tables: &'static [&'static str],
    ) -> Self {
        self.with_task("table-statistics", async move |shutdown| {
            crate::db::keep_statistics_fresh(
                pool,
                tables,
                std::time::Duration::from_secs(2),
                shutdown,
            )
            .await;
            Ok(())
        })
    }

    /// Adds the outbox relay as a background task.
    pub fn with_relay(self, relay: crate::outbox::Relay) -> Self {
        self.with_task("outbox-relay", async move |shutdown| {
            relay.run(shutdown).await;
            Ok(())
        })
    }

    /// The port the HTTP server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs until `shutdown` is cancelled or a background task fails; then stops the HTTP
    /// server gracefully and waits for every task to finish its in-flight work.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let mut server = tokio::spawn(self.server);
        let mut tasks: Vec<(&'static str, JoinHandle<anyhow::Result<()>>)> = self
            .tasks
            .into_iter()
            .map(|(name, start)| (name, tokio::spawn(start(shutdown.clone()))))
            .collect();
        // A task that ends on its own (before shutdown) is a failure: stop everything.
        let mut failure: Option<anyhow::Error> = None;
        let watch_tasks = async {
            if tasks.is_empty() {
                return std::future::pending::<anyhow::Error>().await;
            }
            let (index, name, result) = {
                let futures = tasks
                    .iter_mut()
                    .enumerate()
                    .map(|(i, (name, task))| Box::pin(async move { (i, *name, task.await) }));
                futures::future::select_all(futures).await.0
            };
            tasks.remove(index);
            match result {
                Ok(Ok(())) => anyhow::anyhow!("background task {name} stopped unexpectedly"),
                Ok(Err(e)) => e.context(format!("background task {name} failed")),
                Err(e) => anyhow::anyhow!("background task {name} panicked: {e}"),
            }
        };
        tokio::select! {
            // Shutdown first: tasks that end because of it are not failures.
            biased;
            () = shutdown.cancelled() => {},
            error = watch_tasks => failure = Some(error),
            result = &mut server => {
                failure = Some(match result {
                    Ok(Ok(())) => anyhow::anyhow!("HTTP server stopped unexpectedly"),
                    Ok(Err(e)) => anyhow::Error::new(e).context("HTTP server failed"),
                    Err(e) => anyhow::anyhow!("HTTP server panicked: {e}"),
                });
            }
        }
        shutdown.cancel();
        handle.stop(true).await;
        let _ = server.await;
        for (name, task) in tasks {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(
                    task = name,
                    error = format!("{e:#}"),
                    "task failed while stopping"
                ),
                Err(e) => tracing::error!(task = name, error = %e, "task panicked while stopping"),
            }
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

/// Binds the service's HTTP port, serves its routes plus the shared ones, and logs the
/// `listening` line (with `http.port`) that operators and tests look for.
pub fn start_http<F>(
    settings: &crate::config::HttpSettings,
    context: crate::http::HttpContext,
    configure: F,
) -> anyhow::Result<Running>
where
    F: Fn(&mut actix_web::web::ServiceConfig) + Send + Clone + 'static,
{
    let listener = crate::http::bind(settings)?;
    let port = listener.local_addr()?.port();
    let server = crate::http::serve(listener, context, configure)?;
    tracing::info!(http.port = port, "listening");
    Ok(Running::new(port, server))
}

/// What a service that owns a schema and talks to the broker holds: its metrics registry,
/// its pool (scoped to its schema), the broker connection, and the handle that wakes its
/// outbox relay.
#[derive(Clone)]
pub struct Stateful {
    /// The service's metrics registry.
    pub metrics: crate::metrics::Metrics,
    /// Connections scoped to the service's schema.
    pub pool: crate::db::Pool,
    /// The broker connection; reconnects by itself.
    pub broker: crate::amqp::Broker,
    /// Wakes the outbox relay right after a transaction that enqueued messages commits.
    pub relay_waker: crate::outbox::RelayWaker,
}

impl Stateful {
    /// Creates the pool and starts connecting to the broker (declaring `queues` on every
    /// connect), and builds the outbox relay for [`Running::with_relay`]. Neither the
    /// database nor the broker needs to be up yet: until they answer, `/readyz` says 503.
    pub fn connect(
        service: &str,
        schema: &str,
        database: &crate::db::DatabaseSettings,
        amqp: &crate::amqp::AmqpSettings,
        outbox: &crate::outbox::RelaySettings,
        queues: Vec<crate::amqp::QueueSpec>,
    ) -> anyhow::Result<(Self, crate::outbox::Relay)> {
        let metrics = crate::metrics::Metrics::new(service)?;
        let pool = crate::db::connect_pool(database, schema)?;
        let broker = crate::amqp::Broker::start(amqp.clone(), queues);
        let relay = crate::outbox::Relay::new(pool.clone(), broker.clone(), outbox.clone());
        let relay_waker = relay.waker();
        Ok((
            Self {
                metrics,
                pool,
                broker,
                relay_waker,
            },
            relay,
        ))
    }

    /// `/readyz` checks for this service: the database and the broker.
    pub fn readiness(&self) -> crate::health::Readiness {
        crate::health::Readiness::new()
            .with_database(self.pool.clone())
            .with_check("broker", self.broker.readiness_check())
    }

    /// The shared HTTP context (metrics and readiness).
    pub fn http_context(&self) -> crate::http::HttpContext {
        crate::http::HttpContext {
            metrics: self.metrics.clone(),
            readiness: self.readiness(),
        }
    }
}

/// The `migrate` step of a service that owns `schema`: creates it and applies the
/// service's own migration sets plus the outbox's, then logs how many were applied.
pub async fn migrate_schema(
    database: &crate::db::DatabaseSettings,
    schema: &str,
    own: impl IntoIterator<Item = diesel_migrations::EmbeddedMigrations>,
) -> anyhow::Result<()> {
    let sets = own.into_iter().chain([crate::outbox::MIGRATIONS]);
    migrate_schema_without_outbox(database, schema, sets).await
}

/// Like [`migrate_schema`] for a schema with no outbox, such as a shared one owned by a
/// library crate.
pub async fn migrate_schema_without_outbox(
    database: &crate::db::DatabaseSettings,
    schema: &str,
    sets: impl IntoIterator<Item = diesel_migrations::EmbeddedMigrations>,
) -> anyhow::Result<()> {
    let applied = crate::db::run_migrations(&database.url, schema, sets).await?;
    tracing::info!(
        db.schema = schema,
        migrations.applied = applied.len(),
        "migrations applied"
    );
    Ok(())
}
