//! From a user's connection string to the parameters netbuf connects with.
//!
//! libpq's rules apply (key=value or URI, service file, environment
//! defaults), with four netbuf rules on top: no dbname means `postgres`;
//! `application_name` defaults to `netbuf`; TCP keepalives and
//! tcp_user_timeout default to a silent peer being noticed within about
//! 30 s; a `replication` connection is refused, since it would start a
//! walsender instead of a backend that can run `CALL netbuf.serve()`.
//!
//! netbuf's defaults are the weakest source, as libpq's own are: a
//! parameter of the string wins, then a `service=` entry of pg_service.conf,
//! then the environment.  libpq has no API to read a service entry, so
//! [`service`] follows its lookup to learn which defaults the entry leaves
//! to netbuf.
//!
//! No error built here shows a password: see [`redact`], which explains
//! libpq's refusals with the help of [`libpq_parse`], a mirror of libpq's
//! connection-string parsers.

use std::ffi::{CStr, CString, OsString};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::pq::ConninfoOptions;

pub(crate) mod libpq_parse;
pub(crate) mod redact;
pub(crate) mod service;

/// What `PQconnectStartParams` gets, plus the settings netbuf enforces itself.
pub(crate) struct ConnectParams {
    pub(crate) keys: Vec<CString>,
    pub(crate) values: Vec<CString>,
    /// libpq ignores connect_timeout under PQconnectPoll; we keep the deadline.
    pub(crate) connect_timeout: Option<Duration>,
    /// The password and sslpassword the string or its service entry set,
    /// for [`ConnectParams::redact`].
    secrets: Vec<String>,
    /// search_path is secured by the startup packet (`options`, last key):
    /// no query of its own.  False only for an LDAP service entry, whose
    /// `options` libpq alone can know (and which a set `options` key would
    /// silently replace): then a query secures it after connecting.
    pub(crate) search_path_in_startup: bool,
}

/// The search_path of every channel's serving backend: only the catalog,
/// and the session's own temporary schema last (so that no temporary
/// object can shadow a catalog one).  Set through the startup packet, it is
/// a client-supplied setting (PGC_S_CLIENT), which outranks any
/// `ALTER ROLE/DATABASE ... SET search_path` (PGC_S_DATABASE_USER and
/// below): a role default cannot override it.
pub(crate) const SECURE_SEARCH_PATH: &str = "pg_catalog,pg_temp";

/// Appends netbuf's `-c search_path=` to the command-line options the
/// connection would otherwise send (the string's, else its service
/// entry's, else PGOPTIONS, as libpq picks them).  netbuf's comes last so
/// that it wins over any search_path among them; the backend splits the
/// options at unescaped whitespace (pg_split_opts), so an odd number of
/// backslashes at the end of the user's options would glue netbuf's
/// setting to their last word: refused rather than sent.
fn secure_options(user: Option<&str>) -> Result<String> {
    let secure = format!("-c search_path={SECURE_SEARCH_PATH}");
    let user = user.unwrap_or("");
    let trailing = user.bytes().rev().take_while(|&b| b == b'\\').count();
    if trailing % 2 == 1 {
        return Err(Error::InvalidConninfo(
            "the connection's \"options\" end with an unescaped backslash, which would escape \
             the option netbuf appends to secure search_path: remove it, or write \\\\ for a \
             backslash"
                .into(),
        ));
    }
    Ok(if user.bytes().all(is_space) {
        secure
    } else {
        format!("{user} {secure}")
    })
}

