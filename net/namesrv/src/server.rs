//! [`NameServer`] as a remoting [`Service`], and [`Namesrv`]: the service, its network
//! loop and its scan thread, started and stopped together.
//!
//! One network loop, unpinned: a name server answers a few requests per broker per
//! registration period and a few per client per route refresh (30 s each by default), so
//! one core is far more than it needs. This is a choice made without measurement; the
//! loops take more cores by changing `LoopPlacement` alone.
//!
//! Runs on: the network loop (`Service` methods) and the scan thread (`expire`), sharing
//! the [`State`] behind one mutex.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use bytes::BytesMut;
use ringmq_remoting::command::RemotingCommand;
use ringmq_remoting::server::{put, Conn, Listeners, LoopPlacement, Loops, Service};

use crate::config::NamesrvConfig;
use crate::kv::KvConfig;
use crate::processor::{self, State};
use crate::routes::RouteTable;
use crate::wire::{ClusterInfo, TopicRouteData};

/// Largest request frame accepted (a registration of many thousands of topics fits).
const MAX_FRAME: usize = 64 << 20;

/// The name server's state served on the remoting loops.
pub struct NameServer {
    cfg: NamesrvConfig,
    state: Mutex<State>,
}

impl NameServer {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("name server state")
    }
}

impl Service for NameServer {
    type Outgoing = RemotingCommand;

    fn max_frame_size(&self) -> usize {
        MAX_FRAME
    }

    fn is_batched(&self, _code: i32) -> bool {
        false
    }

    fn may_park(&self, _code: i32) -> bool {
        false
    }

    async fn process(
        svc: &Arc<Self>,
        conn: &Arc<Conn<RemotingCommand>>,
        req: RemotingCommand,
    ) -> Option<RemotingCommand> {
        let resp = processor::process(&svc.cfg, &mut svc.state(), conn.id, &req, Instant::now());
        (!req.is_oneway()).then_some(resp)
    }

    fn submit_batch(
        _svc: &Arc<Self>,
        _conn: &Arc<Conn<RemotingCommand>>,
        reqs: Vec<RemotingCommand>,
    ) {
        unreachable!("no request code is batched ({} requests)", reqs.len());
    }

    fn encode(&self, item: RemotingCommand, out: &mut BytesMut) {
        put(&item, out);
    }

    fn connection_closed(&self, conn_id: u64) {
        self.state().routes.connection_closed(conn_id);
    }

    fn in_flight(&self) -> usize {
        0
    }
}

/// Tells the scan thread to stop, and wakes it.
#[derive(Default)]
struct StopSignal {
    stopped: Mutex<bool>,
    wake: Condvar,
}

/// A running name server.
pub struct Namesrv {
    loops: Loops,
    svc: Arc<NameServer>,
    stop: Arc<StopSignal>,
    scan: Option<JoinHandle<()>>,
}

impl Namesrv {
    /// Loads the KV config, binds `bindAddress:listenPort` and starts serving.
    pub fn start(cfg: NamesrvConfig) -> io::Result<Namesrv> {
        let kv = KvConfig::load(&cfg.kv_config_path)?;
        let routes = RouteTable::new(
            cfg.broker_channel_expired_time,
            cfg.delete_topic_with_broker_registration,
        );
        let listeners = Listeners::bind(cfg.listen_addr(), 1)?;
        let interval = cfg.scan_not_active_broker_interval;
        let svc = Arc::new(NameServer {
            cfg,
            state: Mutex::new(State { routes, kv }),
        });
        let stop = Arc::new(StopSignal::default());
        let scan = {
            let (svc, stop) = (svc.clone(), stop.clone());
            std::thread::Builder::new()
                .name("ringmq-namesrv-scan".into())
                .spawn(move || {
                    let mut stopped = stop.stopped.lock().expect("stop flag");
                    while !*stopped {
                        stopped = stop
                            .wake
                            .wait_timeout(stopped, interval)
                            .expect("stop flag")
                            .0;
                        svc.state().routes.expire(Instant::now());
                    }
                })?
        };
        let placement = LoopPlacement {
            cores: vec![0],
            pin: false,
        };
        let loops = Loops::start(svc.clone(), listeners, &placement)?;
        tracing::info!(addr = %loops.local_addr(), "name server started");
        Ok(Namesrv {
            loops,
            svc,
            stop,
            scan: Some(scan),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.loops.local_addr()
    }

    /// The route clients would be given for `topic` now.
    pub fn route(&self, topic: &str) -> Option<TopicRouteData> {
        self.svc.state().routes.route(topic)
    }

    pub fn cluster_info(&self) -> ClusterInfo {
        self.svc.state().routes.cluster_info()
    }

    /// Stops serving (every connection closed) and the scan thread.
    pub fn stop(mut self) {
        self.shut();
    }

    fn shut(&mut self) {
        self.loops.stop();
        *self.stop.stopped.lock().expect("stop flag") = true;
        self.stop.wake.notify_all();
        if let Some(t) = self.scan.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Namesrv {
    fn drop(&mut self) {
        if self.scan.is_some() {
            self.shut();
        }
    }
}
