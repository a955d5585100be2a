//! `/v1/numbers` and `/v1/trunks`: validation, conflicts, routing pushed to
//! the engine, and trunk passwords never shown.

use axum::http::StatusCode;
use serde_json::{json, Value};
use vocelio_control_api::testing::TestApp;

/// An agent row (the agents routes are another module's; the table is shared).
async fn agent(app: &TestApp, name: &str) -> String {
    let id = format!("ag_{name}");
    let spec = json!({"name": name, "brain": {"type": "llm", "prompt": "Be brief."}});
    sqlx::query(
        "INSERT INTO agents (id, name, spec, created_ms, updated_ms) VALUES ($1, $2, $3, 0, 0)",
    )
    .bind(&id)
    .bind(name)
    .bind(spec.to_string())
    .execute(&app.state.db.pool)
    .await
    .unwrap();
    id
}

fn last_routing(app: &TestApp) -> vocelio_control_api::model::Routing {
    app.engine
        .log
        .lock()
        .unwrap()
        .routings
        .last()
        .cloned()
        .expect("a routing was applied")
}

async fn assert_422(app: &TestApp, method: &str, uri: &str, body: Value, field: &str) {
    let (st, resp) = app.call(method, uri, Some(body.clone())).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body} -> {resp}");
    assert_eq!(resp["error"]["field"], field, "{body} -> {resp}");
}

