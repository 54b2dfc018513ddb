//! A broker node: the remoting server, the broker, and its replication role together.
//! `ringmq broker` and the HA tests start brokers through this.
//!
//! Start order: bind the remoting port (so port 0 is resolved before anything records the
//! address); open the broker (recovering its store); a master starts its HA listener
//! (warning when it has no `haAuthToken`) and, under SYNC_MASTER, makes sends wait for
//! `inSyncReplicas - 1` slaves (every in-sync one with `allAckInSyncStateSet`); a slave
//! starts following its master and syncing metadata from it; then the remoting loops
//! serve, and the broker registers with its name servers. Stop order is the reverse:
//! unregister, stop serving (in-flight sends answered), stop replication, shut the store
//! down cleanly.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use ringmq_ha::{HaConfig, HaMaster, HaSlave, Quorum, SyncReplication};

use crate::metasync::MetaSync;
use crate::register::{self, Registrar};
use crate::server::{self, ServeError, Server};
use crate::{Broker, BrokerConfig, BrokerRole};

pub struct Node {
    server: Server,
    master: Option<HaMaster>,
    sync: Option<Arc<SyncReplication>>,
    slave: Option<HaSlave>,
    metasync: Option<MetaSync>,
    register: Option<Registrar>,
}

fn ha_config(cfg: &BrokerConfig) -> HaConfig {
    HaConfig {
        transfer_batch_size: cfg.ha_transfer_batch_size,
        heartbeat_interval: cfg.ha_send_heartbeat_interval,
        housekeeping_interval: cfg.ha_housekeeping_interval,
        auth_token: cfg.ha_auth_token.as_ref().map(|s| s.0.clone()),
        cluster_name: Some(cfg.broker_cluster_name.clone()),
        broker_name: Some(cfg.broker_name.clone()),
        core: cfg.pin_threads.then_some(cfg.ha_core),
        ..HaConfig::default()
    }
}

fn resolve(what: &str, addr: &str) -> Result<SocketAddr, ServeError> {
    addr.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            ServeError::Bind(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{what} {addr:?} is not a host:port"),
            ))
        })
}

impl Node {
    pub fn start(mut cfg: BrokerConfig) -> Result<Node, ServeError> {
        let listeners = server::bind(&mut cfg).map_err(ServeError::Bind)?;
        let ha = ha_config(&cfg);
        let role = cfg.broker_role;
        let broker = Broker::open(cfg).map_err(ServeError::Store)?;
        let cfg = &broker.cfg;
        let (mut master, mut sync, mut slave, mut metasync) = (None, None, None, None);
        match role {
            BrokerRole::AsyncMaster | BrokerRole::SyncMaster => {
                let listen = SocketAddr::new(cfg.broker_ip, cfg.ha_listen_port);
                let m =
                    HaMaster::start(broker.store.clone(), listen, ha).map_err(ServeError::Bind)?;
                broker.metrics.set_slave_table(m.slaves().clone());
                if role == BrokerRole::SyncMaster && cfg.in_sync_replicas >= 2 {
                    let r = SyncReplication::start(
                        m.slaves().clone(),
                        Quorum {
                            acks: cfg.in_sync_replicas as usize - 1,
                            all_in_sync: cfg.all_ack_in_sync_state_set,
                            max_gap: cfg.ha_max_gap_not_in_sync,
                        },
                    );
                    broker.set_replication(r.clone());
                    sync = Some(r);
                }
                if cfg.ha_auth_token.is_none() {
                    tracing::warn!(
                        role = role.name(),
                        ha = %m.local_addr(),
                        "HA master without haAuthToken: any client reaching the HA port can \
                         pose as a slave (read the CommitLog, report offsets); set haAuthToken \
                         on the master and its slaves unless RocketMQ slaves must follow it"
                    );
                }
                tracing::info!(ha = %m.local_addr(), role = role.name(), "HA master listening");
                master = Some(m);
            }
            BrokerRole::Slave => {
                // Without haMasterAddress, the name servers name the master.
                let found = match &cfg.ha_master_address {
                    Some(_) => None,
                    None => Some(register::discover_master(&broker).map_err(ServeError::Bind)?),
                };
                let ha_master = cfg
                    .ha_master_address
                    .clone()
                    .or_else(|| found.clone()?.ha_server_addr)
                    .unwrap_or_default();
                let addr = resolve("haMasterAddress", &ha_master)?;
                slave = Some(HaSlave::start(broker.store.clone(), addr, ha));
                let remoting = cfg
                    .master_remoting_address
                    .clone()
                    .or_else(|| found?.master_addr)
                    .unwrap_or_else(|| {
                        SocketAddr::new(addr.ip(), addr.port().saturating_sub(1)).to_string()
                    });
                metasync = Some(MetaSync::start(
                    broker.clone(),
                    remoting,
                    cfg.slave_sync_initial_delay,
                    cfg.slave_sync_interval,
                ));
            }
        }
        let server = Server::start(broker, listeners).map_err(ServeError::Bind)?;
        // Announced once serving, to every name server in namesrvAddr.
        let ha_addr = master.as_ref().map(HaMaster::local_addr);
        let register = Registrar::start_for(server.broker(), ha_addr).map_err(ServeError::Bind)?;
        Ok(Node {
            server,
            master,
            sync,
            slave,
            metasync,
            register,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The HA listening address (masters only).
    pub fn ha_addr(&self) -> Option<SocketAddr> {
        self.master.as_ref().map(|m| m.local_addr())
    }

    pub fn broker(&self) -> &Arc<Broker> {
        self.server.broker()
    }

    pub fn master(&self) -> Option<&HaMaster> {
        self.master.as_ref()
    }

    pub fn slave(&self) -> Option<&HaSlave> {
        self.slave.as_ref()
    }

    pub fn metasync(&self) -> Option<&MetaSync> {
        self.metasync.as_ref()
    }

    /// The name server registration (when `namesrvAddr` is set).
    pub fn registrar(&self) -> Option<&Registrar> {
        self.register.as_ref()
    }

    /// Unregisters from the name servers, stops serving, stops replication, shuts the
    /// store down cleanly.
    pub fn shutdown(mut self) -> Result<(), ringmq_engine::Error> {
        if let Some(r) = self.register.take() {
            r.stop();
        }
        self.server.stop();
        if let Some(m) = self.metasync.take() {
            m.stop();
        }
        if let Some(s) = self.slave.take() {
            s.stop();
        }
        if let Some(s) = self.sync.take() {
            s.stop();
        }
        if let Some(m) = self.master.take() {
            m.shutdown();
        }
        self.server.broker().shutdown()
    }
}
