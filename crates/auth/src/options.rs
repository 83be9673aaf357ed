//! etcd's `--auth-token` value: `simple`, or
//! `jwt,pub-key=<path>,priv-key=<path>,sign-method=<method>,ttl=<duration>`.
//!
//! The rules are etcd 3.4's: the value is split on `,`, the first part names the token
//! type, every other part must be exactly one `key=value` (a value holding `=` is refused,
//! as is a key given twice), nothing is trimmed, and names are case-sensitive. Options a
//! type does not know are not errors: etcd ignores them (with a warning for JWT), so a
//! config that starts etcd starts us. Only the value is read here; the key files are read
//! by [`JwtTokens::new`](crate::JwtTokens::new).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::Algorithm;

/// A JWT's life when the spec gives no `ttl` (etcd's `DefaultTTL`, 5 minutes). Unlike a
/// simple token's, it is fixed at signing: using a JWT does not extend it.
pub const DEFAULT_JWT_TTL: Duration = Duration::from_secs(5 * 60);

/// What etcd answers for any bad `--auth-token` value (its `ErrInvalidAuthOpts`); etcd
/// logs the reason apart, we append it.
pub(crate) const INVALID_AUTH_OPTS: &str = "auth: invalid auth options";

/// The options etcd's JWT provider reads; any other is ignored.
const OPT_PUB_KEY: &str = "pub-key";
const OPT_PRIV_KEY: &str = "priv-key";
const OPT_SIGN_METHOD: &str = "sign-method";
const OPT_TTL: &str = "ttl";
const KNOWN_JWT_OPTIONS: [&str; 4] = [OPT_PUB_KEY, OPT_PRIV_KEY, OPT_SIGN_METHOD, OPT_TTL];

/// How the members make and check auth tokens (etcd's `--auth-token`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TokenSpec {
    /// Random strings each member maps to a user ([`SimpleTokens`](crate::SimpleTokens)),
    /// etcd's default. Options after `simple,` are accepted and ignored, as etcd does.
    #[default]
    Simple,
    /// Signed JSON Web Tokens that carry the user and the auth revision
    /// ([`JwtTokens`](crate::JwtTokens)).
    Jwt(JwtOptions),
}

/// The options of `--auth-token=jwt,...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtOptions {
    /// The signature algorithm (`sign-method`, required), e.g. `RS256`, `ES256`, `HS256`.
    pub sign_method: Algorithm,
    /// The PEM file holding the public key or a certificate carrying it (`pub-key`). With
    /// no private key the member only verifies tokens. Unused by HS* methods.
    pub pub_key: Option<PathBuf>,
    /// The PEM file of the private key (`priv-key`); for HS* methods, the file's bytes are
    /// the shared secret.
    pub priv_key: Option<PathBuf>,
    /// How long a token is valid after it is signed (`ttl`, a Go duration such as `5m`).
    pub ttl: Duration,
    /// Option names etcd does not know, in the order given: ignored, but worth a warning
    /// at start (etcd logs "unknown JWT options"), since a typo there silently drops a
    /// setting.
    pub unknown_options: Vec<String>,
}

impl TokenSpec {
    /// Reads an `--auth-token` value. Errors begin with etcd's text,
    /// `auth: invalid auth options`, followed by the reason etcd only logs.
    ///
    /// Two values etcd accepts are refused, with a message saying why: the empty value
    /// (etcd's token-less mode, where no login succeeds and only client certificates
    /// authenticate) and a zero or negative `ttl` (etcd would sign tokens that are already
    /// expired). `sign-method=ES512` is refused too: the JWT library has no P-521 signer.
    /// The other way round, `EdDSA` (Ed25519), which etcd 3.4 names but refuses at start,
    /// is supported.
    pub fn parse(spec: &str) -> Result<TokenSpec, String> {
        let mut parts = spec.split(',');
        let kind = parts.next().unwrap_or_default();
        let mut options: Vec<(&str, &str)> = Vec::new();
        for part in parts {
            let mut kv = part.split('=');
            let (Some(key), Some(value), None) = (kv.next(), kv.next(), kv.next()) else {
                return Err(invalid(format!("option {part:?} is not one key=value pair")));
            };
            if options.iter().any(|(k, _)| *k == key) {
                return Err(invalid(format!("option {key:?} is given twice")));
            }
            options.push((key, value));
        }
        match kind {
            "simple" => Ok(TokenSpec::Simple),
            "jwt" => JwtOptions::from_pairs(&options).map(TokenSpec::Jwt),
            "" => Err(invalid(
                "an empty token type (etcd's token-less mode, for client certificate auth \
                 only) is not supported; use \"simple\" or \"jwt,...\""
                    .to_owned(),
            )),
            other => Err(invalid(format!("unknown token type {other:?}"))),
        }
    }
}

