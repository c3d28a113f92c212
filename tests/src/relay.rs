//! A TCP relay that can go silent: it forwards bytes between its clients and a target
//! until [`Relay::freeze`], after which the connections it already has stay open but carry
//! nothing in either direction, as when a peer vanishes without a FIN or RST (a pulled
//! cable, a dropped NAT entry). Connections accepted after the freeze relay normally.
//! Everything stops when the relay is dropped.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// See the module docs.
pub struct Relay {
    addr: SocketAddr,
    /// Connections accepted before this generation are frozen.
    frozen_below: Arc<AtomicU64>,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Relay {
    /// Listens on 127.0.0.1 (a free port) and relays to `target`.
    pub async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("relay bind");
        let addr = listener.local_addr().expect("relay address");
        let frozen_below = Arc::new(AtomicU64::new(0));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (fb, acc) = (frozen_below.clone(), accepted.clone());
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            let mut generation = 0u64;
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = TcpStream::connect(target).await else {
                    continue;
                };
                generation += 1;
                acc.fetch_add(1, Ordering::SeqCst);
                let (a, b) = (inbound.into_split(), outbound.into_split());
                let (g, fb1, fb2) = (generation, fb.clone(), fb.clone());
                conns.spawn(pump(a.0, b.1, g, fb1));
                conns.spawn(pump(b.0, a.1, g, fb2));
            }
        });
        Relay {
            addr,
            frozen_below,
            accepted,
            task,
        }
    }

    /// `redis://` URL of the relay.
    pub fn redis_url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Silences every connection accepted so far.
    pub fn freeze(&self) {
        self.frozen_below
            .store(self.accepted() as u64 + 1, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("addr", &self.addr)
            .field("accepted", &self.accepted())
            .finish()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every pump.
        self.task.abort();
    }
}

/// Copies `from` to `to` until either side closes; once `generation` is frozen, reads
/// stop and the sockets are held open, silent.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    generation: u64,
    frozen_below: Arc<AtomicU64>,
) {
    let frozen = || generation < frozen_below.load(Ordering::SeqCst);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = wait_until(&frozen) => break,
        };
        if frozen() {
            break;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
    // Frozen: keep both halves open and say nothing, until the relay is dropped.
    std::future::pending::<()>().await;
}

async fn wait_until(cond: &impl Fn() -> bool) {
    while !cond() {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
