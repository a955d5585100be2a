//! `/v1/agents`: CRUD, validation, what blocks a delete, and text chat.

use axum::http::StatusCode;
use serde_json::{json, Value};
use vocelio_control_api::testing::{TestApp, T0_MS};

fn agent(name: &str) -> Value {
    json!({
        "name": name,
        "language": "en-US",
        "voice": "en_US-test-medium",
        "greeting": "Hi, Acme here.",
        "brain": {"type": "llm", "prompt": "You are a helpful receptionist."},
    })
}

async fn create(app: &TestApp, body: Value) -> Value {
    let (st, created) = app.call("POST", "/v1/agents", Some(body)).await;
    assert_eq!(st, StatusCode::CREATED, "{created}");
    created
}

fn routed_agents(app: &TestApp) -> Vec<Vec<String>> {
    app.engine
        .log
        .lock()
        .unwrap()
        .routings
        .iter()
        .map(|r| r.agents.iter().map(|a| a.spec.name.clone()).collect())
        .collect()
}

#[tokio::test]
async fn agents_are_created_read_replaced_and_deleted() {
    let app = TestApp::new().await;
    let created = create(&app, agent("reception")).await;
    let id = created["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("ag_"), "{created}");
    assert_eq!(created["created_ms"], T0_MS);
    assert_eq!(created["name"], "reception");
    assert_eq!(created["brain"]["type"], "llm");
    // Defaults are filled in and shown.
    assert_eq!(created["endpointing"]["silence_ms"], 1000);
    assert_eq!(created["barge_in"]["enabled"], true);
    assert_eq!(routed_agents(&app), vec![vec!["reception".to_string()]]);

    let (st, got) = app.call("GET", &format!("/v1/agents/{id}"), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(got, created);

    app.clock.advance(1000);
    let mut replacement = agent("front-desk");
    replacement["brain"] = json!({"type": "flow", "flow": "template:appointment_booking"});
    replacement["language"] = json!("es-MX");
    let (st, replaced) = app
        .call("PUT", &format!("/v1/agents/{id}"), Some(replacement))
        .await;
    assert_eq!(st, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["name"], "front-desk");
    assert_eq!(replaced["created_ms"], T0_MS);
    assert_eq!(replaced["updated_ms"], T0_MS + 1000);
    assert_eq!(replaced["greeting"], "Hi, Acme here.");
    let (_, got) = app.call("GET", &format!("/v1/agents/{id}"), None).await;
    assert_eq!(got["brain"]["flow"], "template:appointment_booking");
    assert_eq!(routed_agents(&app).last().unwrap(), &vec!["front-desk"]);

    let (st, _) = app.call("DELETE", &format!("/v1/agents/{id}"), None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = app.call("GET", &format!("/v1/agents/{id}"), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = app.call("DELETE", &format!("/v1/agents/{id}"), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = app
        .call("PUT", &format!("/v1/agents/{id}"), Some(agent("x")))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(routed_agents(&app).len(), 3);
    assert!(routed_agents(&app).last().unwrap().is_empty());
}

#[tokio::test]
async fn lists_page_and_filter() {
    let app = TestApp::new().await;
    for (name, lang) in [
        ("sales-east", "en-US"),
        ("sales-west", "en-US"),
        ("support", "en-US"),
        ("ventas", "es-MX"),
    ] {
        let mut a = agent(name);
        a["language"] = json!(lang);
        create(&app, a).await;
    }
    let (st, page) = app.call("GET", "/v1/agents?limit=3", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(page["total"], 4);
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    assert_eq!(page["items"][0]["name"], "sales-east");
    assert_eq!(page["next_offset"], 3);
    let (_, page) = app.call("GET", "/v1/agents?limit=3&offset=3", None).await;
    assert_eq!(page["items"][0]["name"], "ventas");
    assert_eq!(page["next_offset"], Value::Null);

    let (_, page) = app.call("GET", "/v1/agents?name=sales", None).await;
    let names: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["sales-east", "sales-west"]);
    assert_eq!(page["total"], 2);
    let (_, page) = app.call("GET", "/v1/agents?language=es-MX", None).await;
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["name"], "ventas");
    let (_, page) = app
        .call("GET", "/v1/agents?language=en-US&name=west", None)
        .await;
    assert_eq!(page["total"], 1);

    let (st, body) = app.call("GET", "/v1/agents?limit=0", None).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "limit");
    let (st, body) = app.call("GET", "/v1/agents?offset=x", None).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "offset");
}

#[tokio::test]
async fn bad_agents_are_422s_naming_the_field() {
    let app = TestApp::new().await;
    // (field expected, top-level key replaced, its bad value)
    let cases: Vec<(&str, &str, Value)> = vec![
        ("name", "name", json!("Bad Name")),
        ("name", "name", json!("")),
        ("language", "language", json!("english")),
        ("voice", "voice", json!("nobody")),
        (
            "brain.flow",
            "brain",
            json!({"type": "flow", "flow": "no-such-flow"}),
        ),
        (
            "brain.flow",
            "brain",
            json!({"type": "flow", "flow": "template:nope"}),
        ),
        (
            "brain.prompt",
            "brain",
            json!({"type": "llm", "prompt": "  "}),
        ),
        (
            "brain.prompt",
            "brain",
            json!({"type": "llm", "prompt": "x".repeat(8001)}),
        ),
        (
            "brain.model",
            "brain",
            json!({"type": "llm", "prompt": "p", "model": "gpt-9"}),
        ),
        (
            "tools[1].name",
            "tools",
            json!([
                {"name": "crm", "url": "https://crm.example.com/a"},
                {"name": "crm", "url": "https://crm.example.com/b"},
            ]),
        ),
        (
            "tools[0].url",
            "tools",
            json!([{"name": "crm", "url": "ftp://crm.example.com"}]),
        ),
        (
            "tools[0].timeout_ms",
            "tools",
            json!([{"name": "crm", "url": "https://x.example", "timeout_ms": 0}]),
        ),
        (
            "endpointing.silence_ms",
            "endpointing",
            json!({"silence_ms": 50}),
        ),
        (
            "endpointing.min_speech_ms",
            "endpointing",
            json!({"min_speech_ms": 2001}),
        ),
        (
            "barge_in.min_speech_ms",
            "barge_in",
            json!({"min_speech_ms": 10}),
        ),
        // Deserialisation errors name the field too.
        (
            "endpointing.silence_ms",
            "endpointing",
            json!({"silence_ms": -1}),
        ),
        ("brain.type", "brain", json!({"type": "magic"})),
    ];
    for (field, key, value) in cases {
        let mut body = agent("ok");
        body[key] = value;
        let (st, err) = app.call("POST", "/v1/agents", Some(body.clone())).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body} -> {err}");
        assert_eq!(err["error"]["field"], field, "{body} -> {err}");
    }
    let (st, _) = app.call("GET", "/v1/agents", None).await;
    assert_eq!(st, StatusCode::OK);
    let (_, page) = app.call("GET", "/v1/agents", None).await;
    assert_eq!(page["total"], 0, "nothing was stored");
    assert!(app.engine.log.lock().unwrap().routings.is_empty());
}

#[tokio::test]
async fn names_are_unique() {
    let app = TestApp::new().await;
    create(&app, agent("one")).await;
    let two = create(&app, agent("two")).await;
    let (st, body) = app.call("POST", "/v1/agents", Some(agent("one"))).await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    let id = two["id"].as_str().unwrap();
    let (st, _) = app
        .call("PUT", &format!("/v1/agents/{id}"), Some(agent("one")))
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    // Keeping its own name is fine.
    let (st, _) = app
        .call("PUT", &format!("/v1/agents/{id}"), Some(agent("two")))
        .await;
    assert_eq!(st, StatusCode::OK);
}

#[tokio::test]
async fn agents_in_use_by_numbers_or_campaigns_cannot_be_deleted() {
    let app = TestApp::new().await;
    let a = create(&app, agent("busy")).await;
    let id = a["id"].as_str().unwrap().to_string();
    sqlx::query(
        "INSERT INTO numbers (id, e164, agent_id, provider, created_ms, updated_ms) VALUES ('nu_1', '+15550001111', $1, 'sip', 0, 0)",
    )
    .bind(&id)
    .execute(&app.state.db.pool)
    .await
    .unwrap();
    let (st, body) = app.call("DELETE", &format!("/v1/agents/{id}"), None).await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("number"));
    sqlx::query("DELETE FROM numbers")
        .execute(&app.state.db.pool)
        .await
        .unwrap();

    sqlx::query(
        "INSERT INTO campaigns (id, name, status, spec, created_ms, updated_ms) VALUES ('cp_1', 'spring', 'draft', $1, 0, 0)",
    )
    .bind(json!({"agent": "busy", "caller_id": "+15550000000"}).to_string())
    .execute(&app.state.db.pool)
    .await
    .unwrap();
    let (st, body) = app.call("DELETE", &format!("/v1/agents/{id}"), None).await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("spring"));
    // Nor renamed away from under the campaign.
    let (st, _) = app
        .call("PUT", &format!("/v1/agents/{id}"), Some(agent("idle")))
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    sqlx::query("DELETE FROM campaigns")
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    let (st, _) = app.call("DELETE", &format!("/v1/agents/{id}"), None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn stored_flows_and_provider_voices_are_accepted() {
    let app = TestApp::new().await;
    let doc: Value =
        serde_json::from_str(vocelio_pipelines::brain::flow::templates::SUPPORT_FAQ).unwrap();
    let (st, flow) = app
        .call(
            "POST",
            "/v1/flows",
            Some(json!({"name": "faq", "document": doc})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{flow}");
    let (st, voice) = app
        .call(
            "POST",
            "/v1/voices",
            Some(json!({"provider": "acme-tts", "name": "Ava", "language": "en-US", "price_per_min": 0.02})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{voice}");
    let mut a = agent("faq-bot");
    a["brain"] = json!({"type": "flow", "flow": "faq"});
    a["voice"] = voice["id"].clone();
    create(&app, a).await;
    let mut b = agent("faq-bot-2");
    b["brain"] = json!({"type": "flow", "flow": flow["id"]});
    create(&app, b).await;
    // The engine got the stored document with the agents.
    let log = app.engine.log.lock().unwrap();
    let last = log.routings.last().unwrap();
    assert_eq!(last.agents.len(), 2);
    assert!(last
        .agents
        .iter()
        .all(|a| a.flow.as_ref().unwrap()["id"] == "support_faq"));
}

#[tokio::test]
async fn chat_runs_the_greeting_and_each_message() {
    let app = TestApp::new().await;
    let a = create(&app, agent("reception")).await;
    let id = a["id"].as_str().unwrap();
    let (st, r) = app
        .call(
            "POST",
            &format!("/v1/agents/{id}/chat"),
            Some(json!({"messages": ["hi", "what are your hours", "DTMF 1 2"]})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(
        r["transcript"],
        json!([
            {"speaker": "agent", "text": "Hi, Acme here."},
            {"speaker": "caller", "text": "hi"},
            {"speaker": "agent", "text": "reception here. Could you say that again?"},
            {"speaker": "caller", "text": "what are your hours"},
            {"speaker": "agent", "text": "We are open nine to five."},
            {"speaker": "caller", "text": "DTMF 12"},
            {"speaker": "agent", "text": "You pressed 12."},
        ])
    );
    assert_eq!(r["actions"], json!([]));
    assert_eq!(r["ended"], false);
    assert_eq!(r["turns"], 3);
    assert_eq!(r["insights"]["outcome"]["type"], "caller_hung_up");
    assert!(r["insights"]["summary"]
        .as_str()
        .unwrap()
        .contains("Caller said"));
}

#[tokio::test]
async fn bad_chats_are_rejected() {
    let app = TestApp::new().await;
    let a = create(&app, agent("reception")).await;
    let uri = format!("/v1/agents/{}/chat", a["id"].as_str().unwrap());
    let (st, body) = app.call("POST", &uri, Some(json!({"messages": []}))).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "messages");
    let (st, body) = app
        .call("POST", &uri, Some(json!({"messages": ["ok", ""]})))
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "messages[1]");
    let (st, body) = app.call("POST", &uri, Some(json!({"messages": [3]}))).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "messages[0]");
    let many: Vec<String> = (0..51).map(|i| format!("m{i}")).collect();
    let (st, body) = app
        .call("POST", &uri, Some(json!({"messages": many})))
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "messages");
    let (st, _) = app
        .call(
            "POST",
            "/v1/agents/ag_missing/chat",
            Some(json!({"messages": ["hi"]})),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_openapi_document_describes_agents() {
    let app = TestApp::new().await;
    let (_, doc) = app.call("GET", "/v1/openapi.json", None).await;
    for (path, method) in [
        ("/v1/agents", "get"),
        ("/v1/agents", "post"),
        ("/v1/agents/{id}", "get"),
        ("/v1/agents/{id}", "put"),
        ("/v1/agents/{id}", "delete"),
        ("/v1/agents/{id}/chat", "post"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{path} {method}");
    }
    // Every schema referenced is defined (clients and fuzzers resolve them).
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                for (k, x) in o {
                    match (k.as_str(), x) {
                        ("$ref", Value::String(r)) => out.push(r.clone()),
                        _ => refs(x, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.iter().any(|r| r.ends_with("/AgentView")), "{all:?}");
    for r in all {
        let name = r.trim_start_matches("#/components/schemas/");
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{r} is not defined"
        );
    }
    let list = &doc["paths"]["/v1/agents"]["get"]["responses"]["200"]["content"]
        ["application/json"]["schema"];
    assert!(!list.is_null(), "{list}");
}
