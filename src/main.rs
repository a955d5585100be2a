//! `vocelio`: the real-time AI call-center engine.

mod agents;
mod api;
mod bench;
mod bench_all;
mod bench_brain;
mod bench_calls;
mod bench_rtpengine;
mod bench_sip;
mod bench_voice;
mod brains;
mod config;
mod records;
mod sip;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use config::Config;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tracing::{info, warn};
use vocelio_engine::media::{MediaConfig, MediaEngine};

#[derive(Debug, Parser)]
#[command(
    name = "vocelio",
    version,
    about = "Real-time AI call-center engine: SIP and Twilio in, AI agents out"
)]
struct Cli {
    /// TOML configuration file; `VOCELIO__SECTION__KEY` environment variables override it.
    #[arg(long, global = true, env = "VOCELIO_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the engine: HTTP (control API, /health, /metrics) on 127.0.0.1:8000 by default.
    Serve,
    /// Print the effective configuration (defaults + file + environment) as TOML.
    Config,
    /// Check that every model and native library `scripts/setup.sh` installs is in place.
    Models,
    /// Speak TEXT with the local Piper voice into a WAV file (voice preview, test fixtures).
    Say {
        /// What to say.
        text: String,
        /// Output WAV (16-bit mono at the voice's rate, 22050 Hz for the default voice).
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Control API keys (stored hashed in the database).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Benchmarks and load harnesses that print a table.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key and print it (the only time it is shown).
    Create {
        /// read, write or admin.
        #[arg(long, default_value = "admin")]
        scope: String,
        /// A label.
        #[arg(long, default_value = "cli")]
        name: String,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by id.
    Revoke {
        /// The key's id (`key_…`).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Every scenario (media capacity with rtpengine, SIP rate with
    /// Kamailio, single-call latency, AI-call capacity) in one run, written to
    /// `benches/results/latest.{md,json}`.
    All(bench_all::AllArgs),
    /// Media-plane capacity: N concurrent SIP calls with real RTP against the
    /// engine (pinned to one core) running a passthrough agent.
    Media(bench::MediaArgs),
    /// Voice pipeline latency (voice-to-voice, STT, TTS, barge-in) over the
    /// fixture utterances, one call at a time on a local media port.
    Voice(bench_voice::VoiceArgs),
    /// Brain time to first clause: every built-in flow over scripted callers
    /// (real intents and knowledge base), and the local LLM (first token,
    /// first clause, tokens/s), with memory.
    Brain(bench_brain::BrainArgs),
    /// Simulated callers against `vocelio serve` over SIP/RTP or Twilio Media
    /// Streams, timed on the wire: voice-to-voice, barge-in, the engine's
    /// STT/brain/TTS figures, CPU and memory per call, over a ramp of
    /// concurrent calls.
    Calls(bench_calls::CallsArgs),
    /// The same RTP load relayed by rtpengine (Debian's rtpengine-daemon,
    /// pinned to one core), then `bench media` at the same calls: CPU and
    /// memory per call side by side.
    Rtpengine(bench_rtpengine::RtpengineArgs),
    /// SIP call rate: sipp's uac scenario at rising rates against `vocelio
    /// serve` and then Kamailio, each pinned to one core, with CPU per step.
    Sip(bench_sip::SipArgs),
    /// The engine side of `bench media` (started by it).
    #[command(hide = true)]
    MediaServer(bench::ServerArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref(), std::env::vars())?;
    match cli.command {
        Command::Config => {
            print!("{}", toml::to_string_pretty(&config)?);
            Ok(())
        }
        Command::Models => {
            let inventory = vocelio_pipelines::models::ModelDir::new(&config.models.dir);
            let report = inventory.check();
            for (name, path, ok) in &report {
                println!(
                    "{} {name:<18} {}",
                    if *ok { "ok     " } else { "MISSING" },
                    path.display()
                );
            }
            if report.iter().all(|(_, _, ok)| *ok) {
                Ok(())
            } else {
                anyhow::bail!(
                    "models are missing from {}: run scripts/setup.sh",
                    config.models.dir.display()
                )
            }
        }
        Command::Say { text, out } => {
            let dir = vocelio_pipelines::models::ModelDir::new(&config.models.dir);
            let mut voice = vocelio_pipelines::tts::Voice::load(&dir, 2)?;
            let pcm = voice.synthesize(&text)?;
            vocelio_codecs::wav::write(&out, voice.rate(), &pcm)?;
            eprintln!(
                "wrote {} ({} ms at {})",
                out.display(),
                pcm.len() as u64 * 1000 / u64::from(voice.rate().hz()),
                voice.rate()
            );
            Ok(())
        }
        Command::Bench(BenchCommand::Media(args)) => bench::media(args),
        Command::Bench(BenchCommand::MediaServer(args)) => bench::server(args),
        Command::Bench(BenchCommand::All(args)) => bench_all::all(args),
        Command::Bench(BenchCommand::Calls(args)) => bench_calls::calls(args),
        Command::Bench(BenchCommand::Rtpengine(args)) => bench_rtpengine::rtpengine(args),
        Command::Bench(BenchCommand::Sip(args)) => bench_sip::sip(args),
        Command::Bench(BenchCommand::Brain(args)) => bench_brain::brain(args, &config),
        Command::Bench(BenchCommand::Voice(args)) => bench_voice::voice(
            args,
            &vocelio_pipelines::models::ModelDir::new(&config.models.dir),
        ),
        Command::Keys(cmd) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(keys(&config, cmd))
        }
        Command::Serve => {
            init_tracing(&config);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(serve(config))
        }
    }
}

/// The control API's database URL.
fn database_url(config: &Config) -> Result<String> {
    if !config.storage.database_url.is_empty() {
        return Ok(config.storage.database_url.clone());
    }
    std::fs::create_dir_all(&config.storage.data_dir).with_context(|| {
        format!(
            "creating storage.data_dir {}",
            config.storage.data_dir.display()
        )
    })?;
    Ok(vocelio_control_api::db::Db::sqlite_url(
        &config.storage.data_dir,
    ))
}

async fn keys(config: &Config, cmd: KeysCommand) -> Result<()> {
    use vocelio_control_api::auth::{self, Scope};
    let db = vocelio_control_api::db::Db::open(&database_url(config)?).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    match cmd {
        KeysCommand::Create { scope, name } => {
            let scope = Scope::parse(&scope)
                .ok_or_else(|| anyhow::anyhow!("--scope {scope:?}: use read, write or admin"))?;
            let (key, info) = auth::create_key(&db, &name, scope, now)
                .await
                .map_err(|e| anyhow::anyhow!("creating the key: {}", e.body.message))?;
            eprintln!(
                "created {} key {} ({}); it is shown only now:",
                scope.as_str(),
                info.id,
                info.name
            );
            println!("{key}");
        }
        KeysCommand::List => {
            let rows: Vec<(String, String, String, String, Option<i64>)> = sqlx_rows(&db).await?;
            for (id, name, scope, prefix, revoked) in rows {
                println!(
                    "{id}  {scope:<5}  {prefix}…  {name}{}",
                    if revoked.is_some() { "  (revoked)" } else { "" }
                );
            }
        }
        KeysCommand::Revoke { id } => {
            let n = vocelio_control_api::auth::revoke_key(&db, &id, now)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.body.message))?;
            if !n {
                anyhow::bail!("no active key {id}");
            }
            eprintln!("revoked {id}");
        }
    }
    Ok(())
}

