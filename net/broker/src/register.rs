//! [`Registrar`]: the broker's registration with every name server in `namesrvAddr`
//! (RocketMQ's `registerBrokerAll` / `unregisterBrokerAll`; facts in
//! `net/namesrv/README.md`).
//!
//! One thread per name server, each with its own connection, so an unreachable or slow
//! name server delays nobody but its own thread: not the other name servers, not the
//! broker. Each thread registers at start, every `registerNameServerPeriod`, and at once
//! (within [`TICK`]) when the broker's topic table changes version; on stop it sends
//! UNREGISTER_BROKER over its connection if it has one and ends. A request waits at most
//! [`Registrar::timeout`]; a failed request drops the connection, and the next attempt
//! (the next period, or the next topic change) reconnects.
//!
//! Runs on: its own threads (`ringmq-register-<i>`); started and stopped by `node`.

use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ringmq_client::{ConnectOptions, Connection};
use ringmq_engine::meta::DataVersion;
use ringmq_remoting::codes::{request_code as rq, response_code as rs};
use ringmq_remoting::command::RemotingCommand;

use crate::Broker;

/// How often a registration thread looks for a topic change or a stop.
pub const TICK: Duration = Duration::from_millis(100);
/// RocketMQ's bounds on `registerNameServerPeriod`.
pub const PERIOD_MIN: Duration = Duration::from_secs(10);
pub const PERIOD_MAX: Duration = Duration::from_secs(60);
/// RocketMQ's `registerBrokerTimeoutMills` default: the most a registration may take.
const TIMEOUT_MAX: Duration = Duration::from_secs(24);
/// How long an UNREGISTER_BROKER may take at shutdown (RocketMQ: 3 s).
const UNREGISTER_TIMEOUT: Duration = Duration::from_secs(3);

/// The name server addresses in a `namesrvAddr` value (`host:port;host:port`).
pub fn parse_namesrv_addr(value: &str) -> Vec<String> {
    value
        .split(';')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect()
}

/// What the last successful registration answered: for a slave whose master is
/// registered, the master's remoting and HA addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterResult {
    pub namesrv: String,
    pub master_addr: Option<String>,
    pub ha_server_addr: Option<String>,
}

#[derive(Default)]
struct Shared {
    stop: Mutex<bool>,
    wake: Condvar,
    last: Mutex<Option<RegisterResult>>,
    /// Successful registrations, all name servers together (for tests and logs).
    registrations: std::sync::atomic::AtomicU64,
}

/// The registration threads of one broker.
pub struct Registrar {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

/// One broker's identity as a name server sees it, and its topic table.
struct Registration {
    broker: Arc<Broker>,
    ha_server_addr: String,
    timeout: Duration,
}

impl Registration {
    fn header(&self, code: i32) -> RemotingCommand {
        let cfg = &self.broker.cfg;
        RemotingCommand::request(code)
            .with_ext("brokerName", &cfg.broker_name)
            .with_ext("brokerAddr", cfg.broker_addr())
            .with_ext("clusterName", &cfg.broker_cluster_name)
            .with_ext("brokerId", cfg.broker_id)
    }

    /// A REGISTER_BROKER request and the topic-table version its body carries (read
    /// before the table, so a change racing the read is registered again next tick).
    fn register_request(&self) -> (RemotingCommand, DataVersion) {
        let store = self.broker.topics.store();
        let version = store.data_version();
        let body = format!(
            r#"{{"filterServerList":[],"topicConfigSerializeWrapper":{}}}"#,
            store.to_wire_json()
        )
        .into_bytes();
        let crc = ringmq_engine::record::crc32(&body) as i32;
        let req = self
            .header(rq::REGISTER_BROKER)
            .with_ext("haServerAddr", &self.ha_server_addr)
            .with_ext("enableActingMaster", false)
            .with_ext("compressed", false)
            .with_ext("bodyCrc32", crc)
            .with_body(body);
        (req, version)
    }
}

impl Registrar {
    /// Starts registering `broker` if its `namesrvAddr` names any name server; its HA
    /// address is `ha_addr` (a master's bound HA listener) or `brokerIP1:haListenPort`.
    pub fn start_for(
        broker: &Arc<Broker>,
        ha_addr: Option<SocketAddr>,
    ) -> std::io::Result<Option<Registrar>> {
        let cfg = &broker.cfg;
        let namesrvs = parse_namesrv_addr(cfg.namesrv_addr.as_deref().unwrap_or(""));
        if namesrvs.is_empty() {
            return Ok(None);
        }
        let ha_addr = ha_addr.unwrap_or(SocketAddr::new(cfg.broker_ip, cfg.ha_listen_port));
        let period = cfg.register_name_server_period;
        Registrar::start(broker.clone(), namesrvs, ha_addr.to_string(), period).map(Some)
    }

