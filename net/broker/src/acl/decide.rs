//! The decision for one request, in RocketMQ's order (`PlainPermissionManager.validate`):
//! a peer on the global white list passes; otherwise the request must name a known
//! account; a peer on that account's white list passes without a signature; otherwise
//! the signature must match; then an admin-only code needs an admin account, and each
//! topic and group the request uses needs its permission (the account's entry for it,
//! else its default; an admin account without any entries may use everything).
//!
//! A refusal's text is sent to the client: it names the access key, never the secret.

use std::net::IpAddr;

use ringmq_client::acl::{signature, ACCESS_KEY, SIGNATURE};
use ringmq_remoting::codes::request_code;
use ringmq_remoting::command::RemotingCommand;

use super::accounts::{Account, Accounts};
use super::needs::{self, Resource};
use super::perm;

/// `Ok` if `req` from `peer` may be served; `Err` with the reason otherwise.
pub fn check(accounts: &Accounts, peer: IpAddr, req: &RemotingCommand) -> Result<(), String> {
    if accounts.global_white.iter().any(|p| p.matches(peer)) {
        return Ok(());
    }
    let Some(key) = req.ext_fields.get(ACCESS_KEY) else {
        return Err("no AccessKey: this broker has ACL on and takes signed requests only".into());
    };
    let Some(account) = accounts.by_key.get(key) else {
        return Err(format!("no acl config for accessKey={key}"));
    };
    if account.white.matches(peer) {
        return Ok(());
    }
    let Some(sent) = req.ext_fields.get(SIGNATURE) else {
        return Err(format!("no Signature for accessKey={key}"));
    };
    if !constant_time_eq(
        signature(&req.ext_fields, &req.body, &account.secret_key).as_bytes(),
        sent.as_bytes(),
    ) {
        return Err(format!("check signature failed for accessKey={key}"));
    }
    let needs = needs::of(req)?;
    if needs.admin && !account.admin {
        let code =
            request_code::name(req.code).map_or_else(|| req.code.to_string(), str::to_string);
        return Err(format!(
            "need admin permission for request code={code}, but accessKey={key} is not admin"
        ));
    }
    check_resources(account, key, &needs.resources)
}

fn check_resources(account: &Account, key: &str, needed: &[(Resource, u8)]) -> Result<(), String> {
    if account.admin && account.topic_perms.is_empty() && account.group_perms.is_empty() {
        return Ok(());
    }
    for (r, want) in needed {
        let (owned, what, name) = match r {
            Resource::Topic(t) => (
                account
                    .topic_perms
                    .get(t)
                    .copied()
                    .unwrap_or(account.default_topic_perm),
                "topic",
                t,
            ),
            Resource::Group(g) => (
                account
                    .group_perms
                    .get(g)
                    .copied()
                    .unwrap_or(account.default_group_perm),
                "group",
                g,
            ),
        };
        if !perm::grants(owned, *want) {
            return Err(format!(
                "no {} permission on {what} {name} for accessKey={key}",
                perm::name(*want)
            ));
        }
    }
    Ok(())
}

/// Compares without stopping at the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringmq_client::Credentials;
    use ringmq_remoting::codes::request_code as rq;

    const FILE: &str = r#"
globalWhiteRemoteAddresses: ["10.9.9.*"]
accounts:
  - accessKey: producer1
    secretKey: producer-secret
    defaultTopicPerm: PUB
  - accessKey: consumer1
    secretKey: consumer-secret
    whiteRemoteAddress: 10.1.1.1
    defaultTopicPerm: SUB
    defaultGroupPerm: SUB
    topicPerms: [Hidden=DENY]
  - accessKey: admin-account
    secretKey: admin-secret
    admin: true
"#;

    fn local() -> IpAddr {
        "127.0.0.1".parse().unwrap()
    }

    fn signed(mut req: RemotingCommand, ak: &str, sk: &str) -> RemotingCommand {
        Credentials::new(ak, sk).sign(&mut req);
        req
    }

    fn pull(topic: &str) -> RemotingCommand {
        RemotingCommand::request(rq::PULL_MESSAGE)
            .with_ext("topic", topic)
            .with_ext("consumerGroup", "G")
    }

    #[test]
    fn decisions() {
        let a = Accounts::parse(FILE).unwrap();
        let send = RemotingCommand::request(rq::SEND_MESSAGE_V2).with_ext("b", "T");
        assert!(check(
            &a,
            local(),
            &signed(send.clone(), "producer1", "producer-secret")
        )
        .is_ok());
        let wrong =
            check(&a, local(), &signed(send.clone(), "producer1", "nope-nope")).unwrap_err();
        assert!(
            wrong.contains("signature") && !wrong.contains("producer-secret"),
            "{wrong}"
        );
        assert!(check(&a, local(), &signed(send.clone(), "stranger", "whatever")).is_err());
        assert!(check(&a, local(), &send).is_err());
        assert!(check(&a, "10.9.9.3".parse().unwrap(), &send).is_ok());
        // PUB only: no pulls.
        assert!(check(
            &a,
            local(),
            &signed(pull("T"), "producer1", "producer-secret")
        )
        .is_err());
        assert!(check(
            &a,
            local(),
            &signed(pull("T"), "consumer1", "consumer-secret")
        )
        .is_ok());
        assert!(check(
            &a,
            local(),
            &signed(pull("Hidden"), "consumer1", "consumer-secret")
        )
        .is_err());
        // The account's white address: no signature needed, the access key still is.
        let unsigned = pull("Hidden").with_ext(ACCESS_KEY, "consumer1");
        assert!(check(&a, "10.1.1.1".parse().unwrap(), &unsigned).is_ok());
        // Administration.
        let create = RemotingCommand::request(rq::UPDATE_AND_CREATE_TOPIC).with_ext("topic", "N");
        let e = check(
            &a,
            local(),
            &signed(create.clone(), "consumer1", "consumer-secret"),
        )
        .unwrap_err();
        assert!(e.contains("admin"), "{e}");
        assert!(check(
            &a,
            local(),
            &signed(create, "admin-account", "admin-secret")
        )
        .is_ok());
        // A tampered body no longer matches.
        let mut t = signed(send, "producer1", "producer-secret");
        t.body = bytes::Bytes::from_static(b"other");
        assert!(check(&a, local(), &t).is_err());
    }
}
