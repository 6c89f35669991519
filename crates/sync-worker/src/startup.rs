//! Wiring: builds the running service from its settings.

use std::sync::Arc;

use actix_web::web;
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use platform::amqp::QueueSpec;
use platform::caller::CallerAuth;
use platform::db::Pool;
use platform::jwt::InternalTokenVerifier;
use platform::service::Service as _;
use platform::service::{Running, Stateful};
use platform::shutdown::Shutdown;
use tokio::sync::Notify;

use crate::Settings;
use crate::context::{Context, SyncMetrics};
use crate::handlers::{commands, webhooks};
use crate::hubspot::{Clients, GatewayTokens, TokenProvider};

/// The PostgreSQL schema this service owns.
pub const SCHEMA: &str = "sync";

/// The `sync` schema's migrations.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!();

/// Creates the `sync` schema and applies pending migrations, and those of the shared
/// HubSpot rate budget (`hubspot_budget`), which every service that calls HubSpot draws on.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    platform::service::migrate_schema(&settings.database, SCHEMA, [MIGRATIONS]).await?;
    platform::service::migrate_schema_without_outbox(
        &settings.database,
        hubspot_client::BUDGET_SCHEMA,
        [hubspot_client::MIGRATIONS],
    )
    .await
}

/// The queues this service consumes (names from `[sync]`).
pub fn queues(settings: &crate::config::SyncSettings) -> Vec<QueueSpec> {
    vec![
        QueueSpec::new(settings.commands_queue.clone(), commands::ROUTING_KEYS),
        QueueSpec::new(settings.webhooks_queue.clone(), webhooks::ROUTING_KEYS),
    ]
}

/// The started service.
pub struct Application {
    running: Running,
    state: Stateful,
    context: Arc<Context>,
}

impl Application {
    /// Connects, binds the HTTP port (0 picks a free one) and starts serving; HubSpot
    /// tokens come from auth-gateway.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let tokens = Arc::new(GatewayTokens::new(&settings.gateway));
        Self::build_with_tokens(settings, tokens).await
    }

    /// Like [`Application::build`], with HubSpot tokens from `tokens` (tests pass
    /// `StaticTokens` holding a simulator portal's private-app token).
    pub async fn build_with_tokens(
        settings: Settings,
        tokens: Arc<dyn TokenProvider>,
    ) -> anyhow::Result<Self> {
        let (state, relay) = Stateful::connect(
            crate::SyncWorker::NAME,
            SCHEMA,
            &settings.database,
            &settings.amqp,
            &settings.outbox,
            queues(&settings.sync),
        )?;
        let budget_pool =
            platform::db::connect_pool(&settings.database, hubspot_client::BUDGET_SCHEMA)?;
        let client_metrics = hubspot_client::ClientMetrics::register(state.metrics.registry())?;
        let metrics = SyncMetrics::register(state.metrics.registry())?;
        let context = Arc::new(Context {
            pool: state.pool.clone(),
            database_url: settings.database.url.clone(),
            clients: Clients::new(
                settings.hubspot.clone(),
                tokens,
                hubspot_client::PgBudgetStore::new(budget_pool),
                client_metrics,
            ),
            settings: settings.sync.clone(),
            relay: state.relay_waker.clone(),
            metrics,
            runner_wake: Arc::new(Notify::new()),
        });
        let caller_auth = CallerAuth::new(
            InternalTokenVerifier::from_settings(&settings.internal_jwt)?,
            crate::SyncWorker::NAME,
        );
        let http_context = context.clone();
        let running =
            platform::service::start_http(&settings.http, state.http_context(), move |config| {
                config
                    .app_data(web::Data::new(http_context.clone()))
                    .app_data(web::Data::new(caller_auth.clone()));
                crate::routes::configure(config);
            })?
            .with_relay(relay)
            // A portal's first full sync grows the mirror far faster than autovacuum
            // analyzes it.
            .with_fresh_statistics(state.pool.clone(), crate::db::mirror::TABLES);
        let running = consumer(
            running,
            &state,
            settings.sync.commands_queue.clone(),
            Commands(context.clone()),
        );
        let (broker, metrics) = (state.broker.clone(), state.metrics.clone());
        let (queue, in_hand) = (
            settings.sync.webhooks_queue.clone(),
            settings.sync.webhook_deliveries_in_hand.max(1),
        );
        let applier_context = context.clone();
        let running = running.with_task("webhooks-consumer", async move |shutdown: Shutdown| {
            let (sink, receiver) = webhooks::WebhookSink::new(in_hand);
            let applier = tokio::spawn(webhooks::apply_coalesced(
                applier_context,
                receiver,
                in_hand,
            ));
            // One subscription with `in_hand` deliveries at once: what waits together is
            // applied together (see `webhooks::apply_coalesced`).
            let handler_sink = sink.clone();
            platform::amqp::consume_concurrently(
                broker,
                queue,
                move |delivery| {
                    let sink = handler_sink.clone();
                    async move { sink.handle(delivery).await }
                },
                in_hand,
                shutdown,
                metrics,
            )
            .await;
            drop(sink);
            applier.await?;
            Ok(())
        });
        let runner_context = context.clone();
        let running = running.with_task("sync-runner", async move |shutdown| {
            crate::runner::run(runner_context, shutdown).await
        });
        Ok(Self {
            running,
            state,
            context,
        })
    }

    /// The port the HTTP server listens on.
    pub fn port(&self) -> u16 {
        self.running.port()
    }

    /// The service's database pool.
    pub fn pool(&self) -> &Pool {
        &self.state.pool
    }

    /// The shared context (for tests that look inside).
    pub fn context(&self) -> &Arc<Context> {
        &self.context
    }

    /// Runs until `shutdown` is cancelled, then finishes in-flight work and returns.
    pub async fn run_until_stopped(self, shutdown: Shutdown) -> anyhow::Result<()> {
        self.running.run_until_stopped(shutdown).await
    }
}

/// The command queue's handler.
struct Commands(Arc<Context>);

impl platform::amqp::Handler for Commands {
    fn handle(
        &self,
        delivery: platform::amqp::Delivery,
    ) -> impl Future<Output = platform::amqp::Outcome> + Send {
        commands::handle(self.0.clone(), delivery)
    }
}

fn consumer<H: platform::amqp::Handler>(
    running: Running,
    state: &Stateful,
    queue: String,
    handler: H,
) -> Running {
    let broker = state.broker.clone();
    let metrics = state.metrics.clone();
    running.with_task("consumer", move |shutdown| {
        let task = tokio::spawn(platform::amqp::consume(
            broker, queue, handler, shutdown, metrics,
        ));
        async move {
            task.await?;
            Ok(())
        }
    })
}
