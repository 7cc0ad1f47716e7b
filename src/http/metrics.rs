//! `/metrics` for Prometheus (operators only: the figures are the region's business), and the
//! middleware that counts requests by route template and status.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};

use super::errors::ApiError;
use super::policy::Operator;
use super::state::AppState;

/// Middleware: counts every answer by its route template (`/v1/consignments/{ucr}`, not the
/// path, so ids do not multiply series) and status.
pub async fn count_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let metrics = req.app_data::<web::Data<AppState>>().map(|s| s.gateway.metrics().clone());
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    let res = next.call(req).await?;
    if let Some(m) = metrics {
        m.request(&route, res.status().as_u16());
    }
    Ok(res)
}

/// `GET /metrics`.
pub async fn metrics(_: Operator, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let text = state.gateway.metrics_text().await.map_err(|e| {
        tracing::error!(error = %e, "metrics: cannot read the store");
        ApiError::new(super::errors::Code::Unavailable, "the store could not be read; retry later")
    })?;
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(text))
}
