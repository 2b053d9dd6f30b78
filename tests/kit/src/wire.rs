//! A frontend speaking the protocol by hand, so that a test can stop
//! reading, or stop half-way through a message, which libpq never does.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::server::Node;

/// One protocol message: type byte, length, body.
pub fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend((body.len() as u32 + 4).to_be_bytes());
    m.extend(body);
    m
}

/// A channel in COPY BOTH with `CALL netbuf.serve()`, over a socket the
/// test reads and writes itself.
pub struct RawChannel<S> {
    pub sock: S,
}

impl RawChannel<UnixStream> {
    /// Over `node`'s Unix socket (it survives a network partition).
    pub fn unix(node: &Node, application_name: &str) -> Self {
        let path = node.socket_dir.join(format!(".s.PGSQL.{}", node.port));
        let sock = UnixStream::connect(&path).expect("connect to the Unix socket");
        RawChannel::open(sock, application_name)
    }
}

impl RawChannel<TcpStream> {
    /// Over TCP, as a standby's channel; reads give up after 30 s.
    pub fn tcp(node: &Node, application_name: &str) -> Self {
        let sock = TcpStream::connect((node.host.as_str(), node.port)).expect("TCP connect");
        sock.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("read timeout");
        RawChannel::open(sock, application_name)
    }
}

impl<S: Read + Write> RawChannel<S> {
    /// Logs in as postgres to database postgres (trust: no password asked)
    /// and enters COPY BOTH.
    fn open(sock: S, application_name: &str) -> Self {
        let mut raw = RawChannel { sock };
        let mut startup = 196_608u32.to_be_bytes().to_vec(); // protocol 3.0
        for (key, value) in [
            ("user", "postgres"),
            ("database", "postgres"),
            ("application_name", application_name),
        ] {
            startup.extend(key.as_bytes().iter().chain(b"\0"));
            startup.extend(value.as_bytes().iter().chain(b"\0"));
        }
        startup.push(0);
        raw.write(&(startup.len() as u32 + 4).to_be_bytes());
        raw.write(&startup);
        raw.read_until(b'Z'); // ReadyForQuery
        raw.send(b'Q', b"CALL netbuf.serve()\0");
        raw.read_until(b'W'); // CopyBothResponse
        raw
    }

    pub fn write(&mut self, bytes: &[u8]) {
        self.sock.write_all(bytes).expect("write to the server");
    }

    /// One whole message.
    pub fn send(&mut self, tag: u8, body: &[u8]) {
        self.write(&message(tag, body));
    }

    pub fn read_message(&mut self) -> (u8, Vec<u8>) {
        let mut header = [0u8; 5];
        self.sock
            .read_exact(&mut header)
            .expect("read a message header");
        let len = u32::from_be_bytes(header[1..].try_into().unwrap()) as usize - 4;
        let mut body = vec![0; len];
        self.sock
            .read_exact(&mut body)
            .expect("read a message body");
        (header[0], body)
    }

    /// Reads messages up to one of type `tag` and returns its body; an
    /// ErrorResponse fails the test.
    pub fn read_until(&mut self, tag: u8) -> Vec<u8> {
        loop {
            match self.read_message() {
                (t, body) if t == tag => return body,
                (b'E', body) => {
                    panic!("error from the server: {}", String::from_utf8_lossy(&body))
                }
                _ => {}
            }
        }
    }
}
