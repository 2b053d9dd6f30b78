//! CPU pinning for benchmarks: a process, or a server and every process
//! below its postmaster, on one CPU (so that the client side and the
//! primary run as two machines would, whatever the scheduler prefers).

use crate::server::Node;

/// Pins process `pid` (0: the calling thread) to `cpu`.  A process that
/// has just exited is not an error; any other failure panics.
pub fn pin(pid: libc::pid_t, cpu: usize) {
    // SAFETY: cpu_set_t is plain data; zeroed is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is a valid cpu_set_t; CPU_SET ignores cpu >= CPU_SETSIZE.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: set is a valid cpu_set_t of the size passed.
    if unsafe { libc::sched_setaffinity(pid, std::mem::size_of_val(&set), &set) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            panic!("pinning pid {pid} to CPU {cpu}: {e}");
        }
    }
}

/// Pins `node`'s postmaster and every process below it to `cpu`; backends
/// fork from the postmaster, so later ones inherit the CPU.
pub fn pin_server(node: &Node, cpu: usize) {
    let root: libc::pid_t = node
        .postmaster_pid()
        .trim()
        .parse()
        .expect("postmaster pid");
    for pid in process_tree(root) {
        pin(pid, cpu);
    }
}

/// `root` and its descendants, from /proc/*/stat.
fn process_tree(root: libc::pid_t) -> Vec<libc::pid_t> {
    let mut parents: Vec<(libc::pid_t, libc::pid_t)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse() else {
            continue;
        };
        // The ppid is the second field after the parenthesised command.
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok());
        if let Some(ppid) = ppid {
            parents.push((pid, ppid));
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    tree
}

/// CPU time (ns) that process `pid` has run, from /proc/PID/schedstat;
/// None once it is gone.
pub fn cpu_ns(pid: libc::pid_t) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
