//! Test-only fake broker: a thread with a `TcpListener` on 127.0.0.1:0
//! that decodes frames with the codec and hands each one (requests and the
//! client's responses to server requests) to a closure, which answers
//! through [`Out`]. Connections are served one after another.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread;

use bytes::BytesMut;

use ringmq_remoting::command::RemotingCommand;
use ringmq_remoting::frame::{encode_frame, FrameDecoder};

/// The server side of one accepted connection.
pub struct Out {
    stream: TcpStream,
    closed: bool,
}

impl Out {
    /// Write one frame (ignored after `close`).
    pub fn send(&mut self, cmd: RemotingCommand) {
        if self.closed {
            return;
        }
        let mut buf = BytesMut::new();
        encode_frame(&cmd, &mut buf).unwrap();
        let _ = self.stream.write_all(&buf);
    }

    /// Close the connection.
    pub fn close(&mut self) {
        self.closed = true;
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

pub struct FakeServer {
    addr: SocketAddr,
}

impl FakeServer {
    pub fn start<F>(mut on_frame: F) -> FakeServer
    where
        F: FnMut(RemotingCommand, &mut Out) + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut out = Out {
                    stream: stream.try_clone().unwrap(),
                    closed: false,
                };
                let mut decoder = FrameDecoder::default();
                let mut buf = BytesMut::new();
                let mut chunk = vec![0u8; 64 * 1024];
                'conn: while !out.closed {
                    let n = match stream.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(cmd) = decoder.decode(&mut buf).unwrap() {
                        on_frame(cmd, &mut out);
                        if out.closed {
                            break 'conn;
                        }
                    }
                }
            }
        });
        FakeServer { addr }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}
