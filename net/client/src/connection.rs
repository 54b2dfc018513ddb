//! One TCP connection to a RocketMQ-compatible broker or name server, with
//! many requests in flight (spec §1.1: responses are matched by `opaque`,
//! not by order).
//!
//! - Writes are serialized by a mutex around the socket and one reused
//!   `BytesMut` encode buffer; nothing else is locked per request except the
//!   pending map (`opaque` → waiting caller).
//! - A background reader thread decodes frames. Responses go to the waiting
//!   caller: a blocking [`Connection::request`] (one-slot channel) or a
//!   callback given to [`Connection::request_async`] (run on the reader
//!   thread, so it must not block on this connection).
//! - Requests initiated by the server (e.g. NOTIFY_CONSUMER_IDS_CHANGED, 40)
//!   go to an optional [`RequestHandler`]; without one, a two-way server
//!   request is answered REQUEST_CODE_NOT_SUPPORTED.
//! - When the socket closes (peer EOF, I/O error, undecodable frame, or
//!   [`Connection::close`]) every pending request fails at once with
//!   [`ClientError::Io`] of kind `ConnectionAborted` naming the cause, and
//!   later requests fail immediately.
//! - Async requests time out too: the reader wakes every `tick` to expire
//!   them, so their callbacks always run exactly once.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::BytesMut;

use ringmq_remoting::codes::{response_code, SerializeType};
use ringmq_remoting::command::{next_opaque, RemotingCommand};
use ringmq_remoting::frame::{encode_frame, FrameDecoder, DEFAULT_MAX_FRAME};

use crate::acl::Credentials;
use crate::sync::lock;

/// Errors of the client library.
#[derive(Debug)]
pub enum ClientError {
    /// Socket error, including "connection closed" (kind `ConnectionAborted`).
    Io(io::Error),
    /// No response within the given time.
    Timeout(Duration),
    /// The broker answered with an error code.
    Broker { code: i32, remark: String },
    /// Malformed frame, header field, body or argument.
    Protocol(String),
}

/// Result type of the client library.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "I/O error: {e}"),
            Self::Timeout(d) => write!(f, "no response within {} ms", d.as_millis()),
            Self::Broker { code, remark } => {
                let name = response_code::name(*code).unwrap_or("UNKNOWN");
                write!(f, "broker error {code} ({name}): {remark}")
            }
            Self::Protocol(why) => write!(f, "protocol error: {why}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl ClientError {
    /// True when the connection is gone (further requests on it will fail).
    pub fn is_connection_closed(&self) -> bool {
        matches!(self, Self::Io(e) if e.kind() == io::ErrorKind::ConnectionAborted)
    }

    /// `Broker` error from a response's code and remark.
    pub fn from_response(resp: &RemotingCommand) -> Self {
        Self::Broker {
            code: resp.code,
            remark: resp.remark.clone().unwrap_or_default(),
        }
    }
}

/// `resp` if its code is SUCCESS, else [`ClientError::Broker`].
pub fn expect_success(resp: RemotingCommand) -> Result<RemotingCommand> {
    if resp.code == response_code::SUCCESS {
        Ok(resp)
    } else {
        Err(ClientError::from_response(&resp))
    }
}

/// Handles a request the server sent to the client; runs on the reader
/// thread. The returned command (if any) is sent back as the response
/// (opaque and response flag are filled in) unless the request is oneway.
pub type RequestHandler = Arc<dyn Fn(RemotingCommand) -> Option<RemotingCommand> + Send + Sync>;

/// Callback of [`Connection::request_async`]; runs on the reader thread.
pub type ResponseCallback = Box<dyn FnOnce(Result<RemotingCommand>) + Send>;

/// Connection settings.
#[derive(Clone)]
pub struct ConnectOptions {
    pub connect_timeout: Duration,
    /// Timeout of [`Connection::request_async`] (and of helpers that take none).
    pub default_timeout: Duration,
    /// Largest frame accepted from the server.
    pub max_frame: usize,
    /// How often the reader expires timed-out async requests.
    pub tick: Duration,
    pub handler: Option<RequestHandler>,
    /// Sign every request for a broker with ACL on (see [`crate::acl`]).
    pub credentials: Option<Credentials>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(3),
            default_timeout: Duration::from_secs(3),
            max_frame: DEFAULT_MAX_FRAME,
            tick: Duration::from_millis(20),
            handler: None,
            credentials: None,
        }
    }
}

impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("connect_timeout", &self.connect_timeout)
            .field("default_timeout", &self.default_timeout)
            .field("max_frame", &self.max_frame)
            .field("tick", &self.tick)
            .field("handler", &self.handler.is_some())
            .field("credentials", &self.credentials)
            .finish()
    }
}

enum Waiter {
    Sync(SyncSender<Result<RemotingCommand>>),
    Async {
        deadline: Instant,
        timeout: Duration,
        callback: ResponseCallback,
    },
}

impl Waiter {
    fn complete(self, result: Result<RemotingCommand>) {
        match self {
            // The receiver may have given up (timeout); nothing to do then.
            Waiter::Sync(tx) => drop(tx.try_send(result)),
            Waiter::Async { callback, .. } => callback(result),
        }
    }
}

#[derive(Default)]
struct Pending {
    map: HashMap<i32, Waiter>,
    /// Set once; why the connection closed.
    closed: Option<String>,
}

struct Writer {
    stream: TcpStream,
    buf: BytesMut,
}

/// Encode buffer kept between writes; a larger one is dropped after use.
const WRITE_BUF_KEEP: usize = 1 << 20;
const READ_CHUNK: usize = 64 * 1024;

struct Shared {
    peer: SocketAddr,
    /// For shutdown only (never written or read through).
    sock: TcpStream,
    writer: Mutex<Writer>,
    pending: Mutex<Pending>,
    closed: AtomicBool,
    handler: Mutex<Option<RequestHandler>>,
    default_timeout: Duration,
    credentials: Option<Credentials>,
}