/// A channel can sit idle for days, or wait on a slow handler, and must
/// still notice a primary that vanished without a FIN or RST (a network
/// partition, a powered-off host): TCP alone would take 2 hours (idle) or
/// about 15 minutes (unacknowledged data).  These settings apply the
/// silent-peer policy of c_shim/boundary.h, which the primary applies to
/// its side with netbuf.peer_timeout, with the default timeout of 30 s:
/// probes after 15 s idle, every 5 s, 3 unanswered ones end it; data
/// unacknowledged for 30 s ends it too.  The kernel answers probes, so a
/// handler that takes longer than this is not mistaken for a dead peer.
/// Any of them in the connection string or its service entry wins; libpq
/// ignores them for Unix sockets.
const SILENT_PEER_DEFAULTS: [(&str, u64); 5] = {
    use crate::boundary::{
        NB_PEER_KEEPALIVE_COUNT, NB_PEER_KEEPALIVE_IDLE_DIVISOR,
        NB_PEER_KEEPALIVE_INTERVAL_DIVISOR, NB_PEER_TIMEOUT_DEFAULT_MS as TIMEOUT_MS,
    };
    [
        ("keepalives", 1),
        (
            "keepalives_idle",
            TIMEOUT_MS / (1000 * NB_PEER_KEEPALIVE_IDLE_DIVISOR),
        ),
        (
            "keepalives_interval",
            TIMEOUT_MS / (1000 * NB_PEER_KEEPALIVE_INTERVAL_DIVISOR),
        ),
        ("keepalives_count", NB_PEER_KEEPALIVE_COUNT),
        ("tcp_user_timeout", TIMEOUT_MS),
    ]
};

/// The sysconfdir libpq was built with: where it looks for pg_service.conf
/// when PGSYSCONFDIR is unset.  Hard-coded to Debian's (libpq5 is built
/// with sysconfdir /etc/postgresql-common), not taken from `pg_config
/// --sysconfdir` at build time: pg_config describes a server installation,
/// which need not be the libpq netbuf links (a relocated copy such as the
/// tests' private one reports its own path), and the Rust API must build
/// without it.  For another libpq build, set NETBUF_LIBPQ_SYSCONFDIR when
/// compiling netbuf.
const LIBPQ_SYSCONFDIR: &str = match option_env!("NETBUF_LIBPQ_SYSCONFDIR") {
    Some(dir) => dir,
    None => "/etc/postgresql-common",
};

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

/// Every option name the linked libpq knows, or None if libpq could not
/// even list them (out of memory).
fn libpq_keywords() -> Option<&'static [String]> {
    static KEYWORDS: OnceLock<Vec<String>> = OnceLock::new();
    if let Some(keywords) = KEYWORDS.get() {
        return Some(keywords);
    }
    // An empty string parses to the full array, every value unset.
    let keywords = ConninfoOptions::parse(c"").ok()?.keywords();
    Some(KEYWORDS.get_or_init(|| keywords))
}

/// The process environment as libpq reads it for the rules here, taken
/// once per connection so that the rules themselves are plain functions of
/// their inputs (and tests need no process-wide variables).
#[derive(Debug, Default, Clone)]
pub(crate) struct Environment {
    /// PGDATABASE is set (libpq uses it, even empty, before any default).
    pub(crate) pgdatabase: bool,
    pub(crate) pgconnect_timeout: Option<String>,
    /// PGOPTIONS: libpq's `options` when neither the string nor the
    /// service entry sets them.
    pub(crate) pgoptions: Option<String>,
    pub(crate) pgservice: Option<String>,
    pub(crate) pgservicefile: Option<PathBuf>,
    pub(crate) pgsysconfdir: Option<PathBuf>,
    /// libpq's home directory: HOME if set and not empty, else the home of
    /// the effective user's passwd entry (in a backend: the server's OS
    /// user).  That is what Debian's libpq 15 does (checked: with HOME=/x,
    /// `psql service=s` reads /x/.pg_service.conf; with HOME unset or
    /// empty, the passwd entry's); older libpq read only the passwd entry.
    pub(crate) home: Option<PathBuf>,
}

impl Environment {
    pub(crate) fn from_process() -> Environment {
        let path = |name| std::env::var_os(name).map(PathBuf::from);
        Environment {
            pgdatabase: std::env::var_os("PGDATABASE").is_some(),
            pgconnect_timeout: std::env::var("PGCONNECT_TIMEOUT").ok(),
            pgoptions: std::env::var("PGOPTIONS").ok(),
            pgservice: std::env::var("PGSERVICE").ok(),
            pgservicefile: path("PGSERVICEFILE"),
            pgsysconfdir: path("PGSYSCONFDIR"),
            home: path("HOME")
                .filter(|home| !home.as_os_str().is_empty())
                .or_else(passwd_home),
        }
    }
}

