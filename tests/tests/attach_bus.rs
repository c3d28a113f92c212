//! The attach actor served over a real private redis-server: the generated stub reaches the
//! real actor (real loop devices), typed errors keep their codes across the wire, and the
//! stub is usable as `Arc<dyn AttachModule>`.

mod attach_common;

use attach_common::{loop_spec, sys_attr, Env};
use imagebus_bus::{Client, Server};
use imagebus_schema::attach::{AttachModule, AttachModuleServer, AttachModuleStub};
use imagebus_schema::{ErrorCode, Holder, Selector};
use imagebus_tests::redis::RedisFixture;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_over_the_bus_keeps_codes_and_devices() {
    let redis = RedisFixture::start();
    let env = Env::new("ib-attach-bus-");
    let image = env.image("a.sqsh");
    let (handle, _) = env.start().await;
    let mut server = Server::builder(redis.url(), "attach")
        .workers(2)
        .build()
        .await
        .unwrap();
    server
        .register(AttachModuleServer::new(Arc::new(handle)))
        .unwrap();
    let stop = CancellationToken::new();
    let served = tokio::spawn(server.run(stop.clone()));
    // Stop the server even when an assertion fails.
    struct StopOnDrop(CancellationToken);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.cancel();
        }
    }
    let _stop = StopOnDrop(stop.clone());

    let client = Client::connect(redis.url()).await.unwrap();
    let attach: Arc<dyn AttachModule> = Arc::new(AttachModuleStub::new(client));

    let info = attach
        .attach(loop_spec(Some("img"), &image, true), None)
        .await
        .unwrap();
    assert_eq!(info.driver, "loop");
    assert_eq!(
        sys_attr(&info.device, "loop/backing_file"),
        Some(image.display().to_string())
    );
    assert_eq!(
        attach.get(Selector::Name("img".into())).await.unwrap(),
        info
    );

    let err = attach
        .attach(loop_spec(Some("img"), &image, true), None)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict, "{err}");
    let err = attach
        .attach(loop_spec(None, &env.path().join("nope"), true), None)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidArgument, "{err}");
    let err = attach.get(Selector::Id(999)).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound, "{err}");

    attach
        .acquire(Selector::Id(info.id), Holder::Mount(3))
        .await
        .unwrap();
    let err = attach
        .detach(Selector::Id(info.id), false)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict, "{err}");
    attach.release(info.id, Holder::Mount(3)).await.unwrap();
    attach.detach(Selector::Id(info.id), false).await.unwrap();
    assert!(attach.list().await.unwrap().is_empty());
    env.assert_clean();

    stop.cancel();
    served.await.unwrap().unwrap();
}
