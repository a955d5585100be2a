//! The `vocelio` binary as a user runs it: starts with embedded defaults,
//! answers on HTTP, stops cleanly on SIGTERM and SIGINT, and refuses bad
//! configuration with a message naming the key.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vocelio_testkit::{free_port, free_udp_port};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vocelio"))
}

fn models_dir() -> PathBuf {
    std::env::var_os("VOCELIO_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models"))
}

fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

fn start(port: u16, data: &std::path::Path) -> Child {
    start_with_sip(port, free_udp_port(), data)
}

fn start_with_sip(port: u16, sip_port: u16, data: &std::path::Path) -> Child {
    bin()
        .arg("serve")
        .env("VOCELIO__HTTP__LISTEN", format!("127.0.0.1:{port}"))
        .env("VOCELIO__SIP__LISTEN", format!("127.0.0.1:{sip_port}"))
        .env("VOCELIO__RTP__PORT_MIN", "40000")
        .env("VOCELIO__RTP__PORT_MAX", "40999")
        .env("VOCELIO__STORAGE__DATA_DIR", data)
        .env("VOCELIO__MODELS__DIR", models_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Poll until the server answers (bounded: 30 s), returning the /health body.
fn wait_healthy(port: u16, child: &mut Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(body) = get(port, "/health") {
            return body;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("vocelio exited early with {status}: {err}");
        }
        assert!(
            Instant::now() < deadline,
            "vocelio did not answer on port {port} within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop_with(child: &mut Child, signal: &str) -> String {
    let ok = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("vocelio did not stop within 15 s of {signal}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(status.success(), "exit {status} after {signal}: {out}");
    out
}

#[test]
fn serve_answers_and_stops_on_sigterm_and_sigint() {
    for signal in ["-TERM", "-INT"] {
        let data = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut child = start(port, &data.path().join("data"));
        let health = wait_healthy(port, &mut child);
        assert!(health.starts_with("HTTP/1.1 200"), "{health}");
        assert!(health.contains("\"status\":\"ok\""), "{health}");
        assert!(
            data.path().join("data").is_dir(),
            "storage.data_dir was not created"
        );
        let log = stop_with(&mut child, signal);
        assert!(
            log.contains("vocelio serving") && log.contains("vocelio stopped"),
            "{log}"
        );
        assert!(
            log.contains("models present"),
            "models not found by serve: {log}"
        );
    }
}

#[test]
fn serve_answers_sip_calls_from_sipp() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let sip_port = free_udp_port();
    let mut child = start_with_sip(port, sip_port, &data.path().join("data"));
    wait_healthy(port, &mut child);
    // 20 calls to a number routed to the default agent, from loopback (the default trunk).
    let stat = data.path().join("stat.csv");
    let out = Command::new("sipp")
        .args([
            &format!("127.0.0.1:{sip_port}"),
            "-sn",
            "uac",
            "-s",
            "15550100001",
            "-i",
            "127.0.0.1",
            "-p",
            &free_udp_port().to_string(),
            "-mp",
            &free_udp_port().to_string(),
            "-m",
            "20",
            "-r",
            "20",
            "-nostdin",
            "-timeout",
            "60s",
            "-timeout_error",
            "-trace_stat",
            "-stf",
            stat.to_str().unwrap(),
        ])
        .output()
        .expect("sipp is not installed: run scripts/setup.sh");
    // Every answered call had its media plane started and stopped.
    let metrics = get(port, "/metrics").unwrap_or_default();
    let log = stop_with(&mut child, "-TERM");
    assert!(
        metrics.contains("vocelio_media_calls_total 20"),
        "{metrics}"
    );
    assert!(
        out.status.success(),
        "sipp failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        log
    );
    assert_eq!(log.matches("inbound call").count(), 20, "{log}");
    // The SIP side's line (the recorder logs its own "call ended" too).
    let sip_ended = log
        .lines()
        .filter(|l| l.contains("call ended") && l.contains("cause="))
        .count();
    assert_eq!(sip_ended, 20, "{log}");
    assert!(
        !log.contains("15550100001"),
        "a phone number was logged at info: {log}"
    );
}

fn post_form(port: u16, path: &str, form: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
        form.len()
    )
    .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

#[test]
fn serve_answers_twilio_voice_webhooks_when_enabled() {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = bin()
        .arg("serve")
        .env("VOCELIO__HTTP__LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "VOCELIO__SIP__LISTEN",
            format!("127.0.0.1:{}", free_udp_port()),
        )
        .env("VOCELIO__RTP__PORT_MIN", "41000")
        .env("VOCELIO__RTP__PORT_MAX", "41999")
        .env("VOCELIO__STORAGE__DATA_DIR", data.path().join("data"))
        .env("VOCELIO__MODELS__DIR", models_dir())
        .env("VOCELIO__TWILIO__ENABLED", "true")
        .env("VOCELIO__TWILIO__PUBLIC_HOST", "voice.example.test")
        .env("VOCELIO__TWILIO__AUTH_TOKEN", "secret")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_healthy(port, &mut child);
    // Unsigned: refused.
    let refused = post_form(port, "/twilio/voice", "To=%2B15550100001&CallSid=CA1").unwrap();
    // Signed with the account's token over https://{public_host}/twilio/voice + sorted params.
    let sig = vocelio_engine::twilio::signature::expected_signature(
        "secret",
        "https://voice.example.test/twilio/voice",
        &[
            ("CallSid".into(), "CA1".into()),
            ("To".into(), "+15550100001".into()),
        ],
    );
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let form = "To=%2B15550100001&CallSid=CA1";
    write!(
        s,
        "POST /twilio/voice HTTP/1.1\r\nHost: localhost\r\nX-Twilio-Signature: {sig}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
        form.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let log = stop_with(&mut child, "-TERM");
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}\n{log}");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}\n{log}");
    assert!(
        answer.contains(r#"<Stream url="wss://voice.example.test/twilio/media""#),
        "{answer}"
    );
    assert!(
        answer.contains(r#"name="agent" value="support_faq""#),
        "{answer}"
    );
}

#[test]
fn bad_configuration_stops_startup_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[sip]\nlisten = \"127.0.0.1:5060\"\ntransport = \"udp\"\n",
    )
    .unwrap();
    let out = bin()
        .args(["--config", cfg.to_str().unwrap(), "serve"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sip.transport"), "{err}");

    let out = bin()
        .arg("config")
        .env("VOCELIO__RTP__PORT_MIN", "abc")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("port_min"));

    let out = bin()
        .args(["--config", "/nonexistent/v.toml", "config"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/v.toml"));
}

#[test]
fn bad_agents_stop_startup_with_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    // A flow with a dangling edge and a node nothing reaches.
    let flow = dir.path().join("broken.json");
    std::fs::write(
        &flow,
        r#"{"id": "broken", "name": "Broken", "start": "hello",
            "nodes": [
              {"id": "hello", "type": "say", "text": "Hi."},
              {"id": "island", "type": "hangup"}
            ],
            "edges": [{"from": "hello", "to": "nowhere"}]}"#,
    )
    .unwrap();
    let cfg = dir.path().join("agents.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[agents]]\nname = \"sales\"\nflow = {:?}\n",
            flow.to_str().unwrap()
        ),
    )
    .unwrap();
    let out = bin()
        .args(["--config", cfg.to_str().unwrap(), "serve"])
        .env("VOCELIO__HTTP__LISTEN", "127.0.0.1:0")
        .env("VOCELIO__SIP__LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("agent sales"), "{err}");
    assert!(err.contains("nowhere") && err.contains("island"), "{err}");

    // A number routed to an agent that does not exist.
    let out = bin()
        .args(["serve"])
        .env("VOCELIO__SIP__DEFAULT_AGENT", "nobody")
        .env("VOCELIO__HTTP__LISTEN", "127.0.0.1:0")
        .env("VOCELIO__SIP__LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sip.default_agent") && err.contains("nobody") && err.contains("support_faq"),
        "{err}"
    );

    // Both a flow and an LLM: refused at load, naming the agent.
    std::fs::write(
        &cfg,
        "[[agents]]\nname = \"x\"\nflow = \"support_faq\"\n[agents.llm]\nprovider = \"local\"\nsystem_prompt = \"hi\"\n",
    )
    .unwrap();
    let out = bin()
        .args(["--config", cfg.to_str().unwrap(), "config"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("agents `x`") && err.contains("not both"),
        "{err}"
    );
}

#[test]
fn config_prints_the_embedded_defaults() {
    let out = bin()
        .arg("config")
        .env_remove("VOCELIO_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "listen = \"127.0.0.1:8000\"",
        "listen = \"127.0.0.1:5060\"",
        "port_min = 10000",
        "port_max = 20000",
        "data_dir = \"./data\"",
        "dir = \"./models\"",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
}

#[test]
fn models_subcommand_checks_the_folder() {
    let out = bin()
        .arg("models")
        .env("VOCELIO__MODELS__DIR", models_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let empty = tempfile::tempdir().unwrap();
    let out = bin()
        .arg("models")
        .env("VOCELIO__MODELS__DIR", empty.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("MISSING"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("scripts/setup.sh"));
}
