//! Durations written as Go writes them (`time.ParseDuration`), because etcd's duration
//! flags take that syntax and operators' existing configuration uses it.

use std::str::FromStr;
use std::time::Duration;

/// A signed duration in Go's syntax: an optional sign, then one or more decimal numbers
/// each followed by a unit (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`), e.g. `10m`, `1h30m`,
/// `1.5s`, `-300ms`; a bare `0` is the one value without a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoDuration {
    nanos: i64,
}

impl GoDuration {
    /// The duration if it is positive; zero and negative durations have no `Duration`.
    pub fn positive(self) -> Option<Duration> {
        u64::try_from(self.nanos).ok().filter(|&n| n > 0).map(Duration::from_nanos)
    }
}

/// Go's error text, so a message reads as etcd's would.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("time: {what} duration {text:?}")]
pub struct DurationError {
    what: &'static str,
    text: String,
}

/// Nanoseconds per unit; the longer spellings come first so `ms` is not read as `m`.
const UNITS: [(&str, u128); 9] = [
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),
    ("\u{3bc}s", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
    ("", 0),
];

impl FromStr for GoDuration {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<GoDuration, DurationError> {
        let error = |what| DurationError { what, text: text.to_string() };
        let (negative, mut rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        if rest == "0" {
            return Ok(GoDuration { nanos: 0 });
        }
        if rest.is_empty() {
            return Err(error("invalid"));
        }
        // Exact arithmetic in nanoseconds: `whole` and `frac / scale` of each number.
        let mut total: u128 = 0;
        while !rest.is_empty() {
            let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
            let int_len = digits(rest);
            let (int_part, after) = rest.split_at(int_len);
            let (frac_part, after) = match after.strip_prefix('.') {
                Some(after) => after.split_at(digits(after)),
                None => ("", after),
            };
            if int_part.is_empty() && frac_part.is_empty() {
                return Err(error("invalid"));
            }
            let unit_len =
                after.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(after.len());
            let (unit, after) = after.split_at(unit_len);
            let Some(&(_, per_unit)) = UNITS.iter().find(|(name, _)| *name == unit) else {
                return Err(error("unknown unit in"));
            };
            if per_unit == 0 {
                return Err(error("missing unit in"));
            }
            let whole: u128 = if int_part.is_empty() {
                0
            } else {
                int_part.parse().map_err(|_| error("invalid"))?
            };
            // Digits past nanosecond precision cannot change the result: Go drops them.
            let frac_part = &frac_part[..frac_part.len().min(20)];
            let scale = 10u128.pow(frac_part.len() as u32);
            let frac: u128 = if frac_part.is_empty() { 0 } else { frac_part.parse().unwrap_or(0) };
            total = whole
                .checked_mul(per_unit)
                .and_then(|w| w.checked_add(frac * per_unit / scale))
                .and_then(|n| total.checked_add(n))
                .filter(|&n| n <= i64::MAX as u128)
                .ok_or_else(|| error("invalid"))?;
            rest = after;
        }
        let nanos = total as i64;
        Ok(GoDuration { nanos: if negative { -nanos } else { nanos } })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<i64, DurationError> {
        text.parse::<GoDuration>().map(|d| d.nanos)
    }

    #[test]
    fn go_syntax_is_read_exactly() {
        const S: i64 = 1_000_000_000;
        for (text, nanos) in [
            ("0", 0),
            ("-0", 0),
            ("10m", 600 * S),
            ("5s", 5 * S),
            ("1h30m", 5400 * S),
            ("1.5s", 3 * S / 2),
            (".5s", S / 2),
            ("2.s", 2 * S),
            ("300ms", 3 * S / 10),
            ("1us", 1_000),
            ("1\u{b5}s", 1_000),
            ("1\u{3bc}s", 1_000),
            ("7ns", 7),
            ("+1m1s", 61 * S),
            ("-200ms", -S / 5),
            ("1.0000000019s", S + 1),
            ("2562047h47m16.854775807s", i64::MAX),
        ] {
            assert_eq!(parse(text), Ok(nanos), "{text}");
        }
    }

    #[test]
    fn what_go_refuses_is_refused_with_gos_message() {
        for text in ["", "-", "10", "1.5", "s", ".s", "1x", "1m 2s", "1.2.3s", "2562047h48m"] {
            assert!(parse(text).is_err(), "{text:?} was accepted");
        }
        assert_eq!(parse("10").unwrap_err().to_string(), "time: missing unit in duration \"10\"");
        assert_eq!(parse("1x").unwrap_err().to_string(), "time: unknown unit in duration \"1x\"");
    }

    #[test]
    fn only_positive_durations_convert() {
        let positive = |text: &str| text.parse::<GoDuration>().unwrap().positive();
        assert_eq!(positive("200ms"), Some(Duration::from_millis(200)));
        assert_eq!(positive("0"), None);
        assert_eq!(positive("-1s"), None);
    }
}
