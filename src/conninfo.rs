//! From a user's connection string to the parameters netbuf connects with.
//!
//! libpq's rules apply (key=value or URI, environment defaults), with four
//! netbuf rules on top: no dbname means `postgres`; `application_name`
//! defaults to `netbuf`; TCP keepalives and tcp_user_timeout default to a
//! silent peer being noticed within about 30 s; a `replication` connection
//! is refused, since it would start a walsender instead of a backend that
//! can run `CALL netbuf.serve()`.

use std::ffi::CString;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::pq::ConninfoOptions;

/// What `PQconnectStartParams` gets, plus the settings netbuf enforces itself.
pub(crate) struct ConnectParams {
    pub(crate) keys: Vec<CString>,
    pub(crate) values: Vec<CString>,
    /// libpq ignores connect_timeout under PQconnectPoll; we keep the deadline.
    pub(crate) connect_timeout: Option<Duration>,
}

/// A channel can sit idle for days, or wait on a slow handler, and must
/// still notice a primary that vanished without a FIN or RST (a network
/// partition, a powered-off host): TCP alone would take 2 hours (idle) or
/// about 15 minutes (unacknowledged data).  These settings make it about
/// 30 s: probes after 15 s idle, every 5 s, 3 unanswered ones end it; data
/// unacknowledged for 30 s ends it too.  The kernel answers probes, so a
/// handler that takes longer than this is not mistaken for a dead peer.
/// Any of them in the connection string wins; libpq ignores them for Unix
/// sockets.
const SILENT_PEER_DEFAULTS: [(&str, &str); 5] = [
    ("keepalives", "1"),
    ("keepalives_idle", "15"),
    ("keepalives_interval", "5"),
    ("keepalives_count", "3"),
    ("tcp_user_timeout", "30000"),
];

fn cstring(text: &str, what: &str) -> Result<CString> {
    CString::new(text).map_err(|_| Error::InvalidConninfo(format!("{what} contains a NUL byte")))
}

fn is_true(value: &str) -> bool {
    !matches!(
        value.to_ascii_lowercase().as_str(),
        "" | "0" | "false" | "off" | "no"
    )
}

/// libpq's reading of connect_timeout: whole seconds, 0 or empty means none,
/// 1 means 2 (libpq's minimum).
fn parse_connect_timeout(value: &str) -> Result<Option<Duration>> {
    let seconds: i64 = value.trim().parse().map_err(|_| {
        Error::InvalidConninfo(format!(
            "invalid integer value \"{value}\" for connection option \"connect_timeout\""
        ))
    })?;
    Ok(match seconds {
        s if s <= 0 => None,
        1 => Some(Duration::from_secs(2)),
        s => Some(Duration::from_secs(s as u64)),
    })
}

impl ConnectParams {
    /// When a connection started now must be up.
    pub(crate) fn connect_deadline(&self) -> Option<Instant> {
        self.connect_timeout.map(|t| Instant::now() + t)
    }

    pub(crate) fn new(conninfo: &str) -> Result<Self> {
        let conninfo_c = cstring(conninfo, "the connection string")?;
        let options = ConninfoOptions::parse(&conninfo_c).map_err(Error::InvalidConninfo)?;

        if options.get("replication").is_some_and(|v| is_true(&v)) {
            return Err(Error::InvalidConninfo(
                "netbuf needs an ordinary connection: remove \"replication\" from the connection string".into(),
            ));
        }
        let connect_timeout = match options.get("connect_timeout") {
            Some(v) => parse_connect_timeout(&v)?,
            None => match std::env::var("PGCONNECT_TIMEOUT") {
                Ok(v) => parse_connect_timeout(&v)?,
                Err(_) => None,
            },
        };

        // The whole string goes in as dbname with expand_dbname, so a URI and
        // key=value both work; later keys apply only where it is silent.
        let mut keys = vec![
            c"dbname".to_owned(),
            c"fallback_application_name".to_owned(),
        ];
        let mut values = vec![conninfo_c, c"netbuf".to_owned()];
        let has_dbname = options.get("dbname").is_some_and(|v| !v.is_empty());
        if !has_dbname && std::env::var_os("PGDATABASE").is_none() {
            keys.push(c"dbname".to_owned());
            values.push(c"postgres".to_owned());
        }
        // Later keys would override the string's own, so add only missing ones.
        for (key, value) in SILENT_PEER_DEFAULTS {
            if options.get(key).is_none() {
                keys.push(cstring(key, key)?);
                values.push(cstring(value, key)?);
            }
        }
        Ok(ConnectParams {
            keys,
            values,
            connect_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value_of(params: &ConnectParams, key: &str) -> Vec<String> {
        params
            .keys
            .iter()
            .zip(&params.values)
            .filter(|(k, _)| k.to_str().unwrap() == key)
            .map(|(_, v)| v.to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn dbname_defaults_to_postgres() {
        if std::env::var_os("PGDATABASE").is_some() {
            return;
        }
        let p = ConnectParams::new("host=127.0.0.1 port=5432").unwrap();
        assert_eq!(
            value_of(&p, "dbname"),
            ["host=127.0.0.1 port=5432", "postgres"]
        );
        let p = ConnectParams::new("host=127.0.0.1 dbname=other").unwrap();
        assert_eq!(value_of(&p, "dbname"), ["host=127.0.0.1 dbname=other"]);
        let p = ConnectParams::new("postgresql://u@127.0.0.1:5/mydb").unwrap();
        assert_eq!(value_of(&p, "dbname").len(), 1);
    }

    #[test]
    fn refuses_replication_and_bad_strings() {
        let e = ConnectParams::new("host=x replication=database")
            .err()
            .unwrap();
        assert!(e.to_string().contains("replication"), "{e}");
        assert!(ConnectParams::new("host=x replication=false").is_ok());
        let e = ConnectParams::new("host=x nosuchoption=1").err().unwrap();
        assert!(e.to_string().contains("nosuchoption"), "{e}");
        let e = ConnectParams::new("host=x\0y").err().unwrap();
        assert!(e.to_string().contains("NUL"), "{e}");
    }

    #[test]
    fn silent_peer_defaults_yield_to_the_string() {
        let p = ConnectParams::new("host=x").unwrap();
        assert_eq!(value_of(&p, "keepalives_idle"), ["15"]);
        assert_eq!(value_of(&p, "tcp_user_timeout"), ["30000"]);
        let p = ConnectParams::new("host=x keepalives_idle=2 tcp_user_timeout=4000").unwrap();
        assert!(value_of(&p, "keepalives_idle").is_empty());
        assert!(value_of(&p, "tcp_user_timeout").is_empty());
        assert_eq!(value_of(&p, "keepalives_count"), ["3"]);
        let p = ConnectParams::new("postgresql://u@x/db?keepalives_count=9").unwrap();
        assert!(value_of(&p, "keepalives_count").is_empty());
    }

    #[test]
    fn connect_timeout_follows_libpq() {
        let t = |s: &str| ConnectParams::new(s).unwrap().connect_timeout;
        assert_eq!(t("host=x connect_timeout=0"), None);
        assert_eq!(t("host=x connect_timeout=1"), Some(Duration::from_secs(2)));
        assert_eq!(t("host=x connect_timeout=7"), Some(Duration::from_secs(7)));
        assert!(ConnectParams::new("host=x connect_timeout=soon").is_err());
    }

    #[test]
    fn password_never_in_parse_errors() {
        let e = ConnectParams::new("host=x password=s3cret bogus=1")
            .err()
            .unwrap();
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }
}
