//! Slave metadata sync (RocketMQ's SlaveSynchronize): the slave fetches the master's topic
//! configs, consumer offsets, delay offsets and subscription groups over the remoting
//! protocol, `slaveSyncInitialDelayMillis` (10 s) after start and every
//! `slaveSyncIntervalMillis` (60 s) after, persists them, and replaces topics and
//! subscription groups only when the master's data version changed. Each step is
//! independent: a failure is logged and the next one still runs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::Broker;
use ringmq_client::{expect_success, Connection};
use ringmq_engine::meta::{
    ConsumerOffsetSerializeWrapper, SubscriptionGroupWrapper, TopicConfigSerializeWrapper,
};
use ringmq_engine::sync::lock;
use ringmq_remoting::codes::request_code as rq;
use ringmq_remoting::RemotingCommand;

pub struct MetaSync {
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicU64>,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

const TIMEOUT: Duration = Duration::from_secs(3);

impl MetaSync {
    pub fn start(
        broker: Arc<Broker>,
        master: String,
        initial_delay: Duration,
        interval: Duration,
    ) -> MetaSync {
        let stop = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, rounds) = (stop.clone(), rounds.clone());
            std::thread::Builder::new()
                .name("ringmq-metasync".into())
                .spawn(move || {
                    let mut next = Instant::now() + initial_delay;
                    while !stop.load(Ordering::Acquire) {
                        if Instant::now() < next {
                            std::thread::sleep(Duration::from_millis(20));
                            continue;
                        }
                        sync_all(&broker, &master);
                        rounds.fetch_add(1, Ordering::Release);
                        next = Instant::now() + interval;
                    }
                })
                .expect("spawn metadata sync")
        };
        MetaSync {
            stop,
            rounds,
            thread: std::sync::Mutex::new(Some(thread)),
        }
    }

    /// Completed sync rounds (tests wait on it).
    pub fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Acquire)
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
    }
}

impl Drop for MetaSync {
    fn drop(&mut self) {
        self.stop();
    }
}

fn fetch(conn: &Connection, code: i32) -> Result<bytes::Bytes, String> {
    let resp = conn
        .request(RemotingCommand::request(code), TIMEOUT)
        .map_err(|e| e.to_string())?;
    expect_success(resp)
        .map(|r| r.body)
        .map_err(|e| e.to_string())
}

/// One round: each of the four tables, independently.
pub fn sync_all(broker: &Broker, master: &str) {
    let conn = match Connection::connect(master) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(master, error = %e, "metadata sync: cannot reach the master");
            return;
        }
    };
    let step = |what: &str, res: Result<(), String>| {
        if let Err(e) = res {
            tracing::warn!(master, what, error = %e, "metadata sync step failed");
        }
    };
    step(
        "topics",
        fetch(&conn, rq::GET_ALL_TOPIC_CONFIG).and_then(|body| {
            let wrapper =
                TopicConfigSerializeWrapper::from_json(&body).map_err(|e| e.to_string())?;
            if broker
                .topics
                .store()
                .replace_from_master(wrapper)
                .map_err(|e| e.to_string())?
            {
                broker.topics.reload_cache();
                tracing::info!("metadata sync: adopted the master's topics");
            }
            Ok(())
        }),
    );
    step(
        "consumer offsets",
        fetch(&conn, rq::GET_ALL_CONSUMER_OFFSET).and_then(|body| {
            let wrapper =
                ConsumerOffsetSerializeWrapper::from_json(&body).map_err(|e| e.to_string())?;
            broker
                .consumer_offsets
                .merge_from_master(wrapper)
                .map_err(|e| e.to_string())
        }),
    );
    step(
        "delay offsets",
        fetch(&conn, rq::GET_ALL_DELAY_OFFSET).and_then(|body| {
            broker
                .delay_offsets
                .replace_from_raw(&body)
                .map_err(|e| e.to_string())
        }),
    );
    step(
        "subscription groups",
        fetch(&conn, rq::GET_ALL_SUBSCRIPTIONGROUP_CONFIG).and_then(|body| {
            let wrapper = SubscriptionGroupWrapper::from_json(&body).map_err(|e| e.to_string())?;
            broker
                .subscription_groups
                .replace_from_master(wrapper)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }),
    );
}
