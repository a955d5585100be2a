//! Test support: an engine that records what it is asked, and an app with
//! an in-memory database and an admin key. Used by this crate's tests and
//! by the binary's.

use crate::db::Db;
use crate::model::{ResolvedAgent, Routing};
use crate::state::{
    ApiSettings, AppState, EngineControl, EngineError, FakeClock, LocalVoice, OutboundCall,
};
use futures_util::future::BoxFuture;
use std::sync::{Arc, Mutex};
use vocelio_pipelines::brain::{Brain, ScriptedBrain};

/// What the fake engine was asked to do.
#[derive(Debug, Default)]
pub struct FakeLog {
    /// Calls placed, in order.
    pub placed: Vec<OutboundCall>,
    /// Hangups.
    pub hangups: Vec<String>,
    /// Transfers (call, target).
    pub transfers: Vec<(String, String)>,
    /// DTMF sent (call, digits).
    pub dtmf: Vec<(String, String)>,
    /// Routings applied.
    pub routings: Vec<Routing>,
}

/// An engine that does nothing but remember.
#[derive(Debug, Default)]
pub struct FakeEngine {
    /// What it was asked.
    pub log: Mutex<FakeLog>,
    /// Engine call ids that are live (hangup/transfer/DTMF elsewhere: NoSuchCall).
    pub live: Mutex<Vec<String>>,
}

impl FakeEngine {
    /// A snapshot of the calls placed.
    pub fn placed(&self) -> Vec<OutboundCall> {
        self.log
            .lock()
            .map(|l| l.placed.clone())
            .unwrap_or_default()
    }
}

fn live(e: &FakeEngine, call: &str) -> Result<(), EngineError> {
    let ok = e
        .live
        .lock()
        .map(|l| l.iter().any(|c| c == call))
        .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(EngineError::NoSuchCall(call.into()))
    }
}

impl EngineControl for FakeEngine {
    fn place_call(&self, call: OutboundCall) -> BoxFuture<'_, Result<String, EngineError>> {
        Box::pin(async move {
            let mut log = self
                .log
                .lock()
                .map_err(|_| EngineError::Refused("poisoned".into()))?;
            log.placed.push(call);
            let id = format!("call-{}", log.placed.len());
            if let Ok(mut l) = self.live.lock() {
                l.push(id.clone());
            }
            Ok(id)
        })
    }
    fn hangup(&self, engine_call: &str) -> BoxFuture<'_, Result<(), EngineError>> {
        let call = engine_call.to_string();
        Box::pin(async move {
            live(self, &call)?;
            if let Ok(mut l) = self.log.lock() {
                l.hangups.push(call);
            }
            Ok(())
        })
    }
    fn transfer(&self, engine_call: &str, target: &str) -> BoxFuture<'_, Result<(), EngineError>> {
        let (call, target) = (engine_call.to_string(), target.to_string());
        Box::pin(async move {
            live(self, &call)?;
            if let Ok(mut l) = self.log.lock() {
                l.transfers.push((call, target));
            }
            Ok(())
        })
    }
    fn send_dtmf(&self, engine_call: &str, digits: &str) -> BoxFuture<'_, Result<(), EngineError>> {
        let (call, digits) = (engine_call.to_string(), digits.to_string());
        Box::pin(async move {
            live(self, &call)?;
            if let Ok(mut l) = self.log.lock() {
                l.dtmf.push((call, digits));
            }
            Ok(())
        })
    }
    fn apply(&self, routing: Routing) -> BoxFuture<'_, Result<(), EngineError>> {
        Box::pin(async move {
            if let Ok(mut l) = self.log.lock() {
                l.routings.push(routing);
            }
            Ok(())
        })
    }
    fn brain(&self, agent: &ResolvedAgent) -> Result<Box<dyn Brain>, EngineError> {
        let agent = &agent.spec;
        let mut b = ScriptedBrain::new(format!("{} here. Could you say that again?", agent.name))
            .on("hours|open", "We are open nine to five.");
        if let Some(g) = &agent.greeting {
            b = b.with_greeting(g.clone());
        }
        Ok(Box::new(b))
    }
    fn voices(&self) -> Vec<LocalVoice> {
        vec![LocalVoice {
            id: "en_US-test-medium".into(),
            language: "en-US".into(),
            sample_rate: 22050,
        }]
    }
    fn preview(&self, voice: &str, _text: &str) -> BoxFuture<'_, Result<Vec<u8>, EngineError>> {
        let known = voice == "en_US-test-medium";
        let voice = voice.to_string();
        Box::pin(async move {
            if !known {
                return Err(EngineError::Refused(format!("no voice {voice}")));
            }
            // 10 ms of silence at 8 kHz as a WAV file.
            let mut w = Vec::new();
            let data = vec![0u8; 160];
            w.extend_from_slice(b"RIFF");
            w.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
            w.extend_from_slice(b"WAVEfmt ");
            w.extend_from_slice(&16u32.to_le_bytes());
            w.extend_from_slice(&1u16.to_le_bytes());
            w.extend_from_slice(&1u16.to_le_bytes());
            w.extend_from_slice(&8000u32.to_le_bytes());
            w.extend_from_slice(&16000u32.to_le_bytes());
            w.extend_from_slice(&2u16.to_le_bytes());
            w.extend_from_slice(&16u16.to_le_bytes());
            w.extend_from_slice(b"data");
            w.extend_from_slice(&(data.len() as u32).to_le_bytes());
            w.extend_from_slice(&data);
            Ok(w)
        })
    }
}

