//! `netbuf`: ping and load a primary's netbuf.serve() from the command line.
//!
//!     netbuf ping CONNINFO [-c COUNT] [-s SIZE] [-i INTERVAL]
//!     netbuf bench CONNINFO [-s SIZE] [-d DEPTH] [-t SECONDS]
//!     netbuf completions SHELL
//!
//! Arguments are parsed by clap (feature `cli`, on by default): `--help`,
//! `--version`, usage errors (exit 2) and shell completions behave as in
//! other command-line tools.

use std::io;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, CommandFactory, Parser, Subcommand};
use clap_complete::Shell;
use netbuf::protocol::{DEFAULT_MAX_MESSAGE_SIZE, MAX_MESSAGE_SIZE_RANGE};
use netbuf::{Client, ConnectOptions, Error};

/// Ping and load a primary's netbuf.serve() over libpq's COPY BOTH.
#[derive(Parser)]
#[command(
    name = "netbuf",
    version,
    after_help = "CONNINFO is a libpq connection string or URI, e.g. 'host=primary user=replicator'."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Echo round trips, like ping(8); Ctrl-C prints the summary
    Ping {
        #[command(flatten)]
        target: Target,
        /// Stop after COUNT echoes (default: until Ctrl-C)
        #[arg(short = 'c', long, value_name = "COUNT", value_parser = clap::value_parser!(u64).range(1..))]
        count: Option<u64>,
        #[command(flatten)]
        size: Size,
        /// Seconds between echoes (fractions allowed)
        #[arg(short = 'i', long, value_name = "INTERVAL",
            allow_negative_numbers = true, default_value = "1", value_parser = seconds)]
        interval: Duration,
    },
    /// Pipelined echo throughput; progress on stderr
    Bench {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        size: Size,
        /// Requests in flight at a time
        #[arg(short = 'd', long, value_name = "DEPTH", default_value_t = 64, value_parser = depth)]
        depth: usize,
        /// How long to run, in seconds (fractions allowed)
        #[arg(short = 't', long, value_name = "SECONDS",
            allow_negative_numbers = true, default_value = "5", value_parser = seconds)]
        seconds: Duration,
    },
    /// Print a shell completion script to stdout
    #[command(after_help = "e.g. netbuf completions bash > /etc/bash_completion.d/netbuf")]
    Completions {
        /// The shell to complete for
        #[arg(value_name = "SHELL")]
        shell: Shell,
    },
}

#[derive(Args)]
struct Target {
    /// libpq connection string or URI of the primary
    #[arg(value_name = "CONNINFO")]
    conninfo: String,
}

#[derive(Args)]
struct Size {
    /// Bytes per echo, the op code 'E' included
    #[arg(short = 's', long, value_name = "SIZE", default_value_t = 64, value_parser = size)]
    size: usize,
}

/// A whole number, with an error that says what was wrong with it.
fn whole(text: &str) -> Result<usize, String> {
    text.parse::<usize>()
        .map_err(|_| format!("not a whole number: '{text}'"))
}

fn size(text: &str) -> Result<usize, String> {
    let size = whole(text)?;
    let max = *MAX_MESSAGE_SIZE_RANGE.end();
    if size == 0 {
        Err("must be at least 1 (the op code)".into())
    } else if size > max {
        Err(format!("must be at most {max} (the largest message)"))
    } else {
        Ok(size)
    }
}

fn depth(text: &str) -> Result<usize, String> {
    match whole(text)? {
        0 => Err("must be at least 1".into()),
        depth => Ok(depth),
    }
}

/// Seconds, fractions allowed: 0.2, 1, 1.5.
fn seconds(text: &str) -> Result<Duration, String> {
    let value = text
        .parse::<f64>()
        .map_err(|_| format!("not a number of seconds: '{text}'"))?;
    Duration::try_from_secs_f64(value)
        .map_err(|_| format!("not a usable number of seconds: '{text}'"))
}

/// Set by SIGINT: stop and print the summary.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Connects with a reply limit of at least `size`, so that the primary's
/// netbuf.max_message_size alone decides whether an echo that large goes.
fn connect(target: &Target, size: usize) -> Result<Client, Error> {
    let options = ConnectOptions::default().max_message_size(size.max(DEFAULT_MAX_MESSAGE_SIZE));
    Client::connect_with(&target.conninfo, &options)
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

fn ping(target: &Target, count: Option<u64>, size: usize, interval: Duration) -> Result<(), Error> {
    let mut client = connect(target, size)?;
    println!("NETBUF PING: {size} bytes per echo");
    let started = Instant::now();
    let mut times: Vec<f64> = Vec::new();
    let mut sent = 0u64;
    while count.is_none_or(|c| sent < c) && !INTERRUPTED.load(Ordering::Relaxed) {
        if sent > 0 {
            sleep_unless_interrupted(interval);
            if INTERRUPTED.load(Ordering::Relaxed) {
                break;
            }
        }
        let message = request(size, sent);
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

fn bench(target: &Target, size: usize, depth: usize, seconds: Duration) -> Result<(), Error> {
    let mut client = connect(target, size)?;
    println!(
        "NETBUF BENCH: echo of {size} bytes, {depth} in flight, {} s",
        seconds.as_secs_f64()
    );
    let started = Instant::now();
    let end = started + seconds;
    let (mut done, mut last_report, mut at_last) = (0u64, started, 0u64);
    while Instant::now() < end && !INTERRUPTED.load(Ordering::Relaxed) {
        let batch: Vec<Vec<u8>> = (0..depth as u64).map(|i| request(size, done + i)).collect();
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
        rate * size as f64 / 1e6
    );
    Ok(())
}

fn main() -> ExitCode {
    // clap prints help and version to stdout (exit 0) and usage errors to
    // stderr (exit 2) by itself.
    let cli = Cli::parse();
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(shell, &mut Cli::command(), "netbuf", &mut io::stdout());
        return ExitCode::SUCCESS;
    }
    // SAFETY: installs an async-signal-safe handler (one atomic store).
    unsafe { libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t) };
    let outcome = match &cli.command {
        Command::Ping {
            target,
            count,
            size,
            interval,
        } => ping(target, *count, size.size, *interval),
        Command::Bench {
            target,
            size,
            depth,
            seconds,
        } => bench(target, size.size, *depth, *seconds),
        Command::Completions { .. } => unreachable!("handled above"),
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
