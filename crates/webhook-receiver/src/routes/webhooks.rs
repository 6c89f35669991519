//! `POST /webhooks/hubspot` (the public app) and `POST /webhooks/hubspot/{connection_id}`
//! (a private-app connection): limits, signature, parsing, one `WebhookBatch` per portal
//! published with confirm, and only then 200.

use std::time::Duration;

use actix_web::http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap};
use actix_web::{HttpRequest, HttpResponse, web};
use contracts::v1::{WebhookBatch, WebhookEvent};
use domain::ids::ConnectionId;
use futures::StreamExt as _;
use secrecy::SecretString;
use serde_json::json;

use crate::error::ApiError;
use crate::events::{ParsedDelivery, parse_delivery};
use crate::metrics::ReceiverMetrics;
use crate::publish::BatchPublisher;
use crate::secrets::{SecretCache, SecretLookupError};
use crate::signature::{self, SignatureError, SignedRequest, VerifyPolicy};

/// Everything the webhook routes need, shared by the HTTP workers.
#[derive(Clone)]
pub struct Intake {
    /// What signatures are accepted.
    pub policy: VerifyPolicy,
    /// The URL prefix HubSpot calls (see `webhooks.public_base_url`).
    pub public_base_url: String,
    /// The public app's client secrets.
    pub app_secrets: Vec<SecretString>,
    /// Largest accepted body.
    pub max_body_bytes: usize,
    /// Most events per delivery.
    pub max_events: usize,
    /// Private-app connections' secrets.
    pub secrets: SecretCache,
    /// Where batches go.
    pub publisher: BatchPublisher,
    /// The receiver's series.
    pub metrics: ReceiverMetrics,
    /// One permit per delivery being handled (`webhooks.max_in_flight_deliveries`).
    pub admission: std::sync::Arc<tokio::sync::Semaphore>,
}

/// Adds the webhook routes, served from `intake`.
pub fn configure(cfg: &mut web::ServiceConfig, intake: web::Data<Intake>) {
    cfg.app_data(intake)
        .route("/webhooks/hubspot", web::post().to(public_app))
        .route(
            "/webhooks/hubspot/{connection_id}",
            web::post().to(private_app),
        );
}

/// Where a delivery's secrets come from.
enum Route {
    Public,
    Private(String),
}

impl Route {
    fn label(&self) -> &'static str {
        match self {
            Route::Public => "public",
            Route::Private(_) => "private",
        }
    }
}

async fn public_app(
    request: HttpRequest,
    payload: web::Payload,
    intake: web::Data<Intake>,
) -> Result<HttpResponse, ApiError> {
    receive(request, payload, &intake, Route::Public).await
}

async fn private_app(
    request: HttpRequest,
    payload: web::Payload,
    path: web::Path<String>,
    intake: web::Data<Intake>,
) -> Result<HttpResponse, ApiError> {
    receive(request, payload, &intake, Route::Private(path.into_inner())).await
}

async fn receive(
    request: HttpRequest,
    payload: web::Payload,
    intake: &Intake,
    route: Route,
) -> Result<HttpResponse, ApiError> {
    let label = route.label();
    // Past the limit a delivery is refused before its body is read: the admitted ones
    // keep their latency, and HubSpot retries the refused one.
    let Ok(_permit) = intake.admission.clone().try_acquire_owned() else {
        intake.metrics.delivery(label, ApiError::Overloaded.code());
        return Err(ApiError::Overloaded);
    };
    let _in_flight = intake.metrics.in_flight();
    let result = accept(&request, payload, intake, route).await;
    match &result {
        Ok(_) => intake.metrics.delivery(label, "accepted"),
        Err(error) => {
            intake.metrics.delivery(label, error.code());
            if let ApiError::Signature(reason) = error {
                intake.metrics.signature_failure(reason.code());
            }
        }
    }
    result
}

async fn accept(
    request: &HttpRequest,
    payload: web::Payload,
    intake: &Intake,
    route: Route,
) -> Result<HttpResponse, ApiError> {
    check_content_type(request.headers())?;
    let body = read_body(request.headers(), payload, intake.max_body_bytes).await?;
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or_else(|| request.uri().path(), |pq| pq.as_str());
    let url = signature::signed_url(&intake.public_base_url, path_and_query);
    let headers = request.headers();
    let signed = SignedRequest {
        method: request.method().as_str(),
        url: &url,
        body: &body,
        signature_v3: header(headers, signature::SIGNATURE_V3_HEADER),
        timestamp: header(headers, signature::TIMESTAMP_HEADER),
        signature: header(headers, signature::SIGNATURE_HEADER),
        signature_version: header(headers, signature::SIGNATURE_VERSION_HEADER),
    };
    let now_ms = chrono::Utc::now().timestamp_millis();
    let (connection, expected_portal) = match &route {
        Route::Public => {
            if intake.app_secrets.is_empty() {
                tracing::error!("webhooks.app_client_secrets is empty: refusing deliveries");
                return Err(ApiError::NotConfigured);
            }
            signature::verify(&signed, &intake.app_secrets, &intake.policy, now_ms)?;
            (None, None)
        }
        Route::Private(raw_id) => {
            let connection: ConnectionId =
                raw_id.parse().map_err(|_| ApiError::UnknownConnection)?;
            let portal = verify_private(&signed, intake, connection, now_ms).await?;
            (Some(connection), Some(portal))
        }
    };
    let parsed = parse_delivery(&body, intake.max_events)?;
    if let Some(portal) = expected_portal
        && parsed.events.iter().any(|e| e.portal_id != portal)
    {
        return Err(ApiError::PortalMismatch);
    }
    let event_count = parsed.events.len();
    let unknown = parsed
        .events
        .iter()
        .filter(|e| ParsedDelivery::is_unknown(e))
        .count();
    let batches = split_by_portal(parsed.events, connection);
    let correlation_id = uuid::Uuid::now_v7().to_string();
    let (waited, published) = intake.publisher.publish(&batches, &correlation_id).await;
    intake.metrics.confirm_latency(waited.as_secs_f64());
    let types = batches
        .iter()
        .flat_map(|b| b.events.iter().map(|e| e.subscription_type.as_str()));
    if let Err(error) = published {
        intake.metrics.events("unpublished", types);
        tracing::warn!(
            error = %error,
            correlation_id,
            duration_ms = duration_ms(waited),
            "delivery not confirmed by the broker; answering 503"
        );
        return Err(ApiError::BrokerUnavailable);
    }
    intake.metrics.events("accepted", types);
    intake
        .metrics
        .unknown_events(u64::try_from(unknown).unwrap_or(u64::MAX));
    tracing::debug!(
        correlation_id,
        events = event_count,
        batches = batches.len(),
        "delivery accepted"
    );
    Ok(HttpResponse::Ok().json(json!({
        "accepted_events": event_count,
        "batches": batches.len(),
        "correlation_id": correlation_id,
    })))
}