/// A test app: in-memory database, fake engine, fake clock at
/// 2026-01-05T15:00:00Z (a Monday), and an admin key.
#[derive(Debug)]
pub struct TestApp {
    /// State shared with the router.
    pub state: AppState,
    /// The engine behind it.
    pub engine: Arc<FakeEngine>,
    /// The clock.
    pub clock: Arc<FakeClock>,
    /// An admin key.
    pub admin_key: String,
}

/// 2026-01-05T15:00:00Z in ms.
pub const T0_MS: i64 = 1_767_625_200_000;

impl TestApp {
    /// A fresh app.
    pub async fn new() -> TestApp {
        let db = Db::memory().await.expect("in-memory database");
        let engine = Arc::new(FakeEngine::default());
        let clock = Arc::new(FakeClock::new(T0_MS));
        let state =
            AppState::new(db, engine.clone(), ApiSettings::default()).with_clock(clock.clone());
        let (admin_key, _) =
            crate::auth::create_key(&state.db, "test", crate::auth::Scope::Admin, T0_MS)
                .await
                .expect("admin key");
        TestApp {
            state,
            engine,
            clock,
            admin_key,
        }
    }

    /// The router.
    pub fn router(&self) -> axum::Router {
        crate::router(self.state.clone())
    }

    /// Send a request with the admin key; returns status and JSON body
    /// (`Null` when empty or not JSON).
    pub async fn call(
        &self,
        method: &str,
        uri: &str,
        body: Option<serde_json::Value>,
    ) -> (axum::http::StatusCode, serde_json::Value) {
        self.call_as(Some(&self.admin_key), method, uri, body).await
    }

    /// The same with another key (or none).
    pub async fn call_as(
        &self,
        key: Option<&str>,
        method: &str,
        uri: &str,
        body: Option<serde_json::Value>,
    ) -> (axum::http::StatusCode, serde_json::Value) {
        use tower::ServiceExt;
        let mut req = axum::http::Request::builder().method(method).uri(uri);
        if let Some(k) = key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(axum::body::Body::from(b.to_string())),
            None => req.body(axum::body::Body::empty()),
        }
        .expect("request");
        let resp = self.router().oneshot(req).await.expect("response");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
            .await
            .expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    /// Raw response (for non-JSON bodies).
    pub async fn raw(
        &self,
        method: &str,
        uri: &str,
        body: axum::body::Body,
        content_type: &str,
    ) -> (axum::http::StatusCode, axum::http::HeaderMap, Vec<u8>) {
        use tower::ServiceExt;
        let req = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {}", self.admin_key))
            .header("content-type", content_type)
            .body(body)
            .expect("request");
        let resp = self.router().oneshot(req).await.expect("response");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
            .await
            .expect("body");
        (status, headers, bytes.to_vec())
    }
}
