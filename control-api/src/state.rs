//! What every handler shares, and the control API's view of the engine.

use crate::db::Db;
use crate::events::EventBus;
use crate::model::{ResolvedAgent, Routing};
use futures_util::future::BoxFuture;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use vocelio_pipelines::brain::Brain;

/// Milliseconds since the Unix epoch. Everything time-dependent in the API
/// (campaign calling hours, retries, webhook backoff) reads this, so tests
/// run on a fake clock.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in ms since the epoch.
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// A clock tests set by hand.
#[derive(Debug, Default)]
pub struct FakeClock(AtomicI64);

impl FakeClock {
    /// Starting at `ms`.
    pub fn new(ms: i64) -> Self {
        FakeClock(AtomicI64::new(ms))
    }
    /// Set the time.
    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
    /// Move forward.
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Why the engine refused.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// No such live call.
    #[error("no live call {0}")]
    NoSuchCall(String),
    /// The engine cannot do this (no trunk, capacity, transport without the feature).
    #[error("{0}")]
    Refused(String),
    /// Models or the engine are not available.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// An outbound call to place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundCall {
    /// E.164 number to call.
    pub to: String,
    /// Caller id (E.164).
    pub from: String,
    /// Trunk name (`None`: the first configured).
    pub trunk: Option<String>,
    /// The agent that talks.
    pub agent: String,
}

/// A local voice the engine can speak with.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalVoice {
    /// Id (file stem, e.g. `en_US-lessac-medium`).
    pub id: String,
    /// Language tag (`en-US`).
    pub language: String,
    /// Sample rate.
    pub sample_rate: u32,
}

/// The engine as the control API drives it. The binary implements it over
/// the SIP endpoint, the media plane and the voice pipeline; tests use fakes.
pub trait EngineControl: Send + Sync + std::fmt::Debug + 'static {
    /// Place a call; returns the engine's call id (`call-7`).
    fn place_call(&self, call: OutboundCall) -> BoxFuture<'_, Result<String, EngineError>>;
    /// Hang up a live call.
    fn hangup(&self, engine_call: &str) -> BoxFuture<'_, Result<(), EngineError>>;
    /// Blind-transfer a live call.
    fn transfer(&self, engine_call: &str, target: &str) -> BoxFuture<'_, Result<(), EngineError>>;
    /// Send DTMF digits on a live call.
    fn send_dtmf(&self, engine_call: &str, digits: &str) -> BoxFuture<'_, Result<(), EngineError>>;
    /// Agents, numbers or trunks changed: route calls by this from now on.
    fn apply(&self, routing: Routing) -> BoxFuture<'_, Result<(), EngineError>>;
    /// A brain for this agent, for text conversations (chat, flow simulation).
    fn brain(&self, agent: &ResolvedAgent) -> Result<Box<dyn Brain>, EngineError>;
    /// The local voices found in the models folder.
    fn voices(&self) -> Vec<LocalVoice>;
    /// `text` spoken by `voice`, as a WAV file.
    fn preview(&self, voice: &str, text: &str) -> BoxFuture<'_, Result<Vec<u8>, EngineError>>;
    /// The engine's own Prometheus text (media plane, pipeline).
    fn prometheus(&self) -> String {
        String::new()
    }
}

/// Settings of the API itself.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Where call recordings are (`<engine_call>.wav`), if recording.
    pub recordings: Option<std::path::PathBuf>,
    /// Default caller id for outbound calls.
    pub caller_id: String,
    /// How often the campaign dialer and the webhook sender look for work, ms.
    pub tick_ms: u64,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            recordings: None,
            caller_id: "+15550000000".into(),
            tick_ms: 500,
        }
    }
}

/// Shared by every handler. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Storage.
    pub db: Db,
    /// The engine.
    pub engine: Arc<dyn EngineControl>,
    /// Live events for WebSocket subscribers.
    pub events: EventBus,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Settings.
    pub settings: Arc<ApiSettings>,
    /// `false` while shutting down (readiness).
    pub ready: Arc<std::sync::atomic::AtomicBool>,
    /// Wakes the campaign dialer (a campaign started, a call ended).
    pub dialer_wake: Arc<tokio::sync::Notify>,
    /// Wakes the webhook sender (a delivery was queued).
    pub webhook_wake: Arc<tokio::sync::Notify>,
}

impl AppState {
    /// State over `db` and `engine` with the system clock.
    pub fn new(db: Db, engine: Arc<dyn EngineControl>, settings: ApiSettings) -> Self {
        AppState {
            db,
            engine,
            events: EventBus::new(1024),
            clock: Arc::new(SystemClock),
            settings: Arc::new(settings),
            ready: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            dialer_wake: Arc::new(tokio::sync::Notify::new()),
            webhook_wake: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// The same state on another clock (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Now, ms since the epoch.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }
}
