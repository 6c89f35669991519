//! Wiring: builds the running service from its settings.

use actix_web::web;
use platform::amqp::QueueSpec;
use platform::caller::CallerAuth;
use platform::db::Pool;
use platform::jwt::InternalTokenVerifier;
use platform::service::Service as _;
use platform::service::{Running, Stateful};
use platform::shutdown::Shutdown;

use crate::Settings;
use crate::clock::Clock;
use crate::state::{AppState, ScoringMetrics};

/// The PostgreSQL schema this service owns.
pub const SCHEMA: &str = "scoring";

/// Creates the `scoring` schema and applies pending migrations.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    platform::service::migrate_schema(&settings.database, SCHEMA, [crate::db::MIGRATIONS]).await
}

/// The started service.
pub struct Application {
    running: Running,
    state: AppState,
}

/// The fewest connections the service works with when a whole-org rescore runs in `lanes`
/// lanes: those, the rescore's lock, the consumer and the relay (see
/// [`Application::build_with_clock`]).
pub fn min_connections(lanes: usize) -> usize {
    lanes.saturating_add(3)
}

impl Application {
    /// Connects, binds the HTTP port (0 picks a free one) and starts serving.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Clock::system()).await
    }

    /// Like [`Application::build`], reading "now" from `clock` (tests move time with it).
    pub async fn build_with_clock(settings: Settings, clock: Clock) -> anyhow::Result<Self> {
        // A whole-org rescore holds a connection per lane and one for its lock, a preview
        // one per lane, and the consumer and the relay need theirs meanwhile.
        let lanes = settings.scoring.rescore_lanes;
        anyhow::ensure!(
            lanes >= 1,
            "scoring.rescore_lanes is 0: a rescore needs at least one lane"
        );
        let needed = min_connections(lanes);
        anyhow::ensure!(
            settings.database.max_connections >= needed,
            "database.max_connections is {}: scoring-engine needs at least {needed} \
             (a whole-org rescore holds {} connections at once: one per lane, \
             scoring.rescore_lanes = {lanes}, and its lock)",
            settings.database.max_connections,
            lanes + 1
        );
        let queue = QueueSpec::new(
            settings.scoring.queue.clone(),
            crate::handlers::ROUTING_KEYS,
        );
        let (stateful, relay) = Stateful::connect(
            crate::ScoringEngine::NAME,
            SCHEMA,
            &settings.database,
            &settings.amqp,
            &settings.outbox,
            vec![queue],
        )?;
        let state = AppState {
            pool: stateful.pool.clone(),
            relay_waker: stateful.relay_waker.clone(),
            clock,
            settings: settings.scoring.clone(),
            metrics: ScoringMetrics::register(&stateful.metrics)?,
        };
        let auth = web::Data::new(CallerAuth::new(
            InternalTokenVerifier::from_settings(&settings.internal_jwt)?,
            crate::ScoringEngine::NAME,
        ));
        let data = web::Data::new(state.clone());
        let running =
            platform::service::start_http(&settings.http, stateful.http_context(), move |cfg| {
                cfg.app_data(auth.clone())
                    .app_data(data.clone())
                    .configure(crate::routes::configure);
            })?
            .with_relay(relay)
            // The projection and the scores grow with a portal's first full sync far faster
            // than autovacuum analyzes them.
            .with_fresh_statistics(
                stateful.pool.clone(),
                &[
                    "contacts",
                    "companies",
                    "deals",
                    "contact_companies",
                    "deal_contacts",
                    "deal_companies",
                    "activity_log",
                    "scores",
                    "score_history",
                ],
            );
        let consumer_state = state.clone();
        let broker = stateful.broker.clone();
        let metrics = stateful.metrics.clone();
        let queue_name = settings.scoring.queue.clone();
        let running = running
            .with_task("crm-consumer", async move |shutdown: Shutdown| {
                let handler = move |delivery| {
                    let state = consumer_state.clone();
                    async move { crate::handlers::handle(&state, delivery).await }
                };
                platform::amqp::consume(broker, queue_name, handler, shutdown, metrics).await;
                Ok(())
            })
            .with_task("rescore-scheduler", {
                let state = state.clone();
                async move |shutdown: Shutdown| crate::scheduler::run(state, shutdown).await
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
