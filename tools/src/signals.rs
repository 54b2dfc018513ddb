//! SIGINT/SIGTERM handling without a signal handler: the signals are blocked in every
//! thread (the mask is inherited, so this runs before any thread is spawned) and the main
//! thread waits for one with sigwait.

/// Blocks SIGINT and SIGTERM for this thread and every thread it spawns later.
pub fn block_termination_signals() {
    // SAFETY: sigset_t is plain data initialised by sigemptyset/sigaddset; the mask is
    // changed for the calling thread only (before other threads exist).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Waits until SIGINT or SIGTERM arrives; returns its name.
pub fn wait_for_termination() -> &'static str {
    // SAFETY: as above; sigwait writes the received signal number into a live local.
    let sig = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        let mut sig: libc::c_int = 0;
        libc::sigwait(&set, &mut sig);
        sig
    };
    if sig == libc::SIGINT {
        "SIGINT"
    } else {
        "SIGTERM"
    }
}
