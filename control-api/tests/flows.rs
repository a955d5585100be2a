//! `/v1/flows`: CRUD over real template documents, validation naming nodes
//! and edges, templates, simulation, and what blocks a delete.

use axum::http::StatusCode;
use serde_json::{json, Value};
use vocelio_control_api::testing::{TestApp, T0_MS};
use vocelio_pipelines::brain::flow::templates::{APPOINTMENT_BOOKING, SUPPORT_FAQ};

fn doc(json: &str) -> Value {
    serde_json::from_str(json).unwrap()
}

/// Support FAQ with its first node duplicated and an edge to a node that
/// does not exist.
fn broken() -> (Value, String, usize) {
    let mut d = doc(SUPPORT_FAQ);
    let first = d["nodes"][0].clone();
    let dup_id = first["id"].as_str().unwrap().to_string();
    d["nodes"].as_array_mut().unwrap().push(first);
    let edges = d["edges"].as_array_mut().unwrap();
    edges.push(json!({"from": dup_id, "to": "ghost"}));
    let ghost_edge = edges.len() - 1;
    (d, dup_id, ghost_edge)
}

async fn create(app: &TestApp, name: &str, document: Value) -> Value {
    let (st, body) = app
        .call(
            "POST",
            "/v1/flows",
            Some(json!({"name": name, "document": document})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    body
}

#[tokio::test]
async fn flows_are_created_read_replaced_listed_and_deleted() {
    let app = TestApp::new().await;
    let faq = create(&app, "faq", doc(SUPPORT_FAQ)).await;
    let id = faq["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("fl_"));
    assert_eq!(faq["document"], doc(SUPPORT_FAQ));
    assert_eq!(faq["problems"], json!([]));
    assert_eq!(faq["created_ms"], T0_MS);
    create(&app, "booking", doc(APPOINTMENT_BOOKING)).await;

    let (st, got) = app.call("GET", &format!("/v1/flows/{id}"), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(got, faq);

    let (_, page) = app.call("GET", "/v1/flows", None).await;
    assert_eq!(page["total"], 2);
    assert_eq!(page["items"][0]["name"], "booking");
    let (_, page) = app.call("GET", "/v1/flows?name=fa&limit=1", None).await;
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["name"], "faq");
    // `_` is a character, not a wildcard.
    let (_, page) = app.call("GET", "/v1/flows?name=f_q", None).await;
    assert_eq!(page["total"], 0);

    app.clock.advance(5);
    let (st, replaced) = app
        .call(
            "PUT",
            &format!("/v1/flows/{id}"),
            Some(json!({"name": "faq", "document": doc(APPOINTMENT_BOOKING)})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["updated_ms"], T0_MS + 5);
    assert_eq!(replaced["document"]["id"], "appointment_booking");
    // Replacing a flow re-applies the routing (agents may use it).
    assert_eq!(app.engine.log.lock().unwrap().routings.len(), 1);

    let (st, body) = app
        .call(
            "POST",
            "/v1/flows",
            Some(json!({"name": "faq", "document": doc(SUPPORT_FAQ)})),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");

    let (st, _) = app.call("DELETE", &format!("/v1/flows/{id}"), None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = app.call("GET", &format!("/v1/flows/{id}"), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = app.call("DELETE", &format!("/v1/flows/{id}"), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn validate_lists_every_problem_naming_its_node_or_edge() {
    let app = TestApp::new().await;
    let (st, ok) = app
        .call(
            "POST",
            "/v1/flows/validate",
            Some(json!({"document": doc(APPOINTMENT_BOOKING)})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(ok, json!({"valid": true, "problems": []}));

    let (bad, dup_id, ghost_edge) = broken();
    let (st, r) = app
        .call("POST", "/v1/flows/validate", Some(json!({"document": bad})))
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["valid"], false);
    let problems = r["problems"].as_array().unwrap();
    let dup = problems
        .iter()
        .find(|p| p["code"] == "duplicate_id")
        .unwrap_or_else(|| panic!("{r}"));
    assert_eq!(dup["node"], dup_id.as_str());
    assert_eq!(dup["severity"], "error");
    let ghost = problems
        .iter()
        .find(|p| p["code"] == "unknown_node")
        .unwrap_or_else(|| panic!("{r}"));
    assert_eq!(ghost["edge"], ghost_edge);
    assert_eq!(ghost["field"], "to");
    assert!(ghost["message"].as_str().unwrap().contains("ghost"));
    for p in problems {
        assert!(
            !p["node"].is_null() || !p["edge"].is_null() || !p["field"].is_null(),
            "{p}"
        );
    }

    // Not a flow at all: one parse problem at its path.
    let (st, r) = app
        .call(
            "POST",
            "/v1/flows/validate",
            Some(json!({"document": {"id": "x", "name": "X", "start": "a", "nodes": 7}})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(r["valid"], false);
    assert_eq!(r["problems"][0]["code"], "parse_error");
    assert_eq!(r["problems"][0]["field"], "nodes");

    let (st, body) = app
        .call("POST", "/v1/flows/validate", Some(json!({"doc": {}})))
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

#[tokio::test]
async fn invalid_documents_are_not_stored() {
    let app = TestApp::new().await;
    let (bad, dup_id, _) = broken();
    let (st, body) = app
        .call(
            "POST",
            "/v1/flows",
            Some(json!({"name": "broken", "document": bad})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["field"], "document");
    let problems = body["error"]["details"]["problems"].as_array().unwrap();
    assert!(problems
        .iter()
        .any(|p| p["code"] == "duplicate_id" && p["node"] == dup_id.as_str()));
    assert!(problems.iter().any(|p| p["code"] == "unknown_node"));

    let mut typo = doc(SUPPORT_FAQ);
    typo["nodes"][1]["max_attempts"] = json!("two");
    let (st, body) = app
        .call(
            "POST",
            "/v1/flows",
            Some(json!({"name": "typo", "document": typo})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["field"], "document.nodes[1].max_attempts");

    let (st, body) = app
        .call(
            "POST",
            "/v1/flows",
            Some(json!({"name": "Not OK", "document": doc(SUPPORT_FAQ)})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "name");
    let (st, body) = app
        .call("POST", "/v1/flows", Some(json!({"name": "x"})))
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    // A missing field is reported on the body, naming the field.
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("`document`"));

    let (_, page) = app.call("GET", "/v1/flows", None).await;
    assert_eq!(page["total"], 0);
}

#[tokio::test]
async fn warnings_are_returned_with_a_stored_flow() {
    let app = TestApp::new().await;
    let mut d = doc(SUPPORT_FAQ);
    // A template using a variable nothing sets is a warning, not an error.
    d["nodes"][0]["text"] = json!("Thanks for calling {{nobody_sets_this}}.");
    let created = create(&app, "warned", d).await;
    let problems = created["problems"].as_array().unwrap();
    assert!(!problems.is_empty(), "{created}");
    assert!(problems.iter().all(|p| p["severity"] == "warning"));
    assert!(problems.iter().any(|p| p["code"] == "undefined_variable"));
    let (_, got) = app
        .call(
            "GET",
            &format!("/v1/flows/{}", created["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(got["problems"], created["problems"]);
}

#[tokio::test]
async fn templates_are_listed_with_their_documents() {
    let app = TestApp::new().await;
    let (st, list) = app.call("GET", "/v1/flows/templates", None).await;
    assert_eq!(st, StatusCode::OK, "{list}");
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["appointment_booking", "lead_qualification", "support_faq"]
    );
    let faq = &list[2];
    assert_eq!(faq["document"], doc(SUPPORT_FAQ));
    assert!(faq["description"]
        .as_str()
        .unwrap()
        .contains("knowledge base"));
}

#[tokio::test]
async fn flows_used_by_agents_cannot_be_deleted_or_renamed() {
    let app = TestApp::new().await;
    let faq = create(&app, "faq", doc(SUPPORT_FAQ)).await;
    let id = faq["id"].as_str().unwrap();
    let (st, agent) = app
        .call(
            "POST",
            "/v1/agents",
            Some(json!({"name": "helpdesk", "brain": {"type": "flow", "flow": "faq"}})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{agent}");
    let (st, body) = app.call("DELETE", &format!("/v1/flows/{id}"), None).await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("helpdesk"));
    let (st, _) = app
        .call(
            "PUT",
            &format!("/v1/flows/{id}"),
            Some(json!({"name": "faq2", "document": doc(SUPPORT_FAQ)})),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    // A new document under the same name reaches the engine for the agent.
    let (st, _) = app
        .call(
            "PUT",
            &format!("/v1/flows/{id}"),
            Some(json!({"name": "faq", "document": doc(APPOINTMENT_BOOKING)})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let routed = app.engine.log.lock().unwrap().routings.last().cloned();
    let routed = routed.unwrap();
    assert_eq!(
        routed.agents[0].flow.as_ref().unwrap()["id"],
        "appointment_booking"
    );
    let (st, _) = app
        .call(
            "DELETE",
            &format!("/v1/agents/{}", agent["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = app.call("DELETE", &format!("/v1/flows/{id}"), None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn simulate_runs_templates_stored_flows_and_documents() {
    let app = TestApp::new().await;
    // The fake engine's brain is scripted; the route resolves the flow and
    // drives the conversation.
    let (st, r) = app
        .call(
            "POST",
            "/v1/flows/simulate",
            Some(json!({"flow": "template:support_faq", "messages": ["when are you open"]})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(
        r["transcript"],
        json!([
            {"speaker": "caller", "text": "when are you open"},
            {"speaker": "agent", "text": "We are open nine to five."},
        ])
    );
    assert!(r["insights"]["trace"].is_array());

    create(&app, "faq", doc(SUPPORT_FAQ)).await;
    let (st, r) = app
        .call(
            "POST",
            "/v1/flows/simulate",
            Some(json!({"flow": "faq", "messages": ["hello", "hours?"]})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["turns"], 2);
    let (st, r) = app
        .call(
            "POST",
            "/v1/flows/simulate",
            Some(json!({"document": doc(APPOINTMENT_BOOKING), "messages": ["hi"]})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{r}");
    assert_eq!(r["transcript"].as_array().unwrap().len(), 2);

    for (body, field) in [
        (json!({"flow": "template:nope", "messages": ["hi"]}), "flow"),
        (json!({"flow": "missing", "messages": ["hi"]}), "flow"),
        (json!({"messages": ["hi"]}), "flow"),
        (
            json!({"flow": "faq", "document": doc(SUPPORT_FAQ), "messages": ["hi"]}),
            "flow",
        ),
        (json!({"flow": "faq", "messages": []}), "messages"),
        (
            json!({"document": broken().0, "messages": ["hi"]}),
            "document",
        ),
    ] {
        let (st, err) = app
            .call("POST", "/v1/flows/simulate", Some(body.clone()))
            .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body} -> {err}");
        assert_eq!(err["error"]["field"], field, "{body} -> {err}");
    }
}
