//! The Rust API under timeouts and cancels (issue 8, item 1): after
//! `Error::Timeout` or `Error::Cancelled` with requests in flight, no later
//! call returns a reply meant for an earlier request -- strict (one request
//! at a time) and pipelined (eight queued, three received, then the wait
//! for the fourth is interrupted).  The serving backend is slowed by
//! SIGSTOP or by the test module's 'S' handler (it sleeps, then replies
//! "S"); echo payloads carry the test's tag and step, so a shifted reply is
//! never taken for the right one.
//!
//! Needs `make install install-test-module` first; `make test` does it.

use std::thread;
use std::time::{Duration, Instant};

use netbuf::{Client, Error};
use netbuf_testkit::test_module::{assert_reply, echo_msg, show, sleep_msg};
use netbuf_testkit::{
    Pair, PairOptions, Stopped, serving_backend, shared_pair_with, tagged_conninfo,
};

fn pair() -> &'static Pair {
    // The test module's ops ('S': sleep) in every serving backend.
    shared_pair_with(PairOptions::with_test_module)
}

/// A request whose reply must be its own (an echo, or "S" for a sleep).
fn expect_reply(client: &mut Client, message: &[u8], expected: &[u8]) {
    assert_reply(message, client.request(message), expected);
}

fn echo(client: &mut Client, message: &[u8]) {
    expect_reply(client, message, message);
}

/// A connected client whose serving backend is tagged `tag`, checked with
/// an echo.
fn connect(p: &Pair, tag: &str) -> Client {
    let mut client = Client::connect(&tagged_conninfo(&p.primary, tag)).expect("connect");
    echo(&mut client, &echo_msg(tag, "warm"));
    client
}

/// The error must be a timeout (SQLSTATE 57014).
fn assert_timeout(what: &str, outcome: Result<Vec<u8>, Error>) {
    match outcome {
        Err(e @ Error::Timeout(_)) => assert_eq!(e.sqlstate(), "57014", "{e:?}"),
        Err(e) => panic!("{what}: expected Error::Timeout, got {e:?}"),
        Ok(reply) => panic!("{what}: expected Error::Timeout, got {}", show(&reply)),
    }
}

/// The error must be a cancel (SQLSTATE 57014).
fn assert_cancelled(what: &str, outcome: Result<Vec<u8>, Error>) {
    match outcome {
        Err(e @ Error::Cancelled(_)) => assert_eq!(e.sqlstate(), "57014", "{e:?}"),
        Err(e) => panic!("{what}: expected Error::Cancelled, got {e:?}"),
        Ok(reply) => panic!("{what}: expected Error::Cancelled, got {}", show(&reply)),
    }
}

/// `recv` as an owned reply (None: end of stream), to match on.
fn recv(client: &mut Client) -> Result<Option<Vec<u8>>, Error> {
    client.recv().map(|m| m.map(<[u8]>::to_vec))
}

fn recv_reply(client: &mut Client) -> Result<Vec<u8>, Error> {
    recv(client).map(|m| m.expect("a reply, not the end of the stream"))
}

/// After a reset, nothing was sent: a recv must fail, never return an old
/// reply.
fn assert_recv_fails(client: &mut Client) {
    match recv(client) {
        Err(_) => {}
        Ok(Some(reply)) => panic!(
            "a recv after the reset, with no new send, returned {}",
            show(&reply)
        ),
        Ok(None) => panic!("a recv after the reset, with no new send, returned end-of-stream"),
    }
}

/// The reproduction with the Rust API: the serving backend is
/// stopped, a request times out, the serving backend resumes; the next
/// request gets its own reply.  A timeout that does not expire changes
/// nothing.
#[test]
fn timeout_with_the_serving_backend_stopped_never_shifts_replies() {
    let p = pair();
    let tag = "rs_stopped_timeout";
    let mut c = connect(p, tag);
    let serving = serving_backend(&p.primary, tag);
    {
        let _stopped = Stopped::new(serving);
        c.set_timeout(Some(Duration::from_millis(700)));
        c.send(&echo_msg(tag, "first"))
            .expect("send into the socket buffer");
        assert_eq!(c.in_flight(), 1);
        let t0 = Instant::now();
        assert_timeout("recv of first", recv_reply(&mut c));
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_millis(600) && waited < Duration::from_secs(10),
            "the timeout of 700 ms fired after {waited:?}"
        );
        assert_eq!(c.in_flight(), 0, "the reply of first is discarded");
        assert_recv_fails(&mut c);
    } // SIGCONT: the serving backend answers "first" now, to nobody.
    c.set_timeout(None);
    echo(&mut c, &echo_msg(tag, "second"));
    echo(&mut c, &echo_msg(tag, "third"));
    // A timeout longer than the wait: the reply comes, nothing is reset.
    c.set_timeout(Some(Duration::from_secs(10)));
    expect_reply(&mut c, &sleep_msg(300), b"S");
    echo(&mut c, &echo_msg(tag, "fourth"));
    assert_eq!(c.in_flight(), 0);
    // The timed-out connection was closed: its serving backend exits.
    p.primary
        .wait_backend_exit(serving, Duration::from_secs(5))
        .expect("the timed-out channel's serving backend exits");
}

