//! grpc-gateway v1's JSON mapping as etcd 3.4 configures it (`runtime.JSONPb{OrigName:
//! true}` over golang/protobuf 1.3's jsonpb): the proto's own field names, default
//! values left out, 64-bit integers as strings, bytes as standard base64, enums by
//! name; unknown fields are ignored on input. The mapping is prost-reflect's, driven
//! by the descriptors of `oxetcd-api`'s `.proto` files, so no message is mapped by
//! hand. Also the gateway's error bodies.

use std::sync::LazyLock;

use axum::http::StatusCode;
use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use prost::Message;
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, Kind, MessageDescriptor, SerializeOptions,
};
use tonic::{Code, Status};

/// The messages of every `.proto` file `oxetcd-api` compiles.
pub(super) static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    DescriptorPool::decode(oxetcd_api::FILE_DESCRIPTOR_SET)
        .expect("oxetcd-api's descriptor set decodes")
});

/// Why a JSON request could not become a message.
#[derive(Debug)]
pub(super) struct DecodeError(pub String);

/// The first JSON value of `bytes` as a `desc` message: `None` when there is none (an
/// empty body is an empty request, as Go's decoder's `io.EOF`). Whatever follows the
/// first value is ignored, as grpc-gateway's decoder reads one value.
pub(super) fn first_value(bytes: &[u8]) -> Result<Option<serde_json::Value>, DecodeError> {
    let mut values = serde_json::Deserializer::from_slice(bytes).into_iter::<serde_json::Value>();
    match values.next() {
        None => Ok(None),
        Some(Ok(value)) => Ok(Some(value)),
        Some(Err(e)) => Err(syntax_error(&e)),
    }
}

/// A JSON syntax error in Go's words where they are simple (`unexpected EOF`).
pub(super) fn syntax_error(error: &serde_json::Error) -> DecodeError {
    if error.is_eof() {
        DecodeError("unexpected EOF".to_string())
    } else {
        DecodeError(error.to_string())
    }
}

/// `value` as a `desc` message, encoded for the gRPC call.
pub(super) fn to_proto(
    desc: &MessageDescriptor,
    value: Option<serde_json::Value>,
) -> Result<Vec<u8>, DecodeError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let mut value = value;
    read_like_jsonpb(desc, &mut value)?;
    let options = DeserializeOptions::new().deny_unknown_fields(false);
    let message = DynamicMessage::deserialize_with_options(desc.clone(), value, &options)
        .map_err(|e| DecodeError(e.to_string()))?;
    Ok(message.encode_to_vec())
}

/// Reads `value` as jsonpb reads a `desc` message before prost-reflect maps it, so that
/// what jsonpb refuses is refused in its words (`json: cannot unmarshal bool into Go
/// value of type int64`) and what it takes is taken:
/// - fields are checked in their declaration order (jsonpb's, so the first error named
///   is the same), the oneof members last; unknown fields and nulls are skipped;
/// - a JSON kind that does not fit a field's Go type is encoding/json's type error;
/// - numbers, quoted or not, must fit their integer type (`number 1.5 into … int64`),
///   and a quoted one is read as the JSON inside the quotes, as jsonpb strips them;
/// - an enum's name must be one it has (prost-reflect ignores one it does not know when
///   unknown fields are ignored, which would turn a typo into the default);
/// - a bytes field given an array of numbers takes them as its bytes, as Go's decoder
///   does (rewritten to base64 here, the form prost-reflect reads).
fn read_like_jsonpb(
    desc: &MessageDescriptor,
    value: &mut serde_json::Value,
) -> Result<(), DecodeError> {
    let serde_json::Value::Object(fields) = value else {
        return Err(type_error(value, "map[string]json.RawMessage"));
    };
    let (plain, oneofs): (Vec<_>, Vec<_>) =
        desc.fields().partition(|field| field.containing_oneof().is_none());
    for field in plain.into_iter().chain(oneofs) {
        let name = if fields.contains_key(field.name()) { field.name() } else { field.json_name() };
        let Some(value) = fields.get_mut(name) else { continue };
        if value.is_null() || field.is_map() {
            continue;
        }
        if field.is_list() {
            let serde_json::Value::Array(items) = value else {
                return Err(type_error(value, "[]json.RawMessage"));
            };
            for item in items.iter_mut().filter(|item| !item.is_null()) {
                read_one_like_jsonpb(&field.kind(), item)?;
            }
        } else {
            read_one_like_jsonpb(&field.kind(), value)?;
        }
    }
    Ok(())
}