impl JwtOptions {
    /// The JWT options from the `key=value` pairs after `jwt,` (keys already unique).
    /// As in etcd, an empty value is the same as no value: `ttl=` means the default,
    /// `pub-key=` no public key.
    fn from_pairs(pairs: &[(&str, &str)]) -> Result<JwtOptions, String> {
        let get = |name: &str| {
            pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| *v).filter(|v| !v.is_empty())
        };
        let ttl = match get(OPT_TTL) {
            None => DEFAULT_JWT_TTL,
            Some(text) => match parse_go_duration(text) {
                Ok(ttl) if !ttl.is_zero() => ttl,
                Ok(_) => return Err(invalid(format!("ttl {text:?} must be positive"))),
                Err(e) => return Err(invalid(format!("ttl: {e}"))),
            },
        };
        let sign_method = match get(OPT_SIGN_METHOD) {
            None => return Err(invalid(format!("{OPT_SIGN_METHOD} is required"))),
            Some(name) => parse_sign_method(name)?,
        };
        Ok(JwtOptions {
            sign_method,
            pub_key: get(OPT_PUB_KEY).map(PathBuf::from),
            priv_key: get(OPT_PRIV_KEY).map(PathBuf::from),
            ttl,
            unknown_options: pairs
                .iter()
                .filter(|(k, _)| !KNOWN_JWT_OPTIONS.contains(k))
                .map(|(k, _)| (*k).to_owned())
                .collect(),
        })
    }
}

/// `auth: invalid auth options: <why>`.
fn invalid(why: String) -> String {
    format!("{INVALID_AUTH_OPTS}: {why}")
}

/// The algorithm a `sign-method` names. etcd accepts the names its JWT library registers;
/// of those, `none` it refuses at start anyway, and ES512 (P-521) our library cannot sign.
fn parse_sign_method(name: &str) -> Result<Algorithm, String> {
    match name {
        "ES512" => Err(invalid(
            "sign-method \"ES512\" (ECDSA P-521) is not supported; use ES256 or ES384".to_owned(),
        )),
        "none" => {
            Err(invalid("sign-method \"none\" (unsigned tokens) is not supported".to_owned()))
        }
        _ => name.parse().map_err(|_| {
            invalid(format!(
                "invalid auth signature method {name:?} (known: HS256, HS384, HS512, RS256, \
                 RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA)"
            ))
        }),
    }
}

impl fmt::Display for TokenSpec {
    /// The spec in the form [`TokenSpec::parse`] reads back to the same value: `simple`,
    /// or `jwt,` then the options in a fixed order, without unknown ones.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = match self {
            TokenSpec::Simple => return f.write_str("simple"),
            TokenSpec::Jwt(o) => o,
        };
        f.write_str("jwt")?;
        if let Some(path) = &o.pub_key {
            write!(f, ",{OPT_PUB_KEY}={}", path.display())?;
        }
        if let Some(path) = &o.priv_key {
            write!(f, ",{OPT_PRIV_KEY}={}", path.display())?;
        }
        // The library's Debug names are the JWT `alg` names etcd's option takes.
        write!(f, ",{OPT_SIGN_METHOD}={:?},{OPT_TTL}=", o.sign_method)?;
        write_duration(f, o.ttl)
    }
}

/// Nanoseconds per unit of a Go duration string.
const NANOS_PER_US: u128 = 1_000;
const NANOS_PER_MS: u128 = 1_000_000;
const NANOS_PER_S: u128 = 1_000_000_000;
const NANOS_PER_MIN: u128 = 60 * NANOS_PER_S;
const NANOS_PER_H: u128 = 60 * NANOS_PER_MIN;
/// The longest duration Go represents (an `int64` of nanoseconds, about 292 years).
const MAX_GO_DURATION_NANOS: u128 = i64::MAX as u128;
/// Fraction digits past this many add nothing a nanosecond count can hold; like Go, they
/// are read but not accumulated.
const MAX_FRACTION_DIGITS: u32 = 18;

