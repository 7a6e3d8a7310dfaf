//! Where a program finds the cluster, so that `streamctl` and programs built on this crate agree.
//!
//! Order, first match wins:
//! 1. endpoints given explicitly (`--endpoint` on the command line);
//! 2. the `STREAMCTL_ENDPOINT` environment variable;
//! 3. a profile of the config file: the one named explicitly (`--profile`), else the one in
//!    `STREAMCTL_PROFILE`, else the file's `default_profile`;
//! 4. `127.0.0.1:50051`, where `streamd` with no arguments listens.
//!
//! Endpoints are `host:port` or `http://host:port`, several separated by commas (seeds: the
//! client moves to the next one when the current one fails).
//!
//! The config file is `$STREAMCTL_CONFIG`, else `$XDG_CONFIG_HOME/streamctl/config.toml`, else
//! `~/.config/streamctl/config.toml`:
//!
//! ```toml
//! default_profile = "local"
//!
//! [profile.local]
//! endpoint = "127.0.0.1:50051"
//!
//! [profile.prod]
//! endpoint = "10.0.0.1:50051,10.0.0.2:50051,10.0.0.3:50051"
//! ```
//!
//! [`resolve`] is a pure function of its inputs; [`Sources::from_env`] gathers them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub const ENDPOINT_ENV: &str = "STREAMCTL_ENDPOINT";
pub const PROFILE_ENV: &str = "STREAMCTL_PROFILE";
pub const CONFIG_ENV: &str = "STREAMCTL_CONFIG";
pub const DEFAULT_ENDPOINT: &str = "127.0.0.1:50051";

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("failed to read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {} is not valid: {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error(
        "profile {name:?} is not defined{}; known profiles: {}",
        in_file(path),
        known_list(known)
    )]
    UnknownProfile {
        name: String,
        path: Option<PathBuf>,
        known: Vec<String>,
    },
    #[error("empty endpoint from {source_name}")]
    EmptyEndpoint { source_name: String },
}

fn in_file(path: &Option<PathBuf>) -> String {
    match path {
        Some(p) => format!(" in {}", p.display()),
        None => " (no config file found)".to_string(),
    }
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        "none".to_string()
    } else {
        known.join(", ")
    }
}

/// The config file's contents.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The profile used when none is named.
    pub default_profile: Option<String>,
    #[serde(default)]
    pub profile: BTreeMap<String, Profile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// One or more endpoints, separated by commas.
    pub endpoint: String,
}

