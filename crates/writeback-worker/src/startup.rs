//! Wiring: builds the running service from its settings.

use std::sync::Arc;

use actix_web::web;
use hubspot_client::{ClientMetrics, PgBudgetStore};
use platform::amqp::QueueSpec;
use platform::caller::CallerAuth;
use platform::db::Pool;
use platform::jwt::InternalTokenVerifier;
use platform::service::Service as _;
use platform::service::{Running, Stateful};
use platform::shutdown::Shutdown;

use crate::Settings;
use crate::flush::{FlushMetrics, Flusher};
use crate::handlers::{attributes, connections, scores};
use crate::hubspot::{Clients, TokenSources};
use crate::routes::writeback::ApiState;

/// The PostgreSQL schema this service owns.
pub const SCHEMA: &str = "writeback";

/// Creates the `writeback` schema and applies pending migrations, and those of the shared
/// HubSpot rate budget (`hubspot_budget`), which every service that calls HubSpot draws on.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    platform::service::migrate_schema(&settings.database, SCHEMA, [crate::db::MIGRATIONS]).await?;
    platform::service::migrate_schema_without_outbox(
        &settings.database,
        hubspot_client::BUDGET_SCHEMA,
        [hubspot_client::MIGRATIONS],
    )
    .await
}

/// The started service.
pub struct Application {
    running: Running,
    state: Stateful,
}

impl Application {
    /// Connects, binds the HTTP port (0 picks a free one) and starts serving, with access
    /// tokens from auth-gateway (`[gateway]` settings).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let tokens = TokenSources::gateway(&settings.gateway)?;
        Self::build_with_tokens(settings, tokens).await
    }

    /// Like [`Application::build`] with the given token sources (tests hand in the
    /// simulator portal's private-app token with [`TokenSources::fixed`]).
    pub async fn build_with_tokens(
        settings: Settings,
        tokens: TokenSources,
    ) -> anyhow::Result<Self> {
        let w = settings.writeback.clone();
        let queues = vec![
            QueueSpec::new(w.scores_queue.clone(), [scores::ROUTING_KEY]),
            QueueSpec::new(w.connections_queue.clone(), connections::ROUTING_KEYS),
            QueueSpec::new(w.attributes_queue.clone(), attributes::ROUTING_KEYS),
        ];
        let (state, relay) = Stateful::connect(
            crate::WritebackWorker::NAME,
            SCHEMA,
            &settings.database,
            &settings.amqp,
            &settings.outbox,
            queues,
        )?;
        let budget_pool =
            platform::db::connect_pool(&settings.database, hubspot_client::BUDGET_SCHEMA)?;
        let client_metrics = ClientMetrics::register(state.metrics.registry())?;
        let clients = Clients::new(
            settings.hubspot.clone(),
            tokens,
            PgBudgetStore::new(budget_pool),
            w.tier()?,
            w.api_limit_increase,
            client_metrics.clone(),
        );
        let flusher = Arc::new(Flusher {
            pool: state.pool.clone(),
            database_url: settings.database.url.clone(),
            clients: clients.clone(),
            settings: w.clone(),
            relay_waker: state.relay_waker.clone(),
            metrics: FlushMetrics::register(state.metrics.registry())?,
            templates: Arc::new(crate::timeline::Templates {
                developer: developer_client(&settings, client_metrics)?,
            }),
        });
        let api = web::Data::new(ApiState {
            pool: state.pool.clone(),
            clients: clients.clone(),
        });
        let auth = web::Data::new(CallerAuth::new(
            InternalTokenVerifier::from_settings(&settings.internal_jwt)?,
            crate::WritebackWorker::NAME,
        ));
        let running =
            platform::service::start_http(&settings.http, state.http_context(), move |cfg| {
                cfg.app_data(api.clone()).app_data(auth.clone());
                crate::routes::configure(cfg);
            })?
            .with_relay(relay)
            // A burst of scores grows record_scores far faster than autovacuum analyzes it.
            .with_fresh_statistics(state.pool.clone(), &["record_scores"]);

        let (broker, pool, metrics) = (
            state.broker.clone(),
            state.pool.clone(),
            state.metrics.clone(),
        );
        let consumers = w.score_consumers.max(1);
        let queue = w.scores_queue.clone();
        let running = running.with_task("scores-consumer", async move |shutdown: Shutdown| {
            let (sink, receiver) = scores::ScoreSink::new();
            let writer = tokio::spawn(scores::write_scores(pool, receiver));
            // One subscription handling `consumers` messages at once, not that many
            // subscriptions: see `platform::amqp::consume_concurrently`.
            let handler_sink = sink.clone();
            platform::amqp::consume_concurrently(
                broker,
                queue,
                move |delivery| {
                    let sink = handler_sink.clone();
                    async move { sink.handle(delivery).await }
                },
                consumers,
                shutdown,
                metrics,
            )
            .await;
            drop(sink);
            writer.await?;
            Ok(())
        });

        let pool = state.pool.clone();
        let running = with_consumer(
            running,
            &state,
            "connections-consumer",
            w.connections_queue.clone(),
            move |delivery| {
                let (pool, clients) = (pool.clone(), clients.clone());
                async move { connections::handle(&pool, &clients, delivery).await }
            },
        );
        let pool = state.pool.clone();
        let running = with_consumer(
            running,
            &state,
            "attributes-consumer",
            w.attributes_queue.clone(),
            move |delivery| {
                let pool = pool.clone();
                async move { attributes::handle(&pool, delivery).await }
            },
        );
        let (pool, days) = (state.pool.clone(), w.retention_days);
        let running = running.with_task("retention", async move |shutdown: Shutdown| {
            crate::retention::run(pool, days, shutdown).await;
            Ok(())
        });
        let running = running.with_task("flusher", async move |shutdown: Shutdown| {
            flusher.run(shutdown).await
        });
        Ok(Self { running, state })
    }

    /// The port the HTTP server listens on.
    pub fn port(&self) -> u16 {
        self.running.port()
    }

    /// The service's database pool.
    pub fn pool(&self) -> &Pool {
        &self.state.pool
    }

    /// Runs until `shutdown` is cancelled, then finishes in-flight work and returns.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        self.running.run_until_stopped(shutdown).await
    }
}

/// Adds a task consuming `queue` one message at a time with `handler`.
fn with_consumer(
    running: Running,
    state: &Stateful,
    name: &'static str,
    queue: String,
    handler: impl platform::amqp::Handler,
) -> Running {
    let (broker, metrics) = (state.broker.clone(), state.metrics.clone());
    running.with_task(name, async move |shutdown: Shutdown| {
        platform::amqp::consume(broker, queue, handler, shutdown, metrics).await;
        Ok(())
    })
}

/// The OAuth app's developer API, when `[timeline]` names the app and its key.
fn developer_client(
    settings: &Settings,
    metrics: ClientMetrics,
) -> anyhow::Result<Option<hubspot_client::DeveloperClient>> {
    if !settings.timeline.configured() {
        return Ok(None);
    }
    let client = hubspot_client::DeveloperClient::new(
        settings.hubspot.clone(),
        settings.timeline.app_id,
        settings.timeline.developer_api_key.clone().into(),
    )
    .map_err(|e| anyhow::anyhow!("building the developer API client: {e}"))?
    .with_metrics(metrics);
    Ok(Some(client))
}