/// Verifies against the connection's secrets, refreshing them once on a miss; answers
/// the connection's portal.
async fn verify_private(
    signed: &SignedRequest<'_>,
    intake: &Intake,
    connection: ConnectionId,
    now_ms: i64,
) -> Result<i64, ApiError> {
    let secrets = intake.secrets.get(connection).await.map_err(lookup_error)?;
    match signature::verify(signed, &secrets.secrets, &intake.policy, now_ms) {
        Ok(_) => Ok(secrets.portal_id),
        Err(SignatureError::InvalidSignature) => {
            // The secret may have been rotated since it was cached.
            let Some(fresh) = intake
                .secrets
                .refresh(connection)
                .await
                .map_err(lookup_error)?
            else {
                return Err(SignatureError::InvalidSignature.into());
            };
            signature::verify(signed, &fresh.secrets, &intake.policy, now_ms)?;
            Ok(fresh.portal_id)
        }
        Err(other) => Err(other.into()),
    }
}

fn lookup_error(error: SecretLookupError) -> ApiError {
    match error {
        SecretLookupError::NotFound => ApiError::UnknownConnection,
        SecretLookupError::Unavailable(cause) => {
            tracing::warn!(error = %cause, "webhook secrets unavailable; answering 503");
            ApiError::SecretsUnavailable
        }
    }
}

/// One batch per portal, events in delivery order within each. HubSpot sends one
/// delivery per account, so this is almost always a single batch.
fn split_by_portal(
    events: Vec<WebhookEvent>,
    connection: Option<ConnectionId>,
) -> Vec<WebhookBatch> {
    let received_at = Some(contracts::time::to_timestamp(chrono::Utc::now()));
    let mut batches: Vec<WebhookBatch> = Vec::with_capacity(1);
    for event in events {
        match batches.iter_mut().find(|b| b.portal_id == event.portal_id) {
            Some(batch) => batch.events.push(event),
            None => batches.push(WebhookBatch {
                connection_id: connection.map(|c| c.to_string()),
                portal_id: event.portal_id,
                received_at,
                events: vec![event],
            }),
        }
    }
    batches
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let essence = header(headers, CONTENT_TYPE.as_str())
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .unwrap_or_default();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType)
    }
}

/// Reads the body, refusing it as soon as it is known to exceed `max_bytes` (from
/// `Content-Length`, or while streaming a chunked body).
async fn read_body(
    headers: &HeaderMap,
    mut payload: web::Payload,
    max_bytes: usize,
) -> Result<web::Bytes, ApiError> {
    let too_large = ApiError::PayloadTooLarge { max_bytes };
    let declared = header(headers, CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > max_bytes) {
        return Err(too_large);
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(8 * 1024).min(max_bytes));
    while let Some(chunk) = payload.next().await {
        // A broken upload: the client will not read an answer anyway; treat as malformed.
        let chunk = chunk.map_err(|e| {
            ApiError::Payload(crate::events::PayloadError::MalformedJson(format!(
                "the body could not be read: {e}"
            )))
        })?;
        if body.len() + chunk.len() > max_bytes {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(portal_id: i64, event_id: i64) -> WebhookEvent {
        WebhookEvent {
            portal_id,
            event_id,
            ..WebhookEvent::default()
        }
    }

    #[test]
    fn a_delivery_mixing_portals_becomes_one_batch_per_portal_in_order() {
        let batches = split_by_portal(
            vec![event(1, 10), event(2, 20), event(1, 11), event(2, 21)],
            None,
        );
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].portal_id, 1);
        let ids: Vec<i64> = batches[0].events.iter().map(|e| e.event_id).collect();
        assert_eq!(ids, vec![10, 11]);
        assert_eq!(batches[1].portal_id, 2);
        assert!(batches.iter().all(|b| b.connection_id.is_none()));
    }

    #[test]
    fn json_with_a_charset_is_json_and_anything_else_is_not() {
        let mut headers = HeaderMap::new();
        assert!(check_content_type(&headers).is_err());
        for (value, ok) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("text/plain", false),
            ("application/jsonx", false),
        ] {
            headers.insert(CONTENT_TYPE, value.parse().unwrap());
            assert_eq!(check_content_type(&headers).is_ok(), ok, "{value}");
        }
    }
}
