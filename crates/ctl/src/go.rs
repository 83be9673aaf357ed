//! Go's formatting and parsing conventions that etcdctl's output and flags follow: `%q`
//! quoting, `encoding/json` strings and bytes, `time.Duration` syntax and `String()`,
//! `strconv` errors, and go-humanize's byte sizes.

use std::fmt::Write as _;
use std::time::Duration;

/// Go's `strconv.Quote` (and `%q` on strings and byte slices): printable characters kept,
/// the usual escapes, invalid UTF-8 bytes as `\xNN`.
pub fn quote(s: impl AsRef<[u8]>) -> String {
    let bytes = s.as_ref();
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    let mut rest = bytes;
    while !rest.is_empty() {
        let (valid, invalid_len) = match std::str::from_utf8(rest) {
            Ok(s) => (s, 0),
            Err(e) => {
                let (good, _) = rest.split_at(e.valid_up_to());
                // Safe: from_utf8 said this prefix is valid.
                (std::str::from_utf8(good).unwrap_or_default(), e.error_len().unwrap_or(1))
            }
        };
        for c in valid.chars() {
            quote_char(&mut out, c);
        }
        let consumed = valid.len();
        for b in &rest[consumed..consumed + invalid_len] {
            let _ = write!(out, "\\x{b:02x}");
        }
        rest = &rest[consumed + invalid_len..];
    }
    out.push('"');
    out
}

fn quote_char(out: &mut String, c: char) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\u{7}' => out.push_str("\\a"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{b}' => out.push_str("\\v"),
        c if is_printable(c) => out.push(c),
        c if (c as u32) < 0x80 => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if (c as u32) < 0x10000 => {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\U{:08x}", c as u32);
        }
    }
}

/// An approximation of Go's `unicode.IsPrint` (space included): control and format
/// characters, separators other than space, and unassigned planes are not printable.
fn is_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(c as u32, 0xad | 0x200b..=0x200f | 0x2028..=0x202e | 0x2060..=0x206f | 0xfeff | 0xfff9..=0xfffb | 0xe000..=0xf8ff | 0xf0000..)
}

/// A JSON string as Go's `encoding/json` writes it: HTML-safe (`<`, `>`, `&` escaped),
/// U+2028/U+2029 escaped, invalid UTF-8 replaced by U+FFFD.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Bytes as Go's `encoding/json` writes `[]byte`: standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.ParseInt(s, base, 64)`, with its error text.
pub fn parse_int(s: &str, base: u32) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    let syntax = || format!("strconv.ParseInt: parsing {}: invalid syntax", quote(s));
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(base)) {
        return Err(syntax());
    }
    i64::from_str_radix(s.strip_prefix('+').unwrap_or(s), base)
        .map_err(|_| format!("strconv.ParseInt: parsing {}: value out of range", quote(s)))
}

/// Go's `strconv.ParseUint(s, base, 64)`, with its error text.
pub fn parse_uint(s: &str, base: u32) -> Result<u64, String> {
    if s.is_empty() || !s.chars().all(|c| c.is_digit(base)) {
        return Err(format!("strconv.ParseUint: parsing {}: invalid syntax", quote(s)));
    }
    u64::from_str_radix(s, base)
        .map_err(|_| format!("strconv.ParseUint: parsing {}: value out of range", quote(s)))
}

/// Go's `time.ParseDuration` (negative durations are taken as zero: no timeout flag of
/// etcdctl means anything by them).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration {}", quote(s));
    let (negative, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len =
            rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number = &rest[..number_len];
        if number.is_empty() || number == "." {
            return Err(invalid());
        }
        let value: f64 = number.parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let nanos = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("time: missing unit in duration {}", quote(s))),
            _ => {
                return Err(format!("time: unknown unit {} in duration {}", quote(unit), quote(s)));
            }
        };
        total += value * nanos;
        rest = &rest[unit_len..];
    }
    if negative {
        return Ok(Duration::ZERO);
    }
    Ok(Duration::from_nanos(total.round() as u64))
}

