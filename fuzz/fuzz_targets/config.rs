//! Any configuration, as oxetcd reads one at start: with the first byte even, the rest is
//! the YAML of a `--config-file`; odd, it is a command line and environment, one per line
//! (`ETCD_NAME=value` lines are variables), resolved as `Flags::into_config` resolves
//! the process's. A command line that names a configuration file is skipped: reading
//! files is not the parser's part, and the YAML is fuzzed directly.
#![no_main]

use std::ffi::OsString;

use clap::Parser;
use libfuzzer_sys::fuzz_target;
use oxetcd::config::{Flags, config_from_yaml};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    let mut notices = Vec::new();
    if mode % 2 == 0 {
        let _ = config_from_yaml(&text, &mut notices);
        return;
    }
    if text.contains("config-file") || text.contains("CONFIG_FILE") {
        return;
    }
    let (env, args): (Vec<&str>, Vec<&str>) =
        text.lines().partition(|line| line.starts_with("ETCD_") && line.contains('='));
    let env: Vec<(String, OsString)> = env
        .iter()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.into()))
        .collect();
    let Ok(flags) = Flags::try_parse_from(std::iter::once("oxetcd").chain(args)) else { return };
    let _ = flags.resolve(&env, &mut notices);
});