impl Shared {
    fn closed_error(&self, reason: &str) -> ClientError {
        ClientError::Io(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            format!("connection to {} closed: {reason}", self.peer),
        ))
    }

    /// Register a waiter under `cmd`'s opaque (a fresh one if taken).
    fn register(&self, cmd: &mut RemotingCommand, waiter: Waiter) -> Result<i32, Waiter> {
        let mut p = lock(&self.pending);
        if p.closed.is_some() {
            return Err(waiter);
        }
        while p.map.contains_key(&cmd.opaque) {
            cmd.opaque = next_opaque();
        }
        p.map.insert(cmd.opaque, waiter);
        Ok(cmd.opaque)
    }

    /// Adds `AccessKey` and `Signature` when the connection has credentials.
    fn sign(&self, cmd: &mut RemotingCommand) {
        if let Some(c) = &self.credentials {
            c.sign(cmd);
        }
    }

    fn take(&self, opaque: i32) -> Option<Waiter> {
        lock(&self.pending).map.remove(&opaque)
    }

    fn close_reason(&self) -> String {
        lock(&self.pending)
            .closed
            .clone()
            .unwrap_or_else(|| "unknown".into())
    }

    /// Write one frame. An I/O error closes the connection.
    fn write(&self, cmd: &RemotingCommand) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(self.closed_error(&self.close_reason()));
        }
        let mut w = lock(&self.writer);
        let w = &mut *w;
        w.buf.clear();
        encode_frame(cmd, &mut w.buf)
            .map_err(|e| ClientError::Protocol(format!("cannot encode request: {e}")))?;
        let res = w.stream.write_all(&w.buf);
        if w.buf.capacity() > WRITE_BUF_KEEP {
            w.buf = BytesMut::with_capacity(READ_CHUNK);
        }
        if let Err(e) = res {
            let reason = format!("write failed: {e}");
            self.close(&reason);
            return Err(self.closed_error(&reason));
        }
        Ok(())
    }

    /// Mark closed (first reason wins), shut the socket, fail every waiter.
    fn close(&self, reason: &str) {
        let drained: Vec<Waiter> = {
            let mut p = lock(&self.pending);
            if p.closed.is_none() {
                p.closed = Some(reason.to_owned());
            }
            p.map.drain().map(|(_, w)| w).collect()
        };
        self.closed.store(true, Ordering::Release);
        let _ = self.sock.shutdown(Shutdown::Both);
        let reason = self.close_reason();
        for w in drained {
            w.complete(Err(self.closed_error(&reason)));
        }
    }

    fn expire_async(&self, now: Instant) {
        let expired: Vec<Waiter> = {
            let mut p = lock(&self.pending);
            let keys: Vec<i32> = p
                .map
                .iter()
                .filter(|(_, w)| matches!(w, Waiter::Async { deadline, .. } if *deadline <= now))
                .map(|(k, _)| *k)
                .collect();
            keys.iter().filter_map(|k| p.map.remove(k)).collect()
        };
        for w in expired {
            if let Waiter::Async { timeout, .. } = &w {
                let t = *timeout;
                w.complete(Err(ClientError::Timeout(t)));
            }
        }
    }

    fn on_frame(&self, cmd: RemotingCommand) {
        if cmd.is_response() {
            match self.take(cmd.opaque) {
                Some(w) => w.complete(Ok(cmd)),
                None => tracing::debug!(
                    peer = %self.peer,
                    opaque = cmd.opaque,
                    code = cmd.code,
                    "response for no pending request (timed out?)"
                ),
            }
            return;
        }
        let handler = lock(&self.handler).clone();
        let oneway = cmd.is_oneway();
        let reply = match handler {
            Some(h) => {
                let opaque = cmd.opaque;
                h(cmd).map(|mut r| {
                    r.opaque = opaque;
                    r.flag = RemotingCommand::RESPONSE_FLAG;
                    r
                })
            }
            None => {
                tracing::debug!(peer = %self.peer, code = cmd.code, "unhandled server request");
                let remark = format!(" request type {} not supported", cmd.code);
                Some(RemotingCommand::response_to(
                    &cmd,
                    response_code::REQUEST_CODE_NOT_SUPPORTED,
                    Some(remark),
                ))
            }
        };
        if let (Some(r), false) = (reply, oneway) {
            let _ = self.write(&r);
        }
    }
}

fn reader_loop(shared: Arc<Shared>, mut stream: TcpStream, max_frame: usize, tick: Duration) {
    let mut decoder = FrameDecoder::new(max_frame);
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut last_scan = Instant::now();
    let reason = loop {
        match stream.read(&mut chunk) {
            Ok(0) => break "peer closed the connection".to_owned(),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                let mut bad = None;
                loop {
                    match decoder.decode(&mut buf) {
                        Ok(Some(cmd)) => shared.on_frame(cmd),
                        Ok(None) => break,
                        Err(e) => {
                            bad = Some(format!("invalid frame from server: {e}"));
                            break;
                        }
                    }
                }
                if let Some(r) = bad {
                    break r;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => break format!("read failed: {e}"),
        }
        if shared.closed.load(Ordering::Acquire) {
            break shared.close_reason();
        }
        let now = Instant::now();
        if now.duration_since(last_scan) >= tick {
            last_scan = now;
            shared.expire_async(now);
        }
    };
    shared.close(&reason);
}

/// Closes the socket when the last [`Connection`] clone goes away.
struct Owner {
    shared: Arc<Shared>,
    reader: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.shared.close("connection dropped by client");
        if let Some(h) = lock(&self.reader).take() {
            if h.thread().id() != thread::current().id() {
                let _ = h.join();
            }
        }
    }
}

