//! Commands with a deadline, the OS user the servers run as, and processes
//! seen through /proc.

use std::ffi::{CString, OsStr};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often waits poll.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Deadline of [`run_checked`].
const CHECKED_TIMEOUT: Duration = Duration::from_secs(120);

/// The result of [`run`]: `status` is None when the deadline killed it.
pub struct Output {
    pub cmdline: String,
    pub status: Option<ExitStatus>,
    pub timeout: Duration,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// The command, its status and its output, for a panic message.
    pub fn describe(&self) -> String {
        let status = match self.status {
            Some(s) => s.to_string(),
            None => format!("killed after timeout of {:?}", self.timeout),
        };
        format!(
            "command: {}\nstatus: {status}\nstderr:\n{}\nstdout:\n{}",
            self.cmdline,
            self.stderr.trim_end(),
            self.stdout.trim_end()
        )
    }
}

/// Runs `cmd` with a deadline, stdin from /dev/null. Output goes to
/// unlinked temp files rather than pipes: a daemon that inherits a pipe
/// (the postmaster) would keep it open and make reading to EOF hang.
pub fn run(mut cmd: Command, timeout: Duration) -> Output {
    let cmdline = describe_cmd(&cmd);
    let mut out_file = capture_file();
    let mut err_file = capture_file();
    cmd.stdin(Stdio::null())
        .stdout(out_file.try_clone().expect("dup capture file"))
        .stderr(err_file.try_clone().expect("dup capture file"))
        // Own process group, so a timeout kills runuser's child too.
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => panic!("could not spawn `{cmdline}`: {e}"),
    };
    let deadline = Instant::now() + timeout;
    // Short first polls keep quick psql calls quick.
    let mut pause = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                // SAFETY: plain syscall on the group we created; the child
                // is not yet reaped, so its pid (= pgid) is still ours.
                unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
                let _ = child.wait();
                break None;
            }
            Ok(None) => {
                sleep(pause);
                pause = (pause * 2).min(POLL_INTERVAL);
            }
            Err(e) => panic!("waiting for `{cmdline}`: {e}"),
        }
    };
    Output {
        cmdline,
        status,
        timeout,
        stdout: read_back(&mut out_file),
        stderr: read_back(&mut err_file),
    }
}

/// Runs `cmd` and panics with everything useful (and `context()`, e.g. a
/// server log's tail) if it fails.
pub(crate) fn must_run(
    cmd: Command,
    timeout: Duration,
    what: &str,
    context: impl FnOnce() -> String,
) -> Output {
    let out = run(cmd, timeout);
    if !out.success() {
        panic!("{what} failed:\n{}\n{}", out.describe(), context());
    }
    out
}

/// Runs `cmd` (deadline two minutes) and returns its stdout; panics with
/// the command, its status and its output if it fails.
pub fn run_checked(cmd: Command, what: &str) -> String {
    must_run(cmd, CHECKED_TIMEOUT, what, String::new).stdout
}

fn capture_file() -> File {
    let path = std::env::temp_dir().join(format!("netbuf-test-out-{}", unique_suffix()));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
    // Unlinked at once: the open descriptor is all we need, and nothing is
    // left behind whatever happens next.
    let _ = fs::remove_file(&path);
    file
}

fn read_back(file: &mut File) -> String {
    let mut buf = Vec::new();
    let _ = file.seek(SeekFrom::Start(0));
    let _ = file.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

fn describe_cmd(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(shell_quote)
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
    {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Unique within this machine for this process's lifetime: pid, a
/// counter and the clock's nanoseconds.
pub(crate) fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Writes straight to stderr: libtest captures `eprintln!` of passing
/// tests, and these notes matter exactly then.
pub(crate) fn note(msg: &str) {
    let _ = writeln!(std::io::stderr(), "netbuf test harness: {msg}");
}

/// Polls `probe` until it returns Some, for at most `timeout`.
pub fn wait_until<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        sleep(POLL_INTERVAL);
    }
}

// ---- the servers' OS user ---------------------------------------------------

pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The OS user that server-side commands run as: None when not root;
/// `$NETBUF_TEST_OS_USER`, else `postgres`, when root.
pub fn server_user() -> Option<&'static str> {
    static USER: OnceLock<Option<String>> = OnceLock::new();
    USER.get_or_init(|| {
        if !is_root() {
            return None;
        }
        if let Ok(user) = std::env::var("NETBUF_TEST_OS_USER") {
            return Some(user);
        }
        let name = CString::new("postgres").unwrap();
        // SAFETY: getpwnam with a valid C string; only the null check is used.
        if unsafe { libc::getpwnam(name.as_ptr()) }.is_null() {
            panic!(
                "tests run as root, which PostgreSQL refuses, and there is no `postgres` \
                 OS user; set NETBUF_TEST_OS_USER to an unprivileged user"
            );
        }
        Some("postgres".to_string())
    })
    .as_deref()
}

/// `program` as the servers' OS user (`runuser` when root), from `/`: the
/// server user may not be able to read our cwd.  Environment variables set
/// on the command reach `program` (runuser without --login keeps them).
pub fn as_server_user(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = match server_user() {
        Some(user) => {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", user, "--"]).arg(program);
            cmd
        }
        None => Command::new(program),
    };
    cmd.current_dir("/");
    cmd
}

/// Hands `path` (recursively) to the servers' OS user, when there is one.
pub fn chown_to_server_user(path: &Path) {
    if let Some(user) = server_user() {
        let mut chown = Command::new("chown");
        chown.arg("-R").arg(user).arg(path);
        run_checked(chown, "chown to the server user");
    }
}

// ---- processes ----------------------------------------------------------------

/// A process stopped with SIGSTOP until this guard is dropped (SIGCONT), so
/// that a failing test never leaves a server process stopped.
pub struct Stopped(libc::pid_t);

impl Stopped {
    pub fn new(pid: libc::pid_t) -> Stopped {
        // SAFETY: kill(2) of a server process the test owns.
        assert_eq!(
            unsafe { libc::kill(pid, libc::SIGSTOP) },
            0,
            "SIGSTOP {pid}"
        );
        let guard = Stopped(pid);
        // The signal is asynchronous: wait until the kernel shows it stopped.
        let stopped = wait_until(Duration::from_secs(5), || {
            (proc_state(pid) == Some('T')).then_some(())
        });
        assert!(stopped.is_some(), "process {pid} did not stop");
        guard
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        // SAFETY: kill(2) of the process stopped by new().
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}

/// The state letter of /proc/<pid>/stat (R, S, T, Z ...), None if it is gone.
pub fn proc_state(pid: libc::pid_t) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Gone: no /proc entry, or a zombie waiting for its parent to reap it.
pub fn process_gone(pid: libc::pid_t) -> bool {
    matches!(proc_state(pid), None | Some('Z'))
}

/// A field of /proc/<pid>/status in kB (VmRSS, VmHWM, VmSize ...); None
/// once the process is gone.
pub fn proc_status_kb(pid: libc::pid_t, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// How a child spawned with piped output ended.
#[derive(Debug)]
pub struct Finished {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
    /// From the instant given to [`wait_child`] to its end.
    pub elapsed: Duration,
}

/// Waits for `child` to end, at most until `since + limit` (then kills it
/// and panics).
pub fn wait_child(mut child: Child, since: Instant, limit: Duration) -> Finished {
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            let elapsed = since.elapsed();
            let output = child.wait_with_output().expect("the child's output");
            return Finished {
                success: output.status.success(),
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
                elapsed,
            };
        }
        if since.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("a child process still ran {limit:?} later");
        }
        sleep(Duration::from_millis(5));
    }
}
