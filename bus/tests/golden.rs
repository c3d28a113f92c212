//! Golden bytes of zbus v1 (as Go zbus v1.0.1 with vmihailenco/msgpack v4 writes them; see
//! docs/protocol.md, "Golden bytes"), checked in both directions:
//! our encoders produce exactly these bytes, and our decoders read them into the expected
//! values. The vectors are the call `calculator@1.0` `Add(1.0, 2.0)` on module `server`.

use imagebus_bus::codec::{decode, decode_arg, decode_data, encode, encode_go, encode_reply};
use imagebus_bus::object::Reply;
use imagebus_bus::protocol::{
    CallError, ObjectId, Output, Request, Response, Status, Timestamp, WorkerStatus,
};
use serde::Serialize;
use serde_bytes::ByteBuf;

const ID: &str = "9b2f7c9e-0d3a-4c1e-8f5b-2a6d4e8c1f00";

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// msgpack fixstr / str8 of `s`, to write vectors readably.
fn s(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    rmp::encode::write_str(&mut out, text).unwrap();
    out
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn request(inputs: Vec<ByteBuf>) -> Request {
    Request {
        id: ID.into(),
        inputs,
        object: ObjectId::new("calculator", "1.0"),
        reply_to: ID.into(),
        method: "Add".into(),
        deadline: None,
    }
}

fn response(data: Vec<u8>, call_error: Option<&str>, error: Option<&str>) -> Response {
    Response {
        id: ID.into(),
        output: Output {
            data: ByteBuf::from(data),
            error: call_error.map(|m| CallError {
                message: m.into(),
                code: None,
            }),
        },
        error: error.map(Into::into),
        code: None,
    }
}

/// The 55-byte prefix `83 a2"ID" d9 24<id> a6"Output" 82 a4"Data"` of every response.
fn prefix() -> Vec<u8> {
    let p = cat(&[&[0x83], &s("ID"), &s(ID), &s("Output"), &[0x82], &s("Data")]);
    assert_eq!(p.len(), 55);
    p
}

/// Go's Response as Go builds it: `Data` may be a nil slice (`c0`), which our own
/// [`Response`] never sends (we always send a bin), so the Go side is mirrored here.
#[derive(Serialize)]
struct GoResponse {
    #[serde(rename = "ID")]
    id: &'static str,
    #[serde(rename = "Output")]
    output: GoOutput,
    #[serde(rename = "Error")]
    error: Option<&'static str>,
}

#[derive(Serialize)]
struct GoOutput {
    #[serde(rename = "Data")]
    data: Option<ByteBuf>,
    #[serde(rename = "Error")]
    error: Option<CallError>,
}

const REQUEST_HEX: &str = "85a24944d92439623266376339652d306433612d346331652d386635622d326136643465386331663030a6496e7075747392c409cb3ff0000000000000c409cb4000000000000000a64f626a65637482a44e616d65aa63616c63756c61746f72a756657273696f6ea3312e30a75265706c79546fd92439623266376339652d306433612d346331652d386635622d326136643465386331663030a64d6574686f64a3416464";

const RESPONSE_OK_HEX: &str = "83a24944d92439623266376339652d306433612d346331652d386635622d326136643465386331663030a64f757470757482a444617461c409cb4008000000000000a54572726f72c0a54572726f72c0";

#[test]
fn request_with_float_args_is_identical_from_go_and_rbus() {
    let golden = hex(REQUEST_HEX);
    assert_eq!(golden.len(), 165);
    let args = vec![
        ByteBuf::from(encode(&1.0f64).unwrap()),
        ByteBuf::from(encode(&2.0f64).unwrap()),
    ];
    let req = request(args);
    assert_eq!(encode(&req).unwrap(), golden, "compact encoder");
    assert_eq!(encode_go(&req).unwrap(), golden, "Go-exact encoder");
    let back: Request = decode(&golden).unwrap();
    assert_eq!(back, req);
    assert_eq!(decode_arg::<f64>(&back.inputs, 0).unwrap(), 1.0);
    assert_eq!(decode_arg::<f64>(&back.inputs, 1).unwrap(), 2.0);
}

#[test]
fn request_with_go_int_args_uses_d3_and_decodes_into_any_number() {
    let one = hex("d3 0000000000000001");
    let two = hex("d3 0000000000000002");
    assert_eq!(encode_go(&1i64).unwrap(), one);
    let golden = hex(&REQUEST_HEX.replace(
        "c409cb3ff0000000000000c409cb4000000000000000",
        "c409d30000000000000001c409d30000000000000002",
    ));
    let req = request(vec![ByteBuf::from(one), ByteBuf::from(two)]);
    let args = vec![
        encode_go(&1i64).unwrap().into(),
        encode_go(&2i64).unwrap().into(),
    ];
    assert_eq!(encode_go(&request(args)).unwrap(), golden);
    let back: Request = decode(&golden).unwrap();
    assert_eq!(back, req);
    assert_eq!(decode_arg::<i64>(&back.inputs, 0).unwrap(), 1);
    assert_eq!(decode_arg::<u8>(&back.inputs, 1).unwrap(), 2);
    assert_eq!(decode_arg::<f64>(&back.inputs, 1).unwrap(), 2.0);
}

#[test]
fn request_with_rbus_compact_ints() {
    let golden = hex(&REQUEST_HEX.replace(
        "c409cb3ff0000000000000c409cb4000000000000000",
        "c40101c40102",
    ));
    let req = request(vec![
        encode(&1i64).unwrap().into(),
        encode(&2i64).unwrap().into(),
    ]);
    assert_eq!(encode(&req).unwrap(), golden);
    let back: Request = decode(&golden).unwrap();
    assert_eq!(decode_arg::<i64>(&back.inputs, 0).unwrap(), 1);
    assert_eq!(decode_arg::<f64>(&back.inputs, 1).unwrap(), 2.0);
}

#[test]
fn request_inputs_nil_decodes_as_empty_and_deadline_round_trips() {
    let golden = hex(&REQUEST_HEX.replace("92c409cb3ff0000000000000c409cb4000000000000000", "c0"));
    let back: Request = decode(&golden).unwrap();
    assert!(back.inputs.is_empty());

    let mut req = request(vec![]);
    req.deadline = Some(1_700_000_000_000);
    let bytes = encode(&req).unwrap();
    assert_eq!(bytes[0], 0x86, "Deadline adds a sixth key");
    assert!(bytes.windows(8).any(|w| w == b"Deadline"));
    assert_eq!(decode::<Request>(&bytes).unwrap(), req);
}

#[test]
fn response_ok_is_identical_from_go_and_rbus() {
    let golden = hex(RESPONSE_OK_HEX);
    assert_eq!(golden.len(), 80);
    let data = match encode_reply(Ok(3.0f64)) {
        Reply::Value(v) => v,
        other => panic!("unexpected {other:?}"),
    };
    let resp = response(data, None, None);
    assert_eq!(encode(&resp).unwrap(), golden);
    assert_eq!(encode_go(&resp).unwrap(), golden);
    let back: Response = decode(&golden).unwrap();
    assert_eq!(back, resp);
    assert_eq!(decode_data::<f64>(&back.output.data).unwrap(), 3.0);
}

fn call_error_tail() -> Vec<u8> {
    cat(&[
        &s("Error"),
        &[0x81],
        &s("Message"),
        &s("division by zero"),
        &s("Error"),
        &[0xc0],
    ])
}

#[test]
fn call_error_from_go_keeps_data() {
    let golden = cat(&[
        &prefix(),
        &hex("c409cb0000000000000000"),
        &call_error_tail(),
    ]);
    let resp = response(encode(&0.0f64).unwrap(), Some("division by zero"), None);
    assert_eq!(encode(&resp).unwrap(), golden);
    assert_eq!(encode_go(&resp).unwrap(), golden);
    assert_eq!(decode::<Response>(&golden).unwrap(), resp);
}

#[test]
fn call_error_from_rbus_has_empty_data() {
    let golden = cat(&[&prefix(), &hex("c400"), &call_error_tail()]);
    let resp = response(vec![], Some("division by zero"), None);
    assert_eq!(encode(&resp).unwrap(), golden);
    let back: Response = decode(&golden).unwrap();
    assert_eq!(back, resp);
    assert_eq!(back.output.error.unwrap().code, None);
}

#[test]
fn protocol_error_from_go_has_nil_data() {
    let golden = cat(&[
        &prefix(),
        &[0xc0],
        &s("Error"),
        &[0xc0],
        &s("Error"),
        &s("unknown object"),
    ]);
    let go = GoResponse {
        id: ID,
        output: GoOutput {
            data: None,
            error: None,
        },
        error: Some("unknown object"),
    };
    assert_eq!(encode_go(&go).unwrap(), golden);
    let back: Response = decode(&golden).unwrap();
    assert_eq!(back, response(vec![], None, Some("unknown object")));
    decode_data::<()>(&back.output.data).unwrap();
}

#[test]
fn protocol_error_from_rbus() {
    let golden = cat(&[
        &prefix(),
        &hex("c400"),
        &s("Error"),
        &[0xc0],
        &s("Error"),
        &s("unknown method 'Nope'"),
    ]);
    let resp = response(vec![], None, Some("unknown method 'Nope'"));
    assert_eq!(encode(&resp).unwrap(), golden);
    assert_eq!(decode::<Response>(&golden).unwrap(), resp);
}

#[test]
fn error_only_success_from_go_has_nil_data() {
    let golden = cat(&[
        &prefix(),
        &[0xc0],
        &s("Error"),
        &[0xc0],
        &s("Error"),
        &[0xc0],
    ]);
    let go = GoResponse {
        id: ID,
        output: GoOutput {
            data: None,
            error: None,
        },
        error: None,
    };
    assert_eq!(encode_go(&go).unwrap(), golden);
    let back: Response = decode(&golden).unwrap();
    assert_eq!(back, response(vec![], None, None));
    decode_data::<()>(&back.output.data).unwrap();
    assert_eq!(
        decode_data::<Option<String>>(&back.output.data).unwrap(),
        None
    );
}

#[test]
fn multi_return_is_an_array() {
    let data = hex("92 cb4008000000000000 cbbff0000000000000");
    assert_eq!(encode(&(3.0f64, -1.0f64)).unwrap(), data);
    assert_eq!(encode_go(&(3.0f64, -1.0f64)).unwrap(), data);
    let golden = cat(&[
        &prefix(),
        &[0xc4, 0x13],
        &data,
        &s("Error"),
        &[0xc0],
        &s("Error"),
        &[0xc0],
    ]);
    let resp = response(data.clone(), None, None);
    assert_eq!(encode(&resp).unwrap(), golden);
    let back: Response = decode(&golden).unwrap();
    assert_eq!(
        decode_data::<(f64, f64)>(&back.output.data).unwrap(),
        (3.0, -1.0)
    );
}

#[test]
fn unit_result_is_bin_holding_nil() {
    let golden = cat(&[
        &prefix(),
        &hex("c401c0"),
        &s("Error"),
        &[0xc0],
        &s("Error"),
        &[0xc0],
    ]);
    let Reply::Value(data) = encode_reply(Ok(())) else {
        panic!("Ok(()) is a value")
    };
    let resp = response(data, None, None);
    assert_eq!(encode(&resp).unwrap(), golden);
    let back: Response = decode(&golden).unwrap();
    assert_eq!(back, resp);
    decode_data::<()>(&back.output.data).unwrap();
}

#[test]
fn code_keys_are_appended_and_optional() {
    let mut resp = response(vec![0xc0], Some("gone"), Some("unknown object"));
    resp.code = Some("UnknownObject".into());
    resp.output.error.as_mut().unwrap().code = Some("NotFound".into());
    let bytes = encode(&resp).unwrap();
    assert_eq!(bytes[0], 0x84, "Code adds a fourth top-level key");
    let tail = cat(&[&s("Code"), &s("UnknownObject")]);
    assert!(bytes.ends_with(&tail));
    assert_eq!(decode::<Response>(&bytes).unwrap(), resp);
}

#[test]
fn status_with_go_time() {
    let busy = Timestamp {
        seconds: 1_700_000_000,
        nanos: 5,
    };
    let status = Status {
        objects: vec![ObjectId::new("calculator", "1.0")],
        workers: vec![
            WorkerStatus {
                state: "busy".into(),
                start_time: busy,
                action: "[calculator@1.0].Add()".into(),
            },
            WorkerStatus {
                state: "free".into(),
                start_time: Timestamp::GO_ZERO,
                action: String::new(),
            },
        ],
    };
    let busy_ext = ((5u64 << 34) | 1_700_000_000u64).to_be_bytes();
    let zero_ext = cat(&[&0u32.to_be_bytes(), &(-62_135_596_800i64).to_be_bytes()]);
    let golden = cat(&[
        &[0x82],
        &s("Objects"),
        &[0x91, 0x82],
        &s("Name"),
        &s("calculator"),
        &s("Version"),
        &s("1.0"),
        &s("Workers"),
        &[0x92, 0x83],
        &s("State"),
        &s("busy"),
        &s("StartTime"),
        &[0xd7, 0xff],
        &busy_ext,
        &s("Action"),
        &s("[calculator@1.0].Add()"),
        &[0x83],
        &s("State"),
        &s("free"),
        &s("StartTime"),
        &[0xc7, 0x0c, 0xff],
        &zero_ext,
        &s("Action"),
        &[0xa0],
    ]);
    assert_eq!(encode(&status).unwrap(), golden);
    assert_eq!(encode_go(&status).unwrap(), golden);
    assert_eq!(decode::<Status>(&golden).unwrap(), status);
}

#[test]
fn imagebus_call_error_and_protocol_error_as_sent() {
    let call_error = cat(&[
        &prefix(),
        &hex("c401c0"),
        &s("Error"),
        &[0x82],
        &s("Message"),
        &s("division by zero"),
        &s("Code"),
        &s("InvalidArgument"),
        &s("Error"),
        &[0xc0],
    ]);
    let mut resp = response(vec![0xc0], Some("division by zero"), None);
    resp.output.error.as_mut().unwrap().code = Some("InvalidArgument".into());
    assert_eq!(encode(&resp).unwrap(), call_error);
    assert_eq!(decode::<Response>(&call_error).unwrap(), resp);

    let mut protocol = cat(&[
        &prefix(),
        &hex("c401c0"),
        &s("Error"),
        &[0xc0],
        &s("Error"),
        &s("unknown method 'Nope'"),
        &s("Code"),
        &s("UnknownMethod"),
    ]);
    protocol[0] = 0x84;
    let mut resp = response(vec![0xc0], None, Some("unknown method 'Nope'"));
    resp.code = Some("UnknownMethod".into());
    assert_eq!(encode(&resp).unwrap(), protocol);
    assert_eq!(decode::<Response>(&protocol).unwrap(), resp);
}
