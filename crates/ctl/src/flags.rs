//! Command-line flags parsed by pflag's rules (the library under etcdctl's cobra), so that
//! the same command lines are accepted and refused with the same messages: flags may come
//! anywhere among the arguments, `--name value` and `--name=value`, booleans as `--flag`
//! or `--flag=false`, shorthands as `-w json` or `-wjson`, and `--` ends the flags.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::go;

/// What a flag holds; decides how its value is parsed and whether it takes an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Str,
    Int,
    Duration,
    /// Comma-separated, accumulating over repeats (pflag's StringSlice).
    StrSlice,
}

/// One flag a command accepts.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub name: &'static str,
    pub short: Option<char>,
    pub kind: Kind,
    pub default: &'static str,
    pub usage: &'static str,
}

impl Spec {
    pub const fn new(
        name: &'static str,
        kind: Kind,
        default: &'static str,
        usage: &'static str,
    ) -> Spec {
        Spec { name, short: None, kind, default, usage }
    }

    pub const fn short(mut self, short: char) -> Spec {
        self.short = Some(short);
        self
    }
}

/// A parsed value (already checked against its kind).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Str(String),
    Int(i64),
    Duration(Duration),
    StrSlice(Vec<String>),
}

/// The outcome of parsing: each flag's value (given or default), which were given, the
/// positional arguments, and where `--` stood among them (for the exec forms of `watch`
/// and `lock`).
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    values: BTreeMap<&'static str, Value>,
    changed: BTreeMap<&'static str, bool>,
    pub args: Vec<String>,
    /// How many positional arguments came before a `--`, if there was one.
    pub dash_at: Option<usize>,
}

impl Parsed {
    pub fn bool(&self, name: &str) -> bool {
        matches!(self.values.get(name), Some(Value::Bool(true)))
    }

    pub fn str(&self, name: &str) -> String {
        match self.values.get(name) {
            Some(Value::Str(s)) => s.clone(),
            _ => String::new(),
        }
    }

    pub fn int(&self, name: &str) -> i64 {
        match self.values.get(name) {
            Some(Value::Int(i)) => *i,
            _ => 0,
        }
    }

    pub fn duration(&self, name: &str) -> Duration {
        match self.values.get(name) {
            Some(Value::Duration(d)) => *d,
            _ => Duration::ZERO,
        }
    }

    pub fn slice(&self, name: &str) -> Vec<String> {
        match self.values.get(name) {
            Some(Value::StrSlice(v)) => v.clone(),
            _ => Vec::new(),
        }
    }

    /// Whether the flag was given on the command line (or set from the environment).
    pub fn changed(&self, name: &str) -> bool {
        self.changed.get(name).copied().unwrap_or(false)
    }

    /// Sets a flag as pflag's `Set` does (used for `ETCDCTL_*` variables).
    pub fn set(&mut self, spec: &Spec, raw: &str) -> Result<(), String> {
        let previous = if self.changed(spec.name) { self.values.get(spec.name) } else { None };
        let value = parse_value(spec, raw, previous)?;
        self.values.insert(spec.name, value);
        self.changed.insert(spec.name, true);
        Ok(())
    }

    /// The value as pflag's `String()` shows it (in `--debug`'s listing).
    pub fn display(&self, spec: &Spec) -> String {
        match self.values.get(spec.name) {
            Some(Value::Bool(b)) => b.to_string(),
            Some(Value::Str(s)) => s.clone(),
            Some(Value::Int(i)) => i.to_string(),
            Some(Value::Duration(d)) => go::duration_string(*d),
            Some(Value::StrSlice(v)) => format!("[{}]", v.join(",")),
            None => String::new(),
        }
    }
}

/// Parses `raw` for `spec`; a string slice given again appends to what was given before.
fn parse_value(spec: &Spec, raw: &str, previous: Option<&Value>) -> Result<Value, String> {
    Ok(match spec.kind {
        Kind::Bool => Value::Bool(go::parse_bool(raw).ok_or_else(|| {
            format!("strconv.ParseBool: parsing {}: invalid syntax", go::quote(raw))
        })?),
        Kind::Str => Value::Str(raw.to_string()),
        Kind::Int => Value::Int(go::parse_int(raw, 10)?),
        Kind::Duration => Value::Duration(go::parse_duration(raw)?),
        Kind::StrSlice => {
            let mut items = match previous {
                Some(Value::StrSlice(v)) => v.clone(),
                _ => Vec::new(),
            };
            // pflag reads the value as one CSV record.
            if !raw.is_empty() {
                items.extend(raw.split(',').map(str::to_string));
            }
            Value::StrSlice(items)
        }
    })
}

fn default_value(spec: &Spec) -> Value {
    parse_value(spec, spec.default, None).unwrap_or(match spec.kind {
        Kind::Bool => Value::Bool(false),
        Kind::Str => Value::Str(String::new()),
        Kind::Int => Value::Int(0),
        Kind::Duration => Value::Duration(Duration::ZERO),
        Kind::StrSlice => Value::StrSlice(Vec::new()),
    })
}