/// One value of a field of `kind` (see [`read_like_jsonpb`]).
fn read_one_like_jsonpb(kind: &Kind, value: &mut serde_json::Value) -> Result<(), DecodeError> {
    use serde_json::Value;
    match kind {
        Kind::Message(message) => read_like_jsonpb(message, value),
        Kind::Enum(enum_desc) => {
            let go_type = go_type_name(enum_desc.full_name(), enum_desc.package_name());
            match value {
                Value::String(given) if enum_desc.get_value_by_name(given).is_none() => {
                    Err(DecodeError(format!("unknown value {} for enum {go_type}", string(given))))
                }
                Value::String(_) => Ok(()),
                Value::Number(number) => fits_integer(number, i32::MIN.into(), i32::MAX.into())
                    .ok_or_else(|| number_error(number, &go_type)),
                other => Err(type_error(other, &go_type)),
            }
        }
        Kind::Bytes => match value {
            Value::String(_) => Ok(()),
            Value::Array(items) => {
                let bytes = items
                    .iter()
                    .map(|item| match item {
                        Value::Number(n) => n
                            .as_u64()
                            .and_then(|b| u8::try_from(b).ok())
                            .ok_or_else(|| number_error(n, "uint8")),
                        other => Err(type_error(other, "uint8")),
                    })
                    .collect::<Result<Vec<u8>, _>>()?;
                *value = Value::String(BASE64_STANDARD.encode(bytes));
                Ok(())
            }
            other => Err(type_error(other, "[]uint8")),
        },
        Kind::String => match value {
            Value::String(_) => Ok(()),
            other => Err(type_error(other, "string")),
        },
        Kind::Bool => match value {
            Value::Bool(_) => Ok(()),
            other => Err(type_error(other, "bool")),
        },
        integer => {
            let (go_type, min, max): (&str, i128, i128) = match integer {
                Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
                    ("int64", i64::MIN.into(), i64::MAX.into())
                }
                Kind::Uint64 | Kind::Fixed64 => ("uint64", 0, u64::MAX.into()),
                Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
                    ("int32", i32::MIN.into(), i32::MAX.into())
                }
                Kind::Uint32 | Kind::Fixed32 => ("uint32", 0, u32::MAX.into()),
                // Floats: etcd's messages have none; prost-reflect reads them as jsonpb.
                _ => return Ok(()),
            };
            let number = match value {
                Value::Number(number) => number.clone(),
                // jsonpb drops the quotes and reads what is inside as JSON.
                Value::String(quoted) => match serde_json::from_str::<Value>(quoted) {
                    Ok(Value::Number(number)) => number,
                    Ok(other) => return Err(type_error(&other, go_type)),
                    Err(e) => return Err(go_syntax_error(quoted, &e)),
                },
                other => return Err(type_error(other, go_type)),
            };
            fits_integer(&number, min, max).ok_or_else(|| number_error(&number, go_type))
        }
    }
}

/// `Some(())` if `number` is an integer within `min..=max`.
fn fits_integer(number: &serde_json::Number, min: i128, max: i128) -> Option<()> {
    let n = number.as_i128()?;
    (min..=max).contains(&n).then_some(())
}

/// encoding/json's `UnmarshalTypeError` for a JSON value of the wrong kind.
fn type_error(value: &serde_json::Value, go_type: &str) -> DecodeError {
    let kind = match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    };
    DecodeError(format!("json: cannot unmarshal {kind} into Go value of type {go_type}"))
}