/// A cancel from another thread while the client waits for a slow reply:
/// the call fails at once, and the next request gets its own reply, not
/// the "S" that comes later.
#[test]
fn cancel_from_another_thread_never_shifts_replies() {
    let p = pair();
    let tag = "rs_cancel";
    let mut c = connect(p, tag);
    let canceller = c.canceller();
    let t0 = Instant::now();
    let cancelling = thread::spawn(move || {
        thread::sleep(Duration::from_millis(300));
        canceller.cancel();
    });
    assert_cancelled("request of a 3 s sleep", c.request(&sleep_msg(3000)));
    let waited = t0.elapsed();
    cancelling.join().unwrap();
    assert!(
        waited < Duration::from_millis(2500),
        "the cancelled call returned after {waited:?}, as late as the reply"
    );
    assert_eq!(c.in_flight(), 0);
    assert_recv_fails(&mut c);
    echo(&mut c, &echo_msg(tag, "after-cancel"));
    echo(&mut c, &echo_msg(tag, "after-cancel-2"));
}

/// A cancel while no call is blocked fails the next blocking call, and only
/// that one.
#[test]
fn cancel_while_idle_fails_the_next_call_only() {
    let p = pair();
    let tag = "rs_cancel_idle";
    let mut c = connect(p, tag);
    c.canceller().cancel();
    assert_cancelled(
        "the call after an idle cancel",
        c.request(&echo_msg(tag, "x")),
    );
    echo(&mut c, &echo_msg(tag, "y"));
    echo(&mut c, &echo_msg(tag, "z"));
}

/// Eight requests queued (E1 E2 E3, a 2 s 'S', E5..E8) and flushed, three
/// replies received, then the wait for the fourth is interrupted: its reply
/// and the four after it are discarded, and the next request gets its own.
#[test]
fn pipelined_timeout_after_three_of_eight_never_shifts_replies() {
    pipelined_interrupt("rs_pipe_timeout", false);
}

#[test]
fn pipelined_cancel_after_three_of_eight_never_shifts_replies() {
    pipelined_interrupt("rs_pipe_cancel", true);
}

fn pipelined_interrupt(tag: &str, cancel: bool) {
    let p = pair();
    let mut c = connect(p, tag);
    let mut batch: Vec<Vec<u8>> = (1..=8).map(|i| echo_msg(tag, &format!("E{i}"))).collect();
    batch[3] = sleep_msg(2000);
    for message in &batch {
        c.queue(message).expect("queue");
    }
    c.flush().expect("flush");
    assert_eq!(c.in_flight(), 8);
    for expected in &batch[..3] {
        let got = recv_reply(&mut c).expect("one of the first three replies");
        assert!(
            &got == expected,
            "expected {}, got {}",
            show(expected),
            show(&got)
        );
    }
    assert_eq!(c.in_flight(), 5);
    if cancel {
        let canceller = c.canceller();
        let cancelling = thread::spawn(move || {
            thread::sleep(Duration::from_millis(300));
            canceller.cancel();
        });
        assert_cancelled("the fourth recv", recv_reply(&mut c));
        cancelling.join().unwrap();
    } else {
        c.set_timeout(Some(Duration::from_millis(500)));
        assert_timeout("the fourth recv", recv_reply(&mut c));
        c.set_timeout(None);
    }
    assert_eq!(c.in_flight(), 0, "the five replies in flight are discarded");
    assert_recv_fails(&mut c);
    echo(&mut c, &echo_msg(tag, "next"));
    echo(&mut c, &echo_msg(tag, "next-2"));
    assert_eq!(c.in_flight(), 0);
}
