//! The release-time dashboard at `/dashboard`: static files built into the binary (no CDN, no
//! build step), so it works offline and wherever the gateway runs. The page reads the
//! indicators' API (`dashboard/app.js`).

use actix_web::HttpResponse;

/// A file of the dashboard, as served: its media type and text.
fn file(media_type: &'static str, text: &'static str) -> HttpResponse {
    HttpResponse::Ok().content_type(media_type).insert_header(("Cache-Control", "no-cache")).body(text)
}

/// `GET /dashboard`.
pub async fn page() -> HttpResponse {
    file("text/html; charset=utf-8", include_str!("../../dashboard/index.html"))
}

/// `GET /dashboard/app.js`.
pub async fn script() -> HttpResponse {
    file("text/javascript; charset=utf-8", include_str!("../../dashboard/app.js"))
}

/// `GET /dashboard/style.css`.
pub async fn style() -> HttpResponse {
    file("text/css; charset=utf-8", include_str!("../../dashboard/style.css"))
}
