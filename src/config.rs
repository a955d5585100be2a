//! Typed configuration: embedded defaults, then a TOML file, then
//! `VOCELIO__SECTION__KEY` environment variables. Validated once at startup;
//! any unknown key or bad value stops startup with a message naming it.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Everything `vocelio serve` reads.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub http: Http,
    pub sip: Sip,
    pub rtp: Rtp,
    pub twilio: Twilio,
    pub storage: Storage,
    pub models: Models,
    pub brain: BrainModels,
    /// Agents besides the built-in ones (`demo` and one per flow template:
    /// `appointment_booking`, `lead_qualification`, `support_faq`); a
    /// configured agent with a built-in's name replaces it.
    pub agents: Vec<Agent>,
    pub log: Log,
}

/// The brain's shared models, loaded once per process.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BrainModels {
    /// Load the sentence-embedding model for intents and knowledge bases
    /// (without it, intents match their example phrases as words and
    /// knowledge-base answers find nothing).
    pub embeddings: bool,
    /// Load the local LLM for `llm` flow nodes and `provider = "local"` agents.
    pub local_llm: bool,
    /// The GGUF file, relative to `models.dir` unless absolute. Drop in a
    /// bigger model here.
    pub local_llm_model: PathBuf,
    /// Threads per local LLM generation.
    pub llm_threads: usize,
    /// Local LLM generations run at once (each holds its own context).
    pub llm_workers: usize,
    /// The OpenAI-compatible endpoint for agents defined through the
    /// control API with `model = "openai"` (`base_url`, `model`,
    /// `api_key_env`, timeouts, as `[agents.llm.openai]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openai: Option<toml::Table>,
}

/// One agent: a flow, or a free-form LLM conversation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    /// What numbers and streams route to.
    pub name: String,
    /// A built-in flow template's name, or the path of a flow JSON file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<String>,
    /// A folder of `.md`/`.txt` documents: the agent's knowledge base (for
    /// `kb_answer` nodes and as LLM context).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kb: Option<PathBuf>,
    /// A free-form LLM agent (instead of `flow`): `provider` (`local`, the
    /// default, or `openai`), the brain's settings (`system_prompt`,
    /// `greeting`, `max_history_turns`, `fallback_line`, `[[agents.llm.tools]]`,
    /// ...) and, for `openai`, an `[agents.llm.openai]` table (`base_url`,
    /// `model`, `api_key_env`, timeouts). Checked when the engine starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<toml::Table>,
}

