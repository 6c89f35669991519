//! Calls that are not safe to send twice (creates, merges, timeline events) are never resent
//! after an answer that leaves open whether HubSpot acted on them; calls that are safe to send
//! twice, and answers that say HubSpot did nothing (429), are retried as before.

#![expect(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::Sim;
use futures::TryStreamExt as _;
use futures::future::BoxFuture;
use hubspot_client::{
    AccessToken, CreateInput, CrmObject, HubSpotError, ListOptions, PropertyCreate, StaticToken,
    TimelineEvent, TokenSource,
};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpListener;

fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

async fn count_of(sim: &Sim, portal: &common::Portal, status: &str) -> u64 {
    sim.stats(portal).await["by_status"][status]
        .as_u64()
        .unwrap_or(0)
}

/// A fixed token whose `trigger`-th ask (the client asks once per attempt) installs `fault`
/// in the simulator, and whose next ask removes every fault: HubSpot failing exactly one
/// request.
struct FaultAt {
    token: AccessToken,
    asked: AtomicUsize,
    trigger: usize,
    /// Remove the fault again on the next ask; otherwise it stays (HubSpot going down).
    once: bool,
    sim_base: String,
    fault: Value,
}

impl FaultAt {
    fn new(sim: &Sim, portal: &common::Portal, trigger: usize, once: bool, fault: Value) -> Self {
        Self {
            token: AccessToken::new(portal.token.clone()),
            asked: AtomicUsize::new(0),
            trigger,
            once,
            sim_base: sim.base.clone(),
            fault,
        }
    }
}

impl TokenSource for FaultAt {
    fn access_token(&self) -> BoxFuture<'_, Result<AccessToken, HubSpotError>> {
        Box::pin(async move {
            let ask = self.asked.fetch_add(1, Ordering::SeqCst) + 1;
            let http = reqwest::Client::new();
            let url = format!("{}/_sim/faults", self.sim_base);
            let response = if ask == self.trigger {
                Some(http.post(url).json(&self.fault).send().await)
            } else if self.once && ask == self.trigger + 1 {
                Some(http.delete(url).send().await)
            } else {
                None
            };
            if let Some(response) = response {
                let response =
                    response.map_err(|e| HubSpotError::TokenUnavailable(e.to_string()))?;
                assert!(response.status().is_success());
            }
            Ok(self.token.clone())
        })
    }

    fn refresh<'a>(
        &'a self,
        _rejected: &'a AccessToken,
    ) -> BoxFuture<'a, Result<AccessToken, HubSpotError>> {
        Box::pin(async move { Ok(self.token.clone()) })
    }
}

