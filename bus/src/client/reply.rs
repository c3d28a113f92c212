//! A response turned into the call's result, with codes for servers that send none.
//! Public (hidden) for the fuzz targets in `fuzz/`; not a stable API.

use crate::codec::NIL;
use crate::error::{ErrorCode, RemoteError};
use crate::protocol::Response;

/// Maps a response to the call's result.
pub fn into_result(response: Response) -> Result<Vec<u8>, RemoteError> {
    if let Some(text) = response.error {
        let code = response
            .code
            .as_deref()
            .and_then(ErrorCode::parse)
            .unwrap_or_else(|| code_from_go_text(&text));
        return Err(RemoteError::new(code, text));
    }
    if let Some(e) = response.output.error {
        let code = e
            .code
            .as_deref()
            .and_then(ErrorCode::parse)
            .unwrap_or(ErrorCode::Internal);
        return Err(RemoteError::new(code, e.message));
    }
    let data = response.output.data.into_vec();
    Ok(if data.is_empty() { vec![NIL] } else { data })
}

/// Codes for protocol errors from servers that send no `Code` (Go zbus, rbus).
fn code_from_go_text(text: &str) -> ErrorCode {
    if text.starts_with("unknown object") {
        ErrorCode::UnknownObject
    } else if text.starts_with("not a function") || text.starts_with("unknown method") {
        ErrorCode::UnknownMethod
    } else if text.starts_with("invalid number of arguments")
        || text.contains("invalid argument type")
        || text.contains("msgpack: invalid code")
    {
        // An argument the Go server could not decode into its parameter's type (e.g. a
        // float64 for a float32 in msgpack v4): the caller's encoding, not a server bug.
        ErrorCode::Decode
    } else {
        ErrorCode::Internal
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{CallError, Output};
    use serde_bytes::ByteBuf;

    fn resp(error: Option<&str>, code: Option<&str>, call: Option<CallError>) -> Response {
        Response {
            id: "x".into(),
            output: Output {
                data: ByteBuf::new(),
                error: call,
            },
            error: error.map(Into::into),
            code: code.map(Into::into),
        }
    }

    #[test]
    fn protocol_errors_map_to_codes() {
        let code = |r| into_result(r).unwrap_err().code;
        assert_eq!(
            code(resp(Some("unknown object"), None, None)),
            ErrorCode::UnknownObject
        );
        assert_eq!(
            code(resp(Some("not a function"), None, None)),
            ErrorCode::UnknownMethod
        );
        assert_eq!(
            code(resp(Some("unknown method 'Nope'"), None, None)),
            ErrorCode::UnknownMethod
        );
        assert_eq!(code(resp(Some("boom"), None, None)), ErrorCode::Internal);
        assert_eq!(
            code(resp(
                Some("invalid argument type: msgpack: invalid code=cb decoding float32"),
                None,
                None
            )),
            ErrorCode::Decode
        );
        assert_eq!(
            code(resp(Some("x"), Some("Decode"), None)),
            ErrorCode::Decode
        );
        let ce = CallError {
            message: "gone".into(),
            code: Some("NotFound".into()),
        };
        let err = into_result(resp(None, None, Some(ce))).unwrap_err();
        assert_eq!(err, RemoteError::not_found("gone"));
        let ce = CallError {
            message: "division by zero".into(),
            code: None,
        };
        assert_eq!(
            into_result(resp(None, None, Some(ce))).unwrap_err().code,
            ErrorCode::Internal
        );
        assert_eq!(into_result(resp(None, None, None)).unwrap(), vec![NIL]);
    }
}