/// Reads a Go duration (`time.ParseDuration`): an optional sign, then one or more decimal
/// numbers, each with an optional fraction and a unit (`ns`, `us`/`µs`/`μs`, `ms`, `s`, `m`,
/// `h`), such as `300ms`, `1.5s` or `1h30m`; a lone `0` needs no unit. Error messages are
/// Go's. A negative duration is an error, since nothing here can use one.
fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("time: invalid duration {text:?}");
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_digits, after) = rest.split_at(int_len);
        let (frac_digits, after) = match after.strip_prefix('.') {
            Some(after) => {
                let frac_len = after.bytes().take_while(u8::is_ascii_digit).count();
                after.split_at(frac_len)
            }
            None if int_len == 0 => return Err(bad()),
            None => ("", after),
        };
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(bad());
        }
        let unit_len = after.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let per_unit = match unit {
            "" => return Err(format!("time: missing unit in duration {text:?}")),
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => NANOS_PER_US,
            "ms" => NANOS_PER_MS,
            "s" => NANOS_PER_S,
            "m" => NANOS_PER_MIN,
            "h" => NANOS_PER_H,
            _ => return Err(format!("time: unknown unit {unit:?} in duration {text:?}")),
        };
        // Digits past what fits are an overflow, as in Go.
        let whole: u128 = if int_digits.is_empty() {
            0
        } else {
            int_digits.parse::<u64>().map_err(|_| bad())?.into()
        };
        let (mut frac, mut scale) = (0u128, 1u128);
        for digit in frac_digits.bytes().take(MAX_FRACTION_DIGITS as usize) {
            frac = frac * 10 + u128::from(digit - b'0');
            scale *= 10;
        }
        total = whole
            .checked_mul(per_unit)
            .and_then(|n| n.checked_add(frac * per_unit / scale))
            .and_then(|n| n.checked_add(total))
            .filter(|n| *n <= MAX_GO_DURATION_NANOS)
            .ok_or_else(bad)?;
        rest = after;
    }
    if negative && total > 0 {
        return Err(format!("time: negative duration {text:?}"));
    }
    // `total` is at most i64::MAX, so it fits a u64.
    Ok(Duration::from_nanos(u64::try_from(total).map_err(|_| bad())?))
}

