//! The HA auth handshake (`haAuthToken`): with a token configured on both sides, every HA
//! connection opens with a mutual challenge-response before the classic frames of spec 7,
//! so only a peer holding the token can become a slave and report offsets (which release
//! SYNC_MASTER waiters; RocketMQ#3015), and only a master holding it can stream to a
//! slave (whose first frame may make it truncate its log). The token itself never crosses
//! the wire. Without a token nothing here runs and the classic, handshake-less protocol is
//! spoken, so RocketMQ slaves and masters still interoperate with ringmq.
//!
//! ```text
//! master -> slave   "RMQHA2" (6 bytes: magic and version) | nonce_m (32 random bytes)
//! slave -> master   fields = clusterLen (u16 BE) | cluster | brokerLen (u16 BE) | broker
//!                   fields | nonce_s (32 random bytes) | mac_s (32)
//!                   mac_s = HMAC-SHA256(token, "ringmq-ha slave" | nonce_m | fields | nonce_s)
//! master -> slave   0x01 (accepted) | mac_m (32); on refusal it closes the connection
//!                   mac_m = HMAC-SHA256(token, "ringmq-ha master" | nonce_m | nonce_s | fields)
//! then the classic protocol: the slave's first offset report, transfer frames, ...
//! ```
//!
//! Each side proves the token over the other's fresh nonce, and the two MACs carry
//! different labels, so neither can be replayed or reflected. The MACs cover the name
//! fields exactly as sent (lengths included), so a peer cannot re-split the names under a
//! valid MAC. The master reads the answer within [`HANDSHAKE_TIMEOUT`] overall and at most
//! [`MAX_NAME_SIZE`] bytes per name (610 bytes in all), verifies the MAC in constant
//! time, then checks the names against its own if it has them. A peer that fails is
//! closed before it is registered in the [`SlaveTable`](crate::SlaveTable), so it can
//! never report an offset; nothing is streamed to it. The slave verifies the master's MAC
//! before it sends its first report or reads a frame.
//!
//! HMAC-SHA256 comes from the RustCrypto `hmac` and `sha2` crates: widely used, audited
//! implementations with constant-time tag comparison (`verify_slice`), kept current by the
//! RustCrypto project; hand-rolled crypto would be the riskier choice.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Opens the handshake; the trailing digit is the handshake version.
pub const MAGIC: [u8; 6] = *b"RMQHA2";
pub const NONCE_SIZE: usize = 32;
pub const MAC_SIZE: usize = 32;
/// Longest cluster or broker name the handshake carries.
pub const MAX_NAME_SIZE: usize = 255;
/// The master's verdict for an authenticated peer.
pub const ACCEPTED: u8 = 1;
/// Labels that keep the slave's and the master's MACs apart.
const SLAVE_LABEL: &[u8] = b"ringmq-ha slave";
const MASTER_LABEL: &[u8] = b"ringmq-ha master";
/// Longest either side waits for the other's half of the handshake, overall.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

type HmacSha256 = Hmac<Sha256>;

