//! Child process of `tests/tests/mount_crash.rs`: runs the real attach and mount actors
//! on `<root>`, creates one nested overlay (loop → image → overlay, two lowers), then
//! starts a second one and freezes inside it right after attach call number `<hang-at>`
//! returned, so the parent can `kill -9` it mid-sequence.
//!
//! Usage: `mount-crash-child <root> <image-a> <image-b> <hang-at>`. Prints one line per
//! milestone on stdout: `mounted <id>`, then `hang <n>`.

use imagebus_bus::RemoteError;
use imagebus_schema::attach::{AttachInfo, AttachModule, AttachSpec};
use imagebus_schema::mount::MountModule;
use imagebus_schema::{Holder, Selector};
use imagebus_tests::mount_stack::{nested, Stack};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The real attach module, except that attach call `hang_at` never returns.
struct Freezing {
    inner: Arc<dyn AttachModule>,
    calls: AtomicUsize,
    hang_at: usize,
}

#[imagebus_bus::async_trait]
impl AttachModule for Freezing {
    async fn attach(
        &self,
        spec: AttachSpec,
        holder: Option<Holder>,
    ) -> Result<AttachInfo, RemoteError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let result = self.inner.attach(spec, holder).await;
        if n == self.hang_at {
            say(&format!("hang {n}"));
            std::future::pending::<()>().await;
        }
        result
    }
    async fn detach(&self, target: Selector, force: bool) -> Result<(), RemoteError> {
        self.inner.detach(target, force).await
    }
    async fn get(&self, target: Selector) -> Result<AttachInfo, RemoteError> {
        self.inner.get(target).await
    }
    async fn list(&self) -> Result<Vec<AttachInfo>, RemoteError> {
        self.inner.list().await
    }
    async fn acquire(&self, target: Selector, holder: Holder) -> Result<AttachInfo, RemoteError> {
        self.inner.acquire(target, holder).await
    }
    async fn release(&self, id: u64, holder: Holder) -> Result<(), RemoteError> {
        self.inner.release(id, holder).await
    }
}

async fn run(args: &[String]) -> Result<(), String> {
    let [root, a, b, hang_at] = args else {
        return Err("usage: mount-crash-child <root> <image-a> <image-b> <hang-at>".into());
    };
    let hang_at: usize = hang_at.parse().map_err(|e| format!("hang-at: {e}"))?;
    let (a, b) = (PathBuf::from(a), PathBuf::from(b));
    let stack = Stack::start_with(root.as_ref(), |attach| {
        Arc::new(Freezing {
            inner: Arc::new(attach),
            calls: AtomicUsize::new(0),
            hang_at,
        })
    })
    .await?;
    let first = stack
        .mount
        .mount(nested(&a, &b), None)
        .await
        .map_err(|e| e.to_string())?;
    say(&format!("mounted {}", first.id));
    let second = stack
        .mount
        .mount(nested(&a, &b), None)
        .await
        .map_err(|e| e.to_string())?;
    Err(format!(
        "the second mount ({}) should have frozen",
        second.id
    ))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "mount-crash-child: {e}");
            ExitCode::FAILURE
        }
    }
}