#[tokio::test]
async fn numbers_crud_pushes_routing_to_the_engine() {
    let app = TestApp::new().await;
    let sales = agent(&app, "sales").await;
    let support = agent(&app, "support").await;

    let (st, n) = app
        .call(
            "POST",
            "/v1/numbers",
            Some(json!({"number": "+15551230001", "agent_id": sales})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{n}");
    assert_eq!(n["provider"], "sip");
    assert_eq!(n["number"], "+15551230001");
    let id = n["id"].as_str().unwrap().to_string();
    let r = last_routing(&app);
    assert_eq!(
        r.sip_numbers,
        vec![("+15551230001".to_string(), "sales".to_string())]
    );
    assert!(r.twilio_numbers.is_empty());

    let (st, tw) = app
        .call(
            "POST",
            "/v1/numbers",
            Some(json!({"number": "+442071234567", "agent_id": support, "provider": "twilio"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{tw}");
    assert_eq!(
        last_routing(&app).twilio_numbers,
        vec![("+442071234567".to_string(), "support".to_string())]
    );

    // Lists filter by agent and provider, and page.
    let (st, all) = app.call("GET", "/v1/numbers", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(all["total"], 2);
    let (_, only) = app
        .call("GET", &format!("/v1/numbers?agent_id={support}"), None)
        .await;
    assert_eq!(only["total"], 1);
    assert_eq!(only["items"][0]["number"], "+442071234567");
    let (_, only) = app.call("GET", "/v1/numbers?provider=sip", None).await;
    assert_eq!(only["total"], 1);
    assert_eq!(only["items"][0]["id"], id.as_str());
    let (_, page) = app.call("GET", "/v1/numbers?limit=1", None).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["next_offset"], 1);
    let (st, bad) = app.call("GET", "/v1/numbers?provider=fax", None).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad["error"]["field"], "provider");
    let (st, bad) = app.call("GET", "/v1/numbers?limit=0", None).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad["error"]["field"], "limit");

    // Move the SIP number to support.
    let (st, moved) = app
        .call(
            "PUT",
            &format!("/v1/numbers/{id}"),
            Some(json!({"number": "+15551230001", "agent_id": support})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{moved}");
    assert_eq!(moved["agent_id"], support.as_str());
    assert_eq!(
        last_routing(&app).sip_numbers,
        vec![("+15551230001".to_string(), "support".to_string())]
    );
    let (st, got) = app.call("GET", &format!("/v1/numbers/{id}"), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(got, moved);

    // Delete: gone from the routing; twice is a 404.
    let (st, _) = app.call("DELETE", &format!("/v1/numbers/{id}"), None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert!(last_routing(&app).sip_numbers.is_empty());
    let (st, _) = app.call("DELETE", &format!("/v1/numbers/{id}"), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = app.call("GET", &format!("/v1/numbers/{id}"), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = app
        .call(
            "PUT",
            &format!("/v1/numbers/{id}"),
            Some(json!({"number": "+15551230001", "agent_id": support})),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_numbers_name_the_field_and_duplicates_conflict() {
    let app = TestApp::new().await;
    let sales = agent(&app, "sales").await;
    for bad in [
        "5551230001",
        "+05551230001",
        "+1",
        "+1555123000123456",
        "+1 555 123",
        "",
    ] {
        assert_422(
            &app,
            "POST",
            "/v1/numbers",
            json!({"number": bad, "agent_id": sales}),
            "number",
        )
        .await;
    }
    assert_422(
        &app,
        "POST",
        "/v1/numbers",
        json!({"number": "+15551230001", "agent_id": "ag_nobody"}),
        "agent_id",
    )
    .await;
    assert_422(
        &app,
        "POST",
        "/v1/numbers",
        json!({"number": "+15551230001", "agent_id": sales, "trunk_id": "tr_none"}),
        "trunk_id",
    )
    .await;
    assert_422(
        &app,
        "POST",
        "/v1/numbers",
        json!({"number": "+15551230001", "agent_id": sales, "provider": "fax"}),
        "provider",
    )
    .await;
    assert_422(
        &app,
        "POST",
        "/v1/numbers",
        json!({"number": 15551230001_i64, "agent_id": sales}),
        "number",
    )
    .await;
    assert_422(
        &app,
        "POST",
        "/v1/numbers",
        json!({"agent_id": sales}),
        "number",
    )
    .await;
    let (st, _) = app
        .call(
            "POST",
            "/v1/numbers",
            Some(json!({"number": "+15551230001", "agent_id": sales, "colour": "red"})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    // Nothing was stored, nothing pushed.
    let (_, list) = app.call("GET", "/v1/numbers", None).await;
    assert_eq!(list["total"], 0);
    assert!(app.engine.log.lock().unwrap().routings.is_empty());

    let body = json!({"number": "+15551230001", "agent_id": sales});
    let (st, first) = app.call("POST", "/v1/numbers", Some(body.clone())).await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, dup) = app.call("POST", "/v1/numbers", Some(body.clone())).await;
    assert_eq!(st, StatusCode::CONFLICT, "{dup}");
    // Another number may not take it over by PUT either; the same one may keep it.
    let (_, second) = app
        .call(
            "POST",
            "/v1/numbers",
            Some(json!({"number": "+15551230002", "agent_id": sales})),
        )
        .await;
    let (st, _) = app
        .call(
            "PUT",
            &format!("/v1/numbers/{}", second["id"].as_str().unwrap()),
            Some(body.clone()),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, _) = app
        .call(
            "PUT",
            &format!("/v1/numbers/{}", first["id"].as_str().unwrap()),
            Some(body),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
}

fn trunk_body() -> Value {
    json!({
        "name": "carrier",
        "host": "sip.carrier.example",
        "port": 5080,
        "transport": "tcp",
        "username": "acct1",
        "password": "s3cret-pw",
        "allow_from": ["203.0.113.0/24", "2001:db8::/32", "198.51.100.7"]
    })
}

#[tokio::test]
async fn trunks_never_show_their_password() {
    let app = TestApp::new().await;
    let (st, t) = app.call("POST", "/v1/trunks", Some(trunk_body())).await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    assert_eq!(t["has_password"], true);
    assert_eq!(t["username"], "acct1");
    assert_eq!(t["port"], 5080);
    assert!(t.get("password").is_none());
    assert!(!t.to_string().contains("s3cret-pw"));
    let id = t["id"].as_str().unwrap().to_string();
    // The engine gets the password.
    let r = last_routing(&app);
    assert_eq!(r.trunks.len(), 1);
    assert_eq!(r.trunks[0].password.as_deref(), Some("s3cret-pw"));

    let (st, got) = app.call("GET", &format!("/v1/trunks/{id}"), None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(!got.to_string().contains("s3cret-pw"));
    let (st, list) = app.call("GET", "/v1/trunks", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list["total"], 1);
    assert!(!list.to_string().contains("s3cret-pw"));

    // A PUT without the password (as read back) keeps it.
    let mut edit = trunk_body();
    edit.as_object_mut().unwrap().remove("password");
    edit["port"] = json!(5090);
    let (st, put) = app
        .call("PUT", &format!("/v1/trunks/{id}"), Some(edit))
        .await;
    assert_eq!(st, StatusCode::OK, "{put}");
    assert_eq!(put["port"], 5090);
    assert_eq!(put["has_password"], true);
    let r = last_routing(&app);
    assert_eq!(r.trunks[0].port, 5090);
    assert_eq!(r.trunks[0].password.as_deref(), Some("s3cret-pw"));

    // Dropping the credentials drops both.
    let (st, put) = app
        .call(
            "PUT",
            &format!("/v1/trunks/{id}"),
            Some(json!({"name": "carrier", "host": "10.0.0.5"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{put}");
    assert_eq!(put["has_password"], false);
    assert_eq!(put["port"], 5060);
    assert_eq!(put["transport"], "udp");
    assert_eq!(last_routing(&app).trunks[0].password, None);
}

#[tokio::test]
async fn bad_trunks_name_the_field() {
    let app = TestApp::new().await;
    let with = |k: &str, v: Value| {
        let mut b = trunk_body();
        b[k] = v;
        b
    };
    let cases = [
        (with("name", json!("Carrier One")), "name"),
        (with("name", json!("")), "name"),
        (with("host", json!("")), "host"),
        (with("host", json!("sip carrier")), "host"),
        (with("port", json!(0)), "port"),
        (with("port", json!(70000)), "port"),
        (with("transport", json!("tls")), "transport"),
        (with("password", Value::Null), "password"),
        (with("username", Value::Null), "username"),
        (
            with(
                "allow_from",
                json!(["203.0.113.0/24", "::1", "203.0.113.0/40"]),
            ),
            "allow_from[2]",
        ),
        (
            with("allow_from", json!(["carrier.example"])),
            "allow_from[0]",
        ),
        (with("secret", json!("x")), "secret"),
    ];
    for (body, field) in cases {
        let (st, resp) = app.call("POST", "/v1/trunks", Some(body.clone())).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body} -> {resp}");
        assert_eq!(resp["error"]["field"], field, "{body} -> {resp}");
    }
    let (_, list) = app.call("GET", "/v1/trunks", None).await;
    assert_eq!(list["total"], 0);

    // Names are unique, on create and on rename.
    let (st, a) = app.call("POST", "/v1/trunks", Some(trunk_body())).await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, _) = app.call("POST", "/v1/trunks", Some(trunk_body())).await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, b) = app
        .call("POST", "/v1/trunks", Some(with("name", json!("backup"))))
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, _) = app
        .call(
            "PUT",
            &format!("/v1/trunks/{}", b["id"].as_str().unwrap()),
            Some(trunk_body()),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, _) = app
        .call(
            "PUT",
            &format!("/v1/trunks/{}", a["id"].as_str().unwrap()),
            Some(trunk_body()),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = app.call("GET", "/v1/trunks/tr_nope", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_trunk_in_use_cannot_be_deleted() {
    let app = TestApp::new().await;
    let sales = agent(&app, "sales").await;
    let (_, t) = app.call("POST", "/v1/trunks", Some(trunk_body())).await;
    let trunk = t["id"].as_str().unwrap().to_string();
    let (st, n) = app
        .call(
            "POST",
            "/v1/numbers",
            Some(json!({"number": "+15551230001", "agent_id": sales, "trunk_id": trunk})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{n}");
    assert_eq!(n["trunk_id"], trunk.as_str());
    // Twilio numbers use no trunk.
    assert_422(
        &app,
        "POST",
        "/v1/numbers",
        json!({"number": "+15551230002", "agent_id": sales, "provider": "twilio", "trunk_id": trunk}),
        "trunk_id",
    )
    .await;

    let (st, e) = app
        .call("DELETE", &format!("/v1/trunks/{trunk}"), None)
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{e}");
    assert_eq!(last_routing(&app).trunks.len(), 1);

    let (st, _) = app
        .call(
            "DELETE",
            &format!("/v1/numbers/{}", n["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = app
        .call("DELETE", &format!("/v1/trunks/{trunk}"), None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert!(last_routing(&app).trunks.is_empty());
    let (st, _) = app
        .call("DELETE", &format!("/v1/trunks/{trunk}"), None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn numbers_and_trunks_are_documented() {
    let app = TestApp::new().await;
    let (_, doc) = app.call_as(None, "GET", "/v1/openapi.json", None).await;
    for (path, method) in [
        ("/v1/numbers", "post"),
        ("/v1/numbers", "get"),
        ("/v1/numbers/{id}", "put"),
        ("/v1/numbers/{id}", "delete"),
        ("/v1/trunks", "post"),
        ("/v1/trunks/{id}", "delete"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
    assert_eq!(doc["paths"]["/v1/trunks"]["post"]["tags"][0], "trunks");
    let view = &doc["components"]["schemas"]["TrunkView"]["properties"];
    assert!(view["has_password"].is_object());
    assert!(view.get("password").is_none());
}
