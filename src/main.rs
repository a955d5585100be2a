//! `vocelio`: the real-time AI call-center engine.

mod agents;
mod bench;
mod bench_brain;
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
    /// Benchmarks and load harnesses that print a table.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
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
        Command::Bench(BenchCommand::Brain(args)) => bench_brain::brain(args, &config),
        Command::Bench(BenchCommand::Voice(args)) => bench_voice::voice(
            args,
            &vocelio_pipelines::models::ModelDir::new(&config.models.dir),
        ),
        Command::Serve => {
            init_tracing(&config);
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(serve(config))
        }
    }
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
    let app = axum::Router::new()
        .route(
            "/health",
            axum::routing::get(|| async {
                axum::Json(
                    serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}),
                )
            }),
        )
        .route(
            "/ready",
            axum::routing::get({
                let ready = ready.clone();
                move || async move {
                    if ready.load(Ordering::Relaxed) {
                        (axum::http::StatusCode::OK, "ready")
                    } else {
                        (axum::http::StatusCode::SERVICE_UNAVAILABLE, "shutting down")
                    }
                }
            }),
        );
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
        recordings,
        jitter_min_ms: config.rtp.jitter_min_ms,
        jitter_max_ms: config.rtp.jitter_max_ms,
        media_timeout: std::time::Duration::from_secs(config.rtp.media_timeout_s),
        seed: seed ^ 0x006d_6564_6961,
        ..MediaConfig::default()
    };
    let (media, media_events) =
        MediaEngine::start(media_cfg).context("starting the media plane")?;
    let media_metrics = media.metrics();
    // Every call's media port goes to the voice pipeline (an echo if the models are missing).
    let agents = Arc::new(agents::Agents::start(
        &config,
        &models,
        brains,
        sip_handle.clone(),
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
    tokio::spawn(sip::run_events(bridge_rx, agent_ports.clone()));
    let app = app.route(
        "/metrics",
        axum::routing::get({
            let agents = Arc::clone(&agents);
            move || {
                let text = media_metrics.prometheus() + &agents.prometheus();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4",
                        )],
                        text,
                    )
                }
            }
        }),
    );
    let app = if config.twilio.enabled {
        let (tx, mut ports) = tokio::sync::mpsc::unbounded_channel();
        let state = vocelio_engine::twilio::TwilioState::new(config.twilio.engine_config(), tx)
            .context("twilio")?;
        tokio::spawn(async move {
            while let Some(port) = ports.recv().await {
                let _ = agent_ports.send(port);
            }
        });
        info!(public_host = %config.twilio.public_host, "Twilio Media Streams at /twilio/voice and /twilio/media");
        app.merge(vocelio_engine::twilio::router(state))
    } else {
        app
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
