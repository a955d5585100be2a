//! The control API end to end, against the real binary and real peers:
//! an agent and a number created through the API answer a sipp call whose
//! progress streams on the live WebSocket, and whose transcript, turn
//! metrics and analytics are then read back; a campaign dials a sipp UAS,
//! survives a SIGKILL and resumes without dialling anyone twice.

use futures_util::StreamExt;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
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

fn fixture_ulaw(id: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("fixtures/audio/{id}.8k.ulaw"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `vocelio` with the test's ports and folders.
fn vocelio(data: &Path, http: u16, sip: u16, rtp_base: u16) -> Command {
    let mut c = bin();
    c.env("VOCELIO__HTTP__LISTEN", format!("127.0.0.1:{http}"))
        .env("VOCELIO__SIP__LISTEN", format!("127.0.0.1:{sip}"))
        .env("VOCELIO__RTP__PORT_MIN", rtp_base.to_string())
        .env("VOCELIO__RTP__PORT_MAX", (rtp_base + 999).to_string())
        .env("VOCELIO__STORAGE__DATA_DIR", data)
        .env("VOCELIO__MODELS__DIR", models_dir())
        // The flows here need no LLM: keep memory and startup small.
        .env("VOCELIO__BRAIN__LOCAL_LLM", "false");
    c
}

/// The first admin key, from the command line as a user gets it.
fn admin_key(data: &Path) -> String {
    let out = vocelio(data, 1, 1, 42000)
        .args(["keys", "create", "--scope", "admin", "--name", "e2e"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "keys create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(key.starts_with("vk_"), "{key}");
    key
}

/// A running server whose log is collected.
struct Server {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Server {
    fn start(data: &Path, http: u16, sip: u16, rtp_base: u16) -> Server {
        let mut child = vocelio(data, http, sip, rtp_base)
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().unwrap();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        Server { child, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Wait (bounded) until the log shows `needle`.
    fn wait_log(&mut self, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.log().contains(needle) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("vocelio exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the log within {limit:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill9(&mut self) {
        Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status()
            .unwrap();
        self.child.wait().unwrap();
    }

    fn stop(&mut self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                self.child.kill().ok();
                panic!("vocelio did not stop within 15 s:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One API request; (status, JSON body or Null).
async fn api(port: u16, key: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}{path}");
    let mut req = client
        .request(method.parse().unwrap(), &url)
        .header("authorization", format!("Bearer {key}"))
        .timeout(Duration::from_secs(30));
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// POST expecting `want`; the body.
async fn post(port: u16, key: &str, path: &str, body: Value, want: u16) -> Value {
    let (st, v) = api(port, key, "POST", path, Some(body)).await;
    assert_eq!(st, want, "POST {path}: {v}");
    v
}

async fn get(port: u16, key: &str, path: &str) -> Value {
    let (st, v) = api(port, key, "GET", path, None).await;
    assert_eq!(st, 200, "GET {path}: {v}");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_agent_answers_a_sipp_call_seen_live_and_in_history() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = admin_key(&data);
    let (http, sip) = (free_port(), free_udp_port());
    let mut server = Server::start(&data, http, sip, 43000);
    server.wait_log("vocelio serving", Duration::from_secs(30));
    // Without a key: 401.
    let (st, _) = api(http, "", "GET", "/v1/agents", None).await;
    assert_eq!(st, 401);

    // The agent and its number, through the API.
    let agent = post(
        http,
        &key,
        "/v1/agents",
        json!({
            "name": "frontdesk",
            "brain": {"type": "builtin", "agent": "demo"},
            "greeting": "Thanks for calling the front desk.",
        }),
        201,
    )
    .await;
    let agent_id = agent["id"].as_str().unwrap().to_string();
    post(
        http,
        &key,
        "/v1/numbers",
        json!({"number": "+15550142000", "agent_id": agent_id}),
        201,
    )
    .await;
    server.wait_log("voice agents ready", Duration::from_secs(120));

    // Watch everything live.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "ws://127.0.0.1:{http}/v1/events?access_token={key}"
    ))
    .await
    .unwrap();

    // A caller asks for an appointment.
    let mut audio = vec![0xffu8; 8 * 2500];
    audio.extend(fixture_ulaw("piper_booking"));
    audio.extend(vec![0xffu8; 8 * 500]);
    let pcap = dir.path().join("question.pcap");
    vocelio_testkit::sipp::write_pcap(&pcap, &audio);
    let xml = dir.path().join("caller.xml");
    std::fs::write(
        &xml,
        vocelio_testkit::sipp::speech_scenario(&pcap, audio.len() as u64 / 8 + 6000),
    )
    .unwrap();
    let sipp = tokio::task::spawn_blocking({
        let xml = xml.clone();
        move || {
            Command::new("sipp")
                .args([
                    &format!("127.0.0.1:{sip}"),
                    "-sf",
                    xml.to_str().unwrap(),
                    "-s",
                    "15550142000",
                    "-i",
                    "127.0.0.1",
                    "-p",
                    &free_udp_port().to_string(),
                    "-mp",
                    &free_udp_port().to_string(),
                    "-m",
                    "1",
                    "-nostdin",
                    "-timeout",
                    "60s",
                    "-timeout_error",
                ])
                .output()
                .expect("sipp (scripts/setup.sh installs sip-tester)")
        }
    });

    // Live: the call starts, the caller's words arrive, the call ends.
    let mut seen: Vec<Value> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !seen.iter().any(|e| e["type"] == "call.ended") {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = tokio::time::timeout(left, ws.next())
            .await
            .unwrap_or_else(|_| {
                panic!("no call.ended within 60 s; saw {seen:?}\n{}", server.log())
            });
        let Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))) = msg else {
            continue;
        };
        seen.push(serde_json::from_str(&t).unwrap());
    }
    let out = sipp.await.unwrap();
    assert!(
        out.status.success(),
        "sipp: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        server.log()
    );
    let kinds: Vec<&str> = seen.iter().filter_map(|e| e["type"].as_str()).collect();
    for k in [
        "call.started",
        "call.answered",
        "transcript.final",
        "turn.metrics",
        "call.ended",
    ] {
        assert!(
            kinds.contains(&k),
            "no {k} live: {kinds:?}\n{}",
            server.log()
        );
    }
    let call_id = seen[0]["call_id"].as_str().unwrap().to_string();
    assert!(seen.iter().all(|e| e["call_id"] == call_id.as_str()));
    let heard = seen
        .iter()
        .filter(|e| e["type"] == "transcript.final" && e["data"]["speaker"] == "caller")
        .map(|e| e["data"]["text"].as_str().unwrap_or("").to_lowercase())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        heard.contains("appointment"),
        "caller transcript: {heard:?}"
    );

    // History: the call, its transcript, its turn latencies, and the analytics.
    let calls = get(http, &key, "/v1/calls?status=ended").await;
    assert_eq!(calls["total"], 1, "{calls}");
    let detail = get(http, &key, &format!("/v1/calls/{call_id}")).await;
    assert_eq!(detail["agent"], "frontdesk", "{detail}");
    assert_eq!(detail["direction"], "inbound");
    assert!(detail["answered_ms"].is_i64(), "{detail}");
    let turns = detail["turns"].as_array().expect("per-turn latency");
    assert!(!turns.is_empty(), "{detail}");
    let v2v = turns[0]["voice_to_voice_ms"]
        .as_f64()
        .expect("voice to voice");
    assert!(v2v > 0.0 && v2v < 5000.0, "{v2v}");
    let transcript = get(http, &key, &format!("/v1/calls/{call_id}/transcript")).await;
    let text = transcript.to_string().to_lowercase();
    assert!(
        text.contains("appointment") && text.contains("front desk"),
        "{transcript}"
    );
    let kpis = get(http, &key, "/v1/analytics/kpis").await;
    assert_eq!(kpis["overall"]["calls"], 1, "{kpis}");
    assert_eq!(kpis["overall"]["answered"], 1, "{kpis}");
    let latency = get(http, &key, "/v1/analytics/latency").await;
    assert!(latency["count"].as_i64().unwrap() >= 1, "{latency}");
    server.stop();
    assert!(
        !server.log().contains("15550142000"),
        "a phone number was logged at info"
    );
}

/// Numbers the UAS saw INVITEs for, with how many distinct calls each.
fn invites_by_number(trace: &Path) -> HashMap<String, usize> {
    let text = std::fs::read_to_string(trace).unwrap_or_default();
    let mut calls: HashMap<String, std::collections::HashSet<String>> = HashMap::new();
    let mut number = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("INVITE sip:") {
            number = rest.split('@').next().map(str::to_string);
        } else if let (Some(n), Some(id)) = (&number, line.strip_prefix("Call-ID:")) {
            calls
                .entry(n.clone())
                .or_default()
                .insert(id.trim().to_string());
            number = None;
        }
    }
    calls.into_iter().map(|(n, ids)| (n, ids.len())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_survives_sigkill_without_dialling_anyone_twice() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = admin_key(&data);
    let (http, sip) = (free_port(), free_udp_port());

    // The called parties: a sipp UAS answering every call for 1.5 s.
    let uas_port = free_udp_port();
    let uas_xml = dir.path().join("uas.xml");
    std::fs::write(&uas_xml, vocelio_testkit::sipp::uas_answer_then_bye(1500)).unwrap();
    let trace = dir.path().join("uas_messages.log");
    let uas = Command::new("sipp")
        .args([
            "-sf",
            uas_xml.to_str().unwrap(),
            "-i",
            "127.0.0.1",
            "-p",
            &uas_port.to_string(),
            "-mp",
            &free_udp_port().to_string(),
            "-nostdin",
            "-trace_msg",
            "-message_file",
            trace.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp (scripts/setup.sh installs sip-tester)");
    let _uas = KillOnDrop(uas);

    let mut server = Server::start(&data, http, sip, 44000);
    server.wait_log("vocelio serving", Duration::from_secs(30));
    post(
        http,
        &key,
        "/v1/trunks",
        json!({"name": "carrier", "host": "127.0.0.1", "port": uas_port, "allow_from": ["127.0.0.1/32"]}),
        201,
    )
    .await;
    for name in ["alpha", "beta"] {
        post(
            http,
            &key,
            "/v1/agents",
            json!({"name": name, "brain": {"type": "builtin", "agent": "demo"}}),
            201,
        )
        .await;
    }
    let campaign = post(
        http,
        &key,
        "/v1/campaigns",
        json!({
            "name": "renewals",
            "variants": [
                {"name": "A", "agent": "alpha", "weight": 1},
                {"name": "B", "agent": "beta", "weight": 1}
            ],
            "conversion": {"type": "answered"},
            "schedule": {"timezone": "UTC", "days": ["mon","tue","wed","thu","fri","sat","sun"], "start": "00:00", "end": "23:59"},
            "max_concurrency": 3,
            "pacing_per_minute": 600,
            "retries": {"max_attempts": 2, "backoff_s": 10, "multiplier": 2},
            "caller_id": "+15550000000",
            "trunk": "carrier"
        }),
        201,
    )
    .await;
    let cid = campaign["id"].as_str().unwrap().to_string();
    post(
        http,
        &key,
        "/v1/dnc",
        json!({"number": "+15557000013", "reason": "asked"}),
        201,
    )
    .await;
    let mut csv = String::from("phone,name\n");
    for i in 0..24 {
        csv.push_str(&format!("+155570000{i:02},Contact {i}\n"));
    }
    csv.push_str("not-a-number,Bad\n+15557000001,Duplicate\n");
    let report = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{http}/v1/campaigns/{cid}/contacts"
        ))
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    let report: Value = serde_json::from_str(&report.text().await.unwrap()).unwrap();
    assert_eq!(report["accepted"], 23, "{report}");
    assert_eq!(report["dnc"], 1, "{report}");
    assert_eq!(report["duplicates"], 1, "{report}");
    assert_eq!(report["rejected"].as_array().unwrap().len(), 1, "{report}");

    post(
        http,
        &key,
        &format!("/v1/campaigns/{cid}/start"),
        json!({}),
        200,
    )
    .await;
    // Concurrency is honoured while it runs; kill it once some calls are done.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut max_live = 0;
    let ended_before = loop {
        let live = get(http, &key, "/v1/calls?status=live&limit=500").await;
        max_live = max_live.max(live["total"].as_i64().unwrap());
        let ended = get(http, &key, "/v1/calls?status=ended&limit=500").await;
        if ended["total"].as_i64().unwrap() >= 6 {
            break ended;
        }
        assert!(
            Instant::now() < deadline,
            "campaign stalled:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    server.kill9();
    assert!(
        max_live <= 3,
        "{max_live} calls at once with max_concurrency 3"
    );

    // Restart: calls left open are closed, the campaign resumes and finishes.
    let mut server = Server::start(&data, http, sip, 45000);
    server.wait_log("vocelio serving", Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let c = get(http, &key, &format!("/v1/campaigns/{cid}")).await;
        if c["status"] == "completed" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "campaign did not complete after restart: {c}\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // No finished call record was lost.
    let after = get(http, &key, "/v1/calls?status=ended&limit=500").await;
    let ids: Vec<&str> = after["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    for c in ended_before["items"].as_array().unwrap() {
        let id = c["id"].as_str().unwrap();
        assert!(ids.contains(&id), "call {id} lost across the crash");
    }
    // Nobody was dialled twice; the DNC number never; everyone else once.
    let dialled = invites_by_number(&trace);
    assert!(
        dialled.values().all(|&n| n == 1),
        "dialled more than once: {dialled:?}"
    );
    assert!(!dialled.contains_key("15557000013"), "DNC number dialled");
    // A contact claimed at the instant of the kill, before its INVITE left,
    // is settled rather than called again: at most once, never twice.
    assert!((20..=23).contains(&dialled.len()), "{dialled:?}");
    // The A/B split holds (23 contacts, 1:1).
    let ab = get(http, &key, &format!("/v1/campaigns/{cid}/ab")).await;
    let counts: Vec<i64> = ab["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["calls"].as_i64().unwrap())
        .collect();
    let total: i64 = counts.iter().sum();
    assert!((20..=23).contains(&total), "{ab}");
    assert!(counts.iter().all(|&c| (c - total / 2).abs() <= 3), "{ab}");
    server.stop();
}

/// A peer process that must not outlive the test.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