async fn sqlx_rows(
    db: &vocelio_control_api::db::Db,
) -> Result<Vec<(String, String, String, String, Option<i64>)>> {
    vocelio_control_api::auth::list_keys(db)
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.body.message))
}

fn init_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        // Colour only on a terminal: log files and journald get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
}

async fn serve(config: Config) -> Result<()> {
    let models = vocelio_pipelines::models::ModelDir::new(&config.models.dir);
    let missing: Vec<_> = models
        .check()
        .into_iter()
        .filter(|(_, _, ok)| !ok)
        .map(|(n, _, _)| n)
        .collect();
    if missing.is_empty() {
        info!(dir = %config.models.dir.display(), "models present");
    } else {
        warn!(dir = %config.models.dir.display(), ?missing, "models missing: AI calls cannot run until scripts/setup.sh has fetched them");
    }
    // Agents: flows are parsed and validated now, so a broken flow or a
    // route to an unknown agent stops startup with a clear message.
    let brains = brains::Brains::load(&config)?;
    let routed = std::iter::once(("sip.default_agent", &config.sip.default_agent))
        .chain(std::iter::once((
            "twilio.default_agent",
            &config.twilio.default_agent,
        )))
        .chain(config.sip.numbers.values().map(|a| ("sip.numbers", a)))
        .chain(
            config
                .twilio
                .numbers
                .values()
                .map(|a| ("twilio.numbers", a)),
        );
    for (key, agent) in routed {
        if !agent.is_empty() && !brains.has(agent) {
            anyhow::bail!(
                "{key} routes to agent {agent:?}, which does not exist (agents: {})",
                brains.names().join(", ")
            );
        }
    }
    std::fs::create_dir_all(&config.storage.data_dir).with_context(|| {
        format!(
            "creating storage.data_dir {}",
            config.storage.data_dir.display()
        )
    })?;

    let ready = Arc::new(AtomicBool::new(true));
    // The control API's database: opened (and migrated) before anything
    // answers, so a bad URL or a broken file stops startup with a message.
    let db_url = database_url(&config)?;
    let db = vocelio_control_api::db::Db::open(&db_url)
        .await
        .context("opening the control API database (storage.database_url)")?;
    info!(kind = ?db.kind, "control API database ready");

    bench::raise_fd_limit();
    let (endpoint_cfg, listen) = sip::endpoint_config(&config)?;
    let seed = endpoint_cfg.seed;
    let (sip_handle, sip_events, sip_task) =
        vocelio_engine::endpoint::driver::start(endpoint_cfg, listen)
            .await
            .with_context(|| format!("starting SIP on sip.listen {}", config.sip.listen))?;
    info!(udp = ?sip_handle.udp_addr, tcp = ?sip_handle.tcp_addr, "SIP listening");

    // Media: every answered call gets RTP on its port and a media port for its agent.
    let recordings = if config.rtp.record {
        let dir = config.storage.data_dir.join("recordings");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating the recordings folder {}", dir.display()))?;
        info!(dir = %dir.display(), "recording calls");
        Some(dir)
    } else {
        None
    };
    let media_cfg = MediaConfig {
        bind_ip: config.sip.listen.ip(),
        recordings: recordings.clone(),
        jitter_min_ms: config.rtp.jitter_min_ms,
        jitter_max_ms: config.rtp.jitter_max_ms,
        media_timeout: std::time::Duration::from_secs(config.rtp.media_timeout_s),
        seed: seed ^ 0x006d_6564_6961,
        ..MediaConfig::default()
    };
    let (media, media_events) =
        MediaEngine::start(media_cfg).context("starting the media plane")?;
    let media_metrics = media.metrics();
    // What happens on calls goes to the control API's recorder.
    let (engine_tx, engine_rx) = tokio::sync::mpsc::unbounded_channel();
    let links = api::ApiLinks::new(engine_tx);
    let brains = Arc::new(std::sync::RwLock::new(brains));
    // Every call's media port goes to the voice pipeline (an echo if the models are missing).
    let agents = Arc::new(agents::Agents::start(
        &config,
        &models,
        Arc::clone(&brains),
        sip_handle.clone(),
        links.clone(),
    )?);
    let agent_ports = agents.sender();
    let (bridge_tx, bridge_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(vocelio_engine::media::bridge::run(
        sip_events,
        media_events,
        sip_handle.clone(),
        media,
        vocelio_engine::endpoint::AgentId(config.sip.default_agent.clone()),
        bridge_tx,
    ));
    tokio::spawn(sip::run_events(
        bridge_rx,
        agent_ports.clone(),
        links.clone(),
    ));

    let twilio = if config.twilio.enabled {
        let (tx, mut ports) = tokio::sync::mpsc::unbounded_channel();
        let state = vocelio_engine::twilio::TwilioState::new(config.twilio.engine_config(), tx)
            .context("twilio")?;
        tokio::spawn(async move {
            while let Some(port) = ports.recv().await {
                let _ = agent_ports.send(port);
            }
        });
        info!(public_host = %config.twilio.public_host, "Twilio Media Streams at /twilio/voice and /twilio/media");
        Some(state)
    } else {
        None
    };

    let metrics: Arc<dyn Fn() -> String + Send + Sync> = {
        let agents = Arc::clone(&agents);
        Arc::new(move || media_metrics.prometheus() + &agents.prometheus())
    };
    let engine = api::ApiEngine::new(
        sip_handle.clone(),
        Arc::clone(&brains),
        links,
        config.clone(),
        twilio.clone(),
        metrics,
    );
    let mut state = vocelio_control_api::state::AppState::new(
        db,
        Arc::new(engine),
        vocelio_control_api::state::ApiSettings {
            recordings,
            caller_id: config.storage.caller_id.clone(),
            ..Default::default()
        },
    );
    state.ready = Arc::clone(&ready);
    // Close calls a crash left open, settle campaign contacts, then record,
    // dial and deliver webhooks.
    vocelio_control_api::start_workers(state.clone(), engine_rx)
        .await
        .map_err(|e| anyhow::anyhow!("starting the control API: {}", e.body.message))?;
    if let Err(e) = vocelio_control_api::routing::apply(&state).await {
        warn!(error = %e.body.message, "agents, numbers or trunks from the database could not be applied");
    }
    let app = vocelio_control_api::router(state);
    let app = match &twilio {
        Some(tw) => app.merge(vocelio_engine::twilio::router(tw.clone())),
        None => app,
    };

    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("binding http.listen {}", config.http.listen))?;
    info!(http = %listener.local_addr()?, "vocelio serving");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            ready.store(false, Ordering::Relaxed);
            info!("shutdown requested, draining");
        })
        .await
        .context("HTTP server")?;
    sip_handle.shutdown();
    if tokio::time::timeout(std::time::Duration::from_secs(5), sip_task)
        .await
        .is_err()
    {
        warn!("SIP service did not stop within 5 s");
    }
    drop(agents);
    info!("vocelio stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            warn!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
