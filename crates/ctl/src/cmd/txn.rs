//! `txn`: compares, then success and failure operations, read from stdin one per line,
//! each section ended by an empty line (etcdctl's format; `-i` prompts for each).

use std::io::BufRead;

use oxetcd_client::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use oxetcd_client::proto::etcdserverpb::{Compare, RequestOp, TxnRequest, request_op};

use crate::commands::{COMMANDS, DEL_FLAGS, PUT_FLAGS};
use crate::error::{CtlError, CtlResult, exit};
use crate::flags;
use crate::global::Ctx;
use crate::go;

pub async fn txn(ctx: &Ctx) -> CtlResult {
    if !ctx.flags.args.is_empty() {
        return Err(CtlError::bad_args("txn command does not accept argument"));
    }
    let interactive = ctx.flags.bool("interactive");
    let prompt = |text: &str| {
        if interactive {
            crate::output::stdout(&format!("{text}\n"));
        }
    };
    let client = ctx.client().await?;
    let stdin = std::io::stdin();
    let mut lines = stdin.lock();
    prompt("compares:");
    let compares = read_section(&mut lines, parse_compare)?;
    prompt("success requests (get, put, del):");
    let success = read_section(&mut lines, parse_request)?;
    prompt("failure requests (get, put, del):");
    let failure = read_section(&mut lines, parse_request)?;
    drop(lines);
    let request = TxnRequest { compare: compares, success, failure };
    let response =
        client.txn_request(request).await.map_err(|e| CtlError::client(exit::ERROR, &e))?;
    ctx.printer.txn(&response)
}

/// Lines up to an empty one, each parsed; the end of input before it is an error, as in
/// etcdctl (`Error: EOF`, exit 3).
fn read_section<T>(
    input: &mut impl BufRead,
    parse: impl Fn(&str) -> CtlResult<T>,
) -> CtlResult<Vec<T>> {
    let mut items = Vec::new();
    loop {
        let mut line = String::new();
        let read = input
            .read_line(&mut line)
            .map_err(|e| CtlError::new(exit::INVALID_INPUT, e.to_string()))?;
        if read == 0 || !line.ends_with('\n') {
            return Err(CtlError::new(exit::INVALID_INPUT, "EOF"));
        }
        let line = line.trim();
        if line.is_empty() {
            return Ok(items);
        }
        items.push(parse(line)?);
    }
}

/// Splits a line into words as etcdctl's `argify`: runs of non-space characters, or
/// quoted strings (Go's double-quoted syntax, or single quotes taken literally).
pub fn argify(line: &str) -> CtlResult<Vec<String>> {
    let mut args = Vec::new();
    let mut rest = line;
    loop {
        rest = rest.trim_start();
        let Some(first) = rest.chars().next() else { break };
        match first {
            '"' => {
                let (value, used) = unquote_prefix(rest)
                    .ok_or_else(|| CtlError::new(exit::INVALID_INPUT, "invalid syntax"))?;
                args.push(value);
                rest = &rest[used..];
            }
            '\'' => match rest[1..].find('\'') {
                Some(end) => {
                    args.push(rest[1..1 + end].to_string());
                    rest = &rest[end + 2..];
                }
                None => {
                    // An unclosed quote is no token; the rest is read from after it.
                    rest = &rest[1..];
                }
            },
            _ => {
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                args.push(rest[..end].to_string());
                rest = &rest[end..];
            }
        }
    }
    Ok(args)
}

