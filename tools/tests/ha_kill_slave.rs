//! A slave killed mid-load and restarted catches up to byte-identical. `ringmq broker`
//! processes: an ASYNC_MASTER (ASYNC_FLUSH, 16 MiB segments) and its SLAVE. Producer
//! threads load the master; three times, the slave gets SIGKILL at a random moment and is
//! restarted on its directory while the load goes on; then the load stops. The slave must
//! reach the master's max offset on every queue and serve every acknowledged message;
//! after both stop cleanly (SIGTERM) their checkpoints agree and their CommitLog segment
//! files are byte-identical over [0, master's log end).

mod common_ha;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common_ha::*;

const TOPIC: &str = "HaKillSlave";
const QUEUES: i32 = 4;
const PRODUCERS: usize = 4;
/// Kill-and-restart cycles of the slave under load.
const KILLS: usize = 3;

#[test]
fn a_killed_slave_catches_up_to_a_byte_identical_log() {
    let mut rng = Rng::from_env_or_clock("ha_kill_slave");
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (mdir, sdir) = (tmp.path().join("master"), tmp.path().join("slave"));
    let (mlog, slog) = (tmp.path().join("master.log"), tmp.path().join("slave.log"));
    let started = Instant::now();

    let mut master = BrokerProc::master("master", &mdir, &mlog, "ASYNC_MASTER", (0, 0));
    let ha = master.ha_addr.clone().unwrap();
    let maddr = master.addr.clone();
    let mut slave = BrokerProc::slave("slave", &sdir, &slog, &ha, &maddr);

    let seq = Arc::new(AtomicU64::new(0));
    let load = Load::start(&maddr, TOPIC, QUEUES, PRODUCERS, &seq);
    assert!(
        wait_until(Duration::from_secs(10), || load.acked() > 0),
        "no SEND_OK within 10 s"
    );
    for kill in 0..KILLS {
        let before_kill = rng.range(200, 800);
        std::thread::sleep(Duration::from_millis(before_kill));
        let at_kill = load.acked();
        slave.kill();
        let down = rng.range(100, 500);
        std::thread::sleep(Duration::from_millis(down));
        slave = BrokerProc::slave("slave", &sdir, &slog, &ha, &maddr);
        println!(
            "kill {kill}: slave killed after {before_kill} ms more load ({at_kill} acks so \
             far), down {down} ms"
        );
    }
    let after_restart = rng.range(200, 800);
    std::thread::sleep(Duration::from_millis(after_restart));
    let (acks, other) = load.finish();
    println!(
        "load ran {after_restart} ms after the last restart; {} acks in all; other outcomes \
         {other:?}",
        acks.len()
    );

    let want = max_offsets(&maddr, TOPIC, QUEUES).expect("master max offsets");
    let mut have = Vec::new();
    let caught_up = wait_until(Duration::from_secs(15), || {
        have = max_offsets(&slave.addr, TOPIC, QUEUES).unwrap_or_default();
        have == want
    });
    assert!(
        caught_up,
        "slave never caught up: master max offsets {want:?}, slave {have:?}"
    );
    if let Err(report) = check_acks(&slave.addr, TOPIC, &acks, Duration::from_secs(5)) {
        panic!("the caught-up slave lacks acknowledged messages:\n{report}");
    }
    println!(
        "slave caught up: max offsets {want:?} after {} ms",
        started.elapsed().as_millis()
    );

    assert!(slave.term().success(), "slave stopped cleanly");
    assert!(master.term().success(), "master stopped cleanly");
    let end = checkpoint_phys_offset(&mdir);
    let slave_end = checkpoint_phys_offset(&sdir);
    assert_eq!(slave_end, end, "checkpoint physOffset: slave vs master");
    assert!(end > 0);

    let (ms, ss) = (segments(&mdir), segments(&sdir));
    let mut compared = 0u64;
    for (base, mpath) in &ms {
        if *base >= end as u64 {
            break;
        }
        let spath = ss
            .get(base)
            .unwrap_or_else(|| panic!("slave has no segment {base:020}"));
        let (a, b) = (std::fs::read(mpath).unwrap(), std::fs::read(spath).unwrap());
        assert_eq!(a.len(), b.len(), "segment {base:020}: file sizes differ");
        let upto = ((end as u64 - base) as usize).min(a.len());
        if let Some(i) = (0..upto).find(|&i| a[i] != b[i]) {
            panic!(
                "segment {base:020} differs first at log offset {} (master end {end})",
                base + i as u64
            );
        }
        compared += upto as u64;
    }
    assert_eq!(compared, end as u64, "segments cover [0, end)");
    println!(
        "CommitLogs byte-identical over [0, {end}) in {} segment(s); {} ms",
        ms.range(..end as u64).count(),
        started.elapsed().as_millis()
    );
}