/// A multiplexed connection; cheap to clone (clones share the socket).
#[derive(Clone)]
pub struct Connection {
    owner: Arc<Owner>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.owner.shared.peer)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Connection {
    /// Connect with default options.
    pub fn connect(addr: impl ToSocketAddrs) -> Result<Connection> {
        Self::connect_with(addr, ConnectOptions::default())
    }

    /// Connect (TCP_NODELAY) and start the reader thread.
    pub fn connect_with(addr: impl ToSocketAddrs, opts: ConnectOptions) -> Result<Connection> {
        let mut last = None;
        for a in addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&a, opts.connect_timeout) {
                Ok(s) => return Self::from_stream(s, opts),
                Err(e) => last = Some(e),
            }
        }
        Err(ClientError::Io(last.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "address resolved to nothing")
        })))
    }

    /// Wrap an already connected stream.
    pub fn from_stream(stream: TcpStream, opts: ConnectOptions) -> Result<Connection> {
        stream.set_nodelay(true)?;
        let peer = stream.peer_addr()?;
        let reader_stream = stream.try_clone()?;
        reader_stream.set_read_timeout(Some(opts.tick.max(Duration::from_millis(1))))?;
        let shared = Arc::new(Shared {
            peer,
            sock: stream.try_clone()?,
            writer: Mutex::new(Writer {
                stream,
                buf: BytesMut::with_capacity(READ_CHUNK),
            }),
            pending: Mutex::new(Pending::default()),
            closed: AtomicBool::new(false),
            handler: Mutex::new(opts.handler.clone()),
            default_timeout: opts.default_timeout,
            credentials: opts.credentials.clone(),
        });
        let s2 = shared.clone();
        let (max_frame, tick) = (opts.max_frame, opts.tick);
        let reader = thread::Builder::new()
            .name(format!("ringmq-conn-{peer}"))
            .spawn(move || reader_loop(s2, reader_stream, max_frame, tick))?;
        Ok(Connection {
            owner: Arc::new(Owner {
                shared,
                reader: Mutex::new(Some(reader)),
            }),
        })
    }

    pub fn peer_addr(&self) -> SocketAddr {
        self.owner.shared.peer
    }

    pub fn default_timeout(&self) -> Duration {
        self.owner.shared.default_timeout
    }

    pub fn is_closed(&self) -> bool {
        self.owner.shared.closed.load(Ordering::Acquire)
    }

    /// Number of requests waiting for a response.
    pub fn pending_count(&self) -> usize {
        lock(&self.owner.shared.pending).map.len()
    }

    /// Install (or remove) the handler for server-initiated requests.
    pub fn set_request_handler(&self, handler: Option<RequestHandler>) {
        *lock(&self.owner.shared.handler) = handler;
    }

    /// Close the socket; pending requests fail with a "closed by client" error.
    pub fn close(&self) {
        self.owner.shared.close("closed by client");
    }

    /// Send `cmd` and block for its response (any response code; see
    /// [`expect_success`]). The opaque is replaced if already in flight.
    pub fn request(&self, mut cmd: RemotingCommand, timeout: Duration) -> Result<RemotingCommand> {
        let shared = &self.owner.shared;
        shared.sign(&mut cmd);
        let (tx, rx) = mpsc::sync_channel(1);
        let opaque = match shared.register(&mut cmd, Waiter::Sync(tx)) {
            Ok(o) => o,
            Err(_) => return Err(shared.closed_error(&shared.close_reason())),
        };
        if let Err(e) = shared.write(&cmd) {
            if shared.take(opaque).is_some() || !e.is_connection_closed() {
                return Err(e);
            }
            // close() already failed our waiter; fall through and receive it.
        }
        match rx.recv_timeout(timeout) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => {
                if shared.take(opaque).is_some() {
                    Err(ClientError::Timeout(timeout))
                } else {
                    // The reader holds our waiter and is completing it now.
                    rx.recv()
                        .unwrap_or_else(|_| Err(shared.closed_error(&shared.close_reason())))
                }
            }
            Err(RecvTimeoutError::Disconnected) => Err(shared.closed_error(&shared.close_reason())),
        }
    }

    /// [`request_async_timeout`](Self::request_async_timeout) with the
    /// connection's default timeout.
    pub fn request_async<F>(&self, cmd: RemotingCommand, callback: F)
    where
        F: FnOnce(Result<RemotingCommand>) + Send + 'static,
    {
        self.request_async_timeout(cmd, self.default_timeout(), callback)
    }

    /// Send `cmd`; `callback` runs exactly once with the response, a
    /// timeout or a connection error — on the reader thread, or on the
    /// calling thread if the request cannot be sent at all. The callback
    /// must not block waiting for another response on this connection.
    pub fn request_async_timeout<F>(&self, mut cmd: RemotingCommand, timeout: Duration, callback: F)
    where
        F: FnOnce(Result<RemotingCommand>) + Send + 'static,
    {
        let shared = &self.owner.shared;
        shared.sign(&mut cmd);
        let waiter = Waiter::Async {
            deadline: Instant::now() + timeout,
            timeout,
            callback: Box::new(callback),
        };
        let opaque = match shared.register(&mut cmd, waiter) {
            Ok(o) => o,
            Err(w) => return w.complete(Err(shared.closed_error(&shared.close_reason()))),
        };
        if let Err(e) = shared.write(&cmd) {
            // If close() took the waiter it has already run the callback.
            if let Some(w) = shared.take(opaque) {
                w.complete(Err(e));
            }
        }
    }

    /// Send `cmd` with the oneway flag; no response is expected.
    pub fn oneway(&self, mut cmd: RemotingCommand) -> Result<()> {
        cmd.mark_oneway();
        self.owner.shared.sign(&mut cmd);
        self.owner.shared.write(&cmd)
    }
}