async fn all_contacts(sim: &Sim, portal: &common::Portal) -> Vec<CrmObject> {
    sim.client(Arc::new(StaticToken::new(portal.token.clone())))
        .list_objects("contacts", ListOptions::default())
        .try_collect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_error_on_a_batch_create_is_not_resent_and_its_outcome_is_reported_unknown() {
    let sim = Sim::start().await;
    let portal = sim.portal(common::professional()).await;
    let client = sim.client(Arc::new(StaticToken::new(portal.token.clone())));
    sim.control(
        Method::POST,
        "/_sim/faults",
        Some(json!({"path_prefix": "/crm/v3/objects/contacts/batch/create", "error_rate": 1.0, "error_status": 503})),
    )
    .await;
    let inputs: Vec<CreateInput> = (0..3)
        .map(|i| CreateInput {
            properties: props(&[("email", &format!("u{i}@unknown.example"))]),
            ..Default::default()
        })
        .collect();
    let error = client.batch_create("contacts", &inputs).await.unwrap_err();
    assert!(
        matches!(
            error,
            HubSpotError::OutcomeUnknown {
                operation: "objects.batch_create",
                status: Some(503),
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.is_outcome_unknown());
    assert!(!error.is_retryable(), "the caller checks before resending");
    assert_eq!(
        count_of(&sim, &portal, "503").await,
        1,
        "sent once, never resent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merges_timeline_events_and_single_creates_are_not_resent_after_a_server_error() {
    let sim = Sim::start().await;
    let portal = sim.portal(common::professional()).await;
    let client = sim.client(Arc::new(StaticToken::new(portal.token.clone())));
    let a = client
        .create_object(
            "contacts",
            &CreateInput {
                properties: props(&[("email", "a@merge.example")]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let b = client
        .create_object(
            "contacts",
            &CreateInput {
                properties: props(&[("email", "b@merge.example")]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    sim.control(
        Method::POST,
        "/_sim/faults",
        Some(json!({"path_prefix": "", "error_rate": 1.0, "error_status": 502})),
    )
    .await;

    let merge = client.merge_objects("contacts", &a.id, &b.id).await;
    let create = client
        .create_object(
            "contacts",
            &CreateInput {
                properties: props(&[("email", "c@merge.example")]),
                ..Default::default()
            },
        )
        .await;
    let event = TimelineEvent {
        event_template_id: "1122334".into(),
        id: "health-unknown-1".into(),
        object_id: Some(a.id.clone()),
        ..TimelineEvent::default()
    };
    let timeline = client.create_timeline_event(&event).await;
    for (operation, error) in [
        ("objects.merge", merge.map(drop).unwrap_err()),
        ("objects.create", create.map(drop).unwrap_err()),
        ("timeline.create", timeline.map(drop).unwrap_err()),
    ] {
        assert!(
            matches!(
                error,
                HubSpotError::OutcomeUnknown { operation: op, status: Some(502), .. } if op == operation
            ),
            "{operation}: {error:?}"
        );
    }
    assert_eq!(
        count_of(&sim, &portal, "502").await,
        3,
        "each call sent once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_create_stopped_by_an_unknown_outcome_names_the_inputs_to_check_and_those_never_sent()
 {
    let sim = Sim::start().await;
    let portal = sim.portal(common::professional()).await;
    // The second request of 100 meets an outage that lasts.
    let client = sim.client(Arc::new(FaultAt::new(
        &sim,
        &portal,
        2,
        false,
        json!({"path_prefix": "/crm/v3/objects/contacts/batch/create", "error_rate": 1.0, "error_status": 503}),
    )));
    let inputs: Vec<CreateInput> = (0..250)
        .map(|i| CreateInput {
            properties: props(&[("email", &format!("p{i}@partial.example"))]),
            object_write_trace_id: Some(format!("t{i}")),
            ..Default::default()
        })
        .collect();
    let error = client.batch_create("contacts", &inputs).await.unwrap_err();
    let HubSpotError::PartialBatch {
        succeeded,
        failed_chunks,
        ..
    } = error
    else {
        panic!("{error:?}");
    };
    assert_eq!(succeeded.len(), 100);
    assert_eq!(failed_chunks.len(), 2, "{failed_chunks:?}");
    let (unknown, unsent) = (&failed_chunks[0], &failed_chunks[1]);
    assert_eq!(unknown.inputs, 100..200);
    assert_eq!(unknown.ids.first().map(String::as_str), Some("t100"));
    assert!(
        matches!(
            unknown.cause,
            HubSpotError::OutcomeUnknown {
                status: Some(503),
                ..
            }
        ),
        "{:?}",
        unknown.cause
    );
    assert!(!unknown.cause.is_retryable());
    assert_eq!(unsent.inputs, 200..250);
    assert_eq!(unsent.ids.len(), 50);
    assert!(
        matches!(
            unsent.cause,
            HubSpotError::NotSent {
                operation: "objects.batch_create"
            }
        ),
        "{:?}",
        unsent.cause
    );
    assert!(unsent.cause.is_retryable(), "never sent, so safe to send");
    assert_eq!(count_of(&sim, &portal, "503").await, 1);
    sim.control(Method::DELETE, "/_sim/faults", None).await;
    assert_eq!(all_contacts(&sim, &portal).await.len(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_on_a_create_is_retried_because_hubspot_did_not_process_it() {
    let sim = Sim::start().await;
    let portal = sim.portal(common::professional()).await;
    let client = sim.client(Arc::new(FaultAt::new(
        &sim,
        &portal,
        1,
        true,
        json!({"path_prefix": "/crm/v3/objects/contacts", "rate_limit_storm": true}),
    )));
    let created = client
        .create_object(
            "contacts",
            &CreateInput {
                properties: props(&[("email", "once@ratelimited.example")]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(count_of(&sim, &portal, "429").await, 1);
    let contacts = all_contacts(&sim, &portal).await;
    assert_eq!(contacts.len(), 1, "created exactly once");
    assert_eq!(contacts[0].id, created.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_error_on_a_property_create_is_retried_since_a_resend_cannot_duplicate_it() {
    let sim = Sim::start().await;
    let portal = sim.portal(common::professional()).await;
    let client = sim.client(Arc::new(FaultAt::new(
        &sim,
        &portal,
        1,
        true,
        json!({"path_prefix": "/crm/v3/properties", "error_rate": 1.0, "error_status": 500}),
    )));
    let wanted = PropertyCreate {
        name: "health_score_retry".into(),
        label: "Health score".into(),
        group_name: "companyinformation".into(),
        property_type: "number".into(),
        field_type: "number".into(),
        ..Default::default()
    };
    let property = client.create_property("companies", &wanted).await.unwrap();
    assert_eq!(property.name, "health_score_retry");
    assert_eq!(
        count_of(&sim, &portal, "500").await,
        1,
        "one failure, then success"
    );
}

/// Accepts connections, reads each request's head, and closes without answering: the
/// request reached the server and no one can tell what became of it.
async fn silent_server() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let arrivals = Arc::new(AtomicUsize::new(0));
    let counted = arrivals.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buffer = [0u8; 4096];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buffer[..n]),
                    }
                }
                counted.fetch_add(1, Ordering::SeqCst);
                // Dropping the socket closes it unanswered.
            });
        }
    });
    (base, arrivals)
}

fn client_for(base: &str) -> hubspot_client::HubSpotClient {
    let mut config = hubspot_client::ClientConfig::for_base_url(base);
    config.retry.max_retries = 3;
    config.retry.base_delay_ms = 20;
    hubspot_client::HubSpotClient::builder(config, Arc::new(StaticToken::new("pat-na1-stub")))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_connection_is_lost_after_sending_is_not_resent() {
    let (base, arrivals) = silent_server().await;
    let input = CreateInput {
        properties: props(&[("email", "lost@connection.example")]),
        ..Default::default()
    };
    let error = client_for(&base)
        .create_object("contacts", &input)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            HubSpotError::OutcomeUnknown {
                operation: "objects.create",
                status: None,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(arrivals.load(Ordering::SeqCst), 1);
    // A read on the same server is resent: reading twice does no harm.
    let read = client_for(&base).account_details().await.unwrap_err();
    assert!(matches!(read, HubSpotError::Transport(_)), "{read:?}");
    assert_eq!(
        arrivals.load(Ordering::SeqCst),
        1 + 4,
        "one try and three retries"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_that_could_not_connect_is_a_transport_error_safe_to_send_again() {
    // A port nobody listens on: the request never left, so trying again is safe.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let input = CreateInput {
        properties: props(&[("email", "refused@connection.example")]),
        ..Default::default()
    };
    let error = client_for(&base)
        .create_object("contacts", &input)
        .await
        .unwrap_err();
    assert!(matches!(error, HubSpotError::Transport(_)), "{error:?}");
    assert!(error.is_retryable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_answer_is_cut_off_is_not_resent_and_reported_as_undecodable() {
    let sim = Sim::start().await;
    let portal = sim.portal(common::professional()).await;
    let client = sim.client(Arc::new(StaticToken::new(portal.token.clone())));
    sim.control(
        Method::POST,
        "/_sim/faults",
        Some(
            json!({"path_prefix": "/crm/v3/objects/contacts/batch/create", "truncate_body": true}),
        ),
    )
    .await;
    let inputs: Vec<CreateInput> = (0..3)
        .map(|i| CreateInput {
            properties: props(&[("email", &format!("cut{i}@truncated.example"))]),
            ..Default::default()
        })
        .collect();
    let error = client.batch_create("contacts", &inputs).await.unwrap_err();
    assert!(
        matches!(
            error,
            HubSpotError::Decode {
                endpoint: "objects.batch_create",
                ..
            }
        ),
        "{error:?}"
    );
    sim.control(Method::DELETE, "/_sim/faults", None).await;
    assert_eq!(
        all_contacts(&sim, &portal).await.len(),
        3,
        "HubSpot created them once; only its answer was lost"
    );
}
