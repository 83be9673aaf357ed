//! get, put, del, compaction. Their request building is shared with `txn`, whose
//! operations are written as these commands' arguments.

use std::io::Read;

use oxetcd_client::proto::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest};
use oxetcd_client::{DeleteOptions, GetOptions, PutOptions, SortOrder, SortTarget};

use crate::error::{CtlError, CtlResult, exit};
use crate::flags::Parsed;
use crate::global::Ctx;
use crate::go;

/// Which keys a `get` or `del` covers besides its key.
enum Range {
    Single,
    End(String),
    Prefix,
    FromKey,
}

/// The key and range of `get` and `del` from `--prefix`, `--from-key` and a second
/// argument, checked as etcdctl checks them; an empty key with `--prefix` or
/// `--from-key` is every key (`\0` onwards).
fn key_range(flags: &Parsed, args: &[String]) -> CtlResult<(String, Range)> {
    let (prefix, from_key) = (flags.bool("prefix"), flags.bool("from-key"));
    if prefix && from_key {
        return Err(CtlError::bad_args(
            "`--prefix` and `--from-key` cannot be set at the same time, choose one",
        ));
    }
    let key = args[0].clone();
    if let Some(end) = args.get(1) {
        if prefix || from_key {
            return Err(CtlError::bad_args(
                "too many arguments, only accept one argument when `--prefix` or `--from-key` is set",
            ));
        }
        return Ok((key, Range::End(end.clone())));
    }
    Ok(match (prefix || from_key, key.is_empty()) {
        (false, _) => (key, Range::Single),
        (true, true) => ("\0".to_string(), Range::FromKey),
        (true, false) if prefix => (key, Range::Prefix),
        (true, false) => (key, Range::FromKey),
    })
}

/// The Range request `get`'s flags and arguments make (etcdctl's `getGetOp`).
pub fn get_request(flags: &Parsed, args: &[String]) -> CtlResult<RangeRequest> {
    if args.is_empty() {
        return Err(CtlError::bad_args(
            "get command needs one argument as key and an optional argument as range_end",
        ));
    }
    let (key, range) = key_range(flags, args)?;
    let mut options = GetOptions::new();
    match flags.str("consistency").as_str() {
        "s" => options = options.with_serializable(),
        "l" => {}
        other => {
            return Err(CtlError::new(
                exit::BAD_FEATURE,
                format!("unknown consistency flag {}", go::quote(other)),
            ));
        }
    }
    options = match range {
        Range::Single => options,
        Range::End(end) => options.with_range(end),
        Range::Prefix => options.with_prefix(),
        Range::FromKey => options.with_from_key(),
    };
    options = options.with_limit(flags.int("limit"));
    if flags.int("rev") > 0 {
        options = options.with_revision(flags.int("rev"));
    }
    let order_flag = flags.str("order");
    let order = match order_flag.to_uppercase().as_str() {
        "ASCEND" => SortOrder::Ascend,
        "DESCEND" => SortOrder::Descend,
        "" => SortOrder::None,
        _ => {
            return Err(CtlError::new(exit::BAD_FEATURE, format!("bad sort order {order_flag}")));
        }
    };
    let target_flag = flags.str("sort-by");
    let target = match target_flag.to_uppercase().as_str() {
        "CREATE" => SortTarget::Create,
        "KEY" | "" => SortTarget::Key,
        "MODIFY" => SortTarget::Mod,
        "VALUE" => SortTarget::Value,
        "VERSION" => SortTarget::Version,
        _ => {
            return Err(CtlError::new(exit::BAD_FEATURE, format!("bad sort target {target_flag}")));
        }
    };
    options = options.with_sort(target, order);
    if flags.bool("keys-only") {
        options = options.with_keys_only();
    }
    Ok(options.to_request(key))
}

pub async fn get(ctx: &Ctx) -> CtlResult {
    let request = get_request(&ctx.flags, &ctx.flags.args)?;
    let client = ctx.client().await?;
    let response =
        ctx.timed(client.range(request)).await.map_err(|e| CtlError::client(exit::ERROR, &e))?;
    let mut printer = ctx.printer;
    if ctx.flags.bool("print-value-only") {
        if printer.format != crate::output::Format::Simple {
            return Err(CtlError::bad_args("print-value-only is only for `--write-out=simple`"));
        }
        printer.value_only = true;
    }
    printer.get(&response)
}

/// The Put request `put`'s flags and arguments make (etcdctl's `getPutOp`); the value
/// comes from stdin when not given.
pub fn put_request(flags: &Parsed, args: &[String], stdin_allowed: bool) -> CtlResult<PutRequest> {
    const NEEDS: &str = "put command needs 1 argument and input from stdin or 2 arguments";
    if args.is_empty() {
        return Err(CtlError::bad_args(NEEDS));
    }
    let key = args[0].clone();
    let ignore_value = flags.bool("ignore-value");
    if ignore_value && args.len() > 1 {
        return Err(CtlError::bad_args(
            "put command needs only 1 argument when 'ignore-value' is set",
        ));
    }
    let mut value = Vec::new();
    if !ignore_value {
        if args.len() > 1 {
            value = args[1].clone().into_bytes();
        } else {
            if stdin_allowed {
                let _ = std::io::stdin().read_to_end(&mut value);
            }
            if value.is_empty() {
                return Err(CtlError::bad_args(NEEDS));
            }
        }
    }
    let lease = go::parse_int(&flags.str("lease"), 16)
        .map_err(|e| CtlError::bad_args(format!("bad lease ID ({e}), expecting ID in Hex")))?;
    let mut options = PutOptions::new();
    if lease != 0 {
        options = options.with_lease(lease);
    }
    if flags.bool("prev-kv") {
        options = options.with_prev_kv();
    }
    if ignore_value {
        options = options.with_ignore_value();
    }
    if flags.bool("ignore-lease") {
        options = options.with_ignore_lease();
    }
    Ok(options.to_request(key, value))
}

