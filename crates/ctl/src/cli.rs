//! The command tree, global flags and `ETCDCTL_*` environment, resolved as etcdctl's
//! cobra does: command words may be abbreviated to a unique prefix, flags may stand
//! anywhere, inherited flags come from the environment unless given on the command line
//! (both at once is refused), and each command runs with the printer `-w` chose.

use crate::commands::{Action, Command, GLOBAL_FLAGS, HELP, Id, all_specs, find, inherited, local};
use crate::completion;
use crate::error::{CtlError, CtlResult, exit};
use crate::flags::{self, Parsed};
use crate::global::Ctx;
use crate::hint;
use crate::output;
use crate::usage;

/// Runs etcdctl's command line `args` (without the program name), returning the exit
/// code.
pub fn run(args: Vec<String>) -> i32 {
    match run_inner(args) {
        Ok(()) => exit::SUCCESS,
        Err(err) => {
            if let Some(message) = err.message {
                output::stderr(&format!("Error: {message}\n"));
            }
            hint::print_on_tty();
            err.code
        }
    }
}

fn run_inner(args: Vec<String>) -> CtlResult {
    // The command words are the leading arguments that are not flags (or their values).
    let specs = all_specs();
    let mut words = Vec::new();
    let mut word_positions = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg == "--" {
            break;
        }
        if arg.starts_with('-') && arg.len() > 1 {
            if flags::takes_next(&specs, arg) {
                i += 1;
            }
        } else {
            words.push(arg.clone());
            word_positions.push(i);
        }
        i += 1;
    }
    let (command, used) = match find(&words) {
        Ok(found) => found,
        Err(message) => {
            output::stderr(&format!("Error: {message}\nRun 'etcdctl --help' for usage.\n"));
            return Err(CtlError::error(message));
        }
    };
    let rest: Vec<String> = args
        .iter()
        .enumerate()
        .filter(|(i, _)| !word_positions[..used].contains(i))
        .map(|(_, a)| a.clone())
        .collect();
    let Some(command) = command else {
        // No command: the root's usage, or its version.
        let mut root_specs = GLOBAL_FLAGS.to_vec();
        root_specs.push(HELP);
        return match flags::parse(&root_specs, &rest) {
            Ok(_) => {
                output::stdout(&usage::root());
                Ok(())
            }
            Err(message) => Err(flag_error(None, message)),
        };
    };
    let mut specs = local(command);
    specs.extend(inherited(command));
    let mut parsed = match flags::parse(&specs, &rest) {
        Ok(p) => p,
        Err(message) => return Err(flag_error(Some(command), message)),
    };
    if parsed.bool("help") {
        output::stdout(&usage::command(command));
        return Ok(());
    }
    let Action::Run(id) = command.action else {
        output::stdout(&usage::command(command));
        return Ok(());
    };
    if id == Id::Version {
        output::stdout(&version_text());
        return Ok(());
    }
    if let Id::Completion(shell) = id {
        output::stdout(&completion::script(
            shell,
            &program_name(),
            !parsed.bool("no-descriptions"),
        ));
        return Ok(());
    }
    apply_environment(command, &mut parsed)?;
    let ctx = Ctx::new(command, parsed)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CtlError::error(e.to_string()))?;
    runtime.block_on(crate::cmd::run(id, ctx))
}

/// cobra's answer to bad flags: the error, the usage, the error again (etcdctl prints
/// it once more on exit).
fn flag_error(command: Option<&Command>, message: String) -> CtlError {
    output::stderr(&format!("Error: {message}\n"));
    output::stdout(&match command {
        Some(c) => usage::command(c),
        None => usage::root(),
    });
    output::stderr("\n");
    CtlError::error(message)
}

/// The name oxetcdctl was run as (`etcdctl` where it stands in for etcdctl), for the
/// completion scripts to complete.
fn program_name() -> String {
    std::env::args_os()
        .next()
        .and_then(|arg0| {
            std::path::Path::new(&arg0).file_name().map(|n| n.to_string_lossy().into_owned())
        })
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "oxetcdctl".to_string())
}

pub fn version_text() -> String {
    format!("etcdctl version: {}\nAPI version: {}\n", crate::VERSION, crate::API_VERSION)
}

/// `ETCDCTL_<FLAG>` for each inherited flag not given on the command line, as etcd's
/// `flags.SetPflagsFromEnv`: a variable that names a flag also given is fatal, one that
/// names no flag is warned about. `ETCDCTL_API` was consumed before.
fn apply_environment(command: &Command, parsed: &mut Parsed) -> CtlResult {
    let inherited = inherited(command);
    let env_name = |name: &str| format!("ETCDCTL_{}", name.to_uppercase().replace('-', "_"));
    let mut used = Vec::new();
    let mut shadowed = Vec::new();
    for spec in &inherited {
        let key = env_name(spec.name);
        if parsed.changed(spec.name) {
            shadowed.push(key);
            continue;
        }
        if let Ok(value) = std::env::var(&key)
            && !value.is_empty()
        {
            used.push(key);
            // etcdctl ignores a value its flag cannot take: the default stays.
            let _ = parsed.set(spec, &value);
        }
    }
    // `watch` reads these two itself.
    if command.path == "watch" {
        used.push("ETCDCTL_WATCH_KEY".to_string());
        used.push("ETCDCTL_WATCH_RANGE_END".to_string());
    }
    // etcdctl unsets it before reading the others.
    used.push("ETCDCTL_API".to_string());
    {}
    for (key, value) in std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v))) {
        if used.contains(&key) {
            continue;
        }
        if shadowed.contains(&key) {
            output::stderr(&format!(
                "{} C | pkg/flags: conflicting environment variable {} is shadowed by corresponding command-line flag (either unset environment variable or disable flag)\n",
                log_time(),
                crate::go::quote(&key)
            ));
            return Err(CtlError::silent(exit::ERROR));
        }
        if key.starts_with("ETCDCTL_") {
            output::stderr(&format!(
                "{} W | pkg/flags: unrecognized environment variable {}={}\n",
                log_time(),
                key,
                value.to_string_lossy()
            ));
        }
    }
    Ok(())
}

/// capnslog's time stamp (`2006-01-02 15:04:05.000000`, UTC).
fn log_time() -> String {
    crate::go::utc_now(' ', 6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capnslog_time_stamps_have_microseconds() {
        let stamp = log_time();
        assert_eq!(stamp.len(), "2006-01-02 15:04:05.000000".len(), "{stamp}");
    }
}
