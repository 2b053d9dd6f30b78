//! `make demo`: the seed's exchange between a standby backend and the
//! primary, on throwaway servers.
//!
//! Starts a primary and a streaming standby (pg_basebackup -R) on loopback,
//! then runs, in a backend on the standby, the C function
//! netbuf_test.exchange_n (tests/pg_module/netbuf_test.c), which does what
//! the seed does through include/netbuf.h: load_file("libnetbuf"),
//! netbuf_connect(primary_conninfo), netbuf_send('N' 100 200 300),
//! netbuf_recv.  Then stops both servers and removes their files.

use netbuf_testkit::{Pair, PairOptions};

fn step(text: &str) {
    println!("-- {text}");
}

fn main() {
    // A failing step panics with the command, its stderr and the server log;
    // say plainly that the demo failed (the Pair's Drop still cleans up).
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        eprintln!("\nnetbuf demo FAILED:");
        default_hook(info);
    }));

    println!("netbuf demo: a standby backend asks the primary over libpq COPY BOTH\n");
    step(
        "starting a throwaway primary, CREATE EXTENSION netbuf on it, and a streaming standby (pg_basebackup -R)",
    );
    let mut pair = Pair::start(PairOptions::with_test_module());
    step(&format!(
        "primary on 127.0.0.1:{}, standby on 127.0.0.1:{}",
        pair.primary.port, pair.standby.port
    ));
    assert_eq!(
        pair.standby.must("SELECT pg_is_in_recovery()"),
        "t",
        "the standby is not in recovery"
    );
    let streaming = pair
        .primary
        .must("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'");
    step(&format!(
        "standby is streaming ({streaming} walsender on the primary)"
    ));
    let conninfo = pair.standby.must("SHOW primary_conninfo");
    step(&format!("the standby's primary_conninfo: {conninfo}"));

    step("on a standby backend: load_file(\"libnetbuf\"), netbuf_connect(primary_conninfo),");
    step(
        "netbuf_send('N' 100 200 300), netbuf_recv -- via SELECT netbuf_test.exchange_n(NULL, '{100,200,300}')",
    );
    let reply = pair
        .standby
        .sql("SELECT array_to_string(netbuf_test.exchange_n(NULL, '{100,200,300}'), ' ')")
        .unwrap_or_else(|e| panic!("the exchange failed:\n{e}"));
    println!();
    println!("   standby sent:     'N' 100 200 300");
    println!("   primary answered:     {reply}");
    println!();
    assert_eq!(reply, "400 500 600", "unexpected answer from the primary");

    step("stopping both servers and removing their files");
    pair.stop();
    drop(pair);
    println!("\nnetbuf demo: OK");
}
