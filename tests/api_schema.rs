//! schemathesis (PyPI; `scripts/setup.sh` links it at `.tools/st`) fuzzes
//! every operation of the control API's OpenAPI document against the real
//! binary: no request, however malformed, gets a 500, and every response
//! matches the document's status codes.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vocelio_testkit::{free_port, free_udp_port};

fn schemathesis() -> PathBuf {
    let st = std::env::var_os("VOCELIO_SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/st"));
    assert!(
        st.exists(),
        "schemathesis is not installed at {}: run scripts/setup.sh",
        st.display()
    );
    st
}

#[test]
fn schemathesis_finds_no_server_errors() {
    let st = schemathesis();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = |c: &mut Command, http: u16| {
        c.env("VOCELIO__HTTP__LISTEN", format!("127.0.0.1:{http}"))
            .env(
                "VOCELIO__SIP__LISTEN",
                format!("127.0.0.1:{}", free_udp_port()),
            )
            .env("VOCELIO__RTP__PORT_MIN", "46000")
            .env("VOCELIO__RTP__PORT_MAX", "46999")
            .env("VOCELIO__STORAGE__DATA_DIR", &data)
            // The API is under test, not the models: no model loading.
            .env("VOCELIO__MODELS__DIR", dir.path().join("no-models"))
            .env("VOCELIO__BRAIN__LOCAL_LLM", "false")
            .env("VOCELIO__BRAIN__EMBEDDINGS", "false");
    };
    let mut keys = Command::new(env!("CARGO_BIN_EXE_vocelio"));
    env(&mut keys, 1);
    let out = keys
        .args(["keys", "create", "--scope", "admin"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();

    let http = free_port();
    let mut serve = Command::new(env!("CARGO_BIN_EXE_vocelio"));
    env(&mut serve, http);
    let log_path = dir.path().join("serve.log");
    let mut child = serve
        .arg("serve")
        .stdout(std::fs::File::create(&log_path).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", http)).is_err() {
        assert!(Instant::now() < deadline, "vocelio did not start");
        assert!(child.try_wait().unwrap().is_none(), "vocelio exited");
        std::thread::sleep(Duration::from_millis(50));
    }

    let report = dir.path().join("junit.xml");
    let run = Command::new(&st)
        .args([
            "run",
            &format!("http://127.0.0.1:{http}/v1/openapi.json"),
            "--header",
            &format!("Authorization: Bearer {key}"),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "25",
            "--workers",
            "1",
            "--seed",
            "1",
            "--request-timeout",
            "10",
            // The keys routes would revoke the key the run uses.
            "--exclude-path-regex",
            "^/v1/keys",
            "--report",
            "junit",
            "--report-junit-path",
            report.to_str().unwrap(),
        ])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "schemathesis found problems:\n{stdout}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&run.stderr),
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );
    // It really tested the operations (not an empty document).
    let junit = std::fs::read_to_string(&report).unwrap_or_default();
    let operations = junit.matches("<testcase").count();
    assert!(
        operations >= 40,
        "only {operations} operations tested:\n{stdout}"
    );
}
