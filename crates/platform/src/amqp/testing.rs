//! Test support for broker code, re-exported by `platform::testing`: per-test AMQP settings,
//! cleanup of a test's queues and exchanges, a TCP proxy that can cut the broker off, and a
//! polling helper. Compiled only with the `testing` feature.

use super::AmqpSettings;
use crate::testing::{amqp_url, unique_name};

/// AMQP settings for one test: the test broker, exchanges of its own (so parallel tests
/// never see each other's messages), a small delivery limit and short backoffs.
pub fn amqp_settings() -> AmqpSettings {
    AmqpSettings {
        url: amqp_url(),
        exchange: unique_name("test.events"),
        dead_letter_exchange: unique_name("test.dlx"),
        prefetch: 8,
        delivery_limit: 3,
        reconnect_initial_backoff_ms: 50,
        reconnect_max_backoff_ms: 500,
        retry_initial_backoff_ms: 20,
        retry_max_backoff_ms: 200,
        retry_give_up_after_ms: 3_600_000,
    }
}

/// Deletes a test's queues (with their DLQs) and exchanges when dropped, even when the test
/// panicked, so the broker does not collect leftovers.
pub struct BrokerCleanup {
    url: String,
    queues: Vec<String>,
    exchanges: Vec<String>,
}

impl BrokerCleanup {
    /// Cleans up `settings`' two exchanges and each queue in `queues` with its `.dlq` and
    /// retry queues.
    pub fn new(settings: &AmqpSettings, queues: &[&str]) -> Self {
        let delays = crate::amqp::retry_delays(settings);
        let queues = queues
            .iter()
            .flat_map(|q| {
                [(*q).to_owned(), crate::amqp::dead_letter_queue_name(q)]
                    .into_iter()
                    .chain(delays.iter().map(|d| crate::amqp::retry_queue_name(q, *d)))
            })
            .collect();
        Self {
            url: settings.url.clone(),
            queues,
            exchanges: vec![
                settings.exchange.clone(),
                settings.dead_letter_exchange.clone(),
            ],
        }
    }
}

impl Drop for BrokerCleanup {
    fn drop(&mut self) {
        let url = self.url.clone();
        let queues = std::mem::take(&mut self.queues);
        let exchanges = std::mem::take(&mut self.exchanges);
        let cleaner = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
                let Ok(connection) =
                    lapin::Connection::connect(&url, lapin::ConnectionProperties::default()).await
                else {
                    return;
                };
                let Ok(channel) = connection.create_channel().await else {
                    return;
                };
                for queue in &queues {
                    let _ = channel
                        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                        .await;
                }
                for exchange in &exchanges {
                    let _ = channel
                        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                        .await;
                }
                let _ = connection.close(200, "cleaned up".into()).await;
            });
        });
        let _ = cleaner.join();
    }
}