/// encoding/json's error for a number its integer type cannot hold.
fn number_error(number: &serde_json::Number, go_type: &str) -> DecodeError {
    DecodeError(format!("json: cannot unmarshal number {number} into Go value of type {go_type}"))
}

/// encoding/json's syntax error for `text` that is not JSON (what jsonpb reports for a
/// quoted integer that is not a number).
fn go_syntax_error(text: &str, error: &serde_json::Error) -> DecodeError {
    match text.trim_start().chars().next() {
        None => DecodeError("unexpected end of JSON input".to_string()),
        Some(first) if error.column() <= 1 => DecodeError(format!(
            "invalid character {} looking for beginning of value",
            go_char(first)
        )),
        Some(_) => syntax_error(error),
    }
}

/// A character as Go's JSON errors quote it (`'x'`, `'\''`).
fn go_char(c: char) -> String {
    if c == '\'' { r"'\''".to_string() } else { format!("'{c}'") }
}

/// A proto type's name as golang/protobuf names its Go type: the package, then the
/// nested names joined by `_` (`etcdserverpb.RangeRequest_SortOrder`).
fn go_type_name(full_name: &str, package: &str) -> String {
    let nested = full_name.strip_prefix(package).map_or(full_name, |n| n.trim_start_matches('.'));
    format!("{package}.{}", nested.replace('.', "_"))
}

/// An encoded `desc` message (a gRPC answer) as grpc-gateway's JSON.
pub(super) fn from_proto(desc: &MessageDescriptor, encoded: &[u8]) -> Result<Vec<u8>, Status> {
    let message = DynamicMessage::decode(desc.clone(), encoded)
        .map_err(|e| Status::internal(format!("gateway: bad answer: {e}")))?;
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(true)
        .stringify_64_bit_integers(true)
        .use_enum_numbers(false);
    let mut out = Vec::with_capacity(encoded.len() * 2);
    let mut serializer = serde_json::Serializer::new(&mut out);
    message
        .serialize_with_options(&mut serializer, &options)
        .map_err(|e| Status::internal(format!("gateway: unmappable answer: {e}")))?;
    Ok(go_escaped(out))
}