    /// Starts one registration thread per address in `namesrv_addrs`. `ha_server_addr` is
    /// what the broker announces as its HA address (`brokerIP2:haListenPort`).
    pub fn start(
        broker: Arc<Broker>,
        namesrv_addrs: Vec<String>,
        ha_server_addr: String,
        period: Duration,
    ) -> std::io::Result<Registrar> {
        let shared = Arc::new(Shared::default());
        let reg = Arc::new(Registration {
            broker,
            ha_server_addr,
            timeout: Registrar::timeout(period),
        });
        let mut threads = Vec::new();
        for (i, addr) in namesrv_addrs.into_iter().enumerate() {
            let (mine, reg) = (shared.clone(), reg.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("ringmq-register-{i}"))
                .spawn(move || run(&mine, &reg, &addr, period));
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    let mut r = Registrar { shared, threads };
                    r.stop_threads();
                    return Err(e);
                }
            }
        }
        Ok(Registrar { shared, threads })
    }

    /// The most one registration request may take for a given period: the period itself,
    /// within 1 s..24 s (RocketMQ's registerBrokerTimeoutMills).
    pub fn timeout(period: Duration) -> Duration {
        period.clamp(Duration::from_secs(1), TIMEOUT_MAX)
    }

    /// What the most recent successful registration answered.
    pub fn last_result(&self) -> Option<RegisterResult> {
        self.shared.last.lock().expect("register result").clone()
    }

    /// Successful registrations so far, over all name servers.
    pub fn registrations(&self) -> u64 {
        self.shared
            .registrations
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Unregisters from every name server it is connected to (in parallel) and stops.
    pub fn stop(mut self) {
        self.stop_threads();
    }

    fn stop_threads(&mut self) {
        *self.shared.stop.lock().expect("register stop") = true;
        self.shared.wake.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Registrar {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.stop_threads();
        }
    }
}

/// How long a slave without `haMasterAddress` waits for a name server to name its master.
pub const DISCOVER_TIMEOUT: Duration = Duration::from_secs(60);

/// A slave without `haMasterAddress`: registers with its name servers (in parallel, once
/// a second) until one answers with the group master's HA and remoting addresses, as a
/// RocketMQ slave learns them (`masterAddr`, `haServerAddr` of REGISTER_BROKER's answer).
/// Fails when no name server names a master within [`DISCOVER_TIMEOUT`].
pub fn discover_master(broker: &Arc<Broker>) -> std::io::Result<RegisterResult> {
    let cfg = &broker.cfg;
    let namesrvs = parse_namesrv_addr(cfg.namesrv_addr.as_deref().unwrap_or(""));
    if namesrvs.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "a slave needs haMasterAddress or namesrvAddr",
        ));
    }
    let reg = Arc::new(Registration {
        broker: broker.clone(),
        ha_server_addr: SocketAddr::new(cfg.broker_ip, cfg.ha_listen_port).to_string(),
        timeout: Duration::from_secs(3),
    });
    let deadline = Instant::now() + DISCOVER_TIMEOUT;
    let (tx, rx) = std::sync::mpsc::channel();
    while Instant::now() < deadline {
        for addr in &namesrvs {
            let (tx, reg, addr) = (tx.clone(), reg.clone(), addr.clone());
            // Detached: an unreachable name server only delays its own attempt.
            std::thread::Builder::new()
                .name("ringmq-discover-master".into())
                .spawn(move || {
                    let shared = Shared::default();
                    let mut conn = None;
                    register_once(&shared, &reg, &addr, &mut conn);
                    if let Some(c) = conn {
                        c.close();
                    }
                    let found = shared.last.into_inner().ok().flatten();
                    let _ = tx.send(found);
                })?;
        }
        let round_end = Instant::now() + Duration::from_secs(1);
        while let Ok(found) = rx.recv_timeout(round_end.saturating_duration_since(Instant::now())) {
            if let Some(r) = found.filter(|r| r.master_addr.is_some() && r.ha_server_addr.is_some())
            {
                tracing::info!(namesrv = %r.namesrv, master = ?r.master_addr, ha = ?r.ha_server_addr, "master found through the name server");
                return Ok(r);
            }
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!(
            "no name server named a master of {} within {DISCOVER_TIMEOUT:?}",
            cfg.broker_name
        ),
    ))
}