/// Parses `args` against `specs`. Errors carry pflag's wording ("unknown flag: --x").
pub fn parse(specs: &[Spec], args: &[String]) -> Result<Parsed, String> {
    let mut parsed = Parsed::default();
    for spec in specs {
        parsed.values.insert(spec.name, default_value(spec));
    }
    let invalid = |spec: &Spec, raw: &str, err: String, shorthand_form: bool| {
        let flag = match (spec.short, shorthand_form) {
            (Some(c), _) => format!("-{c}, --{}", spec.name),
            (None, _) => format!("--{}", spec.name),
        };
        format!("invalid argument {} for {} flag: {err}", go::quote(raw), go::quote(&flag))
    };
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            parsed.dash_at = Some(parsed.args.len());
            parsed.args.extend(args[i..].iter().cloned());
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            if name.is_empty() || name.starts_with('-') || name.starts_with('=') {
                return Err(format!("bad flag syntax: {arg}"));
            }
            let Some(spec) = specs.iter().find(|s| s.name == name) else {
                return Err(format!("unknown flag: --{name}"));
            };
            let raw = match (inline, spec.kind) {
                (Some(v), _) => v,
                (None, Kind::Bool) => "true".to_string(),
                (None, _) => {
                    if i < args.len() {
                        i += 1;
                        args[i - 1].clone()
                    } else {
                        return Err(format!("flag needs an argument: --{name}"));
                    }
                }
            };
            parsed.set(spec, &raw).map_err(|e| invalid(spec, &raw, e, false))?;
        } else if arg.len() > 1 && arg.starts_with('-') {
            // A run of shorthands: -il, -wjson, -w json.
            let shorts: Vec<char> = arg[1..].chars().collect();
            let mut k = 0;
            while k < shorts.len() {
                let c = shorts[k];
                k += 1;
                let Some(spec) = specs.iter().find(|s| s.short == Some(c)) else {
                    return Err(format!("unknown shorthand flag: '{c}' in {arg}"));
                };
                let rest: String = shorts[k..].iter().collect();
                let raw = if let Some(v) = rest.strip_prefix('=') {
                    k = shorts.len();
                    v.to_string()
                } else if spec.kind == Kind::Bool {
                    "true".to_string()
                } else if !rest.is_empty() {
                    k = shorts.len();
                    rest
                } else if i < args.len() {
                    i += 1;
                    args[i - 1].clone()
                } else {
                    return Err(format!("flag needs an argument: '{c}' in -{c}"));
                };
                parsed.set(spec, &raw).map_err(|e| invalid(spec, &raw, e, true))?;
            }
        } else {
            parsed.args.push(arg.clone());
        }
    }
    Ok(parsed)
}

/// Whether `arg` is a flag of `specs` that consumes the next argument as its value (used
/// to find the command words among the arguments, as cobra's `stripFlags` does).
pub fn takes_next(specs: &[Spec], arg: &str) -> bool {
    if let Some(long) = arg.strip_prefix("--") {
        if long.contains('=') {
            return false;
        }
        return specs.iter().any(|s| s.name == long && s.kind != Kind::Bool);
    }
    if let Some(shorts) = arg.strip_prefix('-')
        && let Some(last) = shorts.chars().last()
    {
        if shorts.contains('=') {
            return false;
        }
        return shorts.chars().count() == 1
            && specs.iter().any(|s| s.short == Some(last) && s.kind != Kind::Bool);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[Spec] = &[
        Spec::new("prefix", Kind::Bool, "false", ""),
        Spec::new("limit", Kind::Int, "0", ""),
        Spec::new("write-out", Kind::Str, "simple", "").short('w'),
        Spec::new("interactive", Kind::Bool, "false", "").short('i'),
        Spec::new("endpoints", Kind::StrSlice, "127.0.0.1:2379", ""),
        Spec::new("dial-timeout", Kind::Duration, "2s", ""),
    ];

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_mix_with_arguments_as_pflag_allows() {
        let p = parse(SPECS, &args(&["k", "--prefix", "--limit", "3", "-wjson", "e"])).unwrap();
        assert_eq!(p.args, ["k", "e"]);
        assert!(p.bool("prefix"));
        assert_eq!(p.int("limit"), 3);
        assert_eq!(p.str("write-out"), "json");
        assert_eq!(p.slice("endpoints"), ["127.0.0.1:2379"]);
        assert_eq!(p.duration("dial-timeout"), Duration::from_secs(2));
        assert!(!p.changed("endpoints"));
    }

    #[test]
    fn double_dash_ends_flags_and_is_remembered() {
        let p = parse(SPECS, &args(&["k", "--", "echo", "--prefix"])).unwrap();
        assert_eq!(p.args, ["k", "echo", "--prefix"]);
        assert_eq!(p.dash_at, Some(1));
        assert!(!p.bool("prefix"));
    }

    #[test]
    fn bad_input_gets_pflag_messages() {
        assert_eq!(parse(SPECS, &args(&["--bad"])).unwrap_err(), "unknown flag: --bad");
        assert_eq!(
            parse(SPECS, &args(&["--limit=x"])).unwrap_err(),
            "invalid argument \"x\" for \"--limit\" flag: strconv.ParseInt: parsing \"x\": invalid syntax"
        );
        assert_eq!(
            parse(SPECS, &args(&["--limit"])).unwrap_err(),
            "flag needs an argument: --limit"
        );
        assert_eq!(parse(SPECS, &args(&["-x"])).unwrap_err(), "unknown shorthand flag: 'x' in -x");
        assert_eq!(
            parse(SPECS, &args(&["--prefix=maybe"])).unwrap_err(),
            "invalid argument \"maybe\" for \"--prefix\" flag: strconv.ParseBool: parsing \"maybe\": invalid syntax"
        );
    }

    #[test]
    fn slices_split_on_commas_and_accumulate() {
        let p = parse(SPECS, &args(&["--endpoints=a:1,b:2", "--endpoints", "c:3"])).unwrap();
        assert_eq!(p.slice("endpoints"), ["a:1", "b:2", "c:3"]);
        assert!(p.changed("endpoints"));
    }

    #[test]
    fn value_taking_flags_are_known_for_command_lookup() {
        assert!(takes_next(SPECS, "--limit"));
        assert!(!takes_next(SPECS, "--limit=3"));
        assert!(!takes_next(SPECS, "--prefix"));
        assert!(takes_next(SPECS, "-w"));
        assert!(!takes_next(SPECS, "-i"));
    }
}
