//! The HA loop backs off when accept fails for lack of descriptors (EMFILE) instead of
//! retrying in a tight loop, and accepts the waiting slave once descriptors are free.
//! Its own test binary: it lowers the process's descriptor limit.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::{FromRawFd, OwnedFd};
use std::time::Duration;

use common::*;
use ringmq_ha::protocol::encode_report;
use ringmq_ha::HaMaster;

/// The HA loop thread's schedstat, opened now (reading it later needs no descriptor).
fn loop_schedstat() -> std::fs::File {
    for entry in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim() == "ringmq-ha-loop" {
            return std::fs::File::open(entry.path().join("schedstat")).unwrap();
        }
    }
    panic!("no HA loop thread");
}

/// CPU time (ns) in a schedstat file opened by [`loop_schedstat`].
fn cpu_ns(f: &mut std::fs::File) -> u64 {
    use std::io::Seek;
    f.rewind().unwrap();
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    s.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn accept_backs_off_on_emfile_and_recovers() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let dir = tempdir();
    // No checkpoint while the descriptor table is full.
    let mut cfg = small_config(&dir.path().join("master"));
    cfg.checkpoint_interval = Duration::from_secs(3600);
    let master = std::sync::Arc::new(ringmq_engine::MessageStore::open(cfg).unwrap());
    let ha = HaMaster::start(master.clone(), "127.0.0.1:0".parse().unwrap(), fast_ha()).unwrap();
    let addr = ha.local_addr();
    // The client's socket exists before the table fills; connect needs no descriptor.
    // SAFETY: socket takes no memory arguments; the result is checked and owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0);
    // SAFETY: `fd` was just created and is owned by nothing else.
    let client: TcpStream = unsafe { OwnedFd::from_raw_fd(fd) }.into();

    let mut stat = loop_schedstat();
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills one live rlimit.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut old) }, 0);
    let open_now = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
    let low = libc::rlimit {
        rlim_cur: open_now + 64,
        rlim_max: old.rlim_max,
    };
    // SAFETY: setrlimit reads one live rlimit.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &low) }, 0);
    let mut filler = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        filler.push(f);
    }

    // SAFETY: `sa` is a plain sockaddr_in filled below; connect reads it for the call.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sa.sin_family = libc::AF_INET as libc::sa_family_t;
    sa.sin_port = addr.port().to_be();
    sa.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
    // SAFETY: connect reads `sa`, a live sockaddr_in of the size passed.
    let r = unsafe {
        libc::connect(
            fd,
            &sa as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
    std::thread::sleep(Duration::from_millis(200));
    let before = cpu_ns(&mut stat);
    std::thread::sleep(Duration::from_millis(500));
    let used = cpu_ns(&mut stat) - before;
    drop(filler);
    // SAFETY: setrlimit reads one live rlimit.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &old) }, 0);
    assert!(
        used < 100_000_000,
        "the loop used {} ms of CPU in 500 ms while accept failed with EMFILE",
        used / 1_000_000
    );

    // Descriptors are back: both connections are served.
    let mut client = client;
    client.write_all(&encode_report(0)).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut header = [0u8; 12];
    client.read_exact(&mut header).unwrap();
    // io_uring's accept takes its descriptor before it waits, so the re-armed accept
    // fails with EMFILE whether or not a connection waits: a later one is accepted once
    // the back-off ends.
    let mut second = TcpStream::connect(addr).unwrap();
    second.write_all(&encode_report(0)).unwrap();
    second
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    second.read_exact(&mut header).unwrap();
    assert!(wait_until(Duration::from_secs(5), || ha
        .slaves()
        .connected_slaves()
        == 2));
    ha.shutdown();
    master.shutdown().unwrap();
}
