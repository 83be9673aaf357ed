//! Progress lines on stderr as etcd's tools log them (zap's JSON: `level`, `ts`, `msg`,
//! then the fields).

use std::time::{SystemTime, UNIX_EPOCH};

/// Logs `msg` with `fields` at info level.
pub fn info(msg: &str, fields: &[(&str, String)]) {
    eprintln!("{}", line("info", msg, fields, now()));
}

fn now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

fn line(level: &str, msg: &str, fields: &[(&str, String)], ts: f64) -> String {
    let mut out = format!("{{\"level\":{},\"ts\":{ts},\"msg\":{}", quote(level), quote(msg));
    for (key, value) in fields {
        out += &format!(",{}:{}", quote(key), quote(value));
    }
    out.push('}');
    out
}

/// A JSON string.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out += "\\\"",
            '\\' => out += "\\\\",
            '\n' => out += "\\n",
            '\t' => out += "\\t",
            '\r' => out += "\\r",
            c if (c as u32) < 0x20 => out += &format!("\\u{:04x}", c as u32),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn lines_are_json() {
        let fields = [("path", "a \"b\"\n".to_string())];
        assert_eq!(
            super::line("info", "restoring snapshot", &fields, 1.5),
            r#"{"level":"info","ts":1.5,"msg":"restoring snapshot","path":"a \"b\"\n"}"#
        );
    }
}