impl Default for BrainModels {
    fn default() -> Self {
        BrainModels {
            embeddings: true,
            local_llm: true,
            local_llm_model: PathBuf::from(vocelio_pipelines::models::files::SMOLLM2_Q8),
            llm_threads: 2,
            llm_workers: 1,
            openai: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// Control API, `/docs`, `/metrics`, Twilio webhooks and media WebSocket.
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Sip {
    /// SIP over UDP and TCP on this address.
    pub listen: SocketAddr,
    pub udp: bool,
    pub tcp: bool,
    /// Address advertised in Via/Contact/SDP when it differs from `listen` (NAT, 0.0.0.0).
    pub public_addr: Option<SocketAddr>,
    /// Ring (180) this long before answering inbound calls.
    pub answer_delay_ms: u64,
    /// Agent for numbers not listed in `numbers` (empty: such calls get 404).
    pub default_agent: String,
    /// Dialled number (DID) -> agent. Keys are normalised to digits with an optional leading `+`.
    pub numbers: std::collections::BTreeMap<String, String>,
    /// Trunks that may send calls (allowlist or digest) and carry our outbound calls.
    pub trunks: Vec<Trunk>,
    /// Calls at once; more get 503.
    pub max_calls: usize,
    /// Live SIP transactions at most. Finished ones linger 32 s (64*T1, RFC 3261),
    /// about two per call, so this bounds the sustained call rate: 100 000 holds
    /// ~1500 calls/s. Beyond it new requests are dropped (counted).
    pub max_transactions: usize,
}

/// One SIP trunk.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Trunk {
    pub name: String,
    /// Where outbound requests go (IP:port).
    pub address: SocketAddr,
    /// `udp` or `tcp`.
    #[serde(default = "default_transport")]
    pub transport: String,
    /// Sources (IP or CIDR) allowed to send us requests without authenticating.
    #[serde(default)]
    pub allow_from: Vec<String>,
    /// Our credentials toward the provider (digest answers, REGISTER).
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// REGISTER to the provider with these credentials, for this many seconds.
    #[serde(default)]
    pub register_expires: Option<u32>,
    /// Users allowed to authenticate inbound requests by digest.
    #[serde(default)]
    pub inbound_users: Vec<InboundUser>,
    /// Domain for From/To URIs toward this trunk (default: its address).
    #[serde(default)]
    pub domain: Option<String>,
}

/// A digest user for inbound calls.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InboundUser {
    pub username: String,
    pub password: String,
}

fn default_transport() -> String {
    "udp".into()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Rtp {
    /// RTP ports come from this range (even ports; RTCP takes the odd one above).
    pub port_min: u16,
    pub port_max: u16,
    /// Jitter buffer delay bounds (the buffer adapts between them).
    pub jitter_min_ms: u32,
    pub jitter_max_ms: u32,
    /// No RTP from the caller for this long ends the call.
    pub media_timeout_s: u64,
    /// Record every call as a two-channel WAV (caller left, agent right)
    /// under `storage.data_dir/recordings/`.
    pub record: bool,
}

/// Twilio Media Streams: `POST /twilio/voice` answers with TwiML that opens a
/// media WebSocket back to `wss://{public_host}/twilio/media`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Twilio {
    /// Serve the Twilio webhooks and media WebSocket.
    pub enabled: bool,
    /// Host (and `:port` if not 443) Twilio reaches us at, without scheme.
    pub public_host: String,
    /// The account's auth token: every webhook and WebSocket upgrade is checked against it.
    pub auth_token: String,
    /// Check `X-Twilio-Signature` (turn off only in development; logged loudly).
    pub validate_signatures: bool,
    /// Called number -> agent.
    pub numbers: std::collections::BTreeMap<String, String>,
    /// Agent for numbers not in `numbers` (empty: such calls are rejected).
    pub default_agent: String,
}

impl Default for Twilio {
    fn default() -> Self {
        Twilio {
            enabled: false,
            public_host: String::new(),
            auth_token: String::new(),
            validate_signatures: true,
            numbers: Default::default(),
            default_agent: "support_faq".into(),
        }
    }
}

impl Twilio {
    /// The engine's view of this section.
    pub fn engine_config(&self) -> vocelio_engine::twilio::TwilioConfig {
        vocelio_engine::twilio::TwilioConfig {
            public_host: self.public_host.clone(),
            auth_token: self.auth_token.clone(),
            validate_signatures: self.validate_signatures,
            numbers: self
                .numbers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            default_agent: (!self.default_agent.is_empty()).then(|| self.default_agent.clone()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Storage {
    /// SQLite database and recordings live here.
    pub data_dir: PathBuf,
    /// The control API's database: empty for SQLite at
    /// `data_dir/vocelio.db`, or a `postgres://user:pass@host/db` URL.
    pub database_url: String,
    /// Caller id of outbound calls placed through the API without `from`.
    pub caller_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Models {
    /// Where `scripts/setup.sh` put the models and libonnxruntime.
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// A `tracing` filter, e.g. `info` or `vocelio_engine=debug,info`. `RUST_LOG` wins if set.
    pub filter: String,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            listen: "127.0.0.1:8000".parse().expect("constant address"),
        }
    }
}
impl Default for Sip {
    fn default() -> Self {
        Sip {
            listen: "127.0.0.1:5060".parse().expect("constant address"),
            udp: true,
            tcp: true,
            public_addr: None,
            answer_delay_ms: 0,
            default_agent: "support_faq".into(),
            numbers: Default::default(),
            // Out of the box only this machine may call in.
            trunks: vec![Trunk {
                name: "loopback".into(),
                address: "127.0.0.1:5080".parse().expect("constant address"),
                transport: "udp".into(),
                allow_from: vec!["127.0.0.0/8".into()],
                username: None,
                password: None,
                register_expires: None,
                inbound_users: vec![],
                domain: None,
            }],
            max_calls: 1000,
            max_transactions: 100_000,
        }
    }
}
impl Default for Rtp {
    fn default() -> Self {
        Rtp {
            port_min: 10_000,
            port_max: 20_000,
            jitter_min_ms: 20,
            jitter_max_ms: 60,
            media_timeout_s: 60,
            record: false,
        }
    }
}
impl Default for Storage {
    fn default() -> Self {
        Storage {
            data_dir: PathBuf::from("./data"),
            database_url: String::new(),
            caller_id: "+15550000000".into(),
        }
    }
}
impl Default for Models {
    fn default() -> Self {
        Models {
            dir: PathBuf::from("./models"),
        }
    }
}
impl Default for Log {
    fn default() -> Self {
        Log {
            filter: "info,ort=warn,whisper_rs=warn,llama_cpp_2=warn,llama-cpp-2=warn".into(),
        }
    }
}

/// Prefix of environment overrides: `VOCELIO__HTTP__LISTEN=0.0.0.0:8080`.
pub const ENV_PREFIX: &str = "VOCELIO__";

impl Config {
    /// Defaults, overlaid with `file` (if any) and then with `env` pairs.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config> {
        let mut table = toml::Table::try_from(Config::default()).context("serialising defaults")?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config file {}", path.display()))?;
            let overlay: toml::Table = text
                .parse()
                .with_context(|| format!("config file {} is not valid TOML", path.display()))?;
            merge(&mut table, overlay, "")?;
        }
        for (key, value) in env {
            let Some(rest) = key.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
            if path.len() != 2 || path.iter().any(String::is_empty) {
                bail!("environment variable {key}: expected {ENV_PREFIX}SECTION__KEY");
            }
            // A value that parses as TOML (numbers, booleans, quoted strings) keeps its
            // type; anything else is taken as a plain string.
            let parsed = format!("v = {value}")
                .parse::<toml::Table>()
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or_else(|| toml::Value::String(value.clone()));
            let mut overlay = toml::Table::new();
            let mut section = toml::Table::new();
            section.insert(path[1].clone(), parsed);
            overlay.insert(path[0].clone(), toml::Value::Table(section));
            merge(&mut table, overlay, "")
                .with_context(|| format!("environment variable {key}"))?;
        }
        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                anyhow::anyhow!(
                    "invalid configuration at `{}`: {}",
                    e.path(),
                    e.inner().message()
                )
            })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        let mut names = std::collections::BTreeSet::new();
        for a in &self.agents {
            if a.name.trim().is_empty() {
                bail!("agents: an agent has an empty name");
            }
            if !names.insert(a.name.as_str()) {
                bail!("agents `{}`: the name is used twice", a.name);
            }
            match (&a.flow, &a.llm) {
                (Some(_), Some(_)) => {
                    bail!("agents `{}`: give either flow or llm, not both", a.name)
                }
                (None, None) => bail!(
                    "agents `{}`: needs a flow (template name or file) or an llm section",
                    a.name
                ),
                _ => {}
            }
        }
        if self.brain.llm_threads == 0 || self.brain.llm_workers == 0 {
            bail!("brain.llm_threads and brain.llm_workers must be at least 1");
        }
        if self.rtp.port_min > self.rtp.port_max {
            bail!(
                "rtp.port_min ({}) is above rtp.port_max ({})",
                self.rtp.port_min,
                self.rtp.port_max
            );
        }
        if self.rtp.port_min % 2 == 1 {
            bail!(
                "rtp.port_min ({}) must be even: RTP takes even ports, RTCP the odd one above",
                self.rtp.port_min
            );
        }
        for t in &self.sip.trunks {
            if !matches!(t.transport.as_str(), "udp" | "tcp") {
                bail!(
                    "sip.trunks `{}`: transport {:?} must be \"udp\" or \"tcp\"",
                    t.name,
                    t.transport
                );
            }
            for net in &t.allow_from {
                if net.parse::<vocelio_engine::endpoint::IpNet>().is_err() {
                    bail!(
                        "sip.trunks `{}`: allow_from {:?} is not an IP address or CIDR network",
                        t.name,
                        net
                    );
                }
            }
            if t.username.is_some() != t.password.is_some() {
                bail!("sip.trunks `{}`: username and password go together", t.name);
            }
            if t.register_expires.is_some() && t.username.is_none() {
                bail!(
                    "sip.trunks `{}`: register_expires needs username and password",
                    t.name
                );
            }
        }
        for (number, agent) in &self.sip.numbers {
            if vocelio_engine::endpoint::normalise_number(number)
                .trim_start_matches('+')
                .is_empty()
                || agent.is_empty()
            {
                bail!("sip.numbers: {number:?} = {agent:?} needs a number with digits and an agent name");
            }
        }
        if self.sip.max_transactions < 100 {
            bail!(
                "sip.max_transactions ({}) is too small to carry calls",
                self.sip.max_transactions
            );
        }
        if self.rtp.jitter_min_ms < 20
            || self.rtp.jitter_min_ms > self.rtp.jitter_max_ms
            || self.rtp.jitter_max_ms > 500
        {
            bail!(
                "rtp.jitter_min_ms ({}) and rtp.jitter_max_ms ({}) must satisfy 20 <= min <= max <= 500",
                self.rtp.jitter_min_ms,
                self.rtp.jitter_max_ms
            );
        }
        if self.rtp.media_timeout_s == 0 {
            bail!("rtp.media_timeout_s must be at least 1");
        }
        if self.twilio.enabled {
            if let Err(e) = self.twilio.engine_config().validate() {
                bail!("{e}");
            }
        }
        if !self.sip.udp && !self.sip.tcp {
            bail!("sip.udp and sip.tcp are both false: enable at least one transport");
        }
        if self
            .log
            .filter
            .parse::<tracing_subscriber::EnvFilter>()
            .is_err()
        {
            bail!(
                "log.filter {:?} is not a valid tracing filter",
                self.log.filter
            );
        }
        Ok(())
    }
}

