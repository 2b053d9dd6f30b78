//! Backends found through pg_stat_activity: the serving backend of a
//! channel (tagged by its application_name), a standby backend running a
//! statement in the background (tagged by a comment in its query).

use std::process::Child;
use std::time::{Duration, Instant};

use crate::process::{Finished, wait_child, wait_until};
use crate::psql::psql_command;
use crate::server::{Node, pg_major};

/// `node`'s conninfo with `application_name=tag`: the serving backend of a
/// channel opened with it shows that name in the primary's
/// pg_stat_activity, so a test finds its own among parallel tests'.
pub fn tagged_conninfo(node: &Node, tag: &str) -> String {
    format!("{} application_name={tag}", node.conninfo())
}

/// The pids of the backends on `primary` whose application_name is `tag`
/// (the serving backends of channels opened with [`tagged_conninfo`]).
pub fn tagged_backends(primary: &Node, tag: &str) -> Vec<libc::pid_t> {
    primary
        .must(&format!(
            "SELECT pid FROM pg_stat_activity WHERE application_name = '{tag}' ORDER BY pid"
        ))
        .lines()
        .map(|l| l.trim().parse().expect("a pid"))
        .collect()
}

/// Waits for the number of backends tagged `tag` on `primary` to become
/// `n`; Err carries the pids last seen.
pub fn wait_tagged_backends(
    primary: &Node,
    tag: &str,
    n: usize,
    timeout: Duration,
) -> Result<(), Vec<libc::pid_t>> {
    let mut pids = Vec::new();
    wait_until(timeout, || {
        pids = tagged_backends(primary, tag);
        (pids.len() == n).then_some(())
    })
    .ok_or(pids)
}

/// The pid of the one serving backend (in `CALL netbuf.serve(...)`) on
/// `primary` tagged `tag`, once there is one.
pub fn serving_backend(primary: &Node, tag: &str) -> libc::pid_t {
    primary.wait_backend(&serving_filter(tag))
}

/// [`serving_backend`] once it waits on `wait_event`.
pub fn serving_backend_waiting(primary: &Node, tag: &str, wait_event: &str) -> libc::pid_t {
    primary.wait_backend(&format!(
        "{} AND wait_event = '{wait_event}'",
        serving_filter(tag)
    ))
}

fn serving_filter(tag: &str) -> String {
    format!("application_name = '{tag}' AND query LIKE 'CALL netbuf.serve(%'")
}

/// What pg_stat_activity.wait_event shows while a backend waits inside
/// netbuf for `event`: netbuf's own name from PostgreSQL 17 on (custom wait
/// events), the generic event it stands for before.  `event` is one of
/// NetbufConnect, NetbufSend, NetbufRecv (standby side), NetbufServeRecv
/// and NetbufServeSend (serving side).
pub fn netbuf_wait_event(event: &'static str) -> &'static str {
    let generic = match event {
        "NetbufConnect" | "NetbufSend" | "NetbufRecv" => "Extension",
        "NetbufServeRecv" => "ClientRead",
        "NetbufServeSend" => "ClientWrite",
        other => panic!("{other} is not one of netbuf's wait events"),
    };
    if pg_major() >= 17 { event } else { generic }
}

/// A statement running in a background psql (verbose errors), tagged with
/// a comment `/* tag */` so that its backend is found in pg_stat_activity.
/// Dropped unfinished, it kills its psql.
pub struct BackgroundSql {
    child: Option<Child>,
    tag: String,
}

impl BackgroundSql {
    /// `psql -c "<sql> /* <tag> */"` on `node`'s database postgres.
    pub fn start(node: &Node, tag: &str, sql: &str) -> BackgroundSql {
        let child = psql_command(&node.conninfo())
            .args(["-c", &format!("{sql} /* {tag} */")])
            .spawn()
            .expect("psql");
        BackgroundSql {
            child: Some(child),
            tag: tag.to_owned(),
        }
    }

    /// Waits until its backend on `node` matches `condition` (an SQL
    /// condition on pg_stat_activity's columns, e.g. `wait_event =
    /// 'NetbufRecv'`) and returns the backend's pid.
    pub fn backend_when(&self, node: &Node, condition: &str) -> libc::pid_t {
        node.wait_backend(&format!(
            "query LIKE '%/* {} */%' AND {condition}",
            self.tag
        ))
    }

    /// Waits for psql to end, at most until `since + limit`.
    pub fn finish(mut self, since: Instant, limit: Duration) -> Finished {
        let child = self.child.take().expect("a running psql");
        wait_child(child, since, limit)
    }
}

impl Drop for BackgroundSql {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