pub async fn put(ctx: &Ctx) -> CtlResult {
    let request = put_request(&ctx.flags, &ctx.flags.args, true)?;
    let client = ctx.client().await?;
    let response = ctx
        .timed(client.put_request(request))
        .await
        .map_err(|e| CtlError::client(exit::ERROR, &e))?;
    ctx.printer.put(&response)
}

/// The DeleteRange request `del`'s flags and arguments make (etcdctl's `getDelOp`).
pub fn del_request(flags: &Parsed, args: &[String]) -> CtlResult<DeleteRangeRequest> {
    if args.is_empty() || args.len() > 2 {
        return Err(CtlError::bad_args(
            "del command needs one argument as key and an optional argument as range_end",
        ));
    }
    let (key, range) = key_range(flags, args)?;
    let mut options = match range {
        Range::Single => DeleteOptions::new(),
        Range::End(end) => DeleteOptions::new().with_range(end),
        Range::Prefix => DeleteOptions::new().with_prefix(),
        Range::FromKey => DeleteOptions::new().with_from_key(),
    };
    if flags.bool("prev-kv") {
        options = options.with_prev_kv();
    }
    Ok(options.to_request(key))
}

pub async fn del(ctx: &Ctx) -> CtlResult {
    let request = del_request(&ctx.flags, &ctx.flags.args)?;
    let client = ctx.client().await?;
    let response = ctx
        .timed(client.delete_range(request))
        .await
        .map_err(|e| CtlError::client(exit::ERROR, &e))?;
    ctx.printer.del(&response)
}

pub async fn compaction(ctx: &Ctx) -> CtlResult {
    let args = &ctx.flags.args;
    if args.len() != 1 {
        return Err(CtlError::bad_args("compaction command needs 1 argument"));
    }
    let revision = go::parse_int(&args[0], 10).map_err(CtlError::error)?;
    let client = ctx.client().await?;
    ctx.timed(client.compact(revision, ctx.flags.bool("physical")))
        .await
        .map_err(|e| CtlError::client(exit::ERROR, &e))?;
    crate::output::stdout(&format!("compacted revision {revision}\n"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::COMMANDS;
    use crate::flags;

    fn parse(command: &str, args: &[&str]) -> Parsed {
        let spec = COMMANDS.iter().find(|c| c.path == command).unwrap();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        flags::parse(spec.flags, &args).unwrap()
    }

    #[test]
    fn get_with_prefix_asks_for_the_prefix_range() {
        let p = parse("get", &["foo", "--prefix", "--limit=2"]);
        let r = get_request(&p, &p.args).unwrap();
        assert_eq!(r.key.as_ref(), b"foo");
        assert_eq!(r.range_end.as_ref(), b"fop");
        assert_eq!(r.limit, 2);
    }

    #[test]
    fn get_refuses_what_etcdctl_refuses() {
        let p = parse("get", &[]);
        assert_eq!(get_request(&p, &p.args).unwrap_err().code, exit::BAD_ARGS);
        let p = parse("get", &["a", "--prefix", "--from-key"]);
        assert_eq!(get_request(&p, &p.args).unwrap_err().code, exit::BAD_ARGS);
        let p = parse("get", &["a", "--order=up"]);
        let err = get_request(&p, &p.args).unwrap_err();
        assert_eq!(err.code, exit::BAD_FEATURE);
        assert_eq!(err.message.unwrap(), "bad sort order up");
        let p = parse("get", &["a", "--consistency=x"]);
        assert_eq!(
            get_request(&p, &p.args).unwrap_err().message.unwrap(),
            "unknown consistency flag \"x\""
        );
    }

    #[test]
    fn empty_key_with_prefix_means_every_key() {
        let p = parse("del", &["", "--prefix"]);
        let r = del_request(&p, &p.args).unwrap();
        assert_eq!(r.key.as_ref(), b"\0");
        assert_eq!(r.range_end.as_ref(), b"\0");
    }

    #[test]
    fn put_reads_lease_in_hex() {
        let p = parse("put", &["k", "v", "--lease=1f"]);
        let r = put_request(&p, &p.args, false).unwrap();
        assert_eq!(r.lease, 0x1f);
        let p = parse("put", &["k", "v", "--lease=zz"]);
        let err = put_request(&p, &p.args, false).unwrap_err();
        assert_eq!(
            err.message.unwrap(),
            "bad lease ID (strconv.ParseInt: parsing \"zz\": invalid syntax), expecting ID in Hex"
        );
    }
}