/// One name server's registration loop.
fn run(shared: &Shared, reg: &Registration, namesrv: &str, period: Duration) {
    let mut conn: Option<Connection> = None;
    // The topic version of the last attempt, successful or not: a change since then
    // registers at once; a failure waits for the next period.
    let mut attempted: Option<DataVersion> = None;
    let mut next = Instant::now();
    loop {
        let current = reg.broker.topics.store().data_version();
        let changed = attempted.is_some_and(|v| v != current);
        if changed || Instant::now() >= next {
            next = Instant::now() + period;
            attempted = Some(register_once(shared, reg, namesrv, &mut conn).unwrap_or(current));
        }
        let stop = shared.stop.lock().expect("register stop");
        let wait = TICK.min(next.saturating_duration_since(Instant::now()));
        let (stop, _) = shared
            .wake
            .wait_timeout_while(stop, wait, |s| !*s)
            .expect("register stop");
        if *stop {
            break;
        }
    }
    if let Some(c) = conn {
        let resp = c.request(reg.header(rq::UNREGISTER_BROKER), UNREGISTER_TIMEOUT);
        match resp {
            Ok(r) if r.code == rs::SUCCESS => tracing::info!(namesrv, "unregistered"),
            Ok(r) => {
                tracing::warn!(namesrv, code = r.code, remark = ?r.remark, "UNREGISTER_BROKER refused")
            }
            Err(e) => tracing::warn!(namesrv, error = %e, "UNREGISTER_BROKER failed"),
        }
        c.close();
    }
}

/// Registers once over `conn` (connecting first if needed). Returns the topic version the
/// request carried (None when the name server could not be reached); a failed request
/// drops the connection.
fn register_once(
    shared: &Shared,
    reg: &Registration,
    namesrv: &str,
    conn: &mut Option<Connection>,
) -> Option<DataVersion> {
    if conn.as_ref().is_some_and(Connection::is_closed) {
        *conn = None;
    }
    let fresh = conn.is_none();
    if fresh {
        let opts = ConnectOptions {
            connect_timeout: reg.timeout,
            default_timeout: reg.timeout,
            ..ConnectOptions::default()
        };
        match Connection::connect_with(namesrv, opts) {
            Ok(c) => *conn = Some(c),
            Err(e) => {
                tracing::warn!(namesrv, error = %e, "cannot reach name server");
                return None;
            }
        }
    }
    let c = conn.as_ref()?;
    let (req, version) = reg.register_request();
    match c.request(req, reg.timeout) {
        Ok(resp) if resp.code == rs::SUCCESS => {
            let result = RegisterResult {
                namesrv: namesrv.to_owned(),
                master_addr: resp.ext("masterAddr").map(str::to_owned),
                ha_server_addr: resp.ext("haServerAddr").map(str::to_owned),
            };
            if fresh {
                tracing::info!(namesrv, master = ?result.master_addr, "registered with name server");
            } else {
                tracing::debug!(namesrv, counter = version.counter, "registered");
            }
            *shared.last.lock().expect("register result") = Some(result);
            shared
                .registrations
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(resp) => {
            tracing::warn!(namesrv, code = resp.code, remark = ?resp.remark, "REGISTER_BROKER refused");
        }
        Err(e) => {
            tracing::warn!(namesrv, error = %e, "REGISTER_BROKER failed");
            if let Some(c) = conn.take() {
                c.close();
            }
        }
    }
    Some(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namesrv_addr_lists_and_timeouts() {
        assert_eq!(
            parse_namesrv_addr(" 127.0.0.1:9876; 10.0.0.2:9876 ;;"),
            ["127.0.0.1:9876", "10.0.0.2:9876"]
        );
        assert!(parse_namesrv_addr("").is_empty());
        assert_eq!(
            Registrar::timeout(Duration::from_millis(200)),
            Duration::from_secs(1)
        );
        assert_eq!(
            Registrar::timeout(Duration::from_secs(30)),
            Duration::from_secs(24)
        );
    }
}
