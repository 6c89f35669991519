//! The process's one broker connection, kept alive by a background task.
//!
//! [`Broker::start`] never fails because the broker is down: the task keeps trying with
//! exponential backoff (backon, with jitter so replicas do not reconnect in lockstep), the service
//! reports not ready meanwhile, and publishers and consumers pick up the new connection
//! once it is back. Topology is declared on every connect, before anyone sees the
//! connection, so a consumer never subscribes to a queue that does not exist yet.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use backon::{BackoffBuilder as _, ExponentialBuilder};
use futures::FutureExt as _;
use futures::StreamExt as _;
use futures::future::BoxFuture;
use lapin::{Channel, Connection, ConnectionProperties};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::AmqpSettings;
use super::topology::{self, QueueSpec};

/// How long one connection attempt (TCP, handshake, topology) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the supervisor double-checks the connection's state, in case an error event
/// was missed.
const STATUS_POLL: Duration = Duration::from_millis(500);

/// The broker cannot be used right now.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// No connection is up; the background task is reconnecting.
    #[error("not connected to the broker")]
    NotConnected,
    /// The broker refused or dropped an operation.
    #[error("broker operation failed: {0}")]
    Amqp(#[from] lapin::Error),
}

/// A clonable handle on the broker connection. Dropping the last handle stops the
/// reconnection task and closes the connection.
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

