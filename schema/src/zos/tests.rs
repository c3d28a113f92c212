use super::*;
use imagebus_bus::codec::encode_go;
use std::sync::Mutex;

/// One recorded `Exec`: ns, id, timeout, args.
type ExecCall = (String, String, i64, Vec<String>);

/// Records what the server handed to the implementation.
#[derive(Default)]
struct Recorder {
    runs: Mutex<Vec<(String, ZosContainer)>>,
    execs: Mutex<Vec<ExecCall>>,
}

#[imagebus_bus::async_trait]
impl ZosContainerModule for Recorder {
    async fn run(&self, ns: String, data: ZosContainer) -> Result<String, RemoteError> {
        let name = data.name.clone();
        self.runs.lock().unwrap().push((ns, data));
        Ok(name)
    }
    async fn inspect(&self, _ns: String, id: String) -> Result<ZosContainer, RemoteError> {
        Ok(ZosContainer {
            name: id,
            root_fs: "/r".into(),
            ..Default::default()
        })
    }
    async fn delete(&self, _ns: String, _id: String) -> Result<(), RemoteError> {
        Err(RemoteError::not_found("container x not found"))
    }
    async fn list(&self, _ns: String) -> Result<Vec<String>, RemoteError> {
        Ok(vec!["a".into()])
    }
    async fn list_ns(&self) -> Result<Vec<String>, RemoteError> {
        Ok(vec![])
    }
    async fn exec(
        &self,
        ns: String,
        id: String,
        timeout_ns: i64,
        args: Vec<String>,
    ) -> Result<(), RemoteError> {
        self.execs.lock().unwrap().push((ns, id, timeout_ns, args));
        Ok(())
    }
    async fn logs(&self, _ns: String, _id: String) -> Result<String, RemoteError> {
        Ok("l\n".into())
    }
    async fn signal_delete(&self, _ns: String, _id: String) -> Result<(), RemoteError> {
        Ok(())
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn go_container() -> ZosContainer {
    ZosContainer {
        name: "zdb1".into(),
        root_fs: "/var/cache/zdb".into(),
        env: vec!["A=1".into()],
        working_dir: "/".into(),
        network: ZosNetworkInfo {
            namespace: "n1".into(),
        },
        mounts: vec![ZosMountInfo {
            source: "/data".into(),
            target: "/data".into(),
            ..Default::default()
        }],
        entrypoint: "/bin/zdb --port 9900".into(),
        interactive: false,
        cpu: 1,
        memory: 256 << 20,
        logs: vec![],
        stats: vec![],
        elevated: false,
        created_at: Timestamp::GO_ZERO,
        rootfs_propagation: String::new(),
        shutdown_timeout: 3_000_000_000,
    }
}

#[tokio::test]
async fn go_encoded_run_request_dispatches_and_the_reply_is_a_go_string() {
    // The arguments exactly as Go's msgpack v4 writes them.
    let ns = encode_go("tenant").unwrap();
    let data = encode_go(&go_container()).unwrap();
    assert_eq!(hex(&ns), "a674656e616e74");
    // map16 of 16 fields, first key "Name" = "zdb1", then "RootFS".
    assert!(
        hex(&data)
            .starts_with("de0010a44e616d65a47a646231a6526f6f744653ae2f7661722f63616368652f7a6462"),
        "{}",
        hex(&data)
    );
    // Go's fixed-width integers: uint as cf + 8 bytes, time.Duration as d3 + 8 bytes.
    assert!(hex(&data).contains(&format!("a3435055cf{:016x}", 1)), "CPU");
    assert!(
        hex(&data).contains(&format!("a64d656d6f7279cf{:016x}", 256u64 << 20)),
        "Memory"
    );
    assert!(
        hex(&data).contains(&format!(
            "af53687574646f776e54696d656f7574d3{:016x}",
            3_000_000_000u64
        )),
        "ShutdownTimeout"
    );
    // time.Time as the timestamp extension (Go's zero time needs the 12-byte form).
    assert!(
        hex(&data).contains("a9437265617465644174c70cff00000000fffffff1886e0900"),
        "CreatedAt {}",
        hex(&data)
    );

    let rec = Arc::new(Recorder::default());
    let server = ZosContainerModuleServer::new(rec.clone());
    let reply = server
        .dispatch("Run", vec![ByteBuf::from(ns), ByteBuf::from(data)])
        .await
        .unwrap();
    let Reply::Value(bytes) = reply else {
        panic!("error reply: {reply:?}")
    };
    // A Go `ContainerID` (string) decodes from exactly these bytes.
    assert_eq!(bytes, encode_go("zdb1").unwrap());
    let runs = rec.runs.lock().unwrap();
    assert_eq!(runs[0], ("tenant".to_string(), go_container()));
}

#[tokio::test]
async fn variadic_exec_nil_slices_and_reply_keys() {
    let rec = Arc::new(Recorder::default());
    let server = ZosContainerModuleServer::new(rec.clone());
    let inputs: Vec<ByteBuf> = [
        encode_go("tenant").unwrap(),
        encode_go("zdb1").unwrap(),
        encode_go(&5_000_000_000i64).unwrap(),
        encode_go("sh").unwrap(),
        encode_go("-c").unwrap(),
        encode_go("echo hi").unwrap(),
    ]
    .into_iter()
    .map(ByteBuf::from)
    .collect();
    assert!(
        matches!(server.dispatch("Exec", inputs).await.unwrap(), Reply::Value(v) if v == [0xc0])
    );
    assert_eq!(
        rec.execs.lock().unwrap()[0],
        (
            "tenant".into(),
            "zdb1".into(),
            5_000_000_000,
            vec!["sh".into(), "-c".into(), "echo hi".into()]
        )
    );
    let short = vec![ByteBuf::from(encode_go("ns").unwrap())];
    assert!(matches!(
        server.dispatch("Exec", short).await,
        Err(DispatchError::Arity {
            expected: 3,
            got: 1
        })
    ));

    // Go writes nil slices as nil.
    let mut m = rmpv::Value::Map(vec![
        (rmpv::Value::from("Name"), rmpv::Value::from("x")),
        (rmpv::Value::from("Env"), rmpv::Value::Nil),
        (rmpv::Value::from("Mounts"), rmpv::Value::Nil),
    ]);
    let mut buf = Vec::new();
    rmpv::encode::write_value(&mut buf, &m).unwrap();
    let c: ZosContainer = imagebus_bus::codec::decode(&buf).unwrap();
    assert!(c.env.is_empty() && c.mounts.is_empty() && c.created_at == Timestamp::GO_ZERO);

    // Inspect's reply is a map keyed by Go's field names, in Go's order.
    let reply = server
        .dispatch(
            "Inspect",
            vec![
                ByteBuf::from(encode_go("t").unwrap()),
                ByteBuf::from(encode_go("x").unwrap()),
            ],
        )
        .await
        .unwrap();
    let Reply::Value(bytes) = reply else { panic!() };
    m = rmpv::decode::read_value(&mut &bytes[..]).unwrap();
    let keys: Vec<String> = m
        .as_map()
        .unwrap()
        .iter()
        .map(|(k, _)| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        keys,
        [
            "Name",
            "RootFS",
            "Env",
            "WorkingDir",
            "Network",
            "Mounts",
            "Entrypoint",
            "Interactive",
            "CPU",
            "Memory",
            "Logs",
            "Stats",
            "Elevated",
            "CreatedAt",
            "RootFsPropagation",
            "ShutdownTimeout"
        ]
    );
    let back: ZosContainer = imagebus_bus::codec::decode(&bytes).unwrap();
    assert_eq!(back.name, "x");

    // Errors travel as call errors with their code.
    let r = server
        .dispatch(
            "Delete",
            vec![
                ByteBuf::from(encode_go("t").unwrap()),
                ByteBuf::from(encode_go("x").unwrap()),
            ],
        )
        .await
        .unwrap();
    assert!(matches!(r, Reply::Error(e) if e.code == imagebus_bus::ErrorCode::NotFound));
    assert!(matches!(
        server.dispatch("Nope", vec![]).await,
        Err(DispatchError::UnknownMethod(_))
    ));
}
