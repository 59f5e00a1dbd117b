//! A TCP proxy the test controls, for cutting a client off its server: it listens on
//! 127.0.0.1:0 and forwards every connection to a target; [`Proxy::cut`] drops all
//! current connections (both sides see the socket close) and
//! [`Proxy::set_accepting`]`(false)` makes it close new connections at once.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    listener: JoinHandle<()>,
}

struct Shared {
    accepting: AtomicBool,
    accepted: AtomicUsize,
    connections: Mutex<Vec<AbortHandle>>,
}

impl Proxy {
    /// Starts forwarding to `target`.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared {
            accepting: AtomicBool::new(true),
            accepted: AtomicUsize::new(0),
            connections: Mutex::new(Vec::new()),
        });
        let state = Arc::clone(&shared);
        let listener = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                if !state.accepting.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                state.accepted.fetch_add(1, Ordering::SeqCst);
                let task = tokio::spawn(forward(client, target));
                let mut conns = state.connections.lock().unwrap();
                conns.retain(|c| !c.is_finished());
                conns.push(task.abort_handle());
            }
        });
        Proxy {
            addr,
            shared,
            listener,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections forwarded so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Closes every current connection, on both sides.
    pub fn cut(&self) {
        for conn in self.shared.connections.lock().unwrap().drain(..) {
            conn.abort();
        }
    }

    /// While false, new connections are accepted and closed at once.
    pub fn set_accepting(&self, accepting: bool) {
        self.shared.accepting.store(accepting, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.listener.abort();
        self.cut();
    }
}

async fn forward(mut client: TcpStream, target: SocketAddr) {
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}
