//! grpc-gateway v1's JSON mapping as etcd 3.4 configures it (`runtime.JSONPb{OrigName:
//! true}` over golang/protobuf 1.3's jsonpb): the proto's own field names, default
//! values left out, 64-bit integers as strings, bytes as standard base64, enums by
//! name; unknown fields are ignored on input. The mapping is prost-reflect's, driven
//! by the descriptors of `oxetcd-api`'s `.proto` files, so no message is mapped by
//! hand. Also the gateway's error bodies.

use std::sync::LazyLock;

use axum::http::StatusCode;
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
    check_enum_names(desc, &value)?;
    let options = DeserializeOptions::new().deny_unknown_fields(false);
    let message = DynamicMessage::deserialize_with_options(desc.clone(), value, &options)
        .map_err(|e| DecodeError(e.to_string()))?;
    Ok(message.encode_to_vec())
}

/// Refuses an enum given by a name it does not have, as jsonpb does (prost-reflect
/// ignores one when unknown fields are ignored, which would turn a typo into the
/// default). Unknown fields are skipped; numbers are taken as they are, as by jsonpb.
fn check_enum_names(
    desc: &MessageDescriptor,
    value: &serde_json::Value,
) -> Result<(), DecodeError> {
    let serde_json::Value::Object(fields) = value else {
        return Ok(());
    };
    for (name, value) in fields {
        let Some(field) =
            desc.get_field_by_name(name).or_else(|| desc.get_field_by_json_name(name))
        else {
            continue;
        };
        if field.is_map() {
            continue;
        }
        let values = match value {
            serde_json::Value::Array(items) if field.is_list() => items.iter().collect(),
            one => vec![one],
        };
        match field.kind() {
            Kind::Enum(enum_desc) => {
                for value in values {
                    if let serde_json::Value::String(given) = value
                        && enum_desc.get_value_by_name(given).is_none()
                    {
                        return Err(DecodeError(format!(
                            "unknown value {} for enum {}",
                            string(given),
                            go_type_name(enum_desc.full_name(), enum_desc.package_name())
                        )));
                    }
                }
            }
            Kind::Message(message_desc) => {
                for value in values {
                    check_enum_names(&message_desc, value)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
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