/// Why a handshake failed. Never carries the token.
#[derive(Debug)]
pub enum AuthError {
    /// Slave: no handshake from the master in time (it has no `haAuthToken`).
    MasterSilent,
    /// Slave: the master's first bytes are not [`MAGIC`].
    NotMagic,
    /// Slave without a token: the master opened with [`MAGIC`].
    MasterRequiresToken,
    /// Slave: the master closed the connection before its challenge.
    MasterClosed,
    /// Slave: the master closed the connection after our answer.
    Refused,
    /// Slave: the master's verdict is neither [`ACCEPTED`] nor a close.
    BadVerdict(u8),
    /// Slave: the master's MAC does not verify (it does not hold our token: a fake or
    /// misconfigured master, which must not stream to us or make us truncate).
    MasterNotAuthentic,
    /// A name is longer than [`MAX_NAME_SIZE`] (`local`: this side's own config).
    NameTooLong {
        len: usize,
        local: bool,
    },
    /// Master: the peer sent no complete answer in time.
    AnswerTimedOut,
    /// Master: the peer closed the connection during the handshake.
    PeerClosed,
    /// Master: the MAC does not verify (wrong token, or not a ringmq slave).
    BadMac,
    /// Master: an authenticated name is not UTF-8.
    NameNotUtf8,
    /// Master: an authenticated peer of another cluster or broker group.
    WrongGroup {
        cluster: String,
        broker: String,
        expected_cluster: Option<String>,
        expected_broker: Option<String>,
    },
    Io(io::Error),
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::MasterSilent => write!(
                f,
                "the master sent no HA auth handshake within {} s: this slave has haAuthToken \
                 but the master apparently has none (token mismatch)",
                HANDSHAKE_TIMEOUT.as_secs()
            ),
            AuthError::NotMagic => f.write_str(
                "the master's first bytes are not the HA auth magic RMQHA1: this slave has \
                 haAuthToken but the master does not speak the handshake (token mismatch)",
            ),
            AuthError::MasterRequiresToken => f.write_str(
                "the master opened with the HA auth handshake (RMQHA1): it requires \
                 haAuthToken, which this slave does not have (token mismatch)",
            ),
            AuthError::MasterClosed => f.write_str(
                "the master closed the connection without sending the HA auth challenge: this \
                 slave has haAuthToken but the master apparently has none (token mismatch)",
            ),
            AuthError::Refused => f.write_str(
                "the master refused the HA auth handshake: it closed the connection after \
                 our answer (wrong haAuthToken, or a cluster/broker name it does not expect; \
                 see the master's log)",
            ),
            AuthError::BadVerdict(b) => write!(f, "unexpected HA auth verdict byte {b:#04x}"),
            AuthError::MasterNotAuthentic => f.write_str(
                "the master's HA auth proof does not verify: it does not hold this slave's \
                 haAuthToken (a fake or misconfigured master); refusing its stream",
            ),
            AuthError::NameTooLong { len, local: true } => write!(
                f,
                "cluster or broker name of {len} bytes is too long for the HA auth handshake \
                 (at most {MAX_NAME_SIZE})"
            ),
            AuthError::NameTooLong { len, local: false } => write!(
                f,
                "the peer announced a {len}-byte name (at most {MAX_NAME_SIZE}): not a ringmq \
                 slave with haAuthToken"
            ),
            AuthError::AnswerTimedOut => write!(
                f,
                "no complete HA auth answer within {} s (a slave without haAuthToken, or not \
                 an HA slave)",
                HANDSHAKE_TIMEOUT.as_secs()
            ),
            AuthError::PeerClosed => f.write_str(
                "the peer closed the connection during the HA auth handshake (a slave without \
                 haAuthToken, or not an HA slave)",
            ),
            AuthError::BadMac => f.write_str(
                "the HA auth MAC does not verify: the peer does not hold this master's \
                 haAuthToken",
            ),
            AuthError::NameNotUtf8 => f.write_str("the peer's cluster or broker name is not UTF-8"),
            AuthError::WrongGroup {
                cluster,
                broker,
                expected_cluster,
                expected_broker,
            } => write!(
                f,
                "the peer authenticated as cluster {cluster:?} broker {broker:?}, but this \
                 master expects cluster {} broker {}",
                expected_cluster.as_deref().unwrap_or("(any)"),
                expected_broker.as_deref().unwrap_or("(any)")
            ),
            AuthError::Io(e) => write!(f, "HA auth handshake I/O error: {e}"),
        }
    }
}

impl std::error::Error for AuthError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AuthError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<AuthError> for io::Error {
    fn from(e: AuthError) -> Self {
        let kind = match &e {
            AuthError::MasterSilent | AuthError::AnswerTimedOut => io::ErrorKind::TimedOut,
            AuthError::Refused
            | AuthError::BadMac
            | AuthError::MasterNotAuthentic
            | AuthError::WrongGroup { .. } => io::ErrorKind::PermissionDenied,
            AuthError::MasterClosed | AuthError::PeerClosed => io::ErrorKind::UnexpectedEof,
            AuthError::Io(e) => e.kind(),
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, e)
    }
}

/// Whether `e` is a failed handshake (see `From<AuthError> for io::Error`).
pub fn is_auth_error(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<AuthError>())
}

