//! The HTTP server every service runs: its own routes plus `/healthz`, `/readyz` and
//! `/metrics`, request metrics on every route, and a graceful stop driven by the
//! service's shutdown token rather than actix's own signal handling.

use std::net::TcpListener;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context as _;
use serde_json::json;

use crate::config::HttpSettings;
use crate::health::Readiness;
use crate::metrics::Metrics;

/// What the shared routes and middleware need.
#[derive(Clone)]
pub struct HttpContext {
    /// The service's registry; `/metrics` renders it.
    pub metrics: Metrics,
    /// The checks `/readyz` runs.
    pub readiness: Readiness,
}

/// Binds the configured address (port 0 picks a free port, as tests do).
pub fn bind(settings: &HttpSettings) -> anyhow::Result<TcpListener> {
    let address = format!("{}:{}", settings.host, settings.port);
    TcpListener::bind(&address).with_context(|| format!("binding {address}"))
}

/// Starts serving `listener`. `configure` adds the service's own routes.
/// Stop it with `server.handle().stop(true)`, which lets in-flight requests finish.
pub fn serve<F>(listener: TcpListener, context: HttpContext, configure: F) -> anyhow::Result<Server>
where
    F: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
{
    let data = web::Data::new(context);
    let server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(record_metrics))
            .app_data(data.clone())
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
            .route("/metrics", web::get().to(metrics))
            .configure(configure.clone())
    })
    .listen(listener)?
    .disable_signals()
    .shutdown_timeout(10)
    .workers(2)
    .run();
    Ok(server)
}

async fn record_metrics(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().to_string();
    let context = req.app_data::<web::Data<HttpContext>>().cloned();
    let response = next.call(req).await?;
    if let Some(context) = context {
        // The route pattern, not the raw path, so ids do not explode the label set.
        let route = response
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".to_owned());
        let status = response.status().as_u16();
        context
            .metrics
            .observe_http(&method, &route, status, started.elapsed().as_secs_f64());
    }
    Ok(response)
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn readyz(context: web::Data<HttpContext>) -> HttpResponse {
    let checks = context.readiness.check().await;
    let ready = checks.iter().all(|c| c.ok);
    let body = json!({"status": if ready { "ready" } else { "not_ready" }, "checks": checks});
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn metrics(context: web::Data<HttpContext>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(context.metrics.render())
}
