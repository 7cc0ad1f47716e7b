//! The release-time dashboard at `/dashboard`, and the TFA monitor's page beside it at
//! `/dashboard/tfa`: static files built into the binary (no CDN, no build step), so they work
//! offline and wherever the gateway runs. The pages read the indicators' API
//! (`dashboard/app.js`, `dashboard/tfa.js`, both on `dashboard/common.js`). Also the other well-known file served as is: the
//! receipt keys' JWKS.

use actix_web::HttpResponse;

use super::policy::Public;

/// A file of the dashboard, as served: its media type and text.
fn file(media_type: &'static str, text: &'static str) -> HttpResponse {
    HttpResponse::Ok().content_type(media_type).insert_header(("Cache-Control", "no-cache")).body(text)
}

/// `GET /dashboard`.
pub async fn page(_: Public) -> HttpResponse {
    file("text/html; charset=utf-8", include_str!("../../dashboard/index.html"))
}

/// `GET /dashboard/app.js`.
pub async fn script(_: Public) -> HttpResponse {
    file("text/javascript; charset=utf-8", include_str!("../../dashboard/app.js"))
}

/// `GET /dashboard/common.js`: what both pages share.
pub async fn common_script(_: Public) -> HttpResponse {
    file("text/javascript; charset=utf-8", include_str!("../../dashboard/common.js"))
}

/// `GET /dashboard/tfa`.
pub async fn tfa_page(_: Public) -> HttpResponse {
    file("text/html; charset=utf-8", include_str!("../../dashboard/tfa.html"))
}

/// `GET /dashboard/tfa.js`.
pub async fn tfa_script(_: Public) -> HttpResponse {
    file("text/javascript; charset=utf-8", include_str!("../../dashboard/tfa.js"))
}

/// `GET /dashboard/style.css`.
pub async fn style(_: Public) -> HttpResponse {
    file("text/css; charset=utf-8", include_str!("../../dashboard/style.css"))
}

/// `GET /.well-known/jwks.json`: the public keys receipts are signed with (`crate::receipts`).
pub async fn jwks(_: Public, state: actix_web::web::Data<super::state::AppState>) -> HttpResponse {
    HttpResponse::Ok().insert_header(("Cache-Control", "public, max-age=300")).json(state.gateway.receipt_jwks())
}

/// The JSON Web Key Set's shape, for `/openapi.json`.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// One public key (RFC 8037: Ed25519 as an `OKP` key).
#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct Jwk {
    /// `OKP`.
    pub kty: String,
    /// `Ed25519`.
    pub crv: String,
    /// The public key, base64url.
    pub x: String,
    /// Named in each receipt signature's header.
    pub kid: String,
    /// `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// `EdDSA`.
    pub alg: String,
}
