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
    pub storage: Storage,
    pub models: Models,
    pub log: Log,
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
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Rtp {
    pub port_min: u16,
    pub port_max: u16,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Storage {
    /// SQLite database and recordings live here.
    pub data_dir: PathBuf,
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
        }
    }
}
impl Default for Rtp {
    fn default() -> Self {
        Rtp {
            port_min: 10_000,
            port_max: 20_000,
        }
    }
}
impl Default for Storage {
    fn default() -> Self {
        Storage {
            data_dir: PathBuf::from("./data"),
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
            filter: "info".into(),
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
