//! `hubspot-sim`: a faithful in-memory stand-in for HubSpot's API, OAuth server and
//! webhooks, built from HubSpot's published API reference (not from what our client
//! sends), for tests, benchmarks and the local demo. Tests start it in-process on port 0
//! with [`spawn`]; the `hubspot-sim` binary runs it standalone.
//!
//! It must never reach the real HubSpot, persist anything, or share code with the
//! HubSpot client or the webhook receiver: it is the independent oracle they are
//! tested against.

pub mod api;
pub mod catalogue;
pub mod changes;
pub mod control;
pub mod crm;
pub mod http;
pub mod model;
pub mod seed;
pub mod signing;
pub mod state;
pub mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::{App, HttpServer, web};
use anyhow::Context as _;

pub use state::Sim;

/// How the simulator runs. `Default` is a sensible test configuration.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default)]
pub struct SimConfig {
    /// Where to listen; `127.0.0.1:0` picks a free port.
    pub bind: SocketAddr,
    /// OAuth access-token lifetime (`expires_in`), 1800 like HubSpot.
    pub access_token_ttl_secs: u64,
    /// The first webhook retry delay; later ones double (with jitter).
    pub webhook_retry_base_ms: u64,
    /// Delivery attempts per batch (1 + 10 retries by default).
    pub webhook_max_attempts: u32,
    /// How long a webhook target may take to answer.
    pub webhook_timeout_ms: u64,
    /// How long changes are gathered into one delivery.
    pub webhook_batch_window_ms: u64,
    /// actix worker threads.
    pub workers: usize,
    /// Associations embedded per type in a v3 object read (`?associations=`); a longer
    /// list is cut there and carries `paging`. HubSpot's own cap is not documented, so
    /// by default nothing is cut.
    pub embedded_associations_limit: Option<usize>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            access_token_ttl_secs: 1800,
            webhook_retry_base_ms: 1000,
            webhook_max_attempts: 11,
            webhook_timeout_ms: 5000,
            webhook_batch_window_ms: 200,
            workers: 2,
            embedded_associations_limit: None,
        }
    }
}

/// A running simulator.
pub struct RunningSim {
    base_url: String,
    sim: Arc<Sim>,
    handle: actix_web::dev::ServerHandle,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    dispatcher: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for RunningSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningSim")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl RunningSim {
    /// `http://127.0.0.1:PORT`: serves the API, OAuth and the `/_sim` control API.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// The shared state, for in-process use (benchmarks, the binary's start-up seeding).
    pub fn sim(&self) -> Arc<Sim> {
        self.sim.clone()
    }

    /// Stops serving and drops background work.
    pub async fn stop(self) {
        self.dispatcher.abort();
        self.sim.reset();
        self.handle.stop(false).await;
        let _ = self.server.await;
    }
}

/// Starts the simulator on the current tokio runtime (background deliveries and
/// change streams run there too).
pub async fn spawn(config: SimConfig) -> anyhow::Result<RunningSim> {
    let listener = std::net::TcpListener::bind(config.bind)
        .with_context(|| format!("binding {}", config.bind))?;
    let mut addr = listener.local_addr().context("reading the bound address")?;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let base_url = format!("http://{addr}");
    let workers = config.workers.max(1);
    let sim = Arc::new(Sim::new(config, tokio::runtime::Handle::current()));
    *sim.base_url.write() = base_url.clone();
    let data = web::Data::new(sim.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(32 * 1024 * 1024))
            .default_service(web::to(http::dispatch))
    })
    // Handlers run synchronously on the worker (seeding 10,000 records takes seconds in a
    // debug build), and actix computes the keep-alive deadline from a clock that a blocked
    // worker does not advance: with the default 5 s a connection reused right after a long
    // request was already "expired" and got reset under the client's next request.
    .keep_alive(std::time::Duration::from_secs(75))
    .listen(listener)
    .context("listening")?
    .disable_signals()
    .shutdown_timeout(1)
    .workers(workers)
    .run();
    let handle = server.handle();
    let server = tokio::spawn(server);
    let dispatcher = tokio::spawn(webhooks::run_dispatcher(sim.clone()));
    Ok(RunningSim {
        base_url,
        sim,
        handle,
        server,
        dispatcher,
    })
}