struct Inner {
    settings: AmqpSettings,
    connection: watch::Receiver<Option<Arc<Connection>>>,
    queues: Arc<Mutex<Vec<QueueSpec>>>,
    last_error: Arc<Mutex<Option<String>>>,
    stop: CancellationToken,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Broker {
    /// Starts connecting in the background and returns at once. `queues` (and the
    /// exchanges) are declared on every connect. Must be called inside a tokio runtime.
    pub fn start(settings: AmqpSettings, queues: Vec<QueueSpec>) -> Self {
        let (sender, receiver) = watch::channel(None);
        let queues = Arc::new(Mutex::new(queues));
        let last_error = Arc::new(Mutex::new(Some("connecting".to_owned())));
        let stop = CancellationToken::new();
        let supervisor = Supervisor {
            settings: settings.clone(),
            queues: queues.clone(),
            last_error: last_error.clone(),
            sender,
            stop: stop.clone(),
        };
        tokio::spawn(supervisor.run());
        Self {
            inner: Arc::new(Inner {
                settings,
                connection: receiver,
                queues,
                last_error,
                stop,
            }),
        }
    }

    /// The settings this broker was started with.
    pub fn settings(&self) -> &AmqpSettings {
        &self.inner.settings
    }

    /// Whether a connection is up (with its topology declared) right now.
    pub fn is_connected(&self) -> bool {
        self.current().is_some()
    }

    /// The live connection, if there is one.
    pub(crate) fn current(&self) -> Option<Arc<Connection>> {
        self.inner
            .connection
            .borrow()
            .clone()
            .filter(|c| c.status().connected())
    }

    /// Waits until a connection is up and returns it; never returns while the broker is
    /// unreachable (wrap it in a timeout or a `select!` with shutdown).
    pub(crate) async fn connected(&self) -> Arc<Connection> {
        let mut receiver = self.inner.connection.clone();
        loop {
            if let Some(connection) = receiver
                .borrow_and_update()
                .clone()
                .filter(|c| c.status().connected())
            {
                return connection;
            }
            if receiver.changed().await.is_err() {
                // The supervisor is gone (the broker was closed): nothing will ever connect.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Returns once `connection` is no longer the broker's live connection: the supervisor,
    /// which watches the connection's state, dropped or replaced it. Consumers select on
    /// this so that a subscription on a dead connection never waits forever for a delivery
    /// stream that, depending on when the socket broke, may never end.
    pub(crate) async fn lost(&self, connection: &Arc<Connection>) {
        let mut receiver = self.inner.connection.clone();
        while receiver
            .borrow_and_update()
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(current, connection))
        {
            if receiver.changed().await.is_err() {
                return;
            }
        }
    }

    /// Waits up to `timeout` for a connection; `true` once connected.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.connected())
            .await
            .is_ok()
    }

    /// Opens a channel on the current connection, for callers that need raw AMQP (tests,
    /// operational tools). Publishing and consuming go through [`super::Publisher`] and
    /// [`super::consume`] instead.
    pub async fn channel(&self) -> Result<Channel, BrokerError> {
        let connection = self.current().ok_or(BrokerError::NotConnected)?;
        Ok(connection.create_channel().await?)
    }

    /// Declares one more queue now (when connected) and on every later reconnect.
    pub async fn declare_queue(&self, queue: QueueSpec) -> Result<(), BrokerError> {
        {
            let mut queues = self
                .inner
                .queues
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !queues.contains(&queue) {
                queues.push(queue.clone());
            }
        }
        let channel = self.channel().await?;
        topology::declare(&channel, &self.inner.settings, std::slice::from_ref(&queue)).await?;
        let _ = channel.close(200, "declared".into()).await;
        Ok(())
    }

    /// A readiness check for [`crate::health::Readiness::with_check`]:
    /// `readiness.with_check("broker", broker.readiness_check())`.
    pub fn readiness_check(
        &self,
    ) -> impl Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync + 'static {
        let broker = self.clone();
        move || {
            let result = if broker.is_connected() {
                Ok(())
            } else {
                let last = broker
                    .inner
                    .last_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                Err(match last {
                    Some(error) => format!("broker unreachable: {error}"),
                    None => "broker unreachable".to_owned(),
                })
            };
            std::future::ready(result).boxed()
        }
    }

    /// Stops reconnecting and closes the connection. Other handles see it as down.
    pub fn close(&self) {
        self.inner.stop.cancel();
    }
}

struct Supervisor {
    settings: AmqpSettings,
    queues: Arc<Mutex<Vec<QueueSpec>>>,
    last_error: Arc<Mutex<Option<String>>>,
    sender: watch::Sender<Option<Arc<Connection>>>,
    stop: CancellationToken,
}

impl Supervisor {
    async fn run(self) {
        let initial = Duration::from_millis(self.settings.reconnect_initial_backoff_ms.max(1));
        let max = Duration::from_millis(self.settings.reconnect_max_backoff_ms).max(initial);
        // Each pause is the exponential step plus up to as much again of jitter.
        let policy = ExponentialBuilder::new()
            .with_min_delay(initial)
            .with_max_delay(max)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times();
        let mut backoff = policy.build();
        let url = self.settings.redacted_url();
        while !self.stop.is_cancelled() {
            let pause = match tokio::time::timeout(CONNECT_TIMEOUT, self.connect()).await {
                Ok(Ok(connection)) => {
                    self.set_error(None);
                    tracing::info!(amqp.url = %url, "connected to the broker");
                    let connection = Arc::new(connection);
                    self.sender.send_replace(Some(connection.clone()));
                    let lost = self.watch(&connection).await;
                    self.sender.send_replace(None);
                    if self.stop.is_cancelled() {
                        let _ = connection.close(200, "shutting down".into()).await;
                        break;
                    }
                    // A connection that was up starts the pauses over.
                    backoff = policy.build();
                    let pause = backoff.next().unwrap_or(max);
                    tracing::warn!(amqp.url = %url, error = %lost, retry_in_ms = pause.as_millis(), "broker connection lost; reconnecting");
                    self.set_error(Some(lost));
                    pause
                }
                Ok(Err(error)) => {
                    let pause = backoff.next().unwrap_or(max);
                    tracing::warn!(amqp.url = %url, %error, retry_in_ms = pause.as_millis(), "cannot connect to the broker");
                    self.set_error(Some(error.to_string()));
                    pause
                }
                Err(_) => {
                    let pause = backoff.next().unwrap_or(max);
                    tracing::warn!(amqp.url = %url, retry_in_ms = pause.as_millis(), "connecting to the broker timed out");
                    self.set_error(Some("connection attempt timed out".to_owned()));
                    pause
                }
            };
            tokio::select! {
                () = self.stop.cancelled() => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
        self.sender.send_replace(None);
    }

    async fn connect(&self) -> lapin::Result<Connection> {
        let connection =
            Connection::connect(&self.settings.url, ConnectionProperties::default()).await?;
        let queues = self
            .queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let channel = connection.create_channel().await?;
        topology::declare(&channel, &self.settings, &queues).await?;
        channel.close(200, "topology declared".into()).await?;
        Ok(connection)
    }

    /// Returns (with the reason) once the connection is no longer usable, or at stop.
    async fn watch(&self, connection: &Connection) -> String {
        let mut events = connection.events_listener();
        let mut poll = tokio::time::interval(STATUS_POLL);
        loop {
            tokio::select! {
                () = self.stop.cancelled() => return "stopped".to_owned(),
                event = events.next() => match event {
                    // Channel errors (a publish to a missing exchange) come through here
                    // too; only a connection that is no longer open needs a reconnect.
                    Some(lapin::Event::Error(error)) if !connection.status().connected() => {
                        return error.to_string();
                    }
                    Some(_) => {}
                    None => return "connection closed".to_owned(),
                },
                _ = poll.tick() => {
                    if !connection.status().connected() {
                        return "connection is no longer open".to_owned();
                    }
                }
            }
        }
    }

    fn set_error(&self, error: Option<String>) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = error;
    }
}