impl ConfigFile {
    pub fn parse(text: &str, path: &Path) -> Result<ConfigFile, ProfileError> {
        toml::from_str(text).map_err(|source| ProfileError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads `path`. A missing file is an error only when `must_exist` (the user named it);
    /// otherwise it means "no profiles".
    pub fn load(path: &Path, must_exist: bool) -> Result<Option<ConfigFile>, ProfileError> {
        match std::fs::read_to_string(path) {
            Ok(text) => ConfigFile::parse(&text, path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => Ok(None),
            Err(source) => Err(ProfileError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }
}

/// The config file a program reads when none is named on its command line.
pub fn default_config_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(CONFIG_ENV) {
        return Some(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("streamctl").join("config.toml"))
}

/// Where the endpoints came from, for messages ("cannot reach 1.2.3.4:5 (from profile prod)").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointSource {
    Explicit,
    Env,
    Profile(String),
    Default,
}

impl std::fmt::Display for EndpointSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EndpointSource::Explicit => f.write_str("--endpoint"),
            EndpointSource::Env => write!(f, "${ENDPOINT_ENV}"),
            EndpointSource::Profile(name) => write!(f, "profile {name}"),
            EndpointSource::Default => f.write_str("the default"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub endpoints: Vec<String>,
    pub source: EndpointSource,
}

/// Everything [`resolve`] looks at.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub explicit_endpoint: Option<String>,
    pub env_endpoint: Option<String>,
    pub explicit_profile: Option<String>,
    pub env_profile: Option<String>,
    pub config: Option<ConfigFile>,
    pub config_path: Option<PathBuf>,
}

impl Sources {
    /// The environment's part of the sources, and the config file at `config_path` (or the
    /// default path). `explicit_*` are the command line's.
    pub fn from_env(
        explicit_endpoint: Option<String>,
        explicit_profile: Option<String>,
        config_path: Option<PathBuf>,
    ) -> Result<Sources, ProfileError> {
        let named = config_path.is_some();
        let path = config_path.or_else(default_config_path);
        let config = match &path {
            Some(p) => ConfigFile::load(p, named)?,
            None => None,
        };
        let non_empty = |v: String| if v.trim().is_empty() { None } else { Some(v) };
        Ok(Sources {
            explicit_endpoint,
            env_endpoint: std::env::var(ENDPOINT_ENV).ok().and_then(non_empty),
            explicit_profile,
            env_profile: std::env::var(PROFILE_ENV).ok().and_then(non_empty),
            config_path: config.as_ref().and(path),
            config,
        })
    }
}

/// `a:1, b:2` as `["a:1", "b:2"]`.
pub fn split_endpoints(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Picks the endpoints by the order in the module docs.
pub fn resolve(sources: &Sources) -> Result<Resolved, ProfileError> {
    let from = |list: &str, source: EndpointSource| {
        let endpoints = split_endpoints(list);
        if endpoints.is_empty() {
            Err(ProfileError::EmptyEndpoint {
                source_name: source.to_string(),
            })
        } else {
            Ok(Resolved { endpoints, source })
        }
    };
    if let Some(e) = &sources.explicit_endpoint {
        return from(e, EndpointSource::Explicit);
    }
    if let Some(e) = &sources.env_endpoint {
        return from(e, EndpointSource::Env);
    }
    let named = sources
        .explicit_profile
        .as_ref()
        .or(sources.env_profile.as_ref());
    let default = sources
        .config
        .as_ref()
        .and_then(|c| c.default_profile.as_ref());
    if let Some(name) = named.or(default) {
        let profile = sources
            .config
            .as_ref()
            .and_then(|c| c.profile.get(name))
            .ok_or_else(|| ProfileError::UnknownProfile {
                name: name.clone(),
                path: sources.config_path.clone(),
                known: sources
                    .config
                    .as_ref()
                    .map(|c| c.profile.keys().cloned().collect())
                    .unwrap_or_default(),
            })?;
        return from(&profile.endpoint, EndpointSource::Profile(name.clone()));
    }
    from(DEFAULT_ENDPOINT, EndpointSource::Default)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ConfigFile {
        ConfigFile::parse(
            "default_profile = \"local\"\n\
             [profile.local]\nendpoint = \"127.0.0.1:1\"\n\
             [profile.prod]\nendpoint = \"10.0.0.1:50051, 10.0.0.2:50051\"\n",
            Path::new("c.toml"),
        )
        .unwrap()
    }

    #[test]
    fn explicit_then_env_then_profile_then_default() {
        let mut s = Sources {
            explicit_endpoint: Some("a:1".into()),
            env_endpoint: Some("b:2".into()),
            explicit_profile: Some("prod".into()),
            config: Some(config()),
            ..Sources::default()
        };
        assert_eq!(resolve(&s).unwrap().endpoints, ["a:1"]);
        assert_eq!(resolve(&s).unwrap().source, EndpointSource::Explicit);
        s.explicit_endpoint = None;
        assert_eq!(resolve(&s).unwrap().endpoints, ["b:2"]);
        s.env_endpoint = None;
        let r = resolve(&s).unwrap();
        assert_eq!(r.endpoints, ["10.0.0.1:50051", "10.0.0.2:50051"]);
        assert_eq!(r.source, EndpointSource::Profile("prod".into()));
        s.explicit_profile = None;
        assert_eq!(resolve(&s).unwrap().endpoints, ["127.0.0.1:1"]);
        s.config = None;
        let r = resolve(&s).unwrap();
        assert_eq!(r.endpoints, [DEFAULT_ENDPOINT]);
        assert_eq!(r.source, EndpointSource::Default);
    }

    #[test]
    fn env_profile_beats_the_default_profile() {
        let s = Sources {
            env_profile: Some("prod".into()),
            config: Some(config()),
            ..Sources::default()
        };
        assert_eq!(resolve(&s).unwrap().endpoints.len(), 2);
    }

    #[test]
    fn unknown_profile_names_the_known_ones() {
        let s = Sources {
            explicit_profile: Some("staging".into()),
            config: Some(config()),
            config_path: Some("c.toml".into()),
            ..Sources::default()
        };
        let msg = resolve(&s).unwrap_err().to_string();
        assert!(
            msg.contains("staging") && msg.contains("local, prod"),
            "{msg}"
        );
        let s = Sources {
            explicit_profile: Some("x".into()),
            ..Sources::default()
        };
        assert!(
            resolve(&s)
                .unwrap_err()
                .to_string()
                .contains("no config file")
        );
    }

    #[test]
    fn empty_endpoint_and_bad_files_are_refused() {
        let s = Sources {
            explicit_endpoint: Some(" , ".into()),
            ..Sources::default()
        };
        assert!(matches!(
            resolve(&s),
            Err(ProfileError::EmptyEndpoint { .. })
        ));
        assert!(ConfigFile::parse("[profile.x]\nendpoints = 1\n", Path::new("c")).is_err());
        let missing = Path::new("/nonexistent/streamctl.toml");
        assert!(ConfigFile::load(missing, false).unwrap().is_none());
        assert!(ConfigFile::load(missing, true).is_err());
    }
}