/// A request with the given code and header form.
pub(crate) fn new_request(code: i32, serialize_type: SerializeType) -> RemotingCommand {
    RemotingCommand::request(code).with_serialize_type(serialize_type)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_server::FakeServer;
    use ringmq_remoting::codes::request_code;
    use std::sync::atomic::AtomicUsize;

    fn echo_request(id: usize) -> RemotingCommand {
        RemotingCommand::request(request_code::GET_MAX_OFFSET).with_ext("id", id)
    }

    #[test]
    fn pipelined_requests_answered_out_of_order() {
        const N: usize = 16;
        // Collect N requests, then answer them in reverse order.
        let mut held = Vec::new();
        let server = FakeServer::start(move |req, out| {
            held.push(req);
            if held.len() == N {
                for r in held.drain(..).rev() {
                    let id = r.ext("id").unwrap().to_owned();
                    out.send(RemotingCommand::response_to(&r, 0, None).with_ext("id", id));
                }
            }
        });
        let conn = Connection::connect(server.addr()).unwrap();
        let threads: Vec<_> = (0..N / 2)
            .map(|i| {
                let c = conn.clone();
                thread::spawn(move || {
                    let r = c.request(echo_request(i), Duration::from_secs(5)).unwrap();
                    assert_eq!(r.ext("id"), Some(i.to_string().as_str()));
                })
            })
            .collect();
        let (tx, rx) = mpsc::channel();
        for i in N / 2..N {
            let tx = tx.clone();
            conn.request_async(echo_request(i), move |r| {
                let r = r.unwrap();
                tx.send((i, r.ext("id").unwrap().to_owned())).unwrap();
            });
        }
        for t in threads {
            t.join().unwrap();
        }
        for _ in N / 2..N {
            let (i, id) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
            assert_eq!(id, i.to_string());
        }
        assert_eq!(conn.pending_count(), 0);
    }

    #[test]
    fn closed_connection_fails_pending_requests() {
        let seen = Arc::new(AtomicUsize::new(0));
        let s2 = seen.clone();
        let server = FakeServer::start(move |_req, out| {
            if s2.fetch_add(1, Ordering::SeqCst) == 2 {
                out.close();
            }
        });
        let conn = Connection::connect(server.addr()).unwrap();
        let (tx, rx) = mpsc::channel();
        conn.request_async_timeout(echo_request(0), Duration::from_secs(30), move |r| {
            tx.send(r).unwrap()
        });
        let c = conn.clone();
        let t = thread::spawn(move || c.request(echo_request(1), Duration::from_secs(30)));
        while seen.load(Ordering::SeqCst) < 2 {
            thread::sleep(Duration::from_millis(1));
        }
        let start = Instant::now();
        let e = conn
            .request(echo_request(2), Duration::from_secs(30))
            .unwrap_err();
        assert!(e.is_connection_closed(), "{e}");
        assert!(e.to_string().contains("peer closed the connection"), "{e}");
        let e = t.join().unwrap().unwrap_err();
        assert!(e.is_connection_closed(), "{e}");
        let e = rx
            .recv_timeout(Duration::from_secs(5))
            .unwrap()
            .unwrap_err();
        assert!(e.is_connection_closed(), "{e}");
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(conn.is_closed());
        // Later requests fail at once.
        let e = conn
            .request(echo_request(3), Duration::from_secs(30))
            .unwrap_err();
        assert!(e.is_connection_closed(), "{e}");
        let (tx, rx) = mpsc::channel();
        conn.request_async(echo_request(4), move |r| tx.send(r).unwrap());
        assert!(rx.recv().unwrap().unwrap_err().is_connection_closed());
        assert!(conn.oneway(echo_request(5)).is_err());
    }

    #[test]
    fn requests_time_out() {
        let server = FakeServer::start(|_req, _out| {});
        let conn = Connection::connect(server.addr()).unwrap();
        let start = Instant::now();
        let e = conn
            .request(echo_request(0), Duration::from_millis(100))
            .unwrap_err();
        assert!(matches!(e, ClientError::Timeout(_)), "{e}");
        assert_eq!(e.to_string(), "no response within 100 ms");
        assert!(start.elapsed() >= Duration::from_millis(100));
        let (tx, rx) = mpsc::channel();
        conn.request_async_timeout(echo_request(1), Duration::from_millis(50), move |r| {
            tx.send(r).unwrap()
        });
        let r = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(matches!(r, Err(ClientError::Timeout(_))));
        assert_eq!(conn.pending_count(), 0);
        assert!(!conn.is_closed());
    }

    #[test]
    fn server_requests_go_to_handler() {
        let (tx, rx) = mpsc::channel();
        let server = FakeServer::start(move |req, out| {
            if req.is_response() {
                tx.send(req).unwrap();
            } else {
                // Ask the client something, then a oneway notification.
                let ask = RemotingCommand::request(request_code::GET_CONSUMER_RUNNING_INFO);
                out.send(ask);
                let mut n = RemotingCommand::request(request_code::NOTIFY_CONSUMER_IDS_CHANGED)
                    .with_ext("consumerGroup", "G");
                n.mark_oneway();
                out.send(n);
                out.send(RemotingCommand::response_to(&req, 0, None));
            }
        });
        let (ntx, nrx) = mpsc::channel();
        let handler: RequestHandler = Arc::new(move |req: RemotingCommand| {
            ntx.send(req.code).unwrap();
            Some(RemotingCommand::request(0).with_remark("handled"))
        });
        let opts = ConnectOptions {
            handler: Some(handler),
            ..Default::default()
        };
        let conn = Connection::connect_with(server.addr(), opts).unwrap();
        conn.request(echo_request(0), Duration::from_secs(5))
            .unwrap();
        let resp = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(resp.is_response());
        assert_eq!(resp.remark.as_deref(), Some("handled"));
        let codes: Vec<i32> = (0..2)
            .map(|_| nrx.recv_timeout(Duration::from_secs(5)).unwrap())
            .collect();
        assert_eq!(
            codes,
            [
                request_code::GET_CONSUMER_RUNNING_INFO,
                request_code::NOTIFY_CONSUMER_IDS_CHANGED
            ]
        );
        // Only the two-way request was answered.
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());

        // Without a handler a two-way server request is refused.
        conn.set_request_handler(None);
        conn.request(echo_request(1), Duration::from_secs(5))
            .unwrap();
        let resp = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(resp.code, response_code::REQUEST_CODE_NOT_SUPPORTED);
    }

    #[test]
    fn error_display() {
        let e = ClientError::Broker {
            code: 17,
            remark: "topic[x] not exist".into(),
        };
        assert_eq!(
            e.to_string(),
            "broker error 17 (TOPIC_NOT_EXIST): topic[x] not exist"
        );
        assert_eq!(
            ClientError::Protocol("bad".into()).to_string(),
            "protocol error: bad"
        );
    }
}
