//! The landing page at `/` (issue 31: `GET /` was a 404): a newcomer who opens the gateway's
//! address finds the dashboard, the API descriptions and every guide, and each link answers.

use crate::helpers::{repo, spawn_app_with};

#[tokio::test]
async fn the_landing_page_links_the_dashboard_the_api_descriptions_and_the_guides_and_each_link_answers() {
    let app = spawn_app_with(None).await;
    let r = app.get("/", None).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = r.text().await.unwrap();
    let links: Vec<&str> = html.split("href=\"").skip(1).filter_map(|s| s.split('"').next()).collect();
    for wanted in ["/dashboard", "/openapi.json", "/asyncapi.json", "/docs/README.md", "/docs/agencies.md", "/docs/api.md"] {
        assert!(links.contains(&wanted), "{wanted} in {links:?}");
    }
    // Every link answers, without a token.
    for link in &links {
        let r = app.get(link, None).await;
        assert_eq!(r.status(), 200, "{link}");
    }
    // A guide is the repository's text of this version.
    let served = app.get("/docs/agencies.md", None).await.text().await.unwrap();
    assert_eq!(served, std::fs::read_to_string(repo().join("docs/agencies.md")).unwrap());
    // One that is not a guide is a problem, not a file of the server's.
    let r = app.get("/docs/..%2FCargo.toml", None).await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    app.stop().await;
}
