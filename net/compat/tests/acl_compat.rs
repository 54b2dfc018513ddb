//! ACL compatibility: the unmodified rocketmq-client-rust 1.0.0 with its own
//! `AclClientRPCHook` (AccessKey + Signature, HMAC-SHA1 over the sorted ext fields and the
//! body) produces and consumes through a ringmq broker with `aclEnable=true`; the same
//! producer with a wrong secret is refused.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cheetah_string::CheetahString;
use rocketmq_client_rust::{
    AclClientRPCHook, ClientRuntime, ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus,
    DefaultMQProducer, DefaultMQPushConsumer, MQPushConsumer, SendStatus, SessionCredentials,
};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_model::common::message::MessageTrait;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

const TOPIC: &str = "acl_compat_topic";
const GROUP: &str = "acl_compat_group";
const TOTAL: u32 = 200;

const ACCOUNTS: &str = r#"
accounts:
  - accessKey: rust-producer
    secretKey: producer-secret-1
    defaultTopicPerm: DENY
    topicPerms: [acl_compat_topic=PUB]
  - accessKey: rust-consumer
    secretKey: consumer-secret-1
    defaultTopicPerm: DENY
    defaultGroupPerm: DENY
    topicPerms: [acl_compat_topic=SUB]
    groupPerms: [acl_compat_group=SUB]
"#;

fn hook(ak: &str, sk: &str) -> Arc<AclClientRPCHook> {
    Arc::new(AclClientRPCHook::new(SessionCredentials::with_keys(
        ak.to_string(),
        sk.to_string(),
    )))
}

#[test]
fn rust_client_with_acl_hook_produces_and_consumes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain_acl.yml");
    std::fs::write(&file, ACCOUNTS).unwrap();
    let cfg = ringmq_broker::BrokerConfig {
        store_path_root_dir: dir.path().join("store"),
        listen_port: 0,
        pin_threads: false,
        mapped_file_size_commit_log: 64 << 20,
        tail_ring_bytes: 32 << 20,
        acl_enable: true,
        plain_acl_file: file,
        ..Default::default()
    };
    let server = ringmq_broker::Server::open(cfg).expect("broker serves");
    let addr = server.local_addr().to_string();
    let (owner, client_runtime) = common::build_client_runtime("acl-compat-client");
    let result = owner.block_on(run(addr, Arc::clone(&client_runtime)));
    let _ = owner.block_on(client_runtime.shutdown());
    drop(client_runtime);
    owner
        .shutdown_runtime_blocking()
        .expect("runtime shutdown outside async context");
    server.shutdown().expect("broker shuts down cleanly");
    if let Err(e) = result {
        panic!("acl compat run failed: {e}");
    }
}

fn message(seq: u32) -> Result<Message, BoxError> {
    Ok(Message::builder()
        .topic(TOPIC)
        .tags("TagA")
        .keys(vec![format!("key-{seq}")])
        .body_slice(format!("acl-body-{seq}").as_bytes())
        .build()?)
}

async fn run(addr: String, client_runtime: Arc<ClientRuntime>) -> Result<(), BoxError> {
    // A wrong secret: refused.
    let mut bad = DefaultMQProducer::builder(Arc::clone(&client_runtime))
        .producer_group("acl_bad_producer_group")
        .name_server_addr(addr.clone())
        .send_msg_timeout(3_000)
        .retry_times_when_send_failed(0)
        .rpc_hook(hook("rust-producer", "not-the-secret"))
        .build();
    bad.start().await?;
    match bad.send_with_timeout(message(0)?, 3_000).await {
        Ok(r) => {
            return Err(format!(
                "a wrong secret was accepted: {:?}",
                r.map(|r| r.send_status)
            )
            .into())
        }
        Err(e) => eprintln!("wrong secret refused: {e}"),
    }
    bad.shutdown().await;

    // The valid producer.
    let mut producer = DefaultMQProducer::builder(Arc::clone(&client_runtime))
        .producer_group("acl_compat_producer_group")
        .name_server_addr(addr.clone())
        .send_msg_timeout(5_000)
        .rpc_hook(hook("rust-producer", "producer-secret-1"))
        .build();
    producer.start().await?;
    for seq in 0..TOTAL {
        let r = producer
            .send_with_timeout(message(seq)?, 5_000)
            .await
            .map_err(|e| format!("send {seq} failed: {e}"))?
            .ok_or_else(|| format!("send {seq}: no SendResult"))?;
        if r.send_status != SendStatus::SendOk {
            return Err(format!("send {seq}: {:?}", r.send_status).into());
        }
    }

    // The valid consumer.
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let seen_in_listener = Arc::clone(&seen);
    let mut consumer = DefaultMQPushConsumer::builder(Arc::clone(&client_runtime))
        .consumer_group(GROUP)
        .name_server_addr(addr.clone())
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .rpc_hook(Some(hook("rust-consumer", "consumer-secret-1") as _))
        .build();
    consumer.subscribe(TOPIC, "*").await?;
    consumer.register_message_listener_concurrently(
        move |msgs: &[&MessageExt], _ctx: &ConsumeConcurrentlyContext| {
            let mut s = seen_in_listener.lock().expect("listener mutex");
            for m in msgs {
                if let Some(k) = m.get_keys() {
                    s.insert(k.to_string());
                }
                let _ = m.property(&CheetahString::from_static_str("TAGS"));
            }
            Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
        },
    );
    consumer.start().await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seen.lock().expect("mutex").len() < TOTAL as usize {
        if tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    consumer.shutdown().await;
    producer.shutdown().await;
    let got = seen.lock().expect("mutex").len();
    if got < TOTAL as usize {
        return Err(format!("only {got} of {TOTAL} messages were consumed").into());
    }
    Ok(())
}
