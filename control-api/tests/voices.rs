//! `/v1/voices`: local and provider voices, previews.

use axum::body::Body;
use axum::http::StatusCode;
use serde_json::{json, Value};
use vocelio_control_api::testing::TestApp;

async fn add(app: &TestApp, body: Value) -> Value {
    let (st, v) = app.call("POST", "/v1/voices", Some(body)).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    v
}

#[tokio::test]
async fn local_and_provider_voices_are_listed() {
    let app = TestApp::new().await;
    let (st, page) = app.call("GET", "/v1/voices", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(page["total"], 1);
    assert_eq!(
        page["items"][0],
        json!({"id": "en_US-test-medium", "provider": "local", "name": "en_US-test-medium",
               "language": "en-US", "price_per_min": 0.0, "sample_rate": 22050})
    );
    let ava = add(
        &app,
        json!({"provider": "acme-tts", "name": "Ava", "language": "en-GB", "price_per_min": 0.015}),
    )
    .await;
    assert!(ava["id"].as_str().unwrap().starts_with("vo_"));
    assert_eq!(ava["price_per_min"], 0.015);
    add(
        &app,
        json!({"provider": "acme-tts", "name": "Lucia", "language": "es-ES", "price_per_min": 0}),
    )
    .await;

    let (_, page) = app.call("GET", "/v1/voices", None).await;
    assert_eq!(page["total"], 3);
    assert_eq!(page["items"][0]["provider"], "local");
    assert_eq!(page["items"][1]["name"], "Ava");
    assert_eq!(page["items"][1]["sample_rate"], Value::Null);
    let (_, page) = app.call("GET", "/v1/voices?language=en", None).await;
    assert_eq!(page["total"], 2);
    let (_, page) = app.call("GET", "/v1/voices?provider=acme-tts", None).await;
    assert_eq!(page["total"], 2);
    let (_, page) = app.call("GET", "/v1/voices?provider=local", None).await;
    assert_eq!(page["total"], 1);
    let (_, page) = app.call("GET", "/v1/voices?limit=1&offset=2", None).await;
    assert_eq!(page["items"][0]["name"], "Lucia");
    assert_eq!(page["next_offset"], Value::Null);
    let (st, body) = app.call("GET", "/v1/voices?limit=501", None).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "limit");
}

#[tokio::test]
async fn bad_provider_voices_name_the_field() {
    let app = TestApp::new().await;
    let ok =
        json!({"provider": "acme-tts", "name": "Ava", "language": "en-US", "price_per_min": 0.01});
    for (field, value) in [
        ("provider", json!("")),
        ("provider", json!("local")),
        ("name", json!("  ")),
        ("language", json!("English")),
        ("price_per_min", json!(-0.5)),
        ("price_per_min", json!("cheap")),
    ] {
        let mut body = ok.clone();
        body[field] = value;
        let (st, err) = app.call("POST", "/v1/voices", Some(body.clone())).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body} -> {err}");
        assert_eq!(err["error"]["field"], field, "{body} -> {err}");
    }
    let (_, page) = app.call("GET", "/v1/voices", None).await;
    assert_eq!(page["total"], 1);
}

#[tokio::test]
async fn provider_voices_are_deleted_local_ones_are_not() {
    let app = TestApp::new().await;
    let ava = add(
        &app,
        json!({"provider": "acme-tts", "name": "Ava", "language": "en-US", "price_per_min": 0.01}),
    )
    .await;
    let id = ava["id"].as_str().unwrap();
    let (st, _) = app
        .call("DELETE", "/v1/voices/en_US-test-medium", None)
        .await;
    assert_eq!(st, StatusCode::CONFLICT);

    // In use by an agent: kept.
    let (st, agent) = app
        .call(
            "POST",
            "/v1/agents",
            Some(json!({"name": "a", "voice": id, "brain": {"type": "builtin", "agent": "demo"}})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{agent}");
    let (st, body) = app.call("DELETE", &format!("/v1/voices/{id}"), None).await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    let (st, _) = app
        .call(
            "DELETE",
            &format!("/v1/agents/{}", agent["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);

    let (st, _) = app.call("DELETE", &format!("/v1/voices/{id}"), None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = app.call("DELETE", &format!("/v1/voices/{id}"), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (_, page) = app.call("GET", "/v1/voices", None).await;
    assert_eq!(page["total"], 1);
}

#[tokio::test]
async fn previews_are_wav_for_local_voices_only() {
    let app = TestApp::new().await;
    let (st, headers, wav) = app
        .raw(
            "POST",
            "/v1/voices/en_US-test-medium/preview",
            Body::from(json!({"text": "Hello there"}).to_string()),
            "application/json",
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(headers["content-type"], "audio/wav");
    assert_eq!(&wav[..4], b"RIFF");
    assert_eq!(&wav[8..12], b"WAVE");

    let (st, body) = app
        .call(
            "POST",
            "/v1/voices/en_US-test-medium/preview",
            Some(json!({"text": ""})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "text");
    let (st, body) = app
        .call(
            "POST",
            "/v1/voices/en_US-test-medium/preview",
            Some(json!({"text": "x".repeat(501)})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "text");

    let (st, _) = app
        .call(
            "POST",
            "/v1/voices/nobody/preview",
            Some(json!({"text": "hi"})),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let ava = add(
        &app,
        json!({"provider": "acme-tts", "name": "Ava", "language": "en-US", "price_per_min": 0.01}),
    )
    .await;
    let (st, body) = app
        .call(
            "POST",
            &format!("/v1/voices/{}/preview", ava["id"].as_str().unwrap()),
            Some(json!({"text": "hi"})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("only available for local voices"));
}

#[tokio::test]
async fn the_preview_is_documented_as_wav() {
    let app = TestApp::new().await;
    let (_, doc) = app.call("GET", "/v1/openapi.json", None).await;
    let ok = &doc["paths"]["/v1/voices/{id}/preview"]["post"]["responses"]["200"];
    assert!(ok["content"]["audio/wav"].is_object(), "{ok}");
    assert!(doc["paths"]["/v1/voices"]["get"].is_object());
    assert!(doc["paths"]["/v1/voices/{id}"]["delete"].is_object());
}