/// A Go double-quoted string at the start of `s`: its value and the bytes it took.
fn unquote_prefix(s: &str) -> Option<(String, usize)> {
    let mut chars = s.char_indices();
    if chars.next()?.1 != '"' {
        return None;
    }
    let mut out: Vec<u8> = Vec::new();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((String::from_utf8_lossy(&out).into_owned(), i + 1)),
            '\\' => {
                let (_, e) = chars.next()?;
                match e {
                    'n' => out.push(b'\n'),
                    't' => out.push(b'\t'),
                    'r' => out.push(b'\r'),
                    'a' => out.push(7),
                    'b' => out.push(8),
                    'f' => out.push(12),
                    'v' => out.push(11),
                    '\\' => out.push(b'\\'),
                    '"' => out.push(b'"'),
                    '\'' => out.push(b'\''),
                    'x' => {
                        let hex: String = [chars.next()?.1, chars.next()?.1].iter().collect();
                        out.push(u8::from_str_radix(&hex, 16).ok()?);
                    }
                    'u' | 'U' => {
                        let n = if e == 'u' { 4 } else { 8 };
                        let mut hex = String::new();
                        for _ in 0..n {
                            hex.push(chars.next()?.1);
                        }
                        let c = char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?;
                        let mut buf = [0; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                    d @ '0'..='7' => {
                        let oct: String = [d, chars.next()?.1, chars.next()?.1].iter().collect();
                        out.push(u8::from_str_radix(&oct, 8).ok()?);
                    }
                    _ => return None,
                }
            }
            '\n' => return None,
            c => {
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    None
}

/// One compare line: `<target>("<key>") <op> "<value>"`, targets `ver`/`version`,
/// `c`/`create`, `m`/`mod`, `val`/`value`, `lease` (etcdctl's `parseCompare`).
pub fn parse_compare(line: &str) -> CtlResult<Compare> {
    let invalid = |detail: String| CtlError::new(exit::INVALID_INPUT, detail);
    let Some((target, rest)) = line.split_once('(') else {
        return Err(invalid(format!("malformed comparison: {line}")));
    };
    // fmt.Sscanf(rest, "%q) %s %q"): as many of the three as could be read.
    let mut key = String::new();
    let mut op = String::new();
    let mut value = String::new();
    let mut scanned = 0;
    'scan: {
        let Some((k, used)) = unquote_prefix(rest.trim_start()) else { break 'scan };
        key = k;
        scanned = 1;
        let after = &rest.trim_start()[used..];
        let Some(after) = after.strip_prefix(')') else { break 'scan };
        let after = after.trim_start();
        let end = after.find(char::is_whitespace).unwrap_or(after.len());
        if end == 0 {
            break 'scan;
        }
        op = after[..end].to_string();
        scanned = 2;
        let Some((v, _)) = unquote_prefix(after[end..].trim_start()) else { break 'scan };
        value = v;
        scanned = 3;
    }
    if scanned != 3 {
        return Err(invalid(format!(
            "malformed comparison: {line}; got {target}({}) {op} {}",
            go::quote(&key),
            go::quote(&value)
        )));
    }
    let result = match op.as_str() {
        "=" => CompareResult::Equal,
        "!=" => CompareResult::NotEqual,
        ">" => CompareResult::Greater,
        "<" => CompareResult::Less,
        _ => return Err(invalid(format!("invalid txn compare request: {line}"))),
    };
    let number = |base: u32| {
        go::parse_int(&value, base)
            .map_err(|_| invalid(format!("invalid txn compare request: {line}")))
    };
    let (target, union) = match target {
        "ver" | "version" => (CompareTarget::Version, TargetUnion::Version(number(10)?)),
        "c" | "create" => (CompareTarget::Create, TargetUnion::CreateRevision(number(10)?)),
        "m" | "mod" => (CompareTarget::Mod, TargetUnion::ModRevision(number(10)?)),
        "val" | "value" => {
            (CompareTarget::Value, TargetUnion::Value(value.clone().into_bytes().into()))
        }
        "lease" => (CompareTarget::Lease, TargetUnion::Lease(number(16)?)),
        other => {
            return Err(invalid(format!("malformed comparison: {line} (unknown target {other})")));
        }
    };
    Ok(Compare {
        result: result as i32,
        target: target as i32,
        key: key.into_bytes().into(),
        range_end: Default::default(),
        target_union: Some(union),
    })
}

/// One operation line: a `get`, `put` or `del` command line with its flags.
pub fn parse_request(line: &str) -> CtlResult<RequestOp> {
    let invalid = || CtlError::new(exit::INVALID_INPUT, format!("invalid txn request: {line}"));
    let args = argify(line)?;
    if args.len() < 2 {
        return Err(CtlError::new(
            exit::INVALID_INPUT,
            format!("invalid txn compare request: {line}"),
        ));
    }
    let names = ["get", "put", "del"];
    let matching: Vec<&&str> = names.iter().filter(|n| n.starts_with(args[0].as_str())).collect();
    let name = match (names.iter().find(|n| **n == args[0]), matching.as_slice()) {
        (Some(n), _) => *n,
        (None, [only]) => **only,
        _ => return Err(invalid()),
    };
    let specs = match name {
        "get" => COMMANDS.iter().find(|c| c.path == "get").map(|c| c.flags).unwrap_or_default(),
        "put" => PUT_FLAGS,
        _ => DEL_FLAGS,
    };
    let parsed = flags::parse(specs, &args[1..]).map_err(|_| invalid())?;
    let request = match name {
        "get" => request_op::Request::RequestRange(super::kv::get_request(&parsed, &parsed.args)?),
        "put" => {
            request_op::Request::RequestPut(super::kv::put_request(&parsed, &parsed.args, false)?)
        }
        _ => {
            request_op::Request::RequestDeleteRange(super::kv::del_request(&parsed, &parsed.args)?)
        }
    };
    Ok(RequestOp { request: Some(request) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argify_keeps_quoted_words_together() {
        assert_eq!(argify("put k \"a b\\n\"").unwrap(), ["put", "k", "a b\n"]);
        assert_eq!(argify("put k 'c d'").unwrap(), ["put", "k", "c d"]);
        assert_eq!(argify("  get   k  ").unwrap(), ["get", "k"]);
    }

    #[test]
    fn compares_read_etcdctl_syntax() {
        let c = parse_compare("mod(\"key1\") > \"0\"").unwrap();
        assert_eq!(c.key.as_ref(), b"key1");
        assert_eq!(c.target, CompareTarget::Mod as i32);
        assert_eq!(c.result, CompareResult::Greater as i32);
        let c = parse_compare("val(\"k\") = \"v\"").unwrap();
        assert_eq!(c.target_union, Some(TargetUnion::Value(b"v".to_vec().into())));
        let err = parse_compare("foo(\"k\") = \"v\"").unwrap_err();
        assert_eq!(
            err.message.unwrap(),
            "malformed comparison: foo(\"k\") = \"v\" (unknown target foo)"
        );
        let err = parse_compare("mod k").unwrap_err();
        assert_eq!(err.code, exit::INVALID_INPUT);
    }

    #[test]
    fn requests_are_command_lines() {
        let op = parse_request("put k v --prev-kv").unwrap();
        let Some(request_op::Request::RequestPut(put)) = op.request else { panic!("not a put") };
        assert!(put.prev_kv);
        assert!(parse_request("get").is_err());
        assert!(parse_request("bogus k").is_err());
    }

    #[test]
    fn sections_end_at_an_empty_line_and_need_one() {
        let mut input = std::io::Cursor::new("get a\nget b\n\nrest");
        let ops = read_section(&mut input, parse_request).unwrap();
        assert_eq!(ops.len(), 2);
        let mut input = std::io::Cursor::new("get a\n");
        assert_eq!(read_section(&mut input, parse_request).unwrap_err().message.unwrap(), "EOF");
    }
}
