//! Crash safety of the attach actor on the real kernel: the actor runs in a child process
//! (the `attach-crash-child` binary), is killed with SIGKILL, and a new actor on the same
//! state directory must know every attachment, map nothing twice, drop what vanished, and
//! clean and report orphans.

mod attach_common;

use attach_common::{loop_spec, sys_attr, Child, Env};
use imagebus_schema::attach::AttachModule;
use imagebus_schema::Selector;
use imagebus_sys::loopdev::{LinuxLoopDevices, LoopAttach, LoopDevices};

#[tokio::test]
async fn kill_9_then_restart_reconciles_without_leaks() {
    let env = Env::new("ib-attach-crash-");
    let a = env.image("a.sqsh");
    let b = env.image("b.sqsh");
    let specs = [
        loop_spec(Some("keep"), &a, true),
        loop_spec(Some("lost"), &b, false),
    ];
    let (child, infos) = Child::start(&env.cfg.state_dir, &specs);
    child.kill9();
    assert_eq!(
        env.loops().len(),
        2,
        "attachments must survive the actor's death"
    );

    // While the actor is dead: one device vanishes, and an attach "crashed" after binding
    // but before recording leaves a tagged orphan.
    let lost_number: u32 = infos[1].device.to_str().unwrap()["/dev/loop".len()..]
        .parse()
        .unwrap();
    LinuxLoopDevices.detach(lost_number).unwrap();
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(env.cfg.state_dir.join("attach.json")).unwrap())
            .unwrap();
    let instance = state["data"]["instance"].as_str().unwrap();
    let orphan = LinuxLoopDevices
        .attach(&LoopAttach {
            file: b.clone(),
            read_only: true,
            autoclear: false,
            tag: format!("imagebus-attach:{instance}:999"),
        })
        .unwrap();

    let (attach, report) = env.start().await;
    assert_eq!(report.kept, vec![infos[0].id], "{report}");
    assert_eq!(report.vanished, vec![infos[1].id], "{report}");
    assert_eq!(report.cleaned.len(), 1, "{report}");
    assert!(
        report.cleaned[0].contains(&orphan.device.display().to_string()),
        "{report}"
    );
    assert_eq!(
        sys_attr(&orphan.device, "loop/backing_file"),
        None,
        "orphan still bound"
    );

    // Still known, same device, not mapped twice.
    let kept = attach.get(Selector::Name("keep".into())).await.unwrap();
    assert_eq!(kept.device, infos[0].device);
    assert_eq!(env.loops().len(), 1);
    assert_eq!(attach.list().await.unwrap().len(), 1);
    // Ids continue after the ones the dead actor handed out.
    let next = attach
        .attach(loop_spec(None, &a, true), None)
        .await
        .unwrap();
    assert!(next.id > infos[1].id);

    attach.detach(Selector::Id(next.id), false).await.unwrap();
    attach
        .detach(Selector::Name("keep".into()), false)
        .await
        .unwrap();
    env.assert_clean();
}