/// Who an authenticated slave says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    pub cluster: String,
    pub broker: String,
}

/// A fresh random nonce from the kernel (`getrandom`, else `/dev/urandom`).
pub fn nonce() -> io::Result<[u8; NONCE_SIZE]> {
    let mut buf = [0u8; NONCE_SIZE];
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: `rest` is valid writable memory of `rest.len()` bytes.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n > 0 {
            filled += n as usize;
            continue;
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => {}
            Some(libc::ENOSYS) => {
                std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
                return Ok(buf);
            }
            _ => return Err(err),
        }
    }
    Ok(buf)
}

fn push_name(out: &mut Vec<u8>, name: &str) -> Result<(), AuthError> {
    if name.len() > MAX_NAME_SIZE {
        return Err(AuthError::NameTooLong {
            len: name.len(),
            local: true,
        });
    }
    out.extend_from_slice(&(name.len() as u16).to_be_bytes());
    out.extend_from_slice(name.as_bytes());
    Ok(())
}

fn mac_over(token: &str, parts: &[&[u8]]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(token.as_bytes()).expect("HMAC takes any key size");
    for p in parts {
        mac.update(p);
    }
    mac
}

/// The slave's answer to the master's `nonce_m`: the names as sent, its own nonce, then
/// its MAC over both nonces and the names.
pub fn encode_answer(
    token: &str,
    nonce_m: &[u8; NONCE_SIZE],
    nonce_s: &[u8; NONCE_SIZE],
    cluster: &str,
    broker: &str,
) -> Result<Vec<u8>, AuthError> {
    let mut out = Vec::with_capacity(4 + cluster.len() + broker.len() + NONCE_SIZE + MAC_SIZE);
    push_name(&mut out, cluster)?;
    push_name(&mut out, broker)?;
    let tag = mac_over(token, &[SLAVE_LABEL, nonce_m, &out, nonce_s])
        .finalize()
        .into_bytes();
    out.extend_from_slice(nonce_s);
    out.extend_from_slice(&tag);
    Ok(out)
}

/// The master's proof that it holds `token`, sent after [`ACCEPTED`]: its MAC over both
/// nonces and the slave's name `fields` (as sent).
pub fn master_proof(
    token: &str,
    nonce_m: &[u8; NONCE_SIZE],
    nonce_s: &[u8; NONCE_SIZE],
    fields: &[u8],
) -> [u8; MAC_SIZE] {
    mac_over(token, &[MASTER_LABEL, nonce_m, nonce_s, fields])
        .finalize()
        .into_bytes()
        .into()
}

enum Short {
    /// EOF (or a reset) after this many bytes.
    Closed(usize),
    /// The deadline passed after this many bytes.
    TimedOut(usize),
    Io(io::Error),
}

/// Fills `buf` before `deadline` (one overall bound, however the peer trickles bytes).
fn read_full(mut stream: &TcpStream, buf: &mut [u8], deadline: Instant) -> Result<(), Short> {
    let mut got = 0;
    while got < buf.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Short::TimedOut(got));
        }
        stream.set_read_timeout(Some(left)).map_err(Short::Io)?;
        match stream.read(&mut buf[got..]) {
            Ok(0) => return Err(Short::Closed(got)),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Err(Short::Closed(got)),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(Short::Io(e)),
        }
    }
    Ok(())
}

