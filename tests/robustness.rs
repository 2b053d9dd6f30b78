//! Bad input and load against a real primary and standby: random messages
//! must each get the answer or the error the protocol promises, and many
//! channels at once must lose, duplicate and reorder nothing.
//!
//! Needs `make install install-test-module` first; `make test` does it.

use std::collections::HashMap;

use std::thread;
use std::time::Instant;

use netbuf::demo_op::{decode_int32s, encode_add300};
use netbuf::{Client, Error};
use netbuf_testkit::{
    Pair, PairOptions, proc_status_kb, psql_command, serving_backend, shared_pair_with,
    tagged_conninfo,
};

fn options() -> PairOptions {
    let mut opts = PairOptions::with_test_module();
    opts.primary_conf.push("max_connections = 150".into());
    opts.standby_conf.push("max_connections = 150".into());
    opts
}

fn pair() -> &'static Pair {
    shared_pair_with(options)
}

/// xorshift64*: reproducible randomness without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// What the primary must answer to `message`: the reply, or the SQLSTATE and
/// a piece of the error text.
enum Expected {
    Reply(Vec<u8>),
    Error(&'static str, &'static str),
}

fn expected(message: &[u8]) -> Expected {
    let payload = &message[1..];
    match message[0] {
        b'E' => Expected::Reply(message.to_vec()),
        b'R' => Expected::Reply([b"R".to_vec(), payload.iter().rev().copied().collect()].concat()),
        b'z' => Expected::Error("08P01", "produced an empty reply"),
        b'F' => Expected::Error("22000", "failed on purpose"),
        b'N' if payload.is_empty() => Expected::Error("08P01", "it carries no value"),
        b'N' if !payload.len().is_multiple_of(4) => Expected::Error("08P01", "is not 1 + 4k"),
        b'N' => match decode_int32s(payload)
            .unwrap()
            .iter()
            .map(|v| v.checked_add(300))
            .collect::<Option<Vec<_>>>()
        {
            Some(values) => Expected::Reply(values.iter().flat_map(|v| v.to_be_bytes()).collect()),
            None => Expected::Error("22003", "out of range for int32"),
        },
        _ => Expected::Error("08P01", "unknown op code"),
    }
}

/// A random message: mostly garbage ops, truncated or huge 'N' values,
/// echoes of random length (up to 64 KiB), the test module's ops.
fn random_message(rng: &mut Rng) -> Vec<u8> {
    let len = match rng.below(10) {
        0 => 1,
        1..=6 => 1 + rng.below(16) as usize,
        7 | 8 => 1 + rng.below(1024) as usize,
        _ => 1 + rng.below(64 * 1024) as usize,
    };
    let mut message = rng.bytes(len);
    message[0] = match rng.below(6) {
        0 => b'E',
        1 | 2 => b'N',
        3 => *[b'R', b'z', b'F'].get(rng.below(3) as usize).unwrap(),
        // Any byte but 'S', whose random sleep would only slow the test,
        // and 'Q', which would run the random bytes as SQL.
        _ => match rng.next() as u8 {
            b'S' | b'Q' => b'q',
            op => op,
        },
    };
    if message[0] == b'N' && rng.below(2) == 0 {
        // Values at the edge of overflow.
        for chunk in message[1..].chunks_exact_mut(4) {
            chunk.copy_from_slice(&(i32::MAX - 300 + rng.below(2) as i32).to_be_bytes());
        }
    }
    message
}