/// The home directory of the effective user, from the passwd database.
fn passwd_home() -> Option<PathBuf> {
    let mut buffer = vec![0u8; 4096];
    loop {
        // SAFETY: passwd is plain data that getpwuid_r fills; buffer is
        // writable for its whole length; result is set to NULL or &entry.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = unsafe {
            libc::getpwuid_r(
                libc::geteuid(),
                &mut entry,
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buffer.len() < 1 << 20 {
            buffer.resize(buffer.len() * 2, 0);
            continue;
        }
        if rc != 0 || result.is_null() || entry.pw_dir.is_null() {
            return None;
        }
        // SAFETY: pw_dir points into buffer, NUL-terminated.
        let dir = unsafe { CStr::from_ptr(entry.pw_dir) };
        return Some(PathBuf::from(OsString::from_vec(dir.to_bytes().to_vec())));
    }
}

impl ConnectParams {
    /// When a connection started now must be up.
    pub(crate) fn connect_deadline(&self) -> Option<Instant> {
        self.connect_timeout.map(|t| Instant::now() + t)
    }

    pub(crate) fn new(conninfo: &str) -> Result<Self> {
        ConnectParams::with_environment(conninfo, &Environment::from_process())
    }

    pub(crate) fn with_environment(conninfo: &str, env: &Environment) -> Result<Self> {
        let conninfo_c = cstring(conninfo, "the connection string")?;
        let options = ConninfoOptions::parse(&conninfo_c)
            .map_err(|libpq_message| redact::parse_error(conninfo, libpq_message))?;
        redact::check_parsed(conninfo, &options)?;

        let keywords = libpq_keywords().unwrap_or_default();
        let service_name = options.get("service").or_else(|| env.pgservice.clone());
        let service = match &service_name {
            Some(name) => service::lookup(
                &service::Sources {
                    name,
                    service_file: env.pgservicefile.as_deref(),
                    home: env.home.as_deref(),
                    sysconf_dir: env
                        .pgsysconfdir
                        .as_deref()
                        .unwrap_or(Path::new(LIBPQ_SYSCONFDIR)),
                },
                keywords,
            ),
            None => service::Entry::Absent,
        };
        // The string's value, else the service entry's, as libpq decides.
        let setting = |key: &str| options.get(key).or_else(|| service.value(key));

        if setting("replication").is_some_and(|v| is_true(&v)) {
            return Err(Error::InvalidConninfo(
                "netbuf needs an ordinary connection: remove \"replication\" from the connection string (or its service entry)".into(),
            ));
        }
        let connect_timeout = match setting("connect_timeout") {
            Some(v) => parse_connect_timeout(&v)?,
            None => match &env.pgconnect_timeout {
                Some(v) => parse_connect_timeout(v)?,
                None => None,
            },
        };

        // The whole string goes in as dbname with expand_dbname, so a URI and
        // key=value both work; later keys apply only where it is silent.
        let mut keys = vec![
            c"dbname".to_owned(),
            c"fallback_application_name".to_owned(),
        ];
        let mut values = vec![conninfo_c, c"netbuf".to_owned()];
        // Later keys would override the string's and the service's, so add
        // only what neither sets (nor, for dbname, the environment).
        let has_dbname =
            options.get("dbname").is_some_and(|v| !v.is_empty()) || service.sets_nonempty("dbname");
        if !has_dbname && !env.pgdatabase {
            keys.push(c"dbname".to_owned());
            values.push(c"postgres".to_owned());
        }
        for (key, value) in SILENT_PEER_DEFAULTS {
            if options.get(key).is_none() && !service.sets(key) {
                keys.push(cstring(key, key)?);
                values.push(cstring(&value.to_string(), key)?);
            }
        }
        // Last, so that it replaces the options libpq would otherwise take
        // from the string, the service entry or PGOPTIONS (merged here).
        let search_path_in_startup = service != service::Entry::Opaque;
        if search_path_in_startup {
            let user = setting("options").or_else(|| env.pgoptions.clone());
            keys.push(c"options".to_owned());
            values.push(cstring(&secure_options(user.as_deref())?, "options")?);
        }
        let secrets = ["password", "sslpassword"]
            .into_iter()
            .filter_map(setting)
            .filter(|v| v.len() >= REDACT_MIN_LEN)
            .collect();
        Ok(ConnectParams {
            keys,
            values,
            connect_timeout,
            secrets,
            search_path_in_startup,
        })
    }

    /// A second safeguard for libpq's messages after a failed connection:
    /// whatever they quote, the password never appears.  (Shorter values
    /// than REDACT_MIN_LEN would mask ordinary words, not hide anything.)
    pub(crate) fn redact(&self, text: String) -> String {
        self.secrets.iter().fold(text, |text, secret| {
            text.replace(secret.as_str(), "********")
        })
    }
}

const REDACT_MIN_LEN: usize = 4;

/// libpq's `isspace` in the C locale, which its parsers use.
fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// Length of the URI designator the string starts with (libpq's
/// uri_prefix_length), 0 for a keyword/value string.
fn uri_prefix_len(conninfo: &str) -> usize {
    ["postgresql://", "postgres://"]
        .iter()
        .find(|prefix| conninfo.starts_with(*prefix))
        .map_or(0, |prefix| prefix.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// No environment at all: the rules alone.
    pub(super) fn no_env() -> Environment {
        Environment::default()
    }

    #[test]
    fn redact_hides_the_password_in_any_message() {
        let params = ConnectParams::with_environment(
            "host=h password='Hunter 2x' sslpassword=abcd",
            &no_env(),
        )
        .unwrap();
        assert_eq!(
            params.redact("host \"Hunter 2x\" and abcd".into()),
            "host \"********\" and ********"
        );
        let uri =
            ConnectParams::with_environment("postgresql://u:s%40cret@h/db", &no_env()).unwrap();
        assert_eq!(uri.redact("bad s@cret".into()), "bad ********");
    }

    pub(super) fn params(conninfo: &str) -> Result<ConnectParams> {
        ConnectParams::with_environment(conninfo, &no_env())
    }

    pub(super) fn value_of(params: &ConnectParams, key: &str) -> Vec<String> {
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
        let p = params("host=127.0.0.1 port=5432").unwrap();
        assert_eq!(
            value_of(&p, "dbname"),
            ["host=127.0.0.1 port=5432", "postgres"]
        );
        let p = params("host=127.0.0.1 dbname=other").unwrap();
        assert_eq!(value_of(&p, "dbname"), ["host=127.0.0.1 dbname=other"]);
        let p = params("postgresql://u@127.0.0.1:5/mydb").unwrap();
        assert_eq!(value_of(&p, "dbname").len(), 1);
        // PGDATABASE is libpq's, and comes before netbuf's default.
        let env = Environment {
            pgdatabase: true,
            ..no_env()
        };
        let p = ConnectParams::with_environment("host=x", &env).unwrap();
        assert_eq!(value_of(&p, "dbname"), ["host=x"]);
    }

    #[test]
    fn refuses_replication_and_bad_strings() {
        let e = params("host=x replication=database").err().unwrap();
        assert!(e.to_string().contains("replication"), "{e}");
        assert!(params("host=x replication=false").is_ok());
        let e = params("host=x nosuchoption=1").err().unwrap();
        assert!(e.to_string().contains("nosuchoption"), "{e}");
        let e = params("host=x\0y").err().unwrap();
        assert!(e.to_string().contains("NUL"), "{e}");
    }

    #[test]
    fn silent_peer_defaults_yield_to_the_string() {
        let p = params("host=x").unwrap();
        assert_eq!(value_of(&p, "keepalives_idle"), ["15"]);
        assert_eq!(value_of(&p, "tcp_user_timeout"), ["30000"]);
        let p = params("host=x keepalives_idle=2 tcp_user_timeout=4000").unwrap();
        assert!(value_of(&p, "keepalives_idle").is_empty());
        assert!(value_of(&p, "tcp_user_timeout").is_empty());
        assert_eq!(value_of(&p, "keepalives_count"), ["3"]);
        let p = params("postgresql://u@x/db?keepalives_count=9").unwrap();
        assert!(value_of(&p, "keepalives_count").is_empty());
    }

    #[test]
    fn connect_timeout_follows_libpq() {
        let t = |s: &str| params(s).unwrap().connect_timeout;
        assert_eq!(t("host=x connect_timeout=0"), None);
        assert_eq!(t("host=x connect_timeout=1"), Some(Duration::from_secs(2)));
        assert_eq!(t("host=x connect_timeout=7"), Some(Duration::from_secs(7)));
        assert!(params("host=x connect_timeout=soon").is_err());
        let env = Environment {
            pgconnect_timeout: Some("9".into()),
            ..no_env()
        };
        let p = ConnectParams::with_environment("host=x", &env).unwrap();
        assert_eq!(p.connect_timeout, Some(Duration::from_secs(9)));
    }

    #[test]
    fn options_carry_netbuf_search_path_last() {
        let secure = "-c search_path=pg_catalog,pg_temp";
        // Alone when nothing else gives options; the last key, so that it
        // replaces what libpq would take from the string.
        let p = params("host=x").unwrap();
        assert_eq!(value_of(&p, "options"), [secure]);
        assert_eq!(p.keys.last().unwrap().to_str().unwrap(), "options");
        assert!(p.search_path_in_startup);
        // The string's own options come first, search_path among them.
        let p = params(r"host=x options='-c search_path=evil -c work_mem=8MB'").unwrap();
        assert_eq!(
            value_of(&p, "options"),
            [format!("-c search_path=evil -c work_mem=8MB {secure}")]
        );
        let p = params("postgresql://h/db?options=-c%20geqo%3Doff").unwrap();
        assert_eq!(value_of(&p, "options"), [format!("-c geqo=off {secure}")]);
        // Escaped spaces and backslashes stay as the user wrote them
        // (after libpq's own unquoting: \\ in a quoted value is \).
        let p = params(r"host=x options='-c application_name=a\\ b -c x.y=\\\\'").unwrap();
        assert_eq!(
            value_of(&p, "options"),
            [format!(r"-c application_name=a\ b -c x.y=\\ {secure}")]
        );
        // An odd backslash at the end would escape netbuf's space.
        let e = params(r"host=x options='-c x.y=a\\'").err().unwrap();
        assert!(e.to_string().contains("backslash"), "{e}");
        // PGOPTIONS applies when the string is silent, not when it speaks.
        let env = Environment {
            pgoptions: Some("-c search_path=evil".into()),
            ..no_env()
        };
        let p = ConnectParams::with_environment("host=x", &env).unwrap();
        assert_eq!(
            value_of(&p, "options"),
            [format!("-c search_path=evil {secure}")]
        );
        let p = ConnectParams::with_environment("host=x options=-cgeqo=off", &env).unwrap();
        assert_eq!(value_of(&p, "options"), [format!("-cgeqo=off {secure}")]);
        let p = ConnectParams::with_environment("host=x options=''", &env).unwrap();
        assert_eq!(value_of(&p, "options"), [secure]);
    }

    #[test]
    fn service_options_are_merged_and_ldap_falls_back_to_a_query() {
        let dir = TempDir::new();
        let file = dir.write(
            "services.conf",
            "[opts]\noptions=-c search_path=evil\n[ldap]\nldap://ldap.invalid/dc=x?y\n",
        );
        let env = Environment {
            pgservicefile: Some(file),
            pgoptions: Some("-c geqo=off".into()),
            ..no_env()
        };
        let secure = "-c search_path=pg_catalog,pg_temp";
        // The service's options beat PGOPTIONS, as in libpq.
        let p = ConnectParams::with_environment("service=opts", &env).unwrap();
        assert_eq!(
            value_of(&p, "options"),
            [format!("-c search_path=evil {secure}")]
        );
        let p = ConnectParams::with_environment("service=opts options=-cx.y=1", &env).unwrap();
        assert_eq!(value_of(&p, "options"), [format!("-cx.y=1 {secure}")]);
        // An LDAP entry's options are libpq's to know: not replaced.
        let p = ConnectParams::with_environment("service=ldap", &env).unwrap();
        assert!(value_of(&p, "options").is_empty());
        assert!(!p.search_path_in_startup);
    }

    /// libpq's verdict on a string: parses or not.
    pub(super) fn libpq_accepts(conninfo: &str) -> bool {
        ConninfoOptions::parse(&CString::new(conninfo).unwrap()).is_ok()
    }

    /// A fresh directory removed on drop.
    pub(super) struct TempDir(pub(super) PathBuf);

    impl TempDir {
        pub(super) fn new() -> TempDir {
            static COUNTER: AtomicU32 = AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "netbuf-conninfo-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        pub(super) fn write(&self, name: &str, text: &str) -> PathBuf {
            let path = self.0.join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, text).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    pub(super) fn keywords() -> &'static [String] {
        libpq_keywords().expect("keywords")
    }

    #[test]
    fn service_entry_wins_over_netbuf_defaults() {
        let dir = TempDir::new();
        let file = dir.write(
            "svc.conf",
            "[full]\ndbname=svcdb\nkeepalives_idle=7\ntcp_user_timeout=1000\nconnect_timeout=4\n\
             [plain]\nhost=h\n\
             [emptydb]\ndbname=\n\
             [walsender]\nreplication=database\n\
             [ldap]\nldap://ldap.example/dc=x?y?sub?z\n",
        );
        let env = Environment {
            pgservicefile: Some(file),
            ..no_env()
        };
        let with = |conninfo: &str| ConnectParams::with_environment(conninfo, &env).unwrap();

        let p = with("service=full");
        assert_eq!(
            value_of(&p, "dbname"),
            ["service=full"],
            "no dbname=postgres"
        );
        assert!(value_of(&p, "keepalives_idle").is_empty());
        assert!(value_of(&p, "tcp_user_timeout").is_empty());
        assert_eq!(value_of(&p, "keepalives_interval"), ["5"], "the rest stay");
        assert_eq!(p.connect_timeout, Some(Duration::from_secs(4)));
        // In a URI's query too.
        let p = with("postgresql://h?service=full");
        assert_eq!(value_of(&p, "dbname").len(), 1);
        assert!(value_of(&p, "keepalives_idle").is_empty());
        // The string's own settings win over the service's anyway.
        let p = with("service=full connect_timeout=0");
        assert_eq!(p.connect_timeout, None);

        // An entry silent on them gets netbuf's defaults.
        let p = with("service=plain");
        assert_eq!(value_of(&p, "dbname"), ["service=plain", "postgres"]);
        assert_eq!(value_of(&p, "keepalives_idle"), ["15"]);
        let p = with("service=emptydb");
        assert_eq!(value_of(&p, "dbname"), ["service=emptydb", "postgres"]);

        // PGSERVICE names the entry when the string does not.
        let env_service = Environment {
            pgservice: Some("full".into()),
            ..env.clone()
        };
        let p = ConnectParams::with_environment("host=x", &env_service).unwrap();
        assert_eq!(value_of(&p, "dbname"), ["host=x"]);
        let p = ConnectParams::with_environment("host=x service=plain", &env_service).unwrap();
        assert_eq!(value_of(&p, "dbname"), ["host=x service=plain", "postgres"]);

        // A service cannot make the channel a walsender either.
        let e = ConnectParams::with_environment("service=walsender", &env)
            .err()
            .unwrap();
        assert!(e.to_string().contains("replication"), "{e}");

        // LDAP: unknowable, so no default is added.
        let p = with("service=ldap");
        assert_eq!(value_of(&p, "dbname"), ["service=ldap"]);
        assert!(value_of(&p, "keepalives").is_empty());

        // Unknown service: libpq will say so; netbuf's defaults as usual.
        let p = with("service=nosuch");
        assert_eq!(value_of(&p, "dbname"), ["service=nosuch", "postgres"]);
    }

    #[test]
    fn home_service_file_is_read_through_the_environment() {
        let dir = TempDir::new();
        dir.write(".pg_service.conf", "[h]\ndbname=homedb\n");
        let env = Environment {
            home: Some(dir.0.clone()),
            pgsysconfdir: Some(dir.0.join("nothing-here")),
            ..no_env()
        };
        let p = ConnectParams::with_environment("service=h", &env).unwrap();
        assert_eq!(value_of(&p, "dbname"), ["service=h"]);
        let env = Environment {
            pgsysconfdir: Some(dir.0.clone()),
            ..no_env()
        };
        dir.write("pg_service.conf", "[s]\nkeepalives=0\n");
        let p = ConnectParams::with_environment("service=s", &env).unwrap();
        assert!(value_of(&p, "keepalives").is_empty());
        assert_eq!(value_of(&p, "keepalives_idle"), ["15"]);
    }

    #[test]
    fn passwd_home_is_found() {
        // The tests' user has a passwd entry (root or a build user).
        assert!(passwd_home().is_some_and(|home| home.is_absolute()));
    }
}