/// Go's `encoding/json` escapes `<`, `>`, `&`, U+2028 and U+2029 in strings; they
/// only ever appear inside strings in JSON, so the whole text can be rewritten.
pub(super) fn go_escaped(json: Vec<u8>) -> Vec<u8> {
    let needs = json.iter().any(|b| matches!(b, b'<' | b'>' | b'&' | 0xe2));
    if !needs {
        return json;
    }
    let mut out = Vec::with_capacity(json.len() + 16);
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'<' => out.extend_from_slice(b"\\u003c"),
            b'>' => out.extend_from_slice(b"\\u003e"),
            b'&' => out.extend_from_slice(b"\\u0026"),
            // U+2028 and U+2029 are e2 80 a8 and e2 80 a9 in UTF-8.
            0xe2 if json.get(i + 1) == Some(&0x80)
                && matches!(json.get(i + 2), Some(0xa8 | 0xa9)) =>
            {
                let last = if json[i + 2] == 0xa8 { b'8' } else { b'9' };
                out.extend_from_slice(b"\\u202");
                out.push(last);
                i += 3;
                continue;
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// A JSON string literal, as Go writes it.
fn string(text: &str) -> String {
    let quoted = serde_json::to_vec(text).unwrap_or_else(|_| b"\"\"".to_vec());
    String::from_utf8(go_escaped(quoted)).unwrap_or_default()
}

/// grpc-gateway's error body for a failed call: `{"error","message","code"}`.
pub(super) fn error_body(status: &Status) -> Vec<u8> {
    let message = string(status.message());
    format!(r#"{{"error":{message},"message":{message},"code":{}}}"#, status.code() as i32)
        .into_bytes()
}

/// grpc-gateway's chunk for a stream that fails after it started:
/// `{"error":{"grpc_code","http_code","message","http_status"}}`, defaults left out.
pub(super) fn stream_error_chunk(status: &Status) -> Vec<u8> {
    let http = http_status(status.code());
    let mut fields = vec![
        format!(r#""grpc_code":{}"#, status.code() as i32),
        format!(r#""http_code":{}"#, http.as_u16()),
    ];
    if !status.message().is_empty() {
        fields.push(format!(r#""message":{}"#, string(status.message())));
    }
    fields.push(format!(r#""http_status":{}"#, string(http.canonical_reason().unwrap_or(""))));
    format!(r#"{{"error":{{{}}}}}"#, fields.join(",")).into_bytes()
}

/// The HTTP status grpc-gateway answers a gRPC code with (`HTTPStatusFromCode`).
pub(super) fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use oxetcd_api::etcdserverpb::{PutRequest, RangeResponse, ResponseHeader, WatchRequest};
    use oxetcd_api::mvccpb::KeyValue;

    fn desc(name: &str) -> MessageDescriptor {
        POOL.get_message_by_name(name).unwrap()
    }

    /// Bodies of the wrong types, and what etcd 3.4.23's gateway answered each with
    /// (recorded with curl; `a quoted integer` is read as the JSON inside its quotes).
    #[test]
    fn wrong_types_are_refused_in_encoding_jsons_words() {
        let cases = [
            (
                "RangeRequest",
                r#"{"key":5}"#,
                "json: cannot unmarshal number into Go value of type []uint8",
            ),
            (
                "RangeRequest",
                r#"{"key":true}"#,
                "json: cannot unmarshal bool into Go value of type []uint8",
            ),
            (
                "RangeRequest",
                r#"{"key":{}}"#,
                "json: cannot unmarshal object into Go value of type []uint8",
            ),
            (
                "RangeRequest",
                r#"{"key":"YQ==","limit":true}"#,
                "json: cannot unmarshal bool into Go value of type int64",
            ),
            (
                "RangeRequest",
                r#"{"key":"YQ==","limit":"x"}"#,
                "invalid character 'x' looking for beginning of value",
            ),
            (
                "RangeRequest",
                r#"{"key":"YQ==","limit":1.5}"#,
                "json: cannot unmarshal number 1.5 into Go value of type int64",
            ),
            (
                "RangeRequest",
                r#"{"key":"YQ==","limit":{}}"#,
                "json: cannot unmarshal object into Go value of type int64",
            ),
            (
                "RangeRequest",
                r#"{"key":"YQ==","serializable":"true"}"#,
                "json: cannot unmarshal string into Go value of type bool",
            ),
            (
                "RangeRequest",
                r#"{"key":"YQ==","serializable":1}"#,
                "json: cannot unmarshal number into Go value of type bool",
            ),
            (
                "RangeRequest",
                r#"{"key":"YQ==","sort_order":true}"#,
                "json: cannot unmarshal bool into Go value of type etcdserverpb.RangeRequest_SortOrder",
            ),
            (
                "RangeRequest",
                r#"{"key":"YQ==","sort_order":1.5}"#,
                "json: cannot unmarshal number 1.5 into Go value of type etcdserverpb.RangeRequest_SortOrder",
            ),
            (
                "RangeRequest",
                "5",
                "json: cannot unmarshal number into Go value of type map[string]json.RawMessage",
            ),
            (
                "RangeRequest",
                "[]",
                "json: cannot unmarshal array into Go value of type map[string]json.RawMessage",
            ),
            (
                "RangeRequest",
                r#""x""#,
                "json: cannot unmarshal string into Go value of type map[string]json.RawMessage",
            ),
            // Declaration order, not the body's: key (1) before limit (3) and range_end (2).
            (
                "RangeRequest",
                r#"{"limit":true,"key":5}"#,
                "json: cannot unmarshal number into Go value of type []uint8",
            ),
            (
                "RangeRequest",
                r#"{"range_end":5,"key":true}"#,
                "json: cannot unmarshal bool into Go value of type []uint8",
            ),
            (
                "TxnRequest",
                r#"{"compare":5}"#,
                "json: cannot unmarshal number into Go value of type []json.RawMessage",
            ),
            (
                "TxnRequest",
                r#"{"compare":{}}"#,
                "json: cannot unmarshal object into Go value of type []json.RawMessage",
            ),
            (
                "TxnRequest",
                r#"{"compare":[5]}"#,
                "json: cannot unmarshal number into Go value of type map[string]json.RawMessage",
            ),
            (
                "TxnRequest",
                r#"{"success":[{"request_put":5}]}"#,
                "json: cannot unmarshal number into Go value of type map[string]json.RawMessage",
            ),
            (
                "TxnRequest",
                r#"{"success":[{"requestPut":{"key":1}}]}"#,
                "json: cannot unmarshal number into Go value of type []uint8",
            ),
            (
                "LeaseGrantRequest",
                r#"{"TTL":"abc"}"#,
                "invalid character 'a' looking for beginning of value",
            ),
            (
                "LeaseGrantRequest",
                r#"{"ID":-1.5}"#,
                "json: cannot unmarshal number -1.5 into Go value of type int64",
            ),
            (
                "AuthUserAddRequest",
                r#"{"name":5}"#,
                "json: cannot unmarshal number into Go value of type string",
            ),
            (
                "AuthUserAddRequest",
                r#"{"name":"a","options":5}"#,
                "json: cannot unmarshal number into Go value of type map[string]json.RawMessage",
            ),
            (
                "AuthUserAddRequest",
                r#"{"name":"a","options":{"no_password":"yes"}}"#,
                "json: cannot unmarshal string into Go value of type bool",
            ),
        ];
        for (message, body, etcd) in cases {
            let name = format!("etcdserverpb.{message}");
            let got = to_proto(&desc(&name), first_value(body.as_bytes()).unwrap());
            assert_eq!(got.map_err(|e| e.0).unwrap_err(), etcd, "{message} {body}");
        }
        // What jsonpb takes: nulls, a quoted integer, a bytes field as an array of numbers.
        let taken = |message: &str, body: &str| {
            let desc = desc(&format!("etcdserverpb.{message}"));
            let encoded = to_proto(&desc, first_value(body.as_bytes()).unwrap()).unwrap();
            DynamicMessage::decode(desc, encoded.as_slice()).unwrap()
        };
        assert_eq!(taken("RangeRequest", r#"{"key":null,"limit":null}"#).encode_to_vec(), b"");
        let range = taken("RangeRequest", r#"{"key":[97,98],"limit":"-5"}"#);
        assert_eq!(range.get_field_by_name("key").unwrap().as_bytes().unwrap().as_ref(), b"ab");
        assert_eq!(range.get_field_by_name("limit").unwrap().as_i64(), Some(-5));
        let refused = |body: &str| {
            to_proto(&desc("etcdserverpb.RangeRequest"), first_value(body.as_bytes()).unwrap())
                .unwrap_err()
                .0
        };
        assert_eq!(
            refused(r#"{"key":[300]}"#),
            "json: cannot unmarshal number 300 into Go value of type uint8"
        );
        assert_eq!(
            refused(r#"{"key":["a"]}"#),
            "json: cannot unmarshal string into Go value of type uint8"
        );
    }

    #[test]
    fn an_enum_name_that_does_not_exist_is_refused_in_jsonpbs_words() {
        let refused = |name: &str, json: &[u8]| {
            to_proto(&desc(name), first_value(json).unwrap()).unwrap_err().0
        };
        assert_eq!(
            refused("etcdserverpb.RangeRequest", br#"{"key":"YQ==","sort_order":"SIDEWAYS"}"#),
            r#"unknown value "SIDEWAYS" for enum etcdserverpb.RangeRequest_SortOrder"#
        );
        // Nested: a txn's compare, and a range inside a txn's ops (lowerCamel names).
        assert_eq!(
            refused("etcdserverpb.TxnRequest", br#"{"compare":[{"key":"YQ==","target":"COLOR"}]}"#),
            r#"unknown value "COLOR" for enum etcdserverpb.Compare_CompareTarget"#
        );
        assert_eq!(
            refused(
                "etcdserverpb.TxnRequest",
                br#"{"success":[{"requestRange":{"key":"YQ==","sortTarget":"SIZE"}}]}"#
            ),
            r#"unknown value "SIZE" for enum etcdserverpb.RangeRequest_SortTarget"#
        );
        let known = br#"{"key":"YQ==","sort_order":"DESCEND","sort_target":2,"bogus":"X"}"#;
        to_proto(&desc("etcdserverpb.RangeRequest"), first_value(known).unwrap()).unwrap();
    }

    #[test]
    fn requests_read_proto_names_json_names_base64_and_ignore_unknown_fields() {
        let json = br#"{"key":"Zm9v","value":"YmFy","prevKv":true,"lease":"7","bogus":1} trailing"#;
        let encoded =
            to_proto(&desc("etcdserverpb.PutRequest"), first_value(json).unwrap()).unwrap();
        let put = PutRequest::decode(encoded.as_slice()).unwrap();
        assert_eq!(put.key, Bytes::from_static(b"foo"));
        assert_eq!(put.value, Bytes::from_static(b"bar"));
        assert!(put.prev_kv);
        assert_eq!(put.lease, 7);
        assert!(first_value(b" \n").unwrap().is_none(), "an empty body is an empty request");
        assert_eq!(first_value(br#"{"key":"Zm9v","#).unwrap_err().0, "unexpected EOF");
        let watch = to_proto(
            &desc("etcdserverpb.WatchRequest"),
            first_value(br#"{"create_request":{"key":"Zm9v","start_revision":1}}"#).unwrap(),
        )
        .unwrap();
        let watch = WatchRequest::decode(watch.as_slice()).unwrap();
        assert!(watch.request_union.is_some());
    }

    #[test]
    fn answers_are_written_as_etcds_gateway_writes_them() {
        let response = RangeResponse {
            header: Some(ResponseHeader {
                cluster_id: 15118495548433857066,
                member_id: 13668033151171901709,
                revision: 2,
                raft_term: 2,
            }),
            kvs: vec![KeyValue {
                key: Bytes::from_static(b"foo"),
                create_revision: 2,
                mod_revision: 2,
                version: 1,
                value: Bytes::from_static(b"bar"),
                lease: 0,
            }],
            more: false,
            count: 1,
        };
        let json =
            from_proto(&desc("etcdserverpb.RangeResponse"), &response.encode_to_vec()).unwrap();
        // etcd 3.4.23's answer, byte for byte.
        assert_eq!(
            String::from_utf8(json).unwrap(),
            r#"{"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709","revision":"2","raft_term":"2"},"kvs":[{"key":"Zm9v","create_revision":"2","mod_revision":"2","version":"1","value":"YmFy"}],"count":"1"}"#
        );
    }

    #[test]
    fn errors_are_grpc_gateways_bodies() {
        let status = Status::invalid_argument("etcdserver: key is not provided");
        assert_eq!(
            String::from_utf8(error_body(&status)).unwrap(),
            r#"{"error":"etcdserver: key is not provided","message":"etcdserver: key is not provided","code":3}"#
        );
        assert_eq!(
            String::from_utf8(stream_error_chunk(&Status::unavailable("a <b> & c"))).unwrap(),
            r#"{"error":{"grpc_code":14,"http_code":503,"message":"a \u003cb\u003e \u0026 c","http_status":"Service Unavailable"}}"#
        );
        assert_eq!(go_escaped("x\u{2028}y\u{2029}".as_bytes().to_vec()), b"x\\u2028y\\u2029");
    }
}
