//! The `/metrics` HTTP endpoint (`metricsExporterType=PROM`) on
//! `metricsPromExporterHost:metricsPromExporterPort`, served by one plain thread of its own
//! (`ringmq-metrics`): never a network, writer or dispatch core. One scrape at a time, one
//! request per connection; anything but `GET /metrics` gets 404.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use prometheus_client::registry::Registry;

use super::prom;
use crate::Broker;

/// Largest request head read.
const MAX_HEAD: usize = 8 << 10;
const IO_TIMEOUT: Duration = Duration::from_secs(2);
const ACCEPT_IDLE: Duration = Duration::from_millis(50);

pub struct Exporter {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Exporter {
    /// Binds and starts serving `b`'s metrics.
    pub fn start(b: &Arc<Broker>) -> io::Result<Exporter> {
        let host = if b.cfg.metrics_prom_exporter_host.is_empty() {
            b.cfg.broker_ip.to_string()
        } else {
            b.cfg.metrics_prom_exporter_host.clone()
        };
        let listener = TcpListener::bind((host.as_str(), b.cfg.metrics_prom_exporter_port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let registry = prom::registry(b);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("ringmq-metrics".into())
            .spawn(move || serve(listener, registry, flag))?;
        tracing::info!(%addr, "serving Prometheus metrics on /metrics");
        Ok(Exporter {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(listener: TcpListener, registry: Registry, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Acquire) {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = answer(stream, &registry) {
                    tracing::debug!(error = %e, "metrics request failed");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(ACCEPT_IDLE),
            Err(e) => {
                tracing::warn!(error = %e, "metrics accept failed");
                std::thread::sleep(ACCEPT_IDLE);
            }
        }
    }
}

fn answer(mut s: TcpStream, registry: &Registry) -> io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        let n = s.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|&c| c == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&c| c == b' ');
    let (method, path) = (parts.next(), parts.next());
    let path = path.map(|p| p.split(|&c| c == b'?').next().unwrap_or_default());
    let (status, ctype, body) = match (method, path) {
        (Some(b"GET"), Some(b"/metrics")) => ("200 OK", prom::CONTENT_TYPE, prom::render(registry)),
        _ => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "only GET /metrics is served here\n".to_string(),
        ),
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(resp.as_bytes())?;
    s.write_all(body.as_bytes())?;
    s.flush()
}
