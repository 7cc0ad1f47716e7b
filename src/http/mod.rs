//! The HTTP front: routes grouped by scope, bearer-token participants, bounded JSON bodies, and
//! every error as RFC 9457 `application/problem+json` with a stable code.

pub mod audit;
pub mod auth;
pub mod body;
pub mod errors;
pub mod metrics;
pub mod routes;
pub mod stream;

use actix_web::web;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(routes::healthz))
        .route("/readyz", web::get().to(routes::readyz))
        .route("/metrics", web::get().to(metrics::metrics))
        .service(
            web::scope("/v1")
                .route("/documents", web::post().to(routes::submit_document))
                .route("/documents:batch", web::post().to(routes::submit_batch))
                .route("/validate", web::post().to(routes::validate))
                .route("/acknowledgments", web::post().to(routes::acknowledge))
                .route("/consignments/events", web::get().to(stream::consignment_events))
                .route("/consignments/{ucr}", web::get().to(routes::consignment))
                .route("/agencies/{agency}/documents", web::get().to(stream::agency_documents))
                .route("/deliveries/failed", web::get().to(routes::failed_deliveries))
                .route("/deliveries/failed/retry", web::post().to(routes::retry_failed))
                .route("/deliveries/{id}/retry", web::post().to(routes::retry_delivery))
                .route("/schemas", web::get().to(routes::schemas))
                .route("/schemas/{name}/{version}", web::get().to(routes::schema)),
        )
        .default_service(web::to(routes::not_found));
}
