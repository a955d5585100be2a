//! API keys, authentication, health, readiness, metrics and the OpenAPI document.

use axum::http::StatusCode;
use serde_json::json;
use vocelio_control_api::testing::TestApp;

#[tokio::test]
async fn v1_needs_a_key_and_the_right_scope() {
    let app = TestApp::new().await;
    let (st, body) = app.call_as(None, "GET", "/v1/keys", None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthorized");
    let (st, _) = app.call_as(Some("vk_nope"), "GET", "/v1/keys", None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);

    // An admin creates a read key; it can read but not write, and not see keys.
    let (st, created) = app
        .call(
            "POST",
            "/v1/keys",
            Some(json!({"name": "dashboard", "scope": "read"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{created}");
    let read_key = created["key"].as_str().unwrap().to_string();
    assert!(read_key.starts_with("vk_"));
    assert_eq!(created["scope"], "read");
    let (st, _) = app.call_as(Some(&read_key), "GET", "/v1/keys", None).await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    // Listing never shows a secret.
    let (st, list) = app.call("GET", "/v1/keys", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(!list.to_string().contains(&read_key));

    // Revoked keys stop working at once; revoking twice is a 404.
    let id = created["id"].as_str().unwrap();
    let (st, _) = app.call("DELETE", &format!("/v1/keys/{id}"), None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, body) = app.call_as(Some(&read_key), "GET", "/v1/keys", None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("revoked"));
    let (st, _) = app.call("DELETE", &format!("/v1/keys/{id}"), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_key_requests_name_the_field() {
    let app = TestApp::new().await;
    let (st, body) = app
        .call(
            "POST",
            "/v1/keys",
            Some(json!({"name": "x", "scope": "root"})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "scope", "{body}");
    let (st, body) = app
        .call(
            "POST",
            "/v1/keys",
            Some(json!({"name": "", "scope": "read"})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "name");
    let (st, body) = app
        .call(
            "POST",
            "/v1/keys",
            Some(json!({"name": "a", "scope": "read", "extra": 1})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (st, _, _) = app
        .raw(
            "POST",
            "/v1/keys",
            axum::body::Body::from("{not json"),
            "application/json",
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn health_ready_metrics_and_docs_need_no_key() {
    let app = TestApp::new().await;
    let (st, body) = app.call_as(None, "GET", "/health", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    let (st, _) = app.call_as(None, "GET", "/ready", None).await;
    assert_eq!(st, StatusCode::OK);
    app.state
        .ready
        .store(false, std::sync::atomic::Ordering::Relaxed);
    let (st, _) = app.call_as(None, "GET", "/ready", None).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE);
    let (st, _) = app.call_as(None, "GET", "/metrics", None).await;
    assert_eq!(st, StatusCode::OK);
    let (st, doc) = app.call_as(None, "GET", "/v1/openapi.json", None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(doc["paths"]["/v1/keys"]["post"].is_object(), "{doc}");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}
