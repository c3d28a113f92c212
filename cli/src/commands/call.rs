//! `imagebus call <module> <object@version> <Method> [JSON args…]`.

use crate::args::{CallArgs, Global};
use crate::value::{json_to_msgpack, msgpack_to_json};
use anyhow::Result;
use imagebus_bus::{ObjectId, RemoteError};
use serde_bytes::ByteBuf;

/// Encodes each JSON argument as one input, calls, prints the JSON result.
pub async fn run(g: &Global, a: &CallArgs) -> Result<()> {
    let inputs = encode_args(&a.args)?;
    let client = super::connect(g).await?;
    let object = ObjectId::parse(&a.object);
    let data = client
        .call_raw(&a.module, &object, &a.method, inputs)
        .await?;
    let result = crate::value::decode(&data)
        .map_err(|e| RemoteError::decode(format!("result is not msgpack: {e}")))?;
    crate::output::print_raw_json(&msgpack_to_json(&result), g.json)
}

fn encode_args(args: &[String]) -> Result<Vec<ByteBuf>, RemoteError> {
    args.iter()
        .enumerate()
        .map(|(i, text)| {
            let json: serde_json::Value = serde_json::from_str(text).map_err(|e| {
                RemoteError::invalid_argument(format!(
                    "argument {} is not JSON ({e}); quote strings, e.g. '\"hi\"'",
                    i + 1
                ))
            })?;
            let bytes = json_to_msgpack(&json)
                .map_err(|e| RemoteError::invalid_argument(format!("argument {}: {e}", i + 1)))?;
            Ok(ByteBuf::from(bytes))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_argument_is_one_input() {
        let inputs = encode_args(&["\"hi\"".into(), "{\"id\":3}".into()]).unwrap();
        assert_eq!(inputs.len(), 2);
        assert_eq!(inputs[0].as_ref(), b"\xa2hi");
        let err = encode_args(&["hi".into()]).unwrap_err();
        assert_eq!(err.code, imagebus_bus::ErrorCode::InvalidArgument);
        assert!(err.message.contains("argument 1"), "{}", err.message);
    }
}
