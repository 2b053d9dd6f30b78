//! `netbuf`: ping and load a primary's netbuf.serve() from the command line.
//!
//!     netbuf ping CONNINFO [-c COUNT] [-s SIZE] [-i INTERVAL]
//!     netbuf bench CONNINFO [-s SIZE] [-d DEPTH] [-t SECONDS]

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use netbuf::{Client, Error};

const USAGE: &str = "usage:
  netbuf ping CONNINFO [-c COUNT] [-s SIZE] [-i INTERVAL]   echo round trips, like ping(8)
  netbuf bench CONNINFO [-s SIZE] [-d DEPTH] [-t SECONDS]   pipelined echo throughput

CONNINFO is a libpq connection string or URI; SIZE counts the whole message
(the op code 'E' included, default 64); INTERVAL is in seconds (default 1).";

/// Set by SIGINT: stop and print the summary.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

struct Options {
    conninfo: String,
    count: Option<u64>,
    size: usize,
    interval: Duration,
    depth: usize,
    seconds: u64,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        conninfo: String::new(),
        count: None,
        size: 64,
        interval: Duration::from_secs(1),
        depth: 64,
        seconds: 5,
    };
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let mut value = |name: &str| rest.next().ok_or(format!("{name} needs a value")).cloned();
        let number = |text: String, name: &str| {
            text.parse::<f64>()
                .map_err(|_| format!("{name}: not a number: {text}"))
        };
        match arg.as_str() {
            "-c" => options.count = Some(number(value("-c")?, "-c")? as u64),
            "-s" => options.size = number(value("-s")?, "-s")? as usize,
            "-i" => {
                options.interval = Duration::from_secs_f64(number(value("-i")?, "-i")?.max(0.0))
            }
            "-d" => options.depth = number(value("-d")?, "-d")? as usize,
            "-t" => options.seconds = number(value("-t")?, "-t")? as u64,
            flag if flag.starts_with('-') && flag.len() > 1 => {
                return Err(format!("unknown option {flag}"));
            }
            conninfo if options.conninfo.is_empty() => options.conninfo = conninfo.to_owned(),
            extra => return Err(format!("unexpected argument {extra}")),
        }
    }
    if options.conninfo.is_empty() {
        return Err("missing CONNINFO".into());
    }
    if options.size == 0 {
        return Err("-s must be at least 1 (the op code)".into());
    }
    if options.depth == 0 {
        return Err("-d must be at least 1".into());
    }
    Ok(options)
}

/// An echo request of `size` bytes carrying `seq`, so replies can be checked.
fn request(size: usize, seq: u64) -> Vec<u8> {
    let mut message = vec![0u8; size];
    message[0] = b'E';
    let tag = seq.to_be_bytes();
    let n = (size - 1).min(8);
    message[1..1 + n].copy_from_slice(&tag[8 - n..]);
    message
}

fn ping(options: &Options) -> Result<(), Error> {
    let mut client = Client::connect(&options.conninfo)?;
    println!("NETBUF PING: {} bytes per echo", options.size);
    let started = Instant::now();
    let mut times: Vec<f64> = Vec::new();
    let mut sent = 0u64;
    while options.count.is_none_or(|c| sent < c) && !INTERRUPTED.load(Ordering::Relaxed) {
        if sent > 0 {
            sleep_unless_interrupted(options.interval);
            if INTERRUPTED.load(Ordering::Relaxed) {
                break;
            }
        }
        let message = request(options.size, sent);
        let t0 = Instant::now();
        let reply = client.request(&message)?;
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        if reply != message {
            return Err(Error::Internal(format!("echo {sent} came back changed")));
        }
        println!("{} bytes: seq={sent} time={ms:.3} ms", reply.len());
        times.push(ms);
        sent += 1;
    }
    let n = times.len() as f64;
    println!("\n--- netbuf ping statistics ---");
    println!(
        "{sent} sent, {} received, 0% loss, time {:.0} ms",
        times.len(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    if !times.is_empty() {
        let min = times.iter().cloned().fold(f64::INFINITY, f64::min);
        let max = times.iter().cloned().fold(0.0, f64::max);
        let avg = times.iter().sum::<f64>() / n;
        let mdev = (times.iter().map(|t| (t - avg).powi(2)).sum::<f64>() / n).sqrt();
        println!("rtt min/avg/max/mdev = {min:.3}/{avg:.3}/{max:.3}/{mdev:.3} ms");
    }
    client.close();
    Ok(())
}

fn sleep_unless_interrupted(total: Duration) {
    let end = Instant::now() + total;
    while !INTERRUPTED.load(Ordering::Relaxed) {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

fn bench(options: &Options) -> Result<(), Error> {
    let mut client = Client::connect(&options.conninfo)?;
    println!(
        "NETBUF BENCH: echo of {} bytes, {} in flight, {} s",
        options.size, options.depth, options.seconds
    );
    let started = Instant::now();
    let end = started + Duration::from_secs(options.seconds);
    let (mut done, mut last_report, mut at_last) = (0u64, started, 0u64);
    while Instant::now() < end && !INTERRUPTED.load(Ordering::Relaxed) {
        let batch: Vec<Vec<u8>> = (0..options.depth as u64)
            .map(|i| request(options.size, done + i))
            .collect();
        for message in &batch {
            client.queue(message)?;
        }
        client.flush()?;
        for message in &batch {
            match client.recv()? {
                Some(reply) if reply == &message[..] => {}
                _ => return Err(Error::Internal("a reply did not match its request".into())),
            }
        }
        done += batch.len() as u64;
        if last_report.elapsed() >= Duration::from_secs(1) {
            let rate = (done - at_last) as f64 / last_report.elapsed().as_secs_f64();
            eprint!("\r{done} messages, {rate:.0} msg/s    ");
            (last_report, at_last) = (Instant::now(), done);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let rate = done as f64 / seconds;
    eprintln!();
    println!(
        "{done} messages in {seconds:.2} s: {rate:.0} msg/s, {:.1} MB/s each way, all replies checked",
        rate * options.size as f64 / 1e6
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let options = match parse(rest) {
        Ok(options) => options,
        Err(problem) => {
            eprintln!("netbuf: {problem}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // SAFETY: installs an async-signal-safe handler (one atomic store).
    unsafe { libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t) };
    let outcome = match command.as_str() {
        "ping" => ping(&options),
        "bench" => bench(&options),
        other => {
            eprintln!("netbuf: unknown command {other}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!(
                "netbuf: {}",
                error.to_string().trim_start_matches("netbuf: ")
            );
            if let Some(detail) = error.detail() {
                eprintln!("DETAIL: {detail}");
            }
            if let Some(hint) = error.hint() {
                eprintln!("HINT: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}