/// A TCP proxy between a client and a server that a test can cut and restore, to show how
/// the client behaves while the server is unreachable.
pub struct TcpProxy {
    address: std::net::SocketAddr,
    state: std::sync::Arc<ProxyState>,
    accept_task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct ProxyState {
    refusing: std::sync::atomic::AtomicBool,
    stalled: std::sync::atomic::AtomicBool,
    links: std::sync::Mutex<Vec<tokio::task::AbortHandle>>,
}

impl TcpProxy {
    /// Listens on a free local port and forwards every connection to `upstream`.
    pub async fn start(upstream: std::net::SocketAddr) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let state = std::sync::Arc::new(ProxyState::default());
        let shared = state.clone();
        let accept_task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if shared.refusing.load(std::sync::atomic::Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let client = client;
                let state = shared.clone();
                let link = tokio::spawn(async move {
                    if let Ok(server) = tokio::net::TcpStream::connect(upstream).await {
                        // As the clients and servers themselves do: without it, Nagle's
                        // algorithm meets the peer's delayed ACK and a small write waits
                        // ~40 ms, which made every query through the proxy that slow.
                        let _ = client.set_nodelay(true);
                        let _ = server.set_nodelay(true);
                        let (client_read, client_write) = client.into_split();
                        let (server_read, server_write) = server.into_split();
                        tokio::select! {
                            () = pump(client_read, server_write, &state) => {}
                            () = pump(server_read, client_write, &state) => {}
                        }
                    }
                });
                let mut links = shared
                    .links
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                links.retain(|l| !l.is_finished());
                links.push(link.abort_handle());
            }
        });
        Ok(Self {
            address,
            state,
            accept_task,
        })
    }

    /// The address clients should connect to.
    pub fn address(&self) -> std::net::SocketAddr {
        self.address
    }

    /// Cuts every open connection and closes new ones at once, as if the server were down.
    pub fn refuse(&self) {
        self.state
            .refusing
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let links = std::mem::take(
            &mut *self
                .state
                .links
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for link in links {
            link.abort();
        }
    }

    /// Keeps every connection open but forwards nothing, in either direction, until
    /// [`TcpProxy::resume`]: a server that hangs rather than one that is down.
    pub fn stall(&self) {
        self.state
            .stalled
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Forwards again what [`TcpProxy::stall`] held back.
    pub fn resume(&self) {
        self.state
            .stalled
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// Forwards new connections again.
    pub fn accept(&self) {
        self.state
            .refusing
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Copies `from` to `to` until either side closes, holding data back while stalled.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    state: &ProxyState,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buffer = vec![0_u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        while state.stalled.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.refuse();
        self.accept_task.abort();
    }
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes; `true` if it held.
pub async fn eventually<F, Fut>(timeout: std::time::Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if condition().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Takes one message off `queue` (and acks it), if there is one.
pub async fn take_message(
    broker: &super::Broker,
    queue: &str,
) -> anyhow::Result<Option<lapin::message::Delivery>> {
    use lapin::options::{BasicAckOptions, BasicGetOptions};
    let channel = broker.channel().await?;
    let message = channel
        .basic_get(queue.into(), BasicGetOptions::default())
        .await?;
    let delivery = match message {
        Some(message) => {
            message
                .delivery
                .acker
                .ack(BasicAckOptions::default())
                .await?;
            Some(message.delivery)
        }
        None => None,
    };
    let _ = channel.close(200, "done".into()).await;
    Ok(delivery)
}

/// Every message in `queue` right now, taken off it and acked, oldest first.
pub async fn drain(
    broker: &super::Broker,
    queue: &str,
) -> anyhow::Result<Vec<lapin::message::Delivery>> {
    let mut messages = Vec::new();
    while let Some(message) = take_message(broker, queue).await? {
        messages.push(message);
    }
    Ok(messages)
}

/// Waits up to `timeout` for a message on `queue` and takes it.
pub async fn wait_for_message(
    broker: &super::Broker,
    queue: &str,
    timeout: std::time::Duration,
) -> anyhow::Result<lapin::message::Delivery> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(message) = take_message(broker, queue).await? {
            return Ok(message);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "no message on {queue} within {timeout:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// How many messages are ready in `queue` (not counting unacknowledged ones).
pub async fn ready_count(broker: &super::Broker, queue: &str) -> anyhow::Result<u32> {
    use lapin::options::QueueDeclareOptions;
    let channel = broker.channel().await?;
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let declared = channel
        .queue_declare(queue.into(), options, lapin::types::FieldTable::default())
        .await?;
    let _ = channel.close(200, "done".into()).await;
    Ok(declared.message_count())
}

/// A header of `delivery` as text, if present and textual.
pub fn header(delivery: &lapin::message::Delivery, name: &str) -> Option<String> {
    use lapin::types::AMQPValue;
    match delivery.properties.headers().as_ref()?.inner().get(name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

/// The `reason` of the most recent `x-death` entry RabbitMQ added when it dead-lettered
/// `delivery` itself (for instance `delivery_limit`).
pub fn x_death_reason(delivery: &lapin::message::Delivery) -> Option<String> {
    use lapin::types::AMQPValue;
    let AMQPValue::FieldArray(deaths) = delivery
        .properties
        .headers()
        .as_ref()?
        .inner()
        .get("x-death")?
    else {
        return None;
    };
    let AMQPValue::FieldTable(first) = deaths.as_slice().first()? else {
        return None;
    };
    match first.inner().get("reason")? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}