/// Tables whose keys are data, not settings.
const FREE_FORM: &[&str] = &["sip.numbers", "twilio.numbers"];

/// Overlay `from` onto `into`, refusing keys the defaults do not have.
fn merge(into: &mut toml::Table, from: toml::Table, prefix: &str) -> Result<()> {
    for (key, value) in from {
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match (into.get_mut(&key), value) {
            (None, _) => bail!("unknown configuration key `{name}`"),
            // Maps with free-form keys (numbers) take the overlay's keys as they are.
            (Some(toml::Value::Table(dst)), toml::Value::Table(src))
                if FREE_FORM.contains(&name.as_str()) =>
            {
                dst.extend(src);
            }
            (Some(toml::Value::Table(dst)), toml::Value::Table(src)) => merge(dst, src, &name)?,
            (Some(toml::Value::Table(_)), _) => bail!("configuration key `{name}` must be a table"),
            (Some(slot), v) => *slot = v,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.http.listen.to_string(), "127.0.0.1:8000");
        assert_eq!(c.sip.listen.to_string(), "127.0.0.1:5060");
        assert_eq!((c.rtp.port_min, c.rtp.port_max), (10_000, 20_000));
        assert_eq!(c.storage.data_dir, PathBuf::from("./data"));
        assert_eq!(c.models.dir, PathBuf::from("./models"));
    }

    #[test]
    fn file_then_env_override() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.toml");
        std::fs::write(
            &p,
            "[http]\nlisten = \"127.0.0.1:9000\"\n[rtp]\nport_min = 12000\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&p),
            env(&[("VOCELIO__RTP__PORT_MAX", "13000"), ("OTHER", "x")]),
        )
        .unwrap();
        assert_eq!(c.http.listen.port(), 9000);
        assert_eq!((c.rtp.port_min, c.rtp.port_max), (12_000, 13_000));
        let c = Config::load(
            Some(&p),
            env(&[("VOCELIO__HTTP__LISTEN", "127.0.0.1:9100")]),
        )
        .unwrap();
        assert_eq!(c.http.listen.port(), 9100);
    }

    #[test]
    fn sip_numbers_and_trunks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.toml");
        std::fs::write(
            &p,
            "[sip.numbers]\n\"+1 555 0100\" = \"sales\"\n\n[[sip.trunks]]\nname = \"carrier\"\naddress = \"192.0.2.10:5060\"\nallow_from = [\"192.0.2.0/24\"]\nusername = \"u\"\npassword = \"p\"\nregister_expires = 600\n",
        )
        .unwrap();
        let c = Config::load(Some(&p), env(&[])).unwrap();
        assert_eq!(
            c.sip.numbers.get("+1 555 0100").map(String::as_str),
            Some("sales")
        );
        assert_eq!(c.sip.trunks.len(), 1);
        assert_eq!(c.sip.trunks[0].register_expires, Some(600));

        std::fs::write(&p, "[[sip.trunks]]\nname = \"x\"\naddress = \"192.0.2.10:5060\"\nallow_from = [\"192.0.2.0/99\"]\n").unwrap();
        let e = format!("{:#}", Config::load(Some(&p), env(&[])).unwrap_err());
        assert!(e.contains("allow_from"), "{e}");
        std::fs::write(
            &p,
            "[[sip.trunks]]\nname = \"x\"\naddress = \"192.0.2.10:5060\"\nusername = \"u\"\n",
        )
        .unwrap();
        let e = format!("{:#}", Config::load(Some(&p), env(&[])).unwrap_err());
        assert!(e.contains("username and password"), "{e}");
        std::fs::write(
            &p,
            "[[sip.trunks]]\nname = \"x\"\naddress = \"192.0.2.10:5060\"\nport = 5\n",
        )
        .unwrap();
        let e = format!("{:#}", Config::load(Some(&p), env(&[])).unwrap_err());
        assert!(e.contains("port"), "{e}");
    }

    #[test]
    fn bad_keys_and_values_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.toml");
        std::fs::write(&p, "[http]\nlisen = \"127.0.0.1:9000\"\n").unwrap();
        let e = Config::load(Some(&p), env(&[])).unwrap_err().to_string();
        assert!(e.contains("http.lisen"), "{e}");

        std::fs::write(&p, "[rtp]\nport_min = 70000\n").unwrap();
        let e = format!("{:#}", Config::load(Some(&p), env(&[])).unwrap_err());
        assert!(e.contains("rtp.port_min"), "{e}");

        let e = format!(
            "{:#}",
            Config::load(None, env(&[("VOCELIO__SIP__LISTEN", "nowhere")])).unwrap_err()
        );
        assert!(e.contains("sip.listen"), "{e}");

        let e = format!(
            "{:#}",
            Config::load(None, env(&[("VOCELIO__NOPE__X", "1")])).unwrap_err()
        );
        assert!(e.contains("nope"), "{e}");

        let e = format!(
            "{:#}",
            Config::load(None, env(&[("VOCELIO__RTP__PORT_MIN", "30000")])).unwrap_err()
        );
        assert!(e.contains("rtp.port_min"), "{e}");
    }
}
