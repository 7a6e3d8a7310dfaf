//! A TCP proxy in the root namespace for every node-to-node link, so that links can be slowed
//! down where the kernel has no `tc netem`.
//!
//! One listener per ordered pair (i → j) on the bridge address; node i's connections to j are
//! sent there by a DNAT rule in i's namespace ([`crate::net::Netns::redirect`]) and forwarded to
//! j's real address. Until a delay is set a link passes bytes through as they come. With a delay,
//! every chunk read from either side is held for `base + uniform(0..=jitter)` before it is
//! written on: the delay is drawn per chunk from a generator seeded with the run's seed, the link
//! and the connection's number on it, so connections are delayed independently and what is sent
//! on one connection can overtake what was sent earlier on another (reordering across
//! connections). Within one connection bytes stay in order, as TCP requires: a chunk never leaves
//! before the chunks read before it, so a short delay drawn after a long one waits its turn.
//! Which bytes make up a chunk depends on timing, so delays are seeded but not replayed exactly.
//!
//! Dropping the [`Proxy`] (or [`Proxy::stop`]) ends every listener and connection.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Deadline of the connection to the real node; past it the proxied connection is closed, as a
/// refused connection would be.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Bytes read at once; also the largest chunk one delay applies to.
const CHUNK: usize = 16 * 1024;
/// Chunks held per direction before the proxy stops reading (TCP back-pressure to the sender).
const QUEUE: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot listen on {addr} for the link {from}->{to}: {source}")]
    Bind {
        addr: SocketAddr,
        from: u64,
        to: u64,
        source: io::Error,
    },
}

/// How long each chunk is held: `base` plus a uniform draw in `0..=jitter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Delay {
    pub base_ms: u64,
    pub jitter_ms: u64,
}

impl Delay {
    fn sample(self, rng: &mut StdRng) -> Duration {
        let jitter_us = rng.random_range(0..=self.jitter_ms * 1000);
        Duration::from_millis(self.base_ms) + Duration::from_micros(jitter_us)
    }
}

type Shared = Arc<Mutex<Option<Delay>>>;

fn current(delay: &Shared) -> Option<Delay> {
    match delay.lock() {
        Ok(d) => *d,
        Err(poisoned) => *poisoned.into_inner(),
    }
}

#[derive(Debug)]
struct Link {
    listen: SocketAddr,
    delay: Shared,
}

#[derive(Debug)]
pub struct Proxy {
    links: BTreeMap<(u64, u64), Link>,
    /// The listener tasks (each owning its connections).
    tasks: Mutex<JoinSet<()>>,
}

impl Proxy {
    /// Listens on `bind` (a free port each) for every link `(from, to, upstream)`.
    pub async fn start(
        bind: IpAddr,
        links: &[(u64, u64, SocketAddr)],
        seed: u64,
    ) -> Result<Proxy, ProxyError> {
        let mut tasks = JoinSet::new();
        let mut out = BTreeMap::new();
        for &(from, to, upstream) in links {
            let addr = SocketAddr::new(bind, 0);
            let listener = TcpListener::bind(addr)
                .await
                .and_then(|l| l.local_addr().map(|a| (l, a)));
            let (listener, listen) = match listener {
                Ok(x) => x,
                Err(source) => {
                    // Listeners already started end with `tasks`.
                    return Err(ProxyError::Bind {
                        addr,
                        from,
                        to,
                        source,
                    });
                }
            };
            let delay: Shared = Arc::new(Mutex::new(None));
            let link_seed = seed ^ (from << 48) ^ (to << 32);
            tasks.spawn(serve(listener, upstream, delay.clone(), link_seed));
            out.insert((from, to), Link { listen, delay });
        }
        Ok(Proxy {
            links: out,
            tasks: Mutex::new(tasks),
        })
    }

    /// Where node `from` must send its connections to `to`.
    pub fn listen_addr(&self, from: u64, to: u64) -> Option<SocketAddr> {
        self.links.get(&(from, to)).map(|l| l.listen)
    }

    /// Sets (or with `None` clears) the delay of every link `applies` selects, in both
    /// directions of each connection; chunks already held keep the delay they were given.
    pub fn set_delay(&self, applies: impl Fn(u64, u64) -> bool, delay: Option<Delay>) -> usize {
        let mut n = 0;
        for (&(from, to), link) in &self.links {
            if applies(from, to) {
                match link.delay.lock() {
                    Ok(mut d) => *d = delay,
                    Err(poisoned) => *poisoned.into_inner() = delay,
                }
                n += 1;
            }
        }
        n
    }