/// The master's half, run on a fresh connection before it is registered: challenge,
/// verify the answer, check the names against `expect_cluster`/`expect_broker` (when
/// given), and send the verdict. On Err the caller drops the connection.
pub fn master_handshake(
    mut stream: &TcpStream,
    token: &str,
    expect_cluster: Option<&str>,
    expect_broker: Option<&str>,
    timeout: Duration,
) -> Result<PeerIdentity, AuthError> {
    let deadline = Instant::now() + timeout;
    let nonce = nonce().map_err(AuthError::Io)?;
    let mut hello = [0u8; MAGIC.len() + NONCE_SIZE];
    hello[..MAGIC.len()].copy_from_slice(&MAGIC);
    hello[MAGIC.len()..].copy_from_slice(&nonce);
    stream
        .set_write_timeout(Some(timeout))
        .map_err(AuthError::Io)?;
    stream.write_all(&hello).map_err(AuthError::Io)?;

    let read = |buf: &mut [u8]| {
        read_full(stream, buf, deadline).map_err(|e| match e {
            Short::Closed(_) => AuthError::PeerClosed,
            Short::TimedOut(_) => AuthError::AnswerTimedOut,
            Short::Io(e) => AuthError::Io(e),
        })
    };
    // Both name fields as sent, lengths included: exactly what the MAC covers.
    let mut fields = [0u8; 2 * (2 + MAX_NAME_SIZE)];
    let mut at = 0;
    let mut names = [0..0, 0..0];
    for name in &mut names {
        read(&mut fields[at..at + 2])?;
        let len = u16::from_be_bytes([fields[at], fields[at + 1]]) as usize;
        if len > MAX_NAME_SIZE {
            return Err(AuthError::NameTooLong { len, local: false });
        }
        at += 2;
        read(&mut fields[at..at + len])?;
        *name = at..at + len;
        at += len;
    }
    let mut nonce_s = [0u8; NONCE_SIZE];
    read(&mut nonce_s)?;
    let mut tag = [0u8; MAC_SIZE];
    read(&mut tag)?;
    mac_over(token, &[SLAVE_LABEL, &nonce, &fields[..at], &nonce_s])
        .verify_slice(&tag)
        .map_err(|_| AuthError::BadMac)?;

    let text = |r: &std::ops::Range<usize>| {
        std::str::from_utf8(&fields[r.clone()])
            .map(str::to_owned)
            .map_err(|_| AuthError::NameNotUtf8)
    };
    let peer = PeerIdentity {
        cluster: text(&names[0])?,
        broker: text(&names[1])?,
    };
    let matches = |want: Option<&str>, got: &str| want.is_none_or(|w| w == got);
    if !matches(expect_cluster, &peer.cluster) || !matches(expect_broker, &peer.broker) {
        return Err(AuthError::WrongGroup {
            cluster: peer.cluster,
            broker: peer.broker,
            expected_cluster: expect_cluster.map(str::to_owned),
            expected_broker: expect_broker.map(str::to_owned),
        });
    }
    let mut verdict = [0u8; 1 + MAC_SIZE];
    verdict[0] = ACCEPTED;
    verdict[1..].copy_from_slice(&master_proof(token, &nonce, &nonce_s, &fields[..at]));
    stream.write_all(&verdict).map_err(AuthError::Io)?;
    Ok(peer)
}

/// The master's half without I/O, for the HA loop: [`MasterHandshake::new`] gives the
/// challenge to send; [`MasterHandshake::feed`] takes the peer's bytes as they come and,
/// once the answer is complete and verifies, gives the peer's identity and the verdict to
/// send. Checks exactly what [`master_handshake`] checks, in the same order; the caller
/// bounds the time (`HANDSHAKE_TIMEOUT`).
pub struct MasterHandshake {
    nonce: [u8; NONCE_SIZE],
    /// The answer so far (never more than its largest size: `feed` takes no more).
    got: Vec<u8>,
}

/// Most bytes an answer takes: both names at their longest, a nonce and a MAC.
const MAX_ANSWER: usize = 2 * (2 + MAX_NAME_SIZE) + NONCE_SIZE + MAC_SIZE;

impl MasterHandshake {
    /// A fresh challenge: the state and the bytes to send ([`MAGIC`] and the nonce).
    pub fn new() -> io::Result<(MasterHandshake, [u8; MAGIC.len() + NONCE_SIZE])> {
        let nonce = nonce()?;
        let mut hello = [0u8; MAGIC.len() + NONCE_SIZE];
        hello[..MAGIC.len()].copy_from_slice(&MAGIC);
        hello[MAGIC.len()..].copy_from_slice(&nonce);
        Ok((
            MasterHandshake {
                nonce,
                got: Vec::with_capacity(MAX_ANSWER),
            },
            hello,
        ))
    }