#[test]
fn a_hundred_thousand_random_messages_get_their_answer_or_a_clear_error() {
    let p = pair();
    let watch = p.primary.crash_watch();
    const CONNECTIONS: u64 = 4;
    const PER_CONNECTION: u64 = 25_000;
    let started = Instant::now();
    let counts: Vec<HashMap<String, u64>> = (0..CONNECTIONS)
        .map(|c| {
            let conninfo = p.primary.conninfo();
            thread::spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (c + 1));
                let mut client = Client::connect(&conninfo).expect("connect");
                let mut counts = HashMap::new();
                for i in 0..PER_CONNECTION {
                    let message = random_message(&mut rng);
                    let outcome = client.request(&message);
                    let kind = match (expected(&message), outcome) {
                        (Expected::Reply(want), Ok(got)) => {
                            assert!(want == got, "message {i} (op 0x{:02x}, {} bytes): wrong reply", message[0], message.len());
                            "answered".to_owned()
                        }
                        (Expected::Error(sqlstate, text), Err(Error::Primary(e))) => {
                            assert_eq!(e.sqlstate, sqlstate, "message {i}: {e:?}");
                            assert!(e.message.contains(text), "message {i}: {:?} lacks {text:?}", e.message);
                            format!("refused {sqlstate}")
                        }
                        (Expected::Reply(_), Err(e)) => panic!("message {i} (op 0x{:02x}) failed: {e:?}", message[0]),
                        (Expected::Error(_, text), other) => {
                            panic!("message {i} (op 0x{:02x}) should fail with {text:?}, got {other:?}", message[0])
                        }
                    };
                    *counts.entry(kind).or_insert(0) += 1;
                }
                counts
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().expect("a client thread failed"))
        .collect();

    let mut total: HashMap<String, u64> = HashMap::new();
    for (kind, n) in counts.into_iter().flatten() {
        *total.entry(kind).or_insert(0) += n;
    }
    eprintln!(
        "{} messages in {:?}: {total:?}",
        CONNECTIONS * PER_CONNECTION,
        started.elapsed()
    );
    assert_eq!(total.values().sum::<u64>(), CONNECTIONS * PER_CONNECTION);
    assert!(
        total.get("answered").copied().unwrap_or(0) > 10_000,
        "too few good messages: {total:?}"
    );
    assert!(
        total.len() >= 4,
        "the generator missed error kinds: {total:?}"
    );

    // No backend crashed: same postmaster, no crash in the log, and a new
    // channel from a standby backend is answered.
    watch.assert_intact();
    assert_eq!(
        p.standby
            .must("SELECT netbuf_test.exchange_n(NULL, '{100,200,300}')"),
        "{400,500,600}"
    );
}

#[test]
fn sixty_four_channels_lose_duplicate_and_reorder_nothing() {
    let p = pair();
    const RUST_CLIENTS: u32 = 48;
    const STANDBY_BACKENDS: u32 = 16;
    const EXCHANGES: i32 = 10_000;
    let started = Instant::now();

    // Standby backends: netbuf_test.pipeline checks every reply's sequence
    // number against its request (depth 1: strict request/reply).
    let standby: Vec<_> = (0..STANDBY_BACKENDS)
        .map(|_| {
            let conninfo = p.standby.conninfo();
            thread::spawn(move || {
                let out = psql_command(&conninfo)
                    .arg("-c")
                    .arg(format!("SELECT netbuf_test.pipeline(NULL, {EXCHANGES}, 1)"))
                    .output()
                    .expect("psql");
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse::<i64>()
                    .unwrap()
            })
        })
        .collect();

    // Rust clients: each request carries (client, i); the reply must be
    // exactly (client + 300, i + 300), in order.
    let clients: Vec<_> = (0..RUST_CLIENTS)
        .map(|c| {
            let conninfo = tagged_conninfo(&p.primary, &format!("load_{c}"));
            thread::spawn(move || {
                let mut client = Client::connect(&conninfo).expect("connect");
                let mut first_rss = None;
                for i in 0..EXCHANGES {
                    let reply = client
                        .request(&encode_add300(&[c as i32, i]))
                        .expect("request");
                    assert_eq!(
                        decode_int32s(&reply),
                        Some(vec![c as i32 + 300, i + 300]),
                        "client {c} reply {i}"
                    );
                    if i == 1_000 {
                        first_rss = Some(serving_rss(c));
                    }
                }
                (first_rss.unwrap(), serving_rss(c), client)
            })
        })
        .collect();

    let mut exchanged = 0i64;
    let mut growth = Vec::new();
    let mut keep_open = Vec::new();
    for t in clients {
        let (start, end, client) = t.join().expect("a client thread failed");
        growth.push(end as i64 - start as i64);
        exchanged += i64::from(EXCHANGES);
        keep_open.push(client);
    }
    for t in standby {
        exchanged += t.join().expect("a standby backend failed");
    }
    let elapsed = started.elapsed();
    let max_growth = growth.iter().max().copied().unwrap();
    eprintln!(
        "{exchanged} exchanges on {} channels in {elapsed:?} ({:.0}/s); serving backend RSS growth, kB: max {max_growth}, all {growth:?}",
        RUST_CLIENTS + STANDBY_BACKENDS,
        exchanged as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(
        exchanged,
        i64::from(EXCHANGES) * i64::from(RUST_CLIENTS + STANDBY_BACKENDS)
    );
    // Flat: 9,000 more exchanges may not grow a serving backend by 1 MB.
    assert!(
        max_growth < 1024,
        "a serving backend grew by {max_growth} kB: {growth:?}"
    );
    drop(keep_open);
}

/// RSS of the serving backend of Rust client c, in kB.
fn serving_rss(c: u32) -> u64 {
    let pid = serving_backend(&pair().primary, &format!("load_{c}"));
    proc_status_kb(pid, "VmRSS").expect("the serving backend's VmRSS")
}