    /// Ends every listener and every proxied connection. Idempotent.
    pub fn stop(&self) {
        match self.tasks.lock() {
            Ok(mut s) => s.abort_all(),
            Err(poisoned) => poisoned.into_inner().abort_all(),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Accepts connections on one link. The connections live in this task's set, so aborting the
/// task ends them too.
async fn serve(listener: TcpListener, upstream: SocketAddr, delay: Shared, seed: u64) {
    let mut conns = JoinSet::new();
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((down, _)) => {
                    n += 1;
                    conns.spawn(relay(down, upstream, delay.clone(), seed.wrapping_add(n << 1)));
                }
                // Out of descriptors or the like: back off rather than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Connects to the real node and moves bytes both ways until either side closes or fails.
async fn relay(down: TcpStream, upstream: SocketAddr, delay: Shared, seed: u64) {
    let up = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(upstream)).await {
        Ok(Ok(up)) => up,
        // Dropping `down` closes it: the node sees its peer as unreachable, which it is.
        _ => return,
    };
    let _ = down.set_nodelay(true);
    let _ = up.set_nodelay(true);
    let (down_r, down_w) = down.into_split();
    let (up_r, up_w) = up.into_split();
    let there = pump(down_r, up_w, delay.clone(), seed);
    let back = pump(up_r, down_w, delay, seed.wrapping_add(1));
    // An error on either way ends both: the streams are dropped, which resets the other side.
    let _ = tokio::try_join!(there, back);
}

/// One direction: a reader that stamps each chunk with when it may leave, and a writer that
/// sends chunks in the order read, each no earlier than its stamp. On end of input the writer
/// half-closes after the last chunk.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    delay: Shared,
    seed: u64,
) -> io::Result<()> {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(QUEUE);
    let read = async move {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = from.read(&mut buf).await?;
            if n == 0 {
                return Ok::<(), io::Error>(());
            }
            let at = match current(&delay) {
                Some(d) => Instant::now() + d.sample(&mut rng),
                None => Instant::now(),
            };
            if tx.send((at, buf[..n].to_vec())).await.is_err() {
                return Ok(());
            }
        }
    };
    let write = async move {
        while let Some((at, chunk)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            to.write_all(&chunk).await?;
        }
        to.shutdown().await
    };
    tokio::try_join!(read, write).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn round_trip(addr: SocketAddr, msg: &[u8]) -> (Vec<u8>, Duration) {
        let t = Instant::now();
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(msg).await.unwrap();
        let mut got = vec![0u8; msg.len()];
        s.read_exact(&mut got).await.unwrap();
        (got, t.elapsed())
    }

    #[tokio::test]
    async fn passes_bytes_through_then_delays_them_when_told() {
        let echo = echo_server().await;
        let local = IpAddr::from([127, 0, 0, 1]);
        let proxy = Proxy::start(local, &[(1, 2, echo), (2, 1, echo)], 7)
            .await
            .unwrap();
        let via = proxy.listen_addr(1, 2).unwrap();
        let (got, fast) = round_trip(via, b"hello").await;
        assert_eq!(got, b"hello");
        assert!(fast < Duration::from_millis(150), "{fast:?}");

        let delay = Delay {
            base_ms: 150,
            jitter_ms: 50,
        };
        assert_eq!(proxy.set_delay(|from, _| from == 1, Some(delay)), 1);
        let (got, slow) = round_trip(via, b"world").await;
        assert_eq!(got, b"world");
        // Both directions are delayed: at least twice the base.
        assert!(slow >= Duration::from_millis(300), "{slow:?}");
        // The other link is untouched.
        let (_, other) = round_trip(proxy.listen_addr(2, 1).unwrap(), b"x").await;
        assert!(other < Duration::from_millis(150), "{other:?}");

        proxy.set_delay(|_, _| true, None);
        let (_, healed) = round_trip(via, b"again").await;
        assert!(healed < Duration::from_millis(150), "{healed:?}");
    }

    #[tokio::test]
    async fn a_connection_keeps_its_byte_order_under_jitter() {
        let echo = echo_server().await;
        let proxy = Proxy::start(IpAddr::from([127, 0, 0, 1]), &[(1, 2, echo)], 9)
            .await
            .unwrap();
        proxy.set_delay(
            |_, _| true,
            Some(Delay {
                base_ms: 0,
                jitter_ms: 30,
            }),
        );
        let mut s = TcpStream::connect(proxy.listen_addr(1, 2).unwrap())
            .await
            .unwrap();
        let msg: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let (mut r, mut w) = s.split();
        let send = async {
            for part in msg.chunks(100) {
                w.write_all(part).await.unwrap();
            }
        };
        let mut got = vec![0u8; msg.len()];
        let recv = r.read_exact(&mut got);
        let (_, read) = tokio::join!(send, recv);
        read.unwrap();
        assert_eq!(got, msg);
    }

    #[tokio::test]
    async fn an_unreachable_node_closes_the_proxied_connection_and_stop_ends_listening() {
        // A port nobody listens on: bind, note it, close.
        let gone = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap()
        };
        let proxy = Proxy::start(IpAddr::from([127, 0, 0, 1]), &[(1, 2, gone)], 1)
            .await
            .unwrap();
        let via = proxy.listen_addr(1, 2).unwrap();
        let mut s = TcpStream::connect(via).await.unwrap();
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap();
        assert!(matches!(n, Ok(0) | Err(_)));
        proxy.stop();
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(via).await.is_ok() {
            assert!(Instant::now() < deadline, "still listening after stop");
            tokio::task::yield_now().await;
        }
    }
}