    /// Takes bytes read from the peer. Returns how many of `bytes` were part of the
    /// answer and, once it is complete and verifies, who the peer is with the verdict to
    /// send (bytes after the answer belong to the classic protocol).
    #[allow(clippy::type_complexity)]
    pub fn feed(
        &mut self,
        bytes: &[u8],
        token: &str,
        expect_cluster: Option<&str>,
        expect_broker: Option<&str>,
    ) -> Result<(usize, Option<(PeerIdentity, [u8; 1 + MAC_SIZE])>), AuthError> {
        let mut used = 0;
        loop {
            let need = self.need()?;
            if self.got.len() >= need {
                break;
            }
            if used == bytes.len() {
                return Ok((used, None));
            }
            let take = (need - self.got.len()).min(bytes.len() - used);
            self.got.extend_from_slice(&bytes[used..used + take]);
            used += take;
        }
        let (l1, l2) = self.name_lens();
        let at = 4 + l1 + l2;
        let fields = &self.got[..at];
        let nonce_s: [u8; NONCE_SIZE] = self.got[at..at + NONCE_SIZE].try_into().expect("sized");
        let tag = &self.got[at + NONCE_SIZE..at + NONCE_SIZE + MAC_SIZE];
        mac_over(token, &[SLAVE_LABEL, &self.nonce, fields, &nonce_s])
            .verify_slice(tag)
            .map_err(|_| AuthError::BadMac)?;
        let text = |r: std::ops::Range<usize>| {
            std::str::from_utf8(&fields[r])
                .map(str::to_owned)
                .map_err(|_| AuthError::NameNotUtf8)
        };
        let peer = PeerIdentity {
            cluster: text(2..2 + l1)?,
            broker: text(4 + l1..4 + l1 + l2)?,
        };
        let matches = |want: Option<&str>, got: &str| want.is_none_or(|w| w == got);
        if !matches(expect_cluster, &peer.cluster) || !matches(expect_broker, &peer.broker) {
            return Err(AuthError::WrongGroup {
                cluster: peer.cluster,
                broker: peer.broker,
                expected_cluster: expect_cluster.map(str::to_owned),
                expected_broker: expect_broker.map(str::to_owned),
            });
        }
        let mut verdict = [0u8; 1 + MAC_SIZE];
        verdict[0] = ACCEPTED;
        verdict[1..].copy_from_slice(&master_proof(token, &self.nonce, &nonce_s, fields));
        Ok((used, Some((peer, verdict))))
    }

    /// The name lengths read so far (0 for one not read yet).
    fn name_lens(&self) -> (usize, usize) {
        let g = &self.got;
        let l1 = if g.len() >= 2 {
            u16::from_be_bytes([g[0], g[1]]) as usize
        } else {
            0
        };
        let l2 = if g.len() >= 4 + l1 {
            u16::from_be_bytes([g[2 + l1], g[3 + l1]]) as usize
        } else {
            0
        };
        (l1, l2)
    }

    /// How many answer bytes are needed to learn more (the whole answer once both names'
    /// lengths are known); refuses a name longer than [`MAX_NAME_SIZE`].
    fn need(&self) -> Result<usize, AuthError> {
        let n = self.got.len();
        let (l1, l2) = self.name_lens();
        for len in [l1, l2] {
            if len > MAX_NAME_SIZE {
                return Err(AuthError::NameTooLong { len, local: false });
            }
        }
        Ok(if n < 2 {
            2
        } else if n < 4 + l1 {
            4 + l1
        } else {
            4 + l1 + l2 + NONCE_SIZE + MAC_SIZE
        })
    }
}