/// Go's `time.Duration.String()`: `1h2m3.5s`, `1.5ms`, `0s`.
pub fn duration_string(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    let trim = |whole: u128, frac: u128, digits: usize, unit: &str| {
        let mut s = whole.to_string();
        if frac > 0 {
            let f = format!("{frac:0digits$}");
            s.push('.');
            s.push_str(f.trim_end_matches('0'));
        }
        s.push_str(unit);
        s
    };
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return trim(nanos / 1_000, nanos % 1_000, 3, "µs");
    }
    if nanos < 1_000_000_000 {
        return trim(nanos / 1_000_000, nanos % 1_000_000, 6, "ms");
    }
    let secs = nanos / 1_000_000_000;
    let frac = nanos % 1_000_000_000;
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        let _ = write!(out, "{h}h");
    }
    if h > 0 || m > 0 {
        let _ = write!(out, "{m}m");
    }
    out.push_str(&trim(s, frac, 9, "s"));
    out
}

/// go-humanize's `Bytes` (SI units): `20 kB`, `1.2 MB`, `5 B`.
pub fn humanize_bytes(size: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if size < 10 {
        return format!("{size} B");
    }
    let exponent = ((size as f64).ln() / 1000f64.ln()).floor() as usize;
    let exponent = exponent.min(UNITS.len() - 1);
    let value = ((size as f64) / 1000f64.powi(exponent as i32) * 10.0 + 0.5).floor() / 10.0;
    if value < 10.0 {
        format!("{value:.1} {}", UNITS[exponent])
    } else {
        format!("{value:.0} {}", UNITS[exponent])
    }
}

/// etcd's `types.ID` string: lower-case hex without padding.
pub fn id_hex(id: u64) -> String {
    format!("{id:x}")
}

/// A UTC time stamp `YYYY-MM-DD<sep>hh:mm:ss` followed by `.` and the fraction of the
/// second in `fraction_digits` digits (3 or 6), for the log lines etcd's tools print.
pub fn utc_now(date_time_separator: char, fraction_digits: u32) -> String {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let day = secs.rem_euclid(86_400);
    let fraction = now.subsec_nanos() / 10u32.pow(9 - fraction_digits);
    format!(
        "{y:04}-{m:02}-{d:02}{date_time_separator}{:02}:{:02}:{:02}.{fraction:0width$}",
        day / 3600,
        (day / 60) % 60,
        day % 60,
        width = fraction_digits as usize
    )
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_follows_strconv() {
        assert_eq!(quote("a\"b\n"), "\"a\\\"b\\n\"");
        assert_eq!(quote(b"\x00\xff"), "\"\\x00\\xff\"");
        assert_eq!(quote("héllo"), "\"héllo\"");
    }

    #[test]
    fn json_strings_are_html_safe() {
        assert_eq!(json_string("<a&b>"), "\"\\u003ca\\u0026b\\u003e\"");
        assert_eq!(json_string("\u{1}"), "\"\\u0001\"");
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"bar1"), "YmFyMQ==");
        assert_eq!(base64(b""), "");
    }

    #[test]
    fn durations_parse_and_print_as_go() {
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5ms").unwrap(), Duration::from_micros(1500));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("abc").is_err());
        assert_eq!(duration_string(Duration::from_secs(2)), "2s");
        assert_eq!(duration_string(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(duration_string(Duration::from_secs(3723)), "1h2m3s");
        assert_eq!(duration_string(Duration::from_nanos(1_234_567)), "1.234567ms");
    }

    #[test]
    fn sizes_humanize_in_si_units() {
        assert_eq!(humanize_bytes(5), "5 B");
        assert_eq!(humanize_bytes(20480), "20 kB");
        assert_eq!(humanize_bytes(1234), "1.2 kB");
        assert_eq!(humanize_bytes(25_000_000), "25 MB");
    }

    #[test]
    fn dates_are_civil() {
        let micros = utc_now(' ', 6);
        let millis = utc_now('T', 3);
        assert_eq!((micros.len(), &micros[10..11], &micros[19..20]), (26, " ", "."));
        assert_eq!((millis.len(), &millis[10..11], &millis[19..20]), (23, "T", "."));
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_792), (2026, 12, 5));
    }

    #[test]
    fn integers_report_strconv_errors() {
        assert_eq!(parse_int("ff", 16).unwrap(), 255);
        assert_eq!(
            parse_int("x", 10).unwrap_err(),
            "strconv.ParseInt: parsing \"x\": invalid syntax"
        );
        assert!(parse_uint("-1", 16).is_err());
    }
}
