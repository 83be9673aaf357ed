//! Where settings come from: the command line, `ETCD_*` variables, or a YAML file. Each
//! source yields `--flag=value` settings that clap then parses into the flag values.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde_yaml_ng::{Mapping, Value};

use super::ConfigError;

/// The flag that names the configuration file; it is not a key of the file itself.
pub(super) const CONFIG_FILE: &str = "config-file";

/// One flag's value and where it came from.
#[derive(Debug, Clone)]
pub(super) struct Setting {
    /// The flag's long name, e.g. `data-dir`.
    pub key: String,
    pub value: OsString,
    pub source: Source,
}

#[derive(Debug, Clone)]
pub(super) enum Source {
    CommandLine,
    Env(String),
    File(PathBuf),
}

impl Setting {
    /// The setting as a command-line argument clap can parse.
    pub fn arg(&self) -> OsString {
        let mut arg = OsString::from(format!("--{}=", self.key));
        arg.push(&self.value);
        arg
    }

    /// Names the setting for an error message: `--flag`, `ETCD_FLAG` or `flag in <file>`.
    pub fn origin(&self) -> String {
        match &self.source {
            Source::CommandLine => format!("--{}", self.key),
            Source::Env(name) => name.clone(),
            Source::File(path) => format!("{} in {}", self.key, path.display()),
        }
    }

    /// The error for a value clap refused.
    pub fn invalid(&self, error: &clap::Error) -> ConfigError {
        use clap::error::{ContextKind, ContextValue};
        let reason = match (std::error::Error::source(error), error.get(ContextKind::ValidValue)) {
            (Some(cause), _) => cause.to_string(),
            (None, Some(ContextValue::Strings(valid))) => {
                format!("expected one of: {}", valid.join(", "))
            }
            (None, _) => error.kind().to_string(),
        };
        ConfigError::InvalidValue {
            origin: self.origin(),
            value: self.value.to_string_lossy().into_owned(),
            reason,
        }
    }
}

/// `ETCD_*` variables etcd reads that are not flags, so it does not warn about them:
/// `ETCD_UNSUPPORTED_ARCH` lets etcd start on an architecture it does not support (etcd's
/// own e2e harness sets it everywhere). oxetcd runs on every architecture Rust targets.
const NON_FLAG_VARIABLES: &[&str] = &["ETCD_UNSUPPORTED_ARCH"];

/// The environment variable of a flag, as etcd names it: `data-dir` is `ETCD_DATA_DIR`.
pub(super) fn env_name(flag: &str) -> String {
    format!("ETCD_{}", flag.to_uppercase().replace('-', "_"))
}

/// The non-empty value of a flag's environment variable.
pub(super) fn env_value<'a>(env: &'a [(String, OsString)], flag: &str) -> Option<&'a OsString> {
    let name = env_name(flag);
    env.iter().find(|(n, v)| *n == name && !v.is_empty()).map(|(_, v)| v)
}

/// Adds to the command line the `ETCD_*` variables of the flags it does not give, like
/// etcd: a variable whose flag is also on the command line is an error, one that names no
/// flag draws a warning, and an empty one is ignored.
pub(super) fn with_env(
    mut command_line: Vec<Setting>,
    flags: &[String],
    env: &[(String, OsString)],
    notices: &mut Vec<String>,
) -> Result<Vec<Setting>, ConfigError> {
    let mut from_env = Vec::new();
    let read = |name: &str| name.starts_with("ETCD_") && !NON_FLAG_VARIABLES.contains(&name);
    for (name, value) in env.iter().filter(|(name, _)| read(name)) {
        let shown = value.to_string_lossy();
        match flags.iter().find(|flag| env_name(flag) == *name) {
            None => {
                notices.push(format!("warning: unrecognized environment variable {name}={shown}"))
            }
            Some(flag) if command_line.iter().any(|s| s.key == *flag) => {
                return Err(ConfigError::ConflictingEnv(name.clone()));
            }
            Some(_) if value.is_empty() => {}
            Some(flag) => {
                notices.push(format!("recognized and used environment variable {name}={shown}"));
                from_env.push(Setting {
                    key: flag.clone(),
                    value: value.clone(),
                    source: Source::Env(name.clone()),
                });
            }
        }
    }
    command_line.extend(from_env);
    Ok(command_line)
}

/// The settings of a YAML configuration file whose keys are the flag names. A `null`
/// value leaves the default. Unknown keys are ignored, as etcd ignores them (its sample
/// file lists keys oxetcd does not have), with one warning naming those that set a value.
pub(super) fn from_file(
    path: &Path,
    flags: &[String],
    notices: &mut Vec<String>,
) -> Result<Vec<Setting>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::ConfigFile {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    from_yaml(&text, path, flags, notices)
}

/// The settings of a configuration file's YAML `text`; `path` names the file in
/// messages. See [`from_file`].
pub(super) fn from_yaml(
    text: &str,
    path: &Path,
    flags: &[String],
    notices: &mut Vec<String>,
) -> Result<Vec<Setting>, ConfigError> {
    let file_error =
        |reason: String| ConfigError::ConfigFile { path: path.display().to_string(), reason };
    let mapping: Option<Mapping> =
        serde_yaml_ng::from_str(text).map_err(|e| file_error(e.to_string()))?;
    let (mut settings, mut unknown) = (Vec::new(), Vec::new());
    for (key, value) in mapping.unwrap_or_default() {
        let key = match key {
            Value::String(key) => key,
            other => return Err(file_error(format!("key {other:?} is not a string"))),
        };
        let value = match value {
            Value::Null => continue,
            _ if key == CONFIG_FILE || !flags.contains(&key) => {
                unknown.push(key);
                continue;
            }
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::String(s) => s,
            Value::Sequence(_) | Value::Mapping(_) | Value::Tagged(_) => {
                return Err(file_error(format!(
                    "{key}: expected a single value (lists are comma-separated strings, as in etcd)"
                )));
            }
        };
        settings.push(Setting { key, value: value.into(), source: Source::File(path.into()) });
    }
    if !unknown.is_empty() {
        notices.push(format!(
            "warning: {}: ignoring keys oxetcd does not know: {}",
            path.display(),
            unknown.join(", ")
        ));
    }
    Ok(settings)
}