/// Writes a duration as a Go duration string [`parse_go_duration`] reads back exactly:
/// hours, minutes and seconds when it is whole seconds (`1h30m`, `5m`, `1s`), else the
/// largest of ms, us, ns that counts it exactly (`300ms`, `1500ms`).
fn write_duration(f: &mut fmt::Formatter<'_>, d: Duration) -> fmt::Result {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return f.write_str("0s");
    }
    if !nanos.is_multiple_of(NANOS_PER_S) {
        let (count, unit) = if nanos.is_multiple_of(NANOS_PER_MS) {
            (nanos / NANOS_PER_MS, "ms")
        } else if nanos.is_multiple_of(NANOS_PER_US) {
            (nanos / NANOS_PER_US, "us")
        } else {
            (nanos, "ns")
        };
        return write!(f, "{count}{unit}");
    }
    let (h, m, s) = (
        nanos / NANOS_PER_H,
        nanos % NANOS_PER_H / NANOS_PER_MIN,
        nanos % NANOS_PER_MIN / NANOS_PER_S,
    );
    for (count, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if count > 0 {
            write!(f, "{count}{unit}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(spec: &str) -> JwtOptions {
        match TokenSpec::parse(spec) {
            Ok(TokenSpec::Jwt(o)) => o,
            other => panic!("{spec}: {other:?}"),
        }
    }

    #[test]
    fn go_durations() {
        let ms = Duration::from_millis;
        for (text, want) in [
            ("0", Duration::ZERO),
            ("+0", Duration::ZERO),
            ("1s", ms(1000)),
            ("5m", ms(300_000)),
            ("300ms", ms(300)),
            ("1h30m", ms(5_400_000)),
            ("1.5s", ms(1500)),
            (".5s", ms(500)),
            ("1.s", ms(1000)),
            ("+2m3s", ms(123_000)),
            ("1h1m1s1ms1us1ns", Duration::new(3661, 1_001_001)),
            ("10\u{b5}s", Duration::from_micros(10)),
            ("10\u{3bc}s", Duration::from_micros(10)),
            ("0.000000001s", Duration::from_nanos(1)),
            ("1.0000000000000000000009s", ms(1000)),
            ("2562047h47m16.854775807s", Duration::from_nanos(i64::MAX as u64)),
        ] {
            assert_eq!(parse_go_duration(text), Ok(want), "{text}");
        }
        for (text, err) in [
            ("", "time: invalid duration \"\""),
            ("5", "time: missing unit in duration \"5\""),
            ("1h5", "time: missing unit in duration \"1h5\""),
            ("5x", "time: unknown unit \"x\" in duration \"5x\""),
            ("5S", "time: unknown unit \"S\" in duration \"5S\""),
            (".s", "time: invalid duration \".s\""),
            ("s", "time: invalid duration \"s\""),
            ("-", "time: invalid duration \"-\""),
            (" 1s", "time: invalid duration \" 1s\""),
            ("1s ", "time: unknown unit \"s \" in duration \"1s \""),
            ("2562047h47m16.854775808s", "time: invalid duration \"2562047h47m16.854775808s\""),
            ("99999999999999999999s", "time: invalid duration \"99999999999999999999s\""),
            ("-1s", "time: negative duration \"-1s\""),
        ] {
            assert_eq!(parse_go_duration(text), Err(err.to_owned()), "{text}");
        }
        assert_eq!(parse_go_duration("-0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn simple_and_default() {
        assert_eq!(TokenSpec::default(), TokenSpec::Simple);
        assert_eq!(TokenSpec::parse("simple"), Ok(TokenSpec::Simple));
        // etcd ignores options after simple, but still checks their shape.
        assert_eq!(TokenSpec::parse("simple,ttl=1s,x=y"), Ok(TokenSpec::Simple));
        assert!(TokenSpec::parse("simple,ttl").is_err());
        assert_eq!(TokenSpec::Simple.to_string(), "simple");
    }

    #[test]
    fn jwt_e2e_spec() {
        let spec = "jwt,pub-key=../../integration/fixtures/server.crt,\
                    priv-key=../../integration/fixtures/server.key.insecure,sign-method=RS256,ttl=1s";
        let o = jwt(spec);
        assert_eq!(o.sign_method, Algorithm::RS256);
        assert_eq!(o.pub_key, Some(PathBuf::from("../../integration/fixtures/server.crt")));
        assert_eq!(
            o.priv_key,
            Some(PathBuf::from("../../integration/fixtures/server.key.insecure"))
        );
        assert_eq!(o.ttl, Duration::from_secs(1));
        assert!(o.unknown_options.is_empty());
        assert_eq!(TokenSpec::Jwt(o).to_string(), spec);
    }

    #[test]
    fn jwt_defaults_empty_values_and_unknown_options() {
        let o = jwt("jwt,sign-method=HS256");
        assert_eq!((o.ttl, o.pub_key, o.priv_key), (DEFAULT_JWT_TTL, None, None));
        let o = jwt("jwt,priv-key=k,pub-key=,ttl=,sign-method=ES384,Ttl=1s, ttl=2s");
        assert_eq!((o.ttl, &o.pub_key, o.sign_method), (DEFAULT_JWT_TTL, &None, Algorithm::ES384));
        assert_eq!(o.unknown_options, ["Ttl", " ttl"]);
        assert_eq!(TokenSpec::Jwt(o).to_string(), "jwt,priv-key=k,sign-method=ES384,ttl=5m");
        assert_eq!(jwt("jwt,sign-method=EdDSA,ttl=1h30m").sign_method, Algorithm::EdDSA);
    }

    #[test]
    fn display_round_trips() {
        for spec in [
            "jwt,sign-method=PS512,ttl=1h30m",
            "jwt,pub-key=/k.pem,sign-method=ES256,ttl=300ms",
            "jwt,priv-key=/s,sign-method=HS512,ttl=1500ms",
            "jwt,priv-key=/s,sign-method=HS384,ttl=2h1s",
            "jwt,priv-key=/s,sign-method=HS256,ttl=7us",
            "jwt,priv-key=/s,sign-method=HS256,ttl=1000000001ns",
        ] {
            assert_eq!(TokenSpec::parse(spec).map(|s| s.to_string()).as_deref(), Ok(spec));
        }
        let canonical = TokenSpec::parse("jwt,sign-method=RS384,ttl=90s").map(|s| s.to_string());
        assert_eq!(canonical.as_deref(), Ok("jwt,sign-method=RS384,ttl=1m30s"));
    }

    #[test]
    fn errors_name_etcds_error_and_the_reason() {
        for (spec, why) in [
            ("", "an empty token type"),
            ("JWT,sign-method=RS256", "unknown token type \"JWT\""),
            ("foo", "unknown token type \"foo\""),
            ("jwt", "sign-method is required"),
            ("jwt,sign-method=", "sign-method is required"),
            ("jwt,sign-method=rs256", "invalid auth signature method \"rs256\""),
            ("jwt,sign-method=ES512", "ES512"),
            ("jwt,sign-method=none", "\"none\""),
            ("jwt,sign-method=RS256,ttl=5", "ttl: time: missing unit in duration \"5\""),
            ("jwt,sign-method=RS256,ttl=0s", "ttl \"0s\" must be positive"),
            ("jwt,sign-method=RS256,ttl=-1s", "ttl: time: negative duration \"-1s\""),
            ("jwt,sign-method=RS256,", "option \"\" is not one key=value pair"),
            ("jwt,,sign-method=RS256", "option \"\" is not one key=value pair"),
            ("jwt,pub-key=a=b,sign-method=RS256", "option \"pub-key=a=b\""),
            ("jwt,sign-method=RS256,sign-method=RS256", "option \"sign-method\" is given twice"),
        ] {
            let err = TokenSpec::parse(spec).unwrap_err();
            assert!(err.starts_with("auth: invalid auth options: "), "{spec}: {err}");
            assert!(err.contains(why), "{spec}: {err}");
        }
    }
}
