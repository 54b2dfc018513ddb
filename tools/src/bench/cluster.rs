//! `--namesrv`: the load through RocketMQ name servers, over every broker group. The
//! topic's route comes from the name servers (created first on every group's master
//! that the `TBW102` route names, when the topic is new); connection `c` sends to group
//! `c mod groups`, round-robin over that group's writable queues, so the offered load
//! splits evenly over the groups. Each group also gets its own summary
//! (`<name>-<group>.json` / `.hgrm`) beside the total.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ringmq_client::cluster::NameServers;
use ringmq_client::{
    create_topic, ClientError, ConnectOptions, MessageQueue, Producer, ProducerOptions, TopicRoute,
};
use ringmq_remoting::{response_code, SerializeType};

use super::BenchArgs;

/// Producers spread over the groups of a topic's route.
pub struct Spread {
    pub producers: Vec<Producer>,
    /// The group each producer (connection) sends to.
    pub group_of: Vec<String>,
    pub queues: usize,
    pub note: String,
}

/// Group name -> (master address, writable queues), for groups that have a master.
fn groups(route: &TopicRoute) -> BTreeMap<String, (String, Vec<MessageQueue>)> {
    let mut out: BTreeMap<String, (String, Vec<MessageQueue>)> = BTreeMap::new();
    for q in route.write_queues() {
        if let Some(master) = route.broker(&q.broker_name).and_then(|b| b.master_addr()) {
            out.entry(q.broker_name.clone())
                .or_insert_with(|| (master.to_owned(), Vec::new()))
                .1
                .push(q);
        }
    }
    out
}

/// The topic's route, creating the topic on every auto-create group first if needed.
fn route(
    names: &NameServers,
    args: &BenchArgs,
    st: SerializeType,
    timeout: Duration,
) -> Result<(TopicRoute, String), String> {
    match names.fetch_route(&args.topic) {
        Ok(r) => return Ok((r, "existing".into())),
        Err(ClientError::Broker { code, .. }) if code == response_code::TOPIC_NOT_EXIST => {}
        Err(e) => {
            return Err(format!(
                "no route for {} from the name servers: {e}",
                args.topic
            ))
        }
    }
    let template = names.fetch_route("TBW102").map_err(|e| {
        format!("topic {} does not exist and no group auto-creates topics (TBW102: {e}); create it first", args.topic)
    })?;
    let masters: Vec<String> = groups(&template).into_values().map(|(m, _)| m).collect();
    for master in &masters {
        let conn = ringmq_client::Connection::connect_with(master.as_str(), args.connect_options())
            .map_err(|e| format!("cannot connect to {master}: {e}"))?;
        create_topic(&conn, &args.topic, args.queues, st, timeout)
            .map_err(|e| format!("cannot create {} on {master}: {e}", args.topic))?;
        conn.close();
    }
    // The brokers register the new topic with the name servers at once.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(r) = names.fetch_route(&args.topic) {
            if groups(&r).len() >= masters.len() {
                let note = format!(
                    "created with {} queues on {} groups",
                    args.queues,
                    masters.len()
                );
                return Ok((r, note));
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the name servers never routed {} to all {} groups",
                args.topic,
                masters.len()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Connects `args.connections` producers, spread over the groups of the topic's route.
pub fn connect(
    namesrv: &str,
    args: &BenchArgs,
    opts: &ProducerOptions,
    st: SerializeType,
    timeout: Duration,
) -> Result<Spread, String> {
    let names = NameServers::new(namesrv, ConnectOptions::default()).map_err(|e| e.to_string())?;
    let (route, note) = route(&names, args, st, timeout)?;
    let groups: Vec<(String, (String, Vec<MessageQueue>))> = groups(&route).into_iter().collect();
    if groups.is_empty() {
        return Err(format!("no group with a master serves {}", args.topic));
    }
    if args.connections < groups.len() {
        return Err(format!(
            "--connections {} is fewer than the {} groups of {}",
            args.connections,
            groups.len(),
            args.topic
        ));
    }
    let mut spread = Spread {
        producers: Vec::new(),
        group_of: Vec::new(),
        queues: groups.iter().map(|(_, (_, q))| q.len()).sum(),
        note: format!(
            "{note}; groups {}",
            groups
                .iter()
                .map(|(g, (m, q))| format!("{g}@{m} ({} queues)", q.len()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    for c in 0..args.connections {
        let (group, (master, queues)) = &groups[c % groups.len()];
        let p = Producer::connect_with(master, &args.producer_group, opts.clone())
            .map_err(|e| format!("cannot connect to {master}: {e}"))?;
        p.set_queues(&args.topic, queues.clone());
        spread.producers.push(p);
        spread.group_of.push(group.clone());
    }
    Ok(spread)
}
