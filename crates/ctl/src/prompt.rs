//! Reading a password as etcdctl's prompts do: the prompt on stdout, the answer a line of
//! stdin.

use std::io::{BufRead, Write};

/// Prints `prompt` and reads one line (without its line ending). The terminal's echo is
/// left on: turning it off needs the terminal's settings, which this crate does not reach.
pub fn password(prompt: &str) -> std::io::Result<String> {
    let mut out = std::io::stdout().lock();
    out.write_all(prompt.as_bytes())?;
    out.flush()?;
    drop(out);
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let trimmed = line.trim_end_matches(['\n', '\r']).to_string();
    // speakeasy ends the prompt's line after reading.
    crate::output::stdout("\n");
    Ok(trimmed)
}

/// Go's `fmt.Scanf("%s", &s)`: the first space-separated word of stdin's first line.
pub fn scan_word() -> String {
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    line.split_whitespace().next().unwrap_or_default().to_string()
}