/// The slave's half, run right after connecting and before its first offset report.
pub fn slave_handshake(
    mut stream: &TcpStream,
    token: &str,
    cluster: &str,
    broker: &str,
    timeout: Duration,
) -> Result<(), AuthError> {
    let deadline = Instant::now() + timeout;
    let mut hello = [0u8; MAGIC.len() + NONCE_SIZE];
    let (magic, rest) = hello.split_at_mut(MAGIC.len());
    match read_full(stream, magic, deadline) {
        Ok(()) if *magic == MAGIC => {}
        Ok(()) => return Err(AuthError::NotMagic),
        Err(Short::Closed(n) | Short::TimedOut(n)) if magic[..n] != MAGIC[..n] => {
            return Err(AuthError::NotMagic)
        }
        Err(Short::Closed(_)) => return Err(AuthError::MasterClosed),
        Err(Short::TimedOut(_)) => return Err(AuthError::MasterSilent),
        Err(Short::Io(e)) => return Err(AuthError::Io(e)),
    }
    match read_full(stream, rest, deadline) {
        Ok(()) => {}
        Err(Short::Closed(_)) => return Err(AuthError::MasterClosed),
        Err(Short::TimedOut(_)) => return Err(AuthError::MasterSilent),
        Err(Short::Io(e)) => return Err(AuthError::Io(e)),
    }
    let nonce_m: [u8; NONCE_SIZE] = rest.try_into().expect("nonce size");
    let nonce_s = nonce().map_err(AuthError::Io)?;
    let answer = encode_answer(token, &nonce_m, &nonce_s, cluster, broker)?;
    let fields = &answer[..answer.len() - NONCE_SIZE - MAC_SIZE];
    stream
        .set_write_timeout(Some(timeout))
        .map_err(AuthError::Io)?;
    stream.write_all(&answer).map_err(AuthError::Io)?;
    let mut verdict = [0u8; 1 + MAC_SIZE];
    match read_full(stream, &mut verdict, deadline) {
        Ok(()) if verdict[0] == ACCEPTED => {
            // Constant time, as the master's check; nothing is read from a master that fails.
            mac_over(token, &[MASTER_LABEL, &nonce_m, &nonce_s, fields])
                .verify_slice(&verdict[1..])
                .map_err(|_| AuthError::MasterNotAuthentic)
        }
        Ok(()) => Err(AuthError::BadVerdict(verdict[0])),
        Err(Short::Closed(n)) if n > 0 && verdict[0] == ACCEPTED => {
            Err(AuthError::MasterNotAuthentic)
        }
        // A refusing master closes (or resets) the connection.
        Err(Short::Closed(_)) => Err(AuthError::Refused),
        Err(Short::TimedOut(_)) => Err(AuthError::MasterSilent),
        Err(Short::Io(e)) => Err(AuthError::Io(e)),
    }
}

