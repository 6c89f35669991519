//! A local webhook receiver: records each delivery HubSpot's way (headers and raw body)
//! and answers as a test tells it to.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::Value;
use tokio::sync::mpsc;

/// One delivery as the receiver got it.
pub struct Delivery {
    /// Every header, as sent.
    pub headers: Vec<(String, String)>,
    /// The raw body, which the signatures cover.
    pub body: Vec<u8>,
}

impl Delivery {
    /// A header's value (case-insensitive name), empty when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map_or("", |(_, v)| v.as_str())
    }

    /// The body as HubSpot's JSON array of events.
    pub fn events(&self) -> Vec<Value> {
        serde_json::from_slice::<Vec<Value>>(&self.body).expect("a JSON array")
    }
}

/// A running receiver; stop it with `handle.stop(false)`.
pub struct Receiver {
    /// The target URL to give the simulator (with a query string, as signatures include it).
    pub url: String,
    /// Deliveries in arrival order.
    pub rx: mpsc::UnboundedReceiver<Delivery>,
    /// The receiver's server.
    pub handle: actix_web::dev::ServerHandle,
    /// The most deliveries the receiver ever had in flight at once.
    pub max_in_flight: Arc<AtomicUsize>,
}

/// How a test receiver answers: the n-th request (0-based) gets `answers[n]`, later
/// ones the last entry; each answer is (status, delay before answering in ms).
#[derive(Clone)]
struct Behaviour {
    answers: Vec<(u16, u64)>,
}

impl Behaviour {
    fn failing_first(n: usize) -> Behaviour {
        let mut answers = vec![(500, 0); n];
        answers.push((204, 0));
        Behaviour { answers }
    }
}

/// A receiver that answers 500 to the first `fail_first` deliveries, then 204.
pub async fn receiver(fail_first: usize) -> Receiver {
    receiver_with(Behaviour::failing_first(fail_first)).await
}

/// A receiver that gives the n-th request `answers[n]` (see [`Behaviour`]).
pub async fn receiver_answering(answers: Vec<(u16, u64)>) -> Receiver {
    receiver_with(Behaviour { answers }).await
}

async fn receiver_with(behaviour: Behaviour) -> Receiver {
    let (tx, rx) = mpsc::unbounded_channel();
    let seen = Arc::new(AtomicUsize::new(0));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_in_flight = Arc::new(AtomicUsize::new(0));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let max = max_in_flight.clone();
    let server = HttpServer::new(move || {
        let (tx, seen, in_flight, max, behaviour) = (
            tx.clone(),
            seen.clone(),
            in_flight.clone(),
            max.clone(),
            behaviour.clone(),
        );
        App::new().route(
            "/hooks/hubspot",
            web::post().to(move |req: HttpRequest, body: web::Bytes| {
                let (tx, seen, in_flight, max, behaviour) = (
                    tx.clone(),
                    seen.clone(),
                    in_flight.clone(),
                    max.clone(),
                    behaviour.clone(),
                );
                async move {
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(now, Ordering::SeqCst);
                    let n = seen.fetch_add(1, Ordering::SeqCst);
                    let headers = req
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
                        .collect();
                    let _ = tx.send(Delivery {
                        headers,
                        body: body.to_vec(),
                    });
                    let (status, delay_ms) = behaviour
                        .answers
                        .get(n)
                        .or(behaviour.answers.last())
                        .copied()
                        .unwrap_or((204, 0));
                    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    HttpResponse::build(
                        actix_web::http::StatusCode::from_u16(status).expect("status"),
                    )
                    .finish()
                }
            }),
        )
    })
    .listen(listener)
    .expect("listen")
    .workers(1)
    .disable_signals()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    Receiver {
        url: format!("http://127.0.0.1:{port}/hooks/hubspot?src=hs%3Asim"),
        rx,
        handle,
        max_in_flight,
    }
}

/// The next delivery, within 5 s.
pub async fn next(rx: &mut mpsc::UnboundedReceiver<Delivery>) -> Delivery {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a delivery within 5 s")
        .expect("channel open")
}

/// Every delivery until none arrives for `quiet_ms`.
pub async fn drain(rx: &mut mpsc::UnboundedReceiver<Delivery>, quiet_ms: u64) -> Vec<Delivery> {
    let mut out = Vec::new();
    while let Ok(Some(d)) = tokio::time::timeout(Duration::from_millis(quiet_ms), rx.recv()).await {
        out.push(d);
    }
    out
}
