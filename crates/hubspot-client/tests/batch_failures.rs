//! Batch calls split into several requests of 100 where one request fails as a whole (not a
//! 207): what was read or written by the other requests must reach the caller, together with
//! the inputs that were not processed and why.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::Sim;
use futures::future::BoxFuture;
use hubspot_client::{
    AccessToken, CreateInput, HubSpotError, StaticToken, TokenSource, UpdateInput,
};
use serde_json::json;

fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

async fn create_contacts(
    sim: &Sim,
    token: &str,
    count: usize,
) -> Result<Vec<String>, HubSpotError> {
    let client = sim.client(Arc::new(StaticToken::new(token.to_owned())));
    let inputs: Vec<CreateInput> = (0..count)
        .map(|i| CreateInput {
            properties: props(&[("email", &format!("c{i}@chunks.example"))]),
            ..Default::default()
        })
        .collect();
    Ok(client
        .batch_create("contacts", &inputs)
        .await?
        .into_iter()
        .map(|c| c.id)
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_update_chunk_keeps_the_chunks_written_before_and_after_it() {
    let sim = Sim::start().await;
    let portal = sim.portal(common::professional()).await;
    let ids = create_contacts(&sim, &portal.token, 250).await.unwrap();
    let client = sim.client(Arc::new(StaticToken::new(portal.token.clone())));
    let updates: Vec<UpdateInput> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| UpdateInput {
            id: id.clone(),
            // An unknown property makes HubSpot reject the whole request carrying it.
            properties: if i == 150 {
                props(&[("no_such_property_xyz", "1")])
            } else {
                props(&[("firstname", "Scored")])
            },
            ..Default::default()
        })
        .collect();

    let error = client.batch_update("contacts", &updates).await.unwrap_err();
    let HubSpotError::PartialBatch {
        succeeded,
        failed_ids,
        errors,
        failed_chunks,
    } = error
    else {
        panic!("{error:?}");
    };
    assert_eq!(succeeded.len(), 150, "the first and the third request");
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(failed_chunks.len(), 1, "{failed_chunks:?}");
    let failed = &failed_chunks[0];
    assert_eq!(failed.inputs, 100..200);
    assert_eq!(failed.ids, ids[100..200].to_vec());
    assert_eq!(failed_ids, ids[100..200].to_vec());
    assert!(
        matches!(failed.cause, HubSpotError::Validation { .. }),
        "{:?}",
        failed.cause
    );
    assert!(!failed.cause.is_retryable());

    // What the report says is what HubSpot holds.
    for (i, expected) in [(0, Some("Scored")), (120, None), (249, Some("Scored"))] {
        let record = client
            .get_object("contacts", &ids[i], &["firstname"], None)
            .await
            .unwrap();
        assert_eq!(record.property("firstname"), expected, "record {i}");
    }
}

/// A fixed token that, when asked for the `trigger`-th time (one ask per request), makes the
/// simulator fail every later request to `path` with 503: HubSpot going down mid-call.
struct OutageAfter {
    token: AccessToken,
    asked: AtomicUsize,
    trigger: usize,
    sim_base: String,
    path: String,
}

impl TokenSource for OutageAfter {
    fn access_token(&self) -> BoxFuture<'_, Result<AccessToken, HubSpotError>> {
        Box::pin(async move {
            if self.asked.fetch_add(1, Ordering::SeqCst) + 1 == self.trigger {
                let response = reqwest::Client::new()
                    .post(format!("{}/_sim/faults", self.sim_base))
                    .json(
                        &json!({"path_prefix": self.path, "error_rate": 1.0, "error_status": 503}),
                    )
                    .send()
                    .await
                    .map_err(|e| HubSpotError::TokenUnavailable(e.to_string()))?;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_mid_read_returns_the_records_read_and_names_every_unread_id() {
    let sim = Sim::start().await;
    let portal = sim.portal(common::professional()).await;
    let ids = create_contacts(&sim, &portal.token, 250).await.unwrap();
    let path = "/crm/v3/objects/contacts/batch/read".to_owned();
    let client = sim.client(Arc::new(OutageAfter {
        token: AccessToken::new(portal.token.clone()),
        asked: AtomicUsize::new(0),
        trigger: 2,
        sim_base: sim.base.clone(),
        path: path.clone(),
    }));
    let before = sim.stats(&portal).await["by_status"]["503"]
        .as_u64()
        .unwrap_or(0);

    let error = client
        .batch_read("contacts", &ids, &["email"])
        .await
        .unwrap_err();
    let HubSpotError::PartialBatch {
        succeeded,
        failed_ids,
        failed_chunks,
        ..
    } = error
    else {
        panic!("{error:?}");
    };
    assert_eq!(
        succeeded.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
        ids[..100].to_vec()
    );
    assert_eq!(failed_chunks.len(), 1, "{failed_chunks:?}");
    let failed = &failed_chunks[0];
    assert_eq!(
        failed.inputs,
        100..250,
        "the failed request and the unsent one"
    );
    assert_eq!(failed.ids, ids[100..].to_vec());
    assert_eq!(failed_ids, ids[100..].to_vec());
    assert!(
        matches!(failed.cause, HubSpotError::Transient { status: 503, .. }),
        "{:?}",
        failed.cause
    );
    assert!(failed.cause.is_retryable());
    let stats = sim.stats(&portal).await;
    assert_eq!(
        stats["by_status"]["503"].as_u64().unwrap_or(0) - before,
        5,
        "one try and four retries of the second request, the third never sent: {stats}"
    );

    // A call that fits one request and fails gets the plain error, as any other call would.
    let error = client
        .batch_read("contacts", &ids[..50], &["email"])
        .await
        .unwrap_err();
    assert!(
        matches!(error, HubSpotError::Transient { status: 503, .. }),
        "{error:?}"
    );
}