/// For a slave without a token: whether the master's first bytes `head` (the first
/// [`MAGIC`]`.len()` of them, or fewer so far) open a handshake of any version.
pub fn opens_handshake(head: &[u8]) -> bool {
    let n = MAGIC.len();
    head.len() >= n && head[..n - 1] == MAGIC[..n - 1] && head[n - 1].is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn hmac_sha256_known_answer() {
        // RFC 4231, test case 2.
        let tag = mac_over("Jefe", &[b"what do ya ", b"want for nothing?"])
            .finalize()
            .into_bytes();
        let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn nonces_are_fresh() {
        assert_ne!(nonce().unwrap(), nonce().unwrap());
    }

    /// Runs the master's half against `slave` on a loopback pair.
    fn pair<T: Send + 'static>(
        master_token: &'static str,
        expect: (Option<&'static str>, Option<&'static str>),
        slave: impl FnOnce(TcpStream) -> T + Send + 'static,
    ) -> (Result<PeerIdentity, AuthError>, T) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let s = std::thread::spawn(move || slave(TcpStream::connect(addr).unwrap()));
        let (m, _) = l.accept().unwrap();
        let res = master_handshake(&m, master_token, expect.0, expect.1, HANDSHAKE_TIMEOUT);
        drop(m);
        (res, s.join().unwrap())
    }

    #[test]
    fn same_token_and_names_pass() {
        let (m, s) = pair("t0k", (Some("C"), Some("b")), |s| {
            slave_handshake(&s, "t0k", "C", "b", HANDSHAKE_TIMEOUT)
        });
        assert_eq!(
            m.unwrap(),
            PeerIdentity {
                cluster: "C".into(),
                broker: "b".into()
            }
        );
        s.unwrap();
    }

    #[test]
    fn wrong_token_or_group_is_refused() {
        let (m, s) = pair("t0k", (None, None), |s| {
            slave_handshake(&s, "other", "C", "b", HANDSHAKE_TIMEOUT)
        });
        assert!(matches!(m, Err(AuthError::BadMac)), "{m:?}");
        assert!(matches!(s, Err(AuthError::Refused)), "{s:?}");
        let (m, s) = pair("t0k", (Some("C"), Some("b")), |s| {
            slave_handshake(&s, "t0k", "C", "x", HANDSHAKE_TIMEOUT)
        });
        assert!(matches!(m, Err(AuthError::WrongGroup { .. })), "{m:?}");
        assert!(matches!(s, Err(AuthError::Refused)), "{s:?}");
    }

    #[test]
    fn a_fake_report_is_not_an_answer() {
        // A classic slave's 0 report reads as two empty names and half a MAC: it waits;
        // a large one announces an oversized name and is refused at once.
        let (m, _) = pair("t0k", (None, None), |mut s| {
            s.write_all(&crate::protocol::encode_report(1 << 40))
                .unwrap();
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink);
            sink
        });
        assert!(matches!(m, Err(AuthError::NameTooLong { .. })), "{m:?}");
        let (m, _) = pair("t0k", (None, None), |mut s| {
            s.write_all(&crate::protocol::encode_report(0)).unwrap();
        });
        assert!(matches!(m, Err(AuthError::PeerClosed)), "{m:?}");
    }

    #[test]
    fn a_master_without_the_handshake_is_named() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let m = std::thread::spawn(move || {
            let (mut m, _) = l.accept().unwrap();
            m.write_all(&[0u8; 12]).unwrap();
            std::thread::sleep(Duration::from_millis(200));
        });
        let s = TcpStream::connect(addr).unwrap();
        let e = slave_handshake(&s, "t", "C", "b", HANDSHAKE_TIMEOUT).unwrap_err();
        assert!(matches!(e, AuthError::NotMagic), "{e:?}");
        assert!(e.to_string().contains("not the HA auth magic"));
        m.join().unwrap();
        assert!(opens_handshake(b"RMQHA1\x00"));
        assert!(opens_handshake(&MAGIC));
        assert!(!opens_handshake(b"RMQHA"));
        assert!(!opens_handshake(&[0u8; 12]));
    }

    #[test]
    fn the_loop_handshake_takes_the_answer_in_any_pieces() {
        let (mut hs, hello) = MasterHandshake::new().unwrap();
        let nonce_m: [u8; NONCE_SIZE] = hello[MAGIC.len()..].try_into().unwrap();
        let nonce_s = [7u8; NONCE_SIZE];
        let answer = encode_answer("tok", &nonce_m, &nonce_s, "c1", "b1").unwrap();
        let mut wire = answer.clone();
        wire.extend_from_slice(&[9, 9]); // the first report's start
        let mut done = None;
        let mut at = 0;
        while done.is_none() {
            let (used, d) = hs.feed(&wire[at..at + 1], "tok", Some("c1"), None).unwrap();
            at += used;
            done = d;
        }
        assert_eq!(at, answer.len(), "bytes after the answer are left over");
        let (peer, verdict) = done.unwrap();
        assert_eq!((peer.cluster.as_str(), peer.broker.as_str()), ("c1", "b1"));
        assert_eq!(verdict[0], ACCEPTED);
        let fields = &answer[..answer.len() - NONCE_SIZE - MAC_SIZE];
        assert_eq!(
            verdict[1..],
            master_proof("tok", &nonce_m, &nonce_s, fields)
        );

        let (mut hs, hello) = MasterHandshake::new().unwrap();
        let nonce_m: [u8; NONCE_SIZE] = hello[MAGIC.len()..].try_into().unwrap();
        let answer = encode_answer("wrong", &nonce_m, &nonce_s, "c1", "b1").unwrap();
        assert!(matches!(
            hs.feed(&answer, "tok", None, None),
            Err(AuthError::BadMac)
        ));
        let (mut hs, _) = MasterHandshake::new().unwrap();
        assert!(matches!(
            hs.feed(&[0xff, 0xff], "tok", None, None),
            Err(AuthError::NameTooLong { local: false, .. })
        ));
    }
}
