//! zos compatibility over a real Redis bus: `container.container@0.0.1` served beside
//! `@1` by the real container actor, called through the typed `ZosContainerModuleStub`
//! and with a request encoded the way Go's msgpack v4 encodes it.

mod container_common;

use container_common::*;
use imagebus_bus::codec::encode_go;
use imagebus_bus::{Client, ErrorCode, ObjectId, Server};
use imagebus_schema::container::{
    ContainerFilter, ContainerModule, ContainerModuleServer, ContainerState,
};
use imagebus_schema::zos::{
    ZosContainer, ZosContainerModule, ZosContainerModuleServer, ZosContainerModuleStub,
    ZosMountInfo, ZosNetworkInfo,
};
use imagebus_schema::Selector;
use imagebus_tests::redis::RedisFixture;
use serde_bytes::ByteBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

struct Served {
    stop: CancellationToken,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn serve(node: &Node, url: &str) -> Served {
    let stop = CancellationToken::new();
    let mut server = Server::builder(url, "container")
        .workers(4)
        .build()
        .await
        .unwrap();
    server
        .register(ContainerModuleServer::new(Arc::new(node.container.clone())))
        .unwrap();
    server
        .register(ZosContainerModuleServer::new(Arc::new(
            node.container.clone(),
        )))
        .unwrap();
    tokio::spawn(server.run(stop.clone()));
    Served { stop }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zos_interface_over_the_bus() {
    let redis = RedisFixture::start();
    let node = Node::start("zos").await;
    let _served = serve(&node, &redis.url()).await;
    let ns = Netns::new();
    let root = node.rootfs("r", &[]);
    let data_dir = node.dir().join("zdbdata");
    std::fs::create_dir_all(&data_dir).unwrap();
    let client = Client::connect(redis.url())
        .await
        .unwrap()
        .with_timeout(Duration::from_secs(30));
    let zos = ZosContainerModuleStub::new(client.clone());

    let data = ZosContainer {
        name: "zdb1".into(),
        root_fs: root.display().to_string(),
        env: vec!["A=1".into()],
        network: ZosNetworkInfo {
            namespace: ns.0.clone(),
        },
        mounts: vec![
            ZosMountInfo {
                source: data_dir.display().to_string(),
                target: "/data".into(),
                ..Default::default()
            },
            // zos's MountInfo before 2019-11: Type and Options, here a read-only bind.
            ZosMountInfo {
                source: data_dir.display().to_string(),
                target: "/ro".into(),
                typ: "bind".into(),
                options: vec!["ro".into()],
            },
        ],
        rootfs_propagation: "rslave".into(),
        entrypoint: "sh -c 'echo zdb-up; if echo x > /ro/x; then echo rw > /data/ro; \
                     else echo ro > /data/ro; fi; echo $A > /data/a; sleep 1000'"
            .into(),
        shutdown_timeout: 500_000_000,
        ..Default::default()
    };
    // Run, encoded exactly as Go encodes it, through the raw client.
    let inputs = vec![
        ByteBuf::from(encode_go("tenant").unwrap()),
        ByteBuf::from(encode_go(&data).unwrap()),
    ];
    let raw = client
        .call_raw(
            "container",
            &ObjectId::new("container", "0.0.1"),
            "Run",
            inputs,
        )
        .await
        .expect("Run");
    assert_eq!(
        raw,
        encode_go("zdb1").unwrap(),
        "a Go ContainerID decodes from these bytes"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(data_dir.join("a")).unwrap_or_default() != "1\n" {
        assert!(
            Instant::now() < deadline,
            "the entrypoint never wrote through the bind mount"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    assert_eq!(
        std::fs::read_to_string(data_dir.join("ro")).unwrap(),
        "ro\n",
        "the mount asked read-only (Options [\"ro\"]) is read-only inside"
    );
    assert!(!data_dir.join("x").exists());
    let inspected = zos.inspect("tenant".into(), "zdb1".into()).await.unwrap();
    assert_eq!(inspected.name, "zdb1");
    assert_eq!(inspected.root_fs, root.display().to_string());
    assert_eq!(inspected.network.namespace, ns.0);
    assert_eq!(inspected.mounts[0], data.mounts[0]);
    assert_eq!(inspected.mounts[1].target, "/ro");
    assert_eq!(inspected.mounts[1].options, ["bind", "rprivate", "ro"]);
    assert_eq!(inspected.rootfs_propagation, "rslave");
    assert_eq!(
        inspected.entrypoint,
        "sh -c echo zdb-up; if echo x > /ro/x; then echo rw > /data/ro; else echo ro > \
         /data/ro; fi; echo $A > /data/a; sleep 1000"
    );
    assert!(inspected.created_at.seconds > 1_700_000_000);
    assert_eq!(zos.list("tenant".into()).await.unwrap(), ["zdb1"]);
    assert!(zos.list("other".into()).await.unwrap().is_empty());
    assert_eq!(zos.list_ns().await.unwrap(), ["tenant"]);
    // Our own interface sees it in its group.
    let ours = ContainerModule::list(
        &node.container,
        ContainerFilter {
            states: vec![],
            group: Some("tenant".into()),
        },
    )
    .await
    .unwrap();
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0].name.as_deref(), Some("tenant.zdb1"));

    zos.exec(
        "tenant".into(),
        "zdb1".into(),
        5_000_000_000,
        vec!["sh".into(), "-c".into(), "exit 0".into()],
    )
    .await
    .expect("exec ok");
    let e = zos
        .exec(
            "tenant".into(),
            "zdb1".into(),
            5_000_000_000,
            vec!["sh".into(), "-c".into(), "exit 3".into()],
        )
        .await
        .unwrap_err();
    assert!(e.message.contains("code 3"), "{e}");
    let e = zos
        .exec(
            "tenant".into(),
            "zdb1".into(),
            200_000_000,
            vec!["sleep".into(), "20".into()],
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::Timeout);
    assert!(e.message.contains("execution timed out"));
    assert!(zos
        .logs("tenant".into(), "zdb1".into())
        .await
        .unwrap()
        .contains("zdb-up"));

    let e = zos
        .inspect("tenant".into(), "nope".into())
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    zos.signal_delete("tenant".into(), "nope".into())
        .await
        .expect("unknown id is a no-op");

    // SignalDelete returns at once; the container stops (SIGKILL after 0.5 s: sh as PID 1
    // ignores SIGTERM).
    zos.signal_delete("tenant".into(), "zdb1".into())
        .await
        .unwrap();
    let id = ours[0].id;
    node.wait_for(id, Duration::from_secs(10), |i| {
        i.state == ContainerState::Exited
    })
    .await;
    zos.delete("tenant".into(), "zdb1".into()).await.unwrap();
    assert_eq!(
        ContainerModule::get(&node.container, Selector::Id(id))
            .await
            .unwrap_err()
            .code,
        ErrorCode::NotFound
    );
    assert!(zos.list("tenant".into()).await.unwrap().is_empty());

    // Required fields, as zos checks them.
    let bad = ZosContainer {
        network: ZosNetworkInfo::default(),
        ..data.clone()
    };
    let e = zos.run("tenant".into(), bad).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(e.message.contains("network namespace"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_and_calls_over_the_bus_with_the_generated_stub() {
    use futures::StreamExt;
    use imagebus_schema::container::{ContainerEvent, ContainerModuleStub, InitialState};
    let redis = RedisFixture::start();
    let node = Node::start("busev").await;
    let _served = serve(&node, &redis.url()).await;
    let root = node.rootfs("r", &[]);
    let client = Client::connect(redis.url())
        .await
        .unwrap()
        .with_timeout(Duration::from_secs(30));
    let mut events =
        client.subscribe::<ContainerEvent>("container", &ObjectId::new("container", "1"), "Events");
    events.ready().await.unwrap();
    let stub = ContainerModuleStub::new(client.clone());
    let mut s = spec(bind_root(&root), "sh -c 'echo over-the-bus; exit 3'");
    s.state = InitialState::Running;
    let info = stub.create(s).await.unwrap();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen
        .iter()
        .any(|e: &ContainerEvent| e.state == ContainerState::Exited)
    {
        match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(ev)) => seen.push(ev),
            _ => panic!("no exited event; saw {seen:?}"),
        }
    }
    let states: Vec<ContainerState> = seen.iter().map(|e| e.state).collect();
    assert_eq!(
        states,
        [
            ContainerState::Created,
            ContainerState::Running,
            ContainerState::Exited
        ]
    );
    assert_eq!(seen[2].exit_code, Some(3));
    assert!(seen.iter().all(|e| e.id == info.id));
    let log = stub
        .logs(Selector::Id(info.id), Default::default())
        .await
        .unwrap();
    assert_eq!(log.data, "over-the-bus\n");
    stub.delete(Selector::Id(info.id), false).await.unwrap();
    let last = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .unwrap()
        .unwrap();
    assert!(last.deleted && last.id == info.id);
    let e = stub.get(Selector::Id(info.id)).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound, "codes survive the bus: {e}");
}
