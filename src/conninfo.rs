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
//! No error built here shows a password: see [`secrets`].

use std::ffi::{CStr, CString, OsString};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::pq::ConninfoOptions;

/// What `PQconnectStartParams` gets, plus the settings netbuf enforces itself.
pub(crate) struct ConnectParams {
    pub(crate) keys: Vec<CString>,
    pub(crate) values: Vec<CString>,
    /// libpq ignores connect_timeout under PQconnectPoll; we keep the deadline.
    pub(crate) connect_timeout: Option<Duration>,
    /// The password and sslpassword the string or its service entry set,
    /// for [`ConnectParams::redact`].
    secrets: Vec<String>,
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
            .map_err(|libpq_message| secrets::parse_error(conninfo, libpq_message))?;
        secrets::check_parsed(conninfo, &options)?;

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

/// No password in any error built from a connection string.
///
/// libpq's parse errors quote the token they stop at, and for a malformed
/// string that token can be the password or part of it: a bad
/// percent-encoding quotes the whole encoded component (`invalid
/// percent-encoded token: "Hunter%zz2"`), an unclosed IPv6 bracket the whole
/// URI, and a password with an unquoted space or stray quote, a ':' for
/// '=', or a '&' in a URI's `password=` becomes the next "option name".
/// Which part of a malformed string the user meant as a password is not
/// knowable, so the rule is positional and conservative:
///
/// - The *secret region* of a string is everything from the first
///   `password` in it (any case; `sslpassword` included; in a URI, after
///   percent-decoding, so `%70assword` counts) to its end, plus in a URI
///   everything between the first ':' and the last '@' after the scheme
///   (the userinfo password, whatever unencoded '@' or '/' it holds).
///   libpq parses left to right and stops at the first error, and a
///   password can only leak into tokens after its own start.
/// - A string with no secret region gets libpq's message verbatim.
/// - Otherwise netbuf writes the message itself from [`libpq_parse`], which
///   finds the same error and the span of the token libpq would quote; the
///   token is quoted only if its span misses the secret region (so an
///   invalid option name *before* the password is still named), and is
///   replaced by a description of where it is otherwise.  If the two
///   parsers ever disagree, the message says only that libpq refused the
///   string.
///
/// A string libpq accepts can still misplace a password: a URI password
/// with an unencoded '@' or '/' is cut there and the rest becomes the host,
/// port or database name, which connection errors quote ("could not
/// translate host name "ss@h""). [`check_parsed`] refuses those shapes
/// before connecting, with a message that quotes nothing.
pub(crate) mod secrets {
    use super::libpq_parse::{self, Complaint, Part, Span};
    use super::{Error, uri_prefix_len};
    use crate::pq::ConninfoOptions;

    /// Said instead of a token that may hold part of a password.
    const WITHHELD: &str = "not shown: it may contain part of a password";

    /// The spans of a string that are or may be a password.
    #[derive(Debug, PartialEq)]
    pub(crate) struct Secrets(Vec<Span>);

    impl Secrets {
        pub(crate) fn find(conninfo: &str) -> Secrets {
            let bytes = conninfo.as_bytes();
            let mut regions = Vec::new();
            let prefix = uri_prefix_len(conninfo);
            let (text, origin) = if prefix == 0 {
                (bytes.to_vec(), (0..bytes.len()).collect())
            } else {
                lenient_decode(bytes, prefix)
            };
            if let Some(at) = find_ascii_ci(&text, b"password") {
                regions.push(Span::new(origin[at], bytes.len()));
            }
            if prefix > 0 {
                let rest = &conninfo[prefix..];
                if let Some(last_at) = rest.rfind('@')
                    && let Some(colon) = rest[..last_at].find(':')
                {
                    regions.push(Span::new(prefix + colon + 1, prefix + last_at));
                }
            }
            Secrets(regions)
        }

        pub(crate) fn is_empty(&self) -> bool {
            self.0.is_empty()
        }

        /// Whether `span` overlaps a secret region.
        pub(crate) fn hides(&self, span: Span) -> bool {
            self.0
                .iter()
                .any(|r| span.start < r.end && r.start < span.end)
        }
    }

    /// The string from `from` on, percent-decoded where that is valid, with
    /// the index in `bytes` each decoded byte came from.
    fn lenient_decode(bytes: &[u8], from: usize) -> (Vec<u8>, Vec<usize>) {
        let mut text = Vec::with_capacity(bytes.len());
        let mut origin = Vec::with_capacity(bytes.len());
        let mut i = from;
        while i < bytes.len() {
            if let Some(byte) = libpq_parse::percent_byte(bytes, i) {
                text.push(byte);
                origin.push(i);
                i += 3;
            } else {
                text.push(bytes[i]);
                origin.push(i);
                i += 1;
            }
        }
        (text, origin)
    }

    fn find_ascii_ci(haystack: &[u8], needle: &[u8]) -> Option<usize> {
        haystack
            .windows(needle.len())
            .position(|w| w.eq_ignore_ascii_case(needle))
    }

    /// The error for a string libpq could not parse (`libpq_message` is
    /// libpq's own, used only when the string has no secret region).
    pub(crate) fn parse_error(conninfo: &str, libpq_message: String) -> Error {
        let secrets = Secrets::find(conninfo);
        if secrets.is_empty() {
            return Error::InvalidConninfo(libpq_message);
        }
        let complaint = super::libpq_keywords()
            .and_then(|keywords| libpq_parse::parse(conninfo, keywords).err());
        Error::InvalidConninfo(match complaint {
            Some(complaint) => describe(conninfo, &complaint, &secrets),
            None => format!("libpq could not parse it (its message is {WITHHELD})"),
        })
    }

    /// libpq's message for `complaint`, with each token quoted only where
    /// it cannot hold part of a password.
    fn describe(conninfo: &str, complaint: &Complaint, secrets: &Secrets) -> String {
        let shown = |span: Span| (!secrets.hides(span)).then(|| &conninfo[span.start..span.end]);
        match *complaint {
            Complaint::MissingEquals(name) => match shown(name) {
                Some(name) => format!("missing \"=\" after \"{name}\" in connection info string"),
                None => format!(
                    "missing \"=\" after a word in connection info string (the word is {WITHHELD})"
                ),
            },
            Complaint::InvalidOption(name) => match shown(name) {
                Some(name) => format!("invalid connection option \"{name}\""),
                None => format!("invalid connection option (its name is {WITHHELD})"),
            },
            Complaint::Unterminated => {
                "unterminated quoted string in connection info string".into()
            }
            // libpq quotes the whole URI in these; it has a secret region.
            Complaint::BracketUnclosed => {
                "end of string reached when looking for matching \"]\" in IPv6 host address in URI"
                    .into()
            }
            Complaint::BracketEmpty => "IPv6 host address may not be empty in URI".into(),
            Complaint::AfterBracket(at) => match shown(at) {
                Some(c) => format!(
                    "unexpected character \"{c}\" after an IPv6 host address in URI (expected \":\" or \"/\")"
                ),
                None => format!(
                    "unexpected character after an IPv6 host address in URI (expected \":\" or \"/\"; the character is {WITHHELD})"
                ),
            },
            Complaint::ExtraEquals(name) => match shown(name) {
                Some(name) => {
                    format!("extra key/value separator \"=\" in URI query parameter: \"{name}\"")
                }
                None => format!(
                    "extra key/value separator \"=\" in a URI query parameter (its name is {WITHHELD})"
                ),
            },
            Complaint::NoEquals(param) => match shown(param) {
                Some(param) => {
                    format!("missing key/value separator \"=\" in URI query parameter: \"{param}\"")
                }
                None => format!(
                    "missing key/value separator \"=\" in a URI query parameter (the parameter is {WITHHELD})"
                ),
            },
            Complaint::BadPercent(part, span) => match shown(span) {
                Some(text) => format!(
                    "invalid percent-encoded token in the URI's {}: \"{text}\"",
                    part.name()
                ),
                None => format!(
                    "invalid percent-encoded token in the URI's {} ({WITHHELD})",
                    part.name()
                ),
            },
            Complaint::PercentZero(part, span) => match shown(span) {
                Some(text) => format!(
                    "forbidden value %00 in percent-encoded value in the URI's {}: \"{text}\"",
                    part.name()
                ),
                None => format!(
                    "forbidden value %00 in percent-encoded value in the URI's {} ({WITHHELD})",
                    part.name()
                ),
            },
            Complaint::UnknownParameter(name) => match shown(name) {
                Some(_) => format!(
                    "invalid URI query parameter: \"{}\"",
                    libpq_parse::decode(&conninfo.as_bytes()[name.start..name.end])
                ),
                None => format!("invalid URI query parameter (its name is {WITHHELD})"),
            },
        }
    }

    /// Refuse a string libpq accepts but that would misplace (part of) a
    /// password into an option that connection errors quote.
    pub(crate) fn check_parsed(conninfo: &str, options: &ConninfoOptions) -> Result<(), Error> {
        let prefix = uri_prefix_len(conninfo);
        if prefix == 0 {
            // libpq expands only the outer string: a URI as the value of
            // dbname reaches the server as a database name, which it quotes.
            let dbname = options.get("dbname").unwrap_or_default();
            if uri_prefix_len(&dbname) > 0 && !Secrets::find(&dbname).is_empty() {
                return Err(Error::InvalidConninfo(
                    "a URI given as dbname inside a keyword/value string is not expanded \
                     (it would reach the server as a database name): pass the URI as the whole \
                     connection string"
                        .into(),
                ));
            }
            return Ok(());
        }
        if Secrets::find(conninfo).is_empty() {
            return Ok(());
        }
        let Ok(uri) = libpq_parse::uri(conninfo, prefix, &[]) else {
            // libpq accepted it; the shapes below parse in both.
            return Ok(());
        };
        let text = |span: Span| &conninfo[span.start..span.end];
        if uri
            .hosts
            .iter()
            .chain(&uri.dbname)
            .any(|&s| text(s).contains('@'))
        {
            return Err(Error::InvalidConninfo(
                "the URI has an unencoded \"@\" after its user name and password: \
                 percent-encode \"@\" (as %40) and \"/\" (as %2F) in a user name or password"
                    .into(),
            ));
        }
        let numeric = |s: Span| {
            libpq_parse::decode(text(s).as_bytes())
                .bytes()
                .all(|b| b.is_ascii_digit())
        };
        if !uri.ports.iter().all(|&s| numeric(s)) {
            return Err(Error::InvalidConninfo(format!(
                "invalid port number in the URI ({WITHHELD}; a \"/\" in a password must be \
                 percent-encoded as %2F)"
            )));
        }
        Ok(())
    }

    impl Part {
        fn name(self) -> &'static str {
            match self {
                Part::User => "user name",
                Part::Password => "password",
                Part::Host => "host",
                Part::Port => "port",
                Part::Dbname => "database name",
                Part::ParamName => "query parameter name",
                Part::ParamValue => "query parameter value",
            }
        }
    }
}

/// libpq's connection-string parsers (fe-connect.c: conninfo_parse,
/// conninfo_uri_parse_options, conninfo_uri_parse_params,
/// conninfo_uri_decode) redone to learn *where* they fail: the first error
/// libpq reports and the span of the token it quotes.  libpq stays the
/// authority on whether a string parses; this only explains its refusals
/// without quoting secrets, and finds the parts of an accepted URI.
pub(crate) mod libpq_parse {
    use super::is_space;

    /// A half-open byte range of the connection string.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) struct Span {
        pub(crate) start: usize,
        pub(crate) end: usize,
    }

    impl Span {
        pub(crate) fn new(start: usize, end: usize) -> Span {
            Span { start, end }
        }

        fn is_empty(self) -> bool {
            self.start == self.end
        }
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum Part {
        User,
        Password,
        Host,
        Port,
        Dbname,
        ParamName,
        ParamValue,
    }

    /// The first error libpq reports, with the span of what it quotes.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub(crate) enum Complaint {
        /// `missing "=" after "name"`.
        MissingEquals(Span),
        /// `invalid connection option "name"`.
        InvalidOption(Span),
        /// `unterminated quoted string`.
        Unterminated,
        /// An IPv6 host without its ']' (libpq quotes the whole URI).
        BracketUnclosed,
        /// `[]` (libpq quotes the whole URI).
        BracketEmpty,
        /// The character after an IPv6 host's ']' (libpq quotes the URI).
        AfterBracket(Span),
        /// A second '=' in a query parameter (libpq quotes its name).
        ExtraEquals(Span),
        /// A query parameter without '=' (libpq quotes all of it).
        NoEquals(Span),
        /// A bad %xx in a part (libpq quotes the part, still encoded; for
        /// several hosts or ports, their list).
        BadPercent(Part, Span),
        /// %00 in a part (quoted the same way).
        PercentZero(Part, Span),
        /// A query parameter libpq does not know (quoted decoded).
        UnknownParameter(Span),
    }

    /// The parts of a URI libpq accepts.
    #[derive(Debug, Default, PartialEq)]
    pub(crate) struct Uri {
        pub(crate) hosts: Vec<Span>,
        pub(crate) ports: Vec<Span>,
        pub(crate) dbname: Option<Span>,
    }

    /// The value of the %xx at `i`, if there is a valid one.
    pub(crate) fn percent_byte(bytes: &[u8], i: usize) -> Option<u8> {
        if bytes.get(i) != Some(&b'%') {
            return None;
        }
        let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
        Some((hex(bytes.get(i + 1))? * 16 + hex(bytes.get(i + 2))?) as u8)
    }

    /// Percent-decode a part libpq accepted (lossy where it is not UTF-8).
    pub(crate) fn decode(bytes: &[u8]) -> String {
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match percent_byte(bytes, i) {
                Some(byte) => {
                    out.push(byte);
                    i += 3;
                }
                None => {
                    out.push(bytes[i]);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// conninfo_uri_decode's verdict on a part.
    fn check_percent(bytes: &[u8], part: Part, span: Span) -> Result<(), Complaint> {
        let text = &bytes[span.start..span.end];
        let mut i = 0;
        while i < text.len() {
            if text[i] != b'%' {
                i += 1;
                continue;
            }
            match percent_byte(text, i) {
                None => return Err(Complaint::BadPercent(part, span)),
                Some(0) => return Err(Complaint::PercentZero(part, span)),
                Some(_) => i += 3,
            }
        }
        Ok(())
    }

    /// Whether libpq accepts `key` as an option name (conninfo_storeval
    /// takes `requiressl` for sslmode).  `keywords` empty: any.
    fn known(keywords: &[String], key: &str) -> bool {
        keywords.is_empty() || key == "requiressl" || keywords.iter().any(|k| k == key)
    }

    /// libpq's first complaint about `conninfo`, if any.
    pub(crate) fn parse(conninfo: &str, keywords: &[String]) -> Result<(), Complaint> {
        match super::uri_prefix_len(conninfo) {
            0 => keyword_value(conninfo, keywords),
            prefix => uri(conninfo, prefix, keywords).map(|_| ()),
        }
    }

    /// conninfo_parse.
    fn keyword_value(conninfo: &str, keywords: &[String]) -> Result<(), Complaint> {
        let s = conninfo.as_bytes();
        let n = s.len();
        let mut i = 0;
        while i < n {
            if is_space(s[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < n && s[i] != b'=' && !is_space(s[i]) {
                i += 1;
            }
            let name = Span::new(start, i);
            while i < n && is_space(s[i]) {
                i += 1;
            }
            if i >= n || s[i] != b'=' {
                return Err(Complaint::MissingEquals(name));
            }
            i += 1;
            while i < n && is_space(s[i]) {
                i += 1;
            }
            if i < n && s[i] == b'\'' {
                i += 1;
                loop {
                    match s.get(i) {
                        None => return Err(Complaint::Unterminated),
                        Some(b'\\') => i = (i + 2).min(n),
                        Some(b'\'') => {
                            i += 1;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
            } else {
                while i < n {
                    if is_space(s[i]) {
                        i += 1;
                        break;
                    }
                    i = if s[i] == b'\\' { (i + 2).min(n) } else { i + 1 };
                }
            }
            if !known(keywords, &conninfo[name.start..name.end]) {
                return Err(Complaint::InvalidOption(name));
            }
        }
        Ok(())
    }

    /// conninfo_uri_parse_options and conninfo_uri_parse_params, for a
    /// string that starts with a designator of `prefix` bytes.
    pub(crate) fn uri(
        conninfo: &str,
        prefix: usize,
        keywords: &[String],
    ) -> Result<Uri, Complaint> {
        let b = conninfo.as_bytes();
        let n = b.len();
        let at = |i: usize| b.get(i).copied().unwrap_or(0);
        let mut uri = Uri::default();

        // Userinfo, if an '@' comes before any '/'.
        let mut p = prefix;
        while p < n && b[p] != b'@' && b[p] != b'/' {
            p += 1;
        }
        if at(p) == b'@' {
            let mut q = prefix;
            while b[q] != b':' && b[q] != b'@' {
                q += 1;
            }
            let user = Span::new(prefix, q);
            if !user.is_empty() {
                check_percent(b, Part::User, user)?;
            }
            if b[q] == b':' {
                let password = Span::new(q + 1, p);
                if !password.is_empty() {
                    check_percent(b, Part::Password, password)?;
                }
            }
            p += 1;
        } else {
            p = prefix;
        }

        // host[:port], separated by commas.
        let stop = |c: u8| matches!(c, b':' | b'/' | b'?' | b',') || c == 0;
        let mut prevchar;
        loop {
            if at(p) == b'[' {
                p += 1;
                let start = p;
                while p < n && b[p] != b']' {
                    p += 1;
                }
                if p >= n {
                    return Err(Complaint::BracketUnclosed);
                }
                if p == start {
                    return Err(Complaint::BracketEmpty);
                }
                uri.hosts.push(Span::new(start, p));
                p += 1;
                if !stop(at(p)) {
                    let width = conninfo[p..].chars().next().map_or(1, char::len_utf8);
                    return Err(Complaint::AfterBracket(Span::new(p, p + width)));
                }
            } else {
                let start = p;
                while !stop(at(p)) {
                    p += 1;
                }
                uri.hosts.push(Span::new(start, p));
            }
            prevchar = at(p);
            if prevchar == b':' {
                p += 1;
                let start = p;
                while !matches!(at(p), b'/' | b'?' | b',' | 0) {
                    p += 1;
                }
                uri.ports.push(Span::new(start, p));
                prevchar = at(p);
            }
            if prevchar != b',' {
                break;
            }
            p += 1;
        }
        // libpq decodes the hosts, then the ports, each as one list.
        for (part, spans) in [(Part::Host, &uri.hosts), (Part::Port, &uri.ports)] {
            if let (Some(first), Some(last)) = (spans.first(), spans.last()) {
                let list = Span::new(first.start, last.end);
                for span in spans {
                    check_percent(b, part, *span).map_err(|c| match c {
                        Complaint::BadPercent(..) => Complaint::BadPercent(part, list),
                        _ => Complaint::PercentZero(part, list),
                    })?;
                }
            }
        }

        if prevchar != 0 && prevchar != b'?' {
            p += 1;
            let start = p;
            while p < n && b[p] != b'?' {
                p += 1;
            }
            let dbname = Span::new(start, p);
            prevchar = at(p);
            if !dbname.is_empty() {
                check_percent(b, Part::Dbname, dbname)?;
                uri.dbname = Some(dbname);
            }
        }

        if prevchar != 0 {
            p += 1;
            while p < n {
                let start = p;
                let mut equals = None;
                let end = loop {
                    match at(p) {
                        b'=' => {
                            if let Some(e) = equals {
                                return Err(Complaint::ExtraEquals(Span::new(start, e)));
                            }
                            equals = Some(p);
                            p += 1;
                        }
                        b'&' | 0 => break p,
                        _ => p += 1,
                    }
                };
                if p < n {
                    p += 1; // past '&'
                }
                let Some(e) = equals else {
                    return Err(Complaint::NoEquals(Span::new(start, end)));
                };
                let name = Span::new(start, e);
                let value = Span::new(e + 1, end);
                check_percent(b, Part::ParamName, name)?;
                check_percent(b, Part::ParamValue, value)?;
                let key = decode(&b[name.start..name.end]);
                let jdbc_ssl = key == "ssl" && decode(&b[value.start..value.end]) == "true";
                if !jdbc_ssl && !known(keywords, &key) {
                    return Err(Complaint::UnknownParameter(name));
                }
            }
        }
        Ok(uri)
    }
}

/// libpq's service lookup (fe-connect.c: parseServiceInfo and
/// parseServiceFile), to learn what a `service=` entry sets.
///
/// The name comes from `service` in the string, else PGSERVICE.  The first
/// file is PGSERVICEFILE if set, else ~/.pg_service.conf if it exists; if
/// the entry is not there, PGSYSCONFDIR/pg_service.conf (or libpq's
/// sysconfdir).  Only the first `[name]` group of a file counts, up to the
/// next group; within it, `key=value` lines (whitespace trimmed at the ends
/// of the line only), `#` comments, and the first setting of a key wins.
/// Where libpq would fail (a file it cannot read, a syntax error, no such
/// entry) the outcome here does not matter: the connection fails with
/// libpq's message, so the entry counts as absent.
pub(crate) mod service {
    use std::io::ErrorKind;
    use std::path::Path;

    /// libpq reads lines with a 1024-byte fgets buffer and rejects a line
    /// that fills it.
    const MAX_LINE: usize = 1023;

    pub(crate) struct Sources<'a> {
        pub(crate) name: &'a str,
        /// PGSERVICEFILE.
        pub(crate) service_file: Option<&'a Path>,
        /// libpq's home directory (for ~/.pg_service.conf).
        pub(crate) home: Option<&'a Path>,
        /// PGSYSCONFDIR, else libpq's compiled-in sysconfdir.
        pub(crate) sysconf_dir: &'a Path,
    }

    #[derive(Debug, PartialEq)]
    pub(crate) enum Entry {
        /// No service, or none libpq would use.
        Absent,
        /// The entry's settings, in file order, first setting of each key.
        Settings(Vec<(String, String)>),
        /// The entry has an LDAP line: what it sets is libpq's to know.
        /// Counts as setting everything, so netbuf adds no default to it.
        Opaque,
    }

    impl Entry {
        pub(crate) fn value(&self, key: &str) -> Option<String> {
            match self {
                Entry::Settings(settings) => settings
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.clone()),
                Entry::Absent | Entry::Opaque => None,
            }
        }

        pub(crate) fn sets(&self, key: &str) -> bool {
            matches!(self, Entry::Opaque) || self.value(key).is_some()
        }

        /// libpq treats an empty dbname as none (it falls back to the user
        /// name), as netbuf does for the string's.
        pub(crate) fn sets_nonempty(&self, key: &str) -> bool {
            matches!(self, Entry::Opaque) || self.value(key).is_some_and(|v| !v.is_empty())
        }
    }

    /// libpq's reading of one file: Err where it fails, Ok(None) where the
    /// group is not in it.
    type FileResult = Result<Option<Entry>, ()>;

    pub(crate) fn lookup(sources: &Sources, keywords: &[String]) -> Entry {
        let first = match sources.service_file {
            Some(file) => Some(file.to_path_buf()),
            None => sources
                .home
                .map(|home| home.join(".pg_service.conf"))
                .filter(|file| file.metadata().is_ok()),
        };
        if let Some(file) = first {
            match read_group(&file, sources.name, keywords) {
                Ok(Some(entry)) => return entry,
                Ok(None) => {}
                Err(()) => return Entry::Absent,
            }
        }
        let system = sources.sysconf_dir.join("pg_service.conf");
        if system.metadata().is_err() {
            return Entry::Absent;
        }
        match read_group(&system, sources.name, keywords) {
            Ok(Some(entry)) => entry,
            Ok(None) | Err(()) => Entry::Absent,
        }
    }

    fn read_group(file: &Path, name: &str, keywords: &[String]) -> FileResult {
        let content = match std::fs::read(file) {
            Ok(content) => content,
            // libpq's fopen succeeds on a directory and its fgets reads
            // nothing.
            Err(e) if e.kind() == ErrorKind::IsADirectory => Vec::new(),
            Err(_) => return Err(()),
        };
        parse_group(&content, name, keywords)
    }

    /// The line without the leading and trailing bytes C's isspace() skips.
    fn trim_c_space(mut line: &[u8]) -> &[u8] {
        while let [first, rest @ ..] = line
            && super::is_space(*first)
        {
            line = rest;
        }
        while let [rest @ .., last] = line
            && super::is_space(*last)
        {
            line = rest;
        }
        line
    }

    /// parseServiceFile over a file's bytes.
    pub(crate) fn parse_group(content: &[u8], name: &str, keywords: &[String]) -> FileResult {
        let mut settings: Option<Vec<(String, String)>> = None;
        for raw in content.split_inclusive(|&b| b == b'\n') {
            if raw.len() >= MAX_LINE {
                return Err(());
            }
            let line = trim_c_space(raw);
            if line.is_empty() || line[0] == b'#' {
                continue;
            }
            if line[0] == b'[' {
                if settings.is_some() {
                    break;
                }
                let group = &line[1..];
                if group.starts_with(name.as_bytes()) && group.get(name.len()) == Some(&b']') {
                    settings = Some(Vec::new());
                }
                continue;
            }
            let Some(settings) = settings.as_mut() else {
                continue;
            };
            if line.starts_with(b"ldap") {
                return Ok(Some(Entry::Opaque));
            }
            let Some(equals) = line.iter().position(|&b| b == b'=') else {
                return Err(());
            };
            let key = String::from_utf8_lossy(&line[..equals]).into_owned();
            if key == "service" || !keywords.contains(&key) {
                return Err(());
            }
            if settings.iter().all(|(k, _)| *k != key) {
                let value = String::from_utf8_lossy(&line[equals + 1..]).into_owned();
                settings.push((key, value));
            }
        }
        Ok(settings.map(Entry::Settings))
    }
}

#[cfg(test)]
mod tests {
    use super::libpq_parse::{Complaint, Part, Span};
    use super::secrets::Secrets;
    use super::service::{Entry, Sources};
    use super::*;
    use std::fs;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// No environment at all: the rules alone.
    fn no_env() -> Environment {
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

    fn params(conninfo: &str) -> Result<ConnectParams> {
        ConnectParams::with_environment(conninfo, &no_env())
    }

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

    // ---- no password in errors --------------------------------------------

    /// The error for `conninfo`, which must be refused.
    fn refusal(conninfo: &str) -> String {
        match params(conninfo) {
            Err(e @ Error::InvalidConninfo(_)) => e.to_string(),
            Err(e) => panic!("{conninfo}: not a refusal: {e:?}"),
            Ok(_) => panic!("{conninfo}: accepted"),
        }
    }

    /// `conninfo` is refused with a message that says `says` and shows none
    /// of `secrets`.
    #[track_caller]
    fn refused_without(conninfo: &str, secrets: &[&str], says: &str) {
        let message = refusal(conninfo);
        for secret in secrets {
            assert!(!message.contains(secret), "{conninfo}: {message}");
        }
        assert!(
            message.contains(says),
            "{conninfo}: {message:?} lacks {says:?}"
        );
    }

    #[test]
    fn keyword_strings_never_show_the_password() {
        let r = refused_without;
        // An invalid option after the password may be the password's tail
        // (an unquoted space): not named.
        r(
            "host=x password=s3cret bogus=1",
            &["s3cret", "bogus"],
            "invalid connection option (its name is not shown",
        );
        r(
            "host=x password=s3cret bogus",
            &["s3cret", "bogus"],
            "missing \"=\" after a word",
        );
        // Before the password it cannot be: named, as libpq does.
        r(
            "bogus=1 host=x password=s3cret",
            &["s3cret"],
            "invalid connection option \"bogus\"",
        );
        // Quoted, with spaces and an escaped quote, then an invalid option.
        r(
            r"host=x password='qa1 qb2 \' qc3' bogus=1",
            &["qa1", "qb2", "qc3"],
            "invalid connection option",
        );
        // Unquoted with a space: libpq takes the tail for an option name.
        r("host=x password=sp1 sp2", &["sp1", "sp2"], "missing \"=\"");
        r(
            "host=x password=sp1 sp2=z",
            &["sp1", "sp2"],
            "invalid connection option",
        );
        // Unterminated quote after the password.
        r(
            "host=x password='un1 un2",
            &["un1", "un2"],
            "unterminated quoted string",
        );
        // Missing '=', and ':' for '='.
        r("host=x password me1", &["me1"], "missing \"=\"");
        r("host=x password:co1", &["co1"], "missing \"=\"");
        r("host=x PASSWORD:co2", &["co2"], "missing \"=\"");
        // A stray quote inside a quoted password.
        r(
            "host=x password='st1'st2' port=1",
            &["st1", "st2"],
            "missing \"=\"",
        );
        r(
            "host=x password='st3' st4' port=1",
            &["st3", "st4"],
            "missing \"=\"",
        );
        // A password that is itself a bad token.
        r(
            "host=x password=bt1=bt2 more",
            &["bt1", "bt2"],
            "missing \"=\"",
        );
        // sslpassword is a secret too.
        r(
            "host=x sslpassword=kp1 bogus=1",
            &["kp1"],
            "invalid connection option",
        );
        // A string without a password keeps libpq's message.
        r("host=x bogus=1", &[], "invalid connection option \"bogus\"");
        r("host=x word", &[], "missing \"=\" after \"word\"");
    }

    #[test]
    fn uris_never_show_the_password() {
        let r = refused_without;
        // The brief's case: libpq says `invalid percent-encoded token:
        // "Hunter%zz2"`.
        r(
            "postgresql://u:Hunter%zz2@h/db",
            &["Hunter"],
            "invalid percent-encoded token in the URI's password",
        );
        r(
            "postgresql://u:Hu8x%4nter@h/db",
            &["Hu8x", "nter"],
            "invalid percent-encoded token",
        );
        r(
            "postgresql://u:pw0x%00pw0y@h/db",
            &["pw0x", "pw0y"],
            "forbidden value %00",
        );
        r(
            "postgresql://u:pw9x%@h/db",
            &["pw9x"],
            "invalid percent-encoded token",
        );
        // The user name is no secret and stays quoted.
        r(
            "postgresql://us%zz:pw1@h/db",
            &["pw1"],
            "user name: \"us%zz\"",
        );
        // The password as a query parameter, percent-encoded name or not.
        r(
            "postgresql://u@h/db?password=qp1%zz",
            &["qp1"],
            "query parameter value",
        );
        r(
            "postgresql://u@h/db?%70assword=qp2%G1",
            &["qp2"],
            "invalid percent-encoded token",
        );
        r(
            "postgresql://u@h/db?pass%77ord=qp3%0",
            &["qp3"],
            "invalid percent-encoded token",
        );
        // '&' in the password parameter: the tail looks like a parameter.
        r(
            "postgresql://u@h/db?password=am1&am2",
            &["am1", "am2"],
            "missing key/value separator",
        );
        r(
            "postgresql://u@h/db?password=am3&am4=1",
            &["am3", "am4"],
            "invalid URI query parameter",
        );
        r(
            "postgresql://u@h/db?password=eq1=eq2",
            &["eq1", "eq2"],
            "extra key/value separator",
        );
        // An invalid parameter after the userinfo is named; after a
        // password parameter it is not.
        r(
            "postgresql://u:pw2@h/db?bogus=1",
            &["pw2"],
            "invalid URI query parameter: \"bogus\"",
        );
        r(
            "postgresql://u@h/db?password=pw3&bogus=1",
            &["pw3", "bogus"],
            "invalid URI query parameter",
        );
        // libpq quotes the whole URI for these.
        r("postgresql://u:v6a@[::1/db", &["v6a"], "IPv6 host address");
        r("postgresql://u:v6b@[]/db", &["v6b"], "may not be empty");
        r(
            "postgresql://u:v6c@[::1]x/db",
            &["v6c"],
            "unexpected character \"x\"",
        );
        // Text between the ':' and the last '@' may be password.
        r(
            "postgresql://u:pa1x/ss2x@h/db?bogus=1",
            &["pa1x", "ss2x"],
            "invalid",
        );
        r("postgresql://u:p%zz@h/db?bogus=1", &["p%zz"], "password");
        // Without a password, libpq's message as it is.
        r(
            "postgresql://u@h/d%zzb",
            &[],
            "invalid percent-encoded token: \"d%zzb\"",
        );
    }

    #[test]
    fn uri_passwords_that_would_land_elsewhere_are_refused() {
        // An unencoded '@': libpq takes "ss@h" for the host.
        let message = refusal("postgresql://u:pa1x@ss2x@h/db");
        assert!(
            message.contains("%40") && !message.contains("ss2x"),
            "{message}"
        );
        assert!(!message.contains("pa1x"), "{message}");
        // An unencoded '/': no userinfo; host "u", port "pa", dbname "ss@h/db".
        let message = refusal("postgresql://u:pa1x/ss2x@h/db");
        assert!(
            message.contains("%2F") && !message.contains("pa1x"),
            "{message}"
        );
        assert!(!message.contains("ss2x"), "{message}");
        // '/' whose tail has no '@' before the query: the port is the
        // password's head.
        let message = refusal("postgresql://u:pa1x/s?sslmode=x@h");
        assert!(
            message.contains("port") && !message.contains("pa1x"),
            "{message}"
        );
        // A URI as dbname of a keyword/value string.
        let message = refusal("host=h dbname=postgresql://u:pw7x@h/db");
        assert!(
            message.contains("not expanded") && !message.contains("pw7x"),
            "{message}"
        );
        // Well-formed ones with '@' or ':' elsewhere are fine.
        for ok in [
            "postgresql://u:p%40ss%2Fw@h:5432/db?application_name=a@b",
            "postgresql://u@h:5432/db?application_name=a@b",
            "postgresql://u:p?ss@h/db",
            "postgresql://u:p:ss@h1:1,h2:2/db",
            "postgresql://u:pw@[::1]:5432/db",
            "host=h dbname=postgresql://u@h/db",
        ] {
            assert!(params(ok).is_ok(), "{ok}: {:?}", params(ok).err());
        }
    }

    #[test]
    fn secret_regions() {
        let find = |s: &str| Secrets::find(s);
        assert!(find("host=x user=u").is_empty());
        assert!(find("postgresql://u@h:5/db?sslmode=x").is_empty());
        let s = "host=x password=y";
        assert!(find(s).hides(Span::new(16, 17)));
        assert!(!find(s).hides(Span::new(0, 6)));
        let s = "postgresql://u:pw@h/db?bogus=1";
        assert!(find(s).hides(Span::new(15, 17)));
        assert!(!find(s).hides(Span::new(13, 14)), "the user name");
        assert!(!find(s).hides(Span::new(23, 28)), "after the last '@'");
        let s = "postgresql://u@h/db?%70ASSWORD=x&bogus=1";
        assert!(find(s).hides(Span::new(33, 38)));
        assert!(!find(s).hides(Span::new(13, 14)));
    }

    /// libpq's verdict on a string: parses or not.
    fn libpq_accepts(conninfo: &str) -> bool {
        ConninfoOptions::parse(&CString::new(conninfo).unwrap()).is_ok()
    }

    /// The mirror parser finds an error exactly where libpq does, and the
    /// token it points at is in libpq's message.
    #[test]
    fn mirror_parser_agrees_with_libpq() {
        let keywords = libpq_keywords().expect("keywords");
        assert!(keywords.iter().any(|k| k == "password"));
        let strings = [
            "",
            "host=x",
            " host = x  port= 5 ",
            "host=x bogus=1",
            "=x",
            "host",
            "host x",
            "host='x y' port=5",
            "host='x\\' y' port=5",
            "host='x",
            "host='x\\",
            "host=x\\ y",
            "host=x\\",
            "requiressl=1",
            "password='a'b",
            "postgresql://",
            "postgres://h",
            "postgresql://u:p@h:5/db?sslmode=require&application_name=x",
            "postgresql://u:p@h/db?ssl=true",
            "postgresql://u:p@h/db?ssl=false",
            "postgresql://u:p@h/db?requiressl=1",
            "postgresql://h1:1,h2,[::1]:3/db",
            "postgresql://[::1",
            "postgresql://[]",
            "postgresql://[::1]x",
            "postgresql://[::1],h",
            "postgresql://h/db?x",
            "postgresql://h/db?a=1&&b=2",
            "postgresql://h/db?host=1&",
            "postgresql://h/db?host=1=2",
            "postgresql://h/db?bogus=1",
            "postgresql://h/db?%68ost=x",
            "postgresql://h/db?h%zzost=x",
            "postgresql://h/db?host=%zz",
            "postgresql://h/d%zz",
            "postgresql://h/d%00",
            "postgresql://h%zz/db",
            "postgresql://h:5%zz/db",
            "postgresql://h1,h%2/db",
            "postgresql://u%zz@h",
            "postgresql://u:p%zz@h",
            "postgresql://u:p%00@h",
            "postgresql://u:p/x@h",
            "postgresql://u:p@x@h",
            "postgresql://u@h?dbname=x",
            "postgresql://?service=s",
            "postgresql:///db",
            "postgresql://h/db/more?host=x",
            "postgresql://h?a=b?c=d",
            "postgresql://h/db?options=-c%20x%3Dy",
        ];
        for s in strings {
            let mirror = libpq_parse::parse(s, keywords);
            assert_eq!(
                mirror.is_ok(),
                libpq_accepts(s),
                "{s:?}: mirror says {mirror:?}"
            );
            let Err(complaint) = mirror else { continue };
            let message = ConninfoOptions::parse(&CString::new(s).unwrap())
                .err()
                .unwrap();
            let token = |span: Span| &s[span.start..span.end];
            let quoted = match complaint {
                Complaint::MissingEquals(t)
                | Complaint::InvalidOption(t)
                | Complaint::ExtraEquals(t)
                | Complaint::NoEquals(t)
                | Complaint::AfterBracket(t) => Some(token(t).to_owned()),
                Complaint::BadPercent(_, t) | Complaint::PercentZero(_, t) => {
                    // libpq quotes a host or port list without the other's
                    // parts in between.
                    Some(token(t).split([':', ',']).next().unwrap().to_owned())
                }
                Complaint::UnknownParameter(t) => Some(libpq_parse::decode(token(t).as_bytes())),
                _ => None,
            };
            if let Some(quoted) = quoted {
                assert!(
                    message.contains(&quoted),
                    "{s:?}: {message:?} vs {complaint:?}"
                );
            }
        }
        assert_eq!(
            libpq_parse::parse("postgresql://u:p%zz@h", keywords),
            Err(Complaint::BadPercent(Part::Password, Span::new(15, 19)))
        );
    }

    /// Generated strings full of the characters libpq's parsers care
    /// about: the mirror parser accepts exactly what libpq accepts, and no
    /// error quotes a word from a secret region.  Every word `Wnn` occurs
    /// once per string, so where a quoted one came from is known.
    #[test]
    fn generated_strings_agree_with_libpq_and_quote_no_secret() {
        const PIECES: [&str; 26] = [
            "host",
            "password",
            "sslpassword",
            "%70assword",
            "dbname",
            "bogus",
            "ssl",
            "true",
            "=",
            "=",
            "'",
            "\\",
            " ",
            " ",
            "%",
            "%41",
            "%zz",
            "%00",
            "@",
            "/",
            ":",
            "?",
            "&",
            ",",
            "[",
            "]é",
        ];
        let keywords = libpq_keywords().expect("keywords");
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let (mut refused, mut hidden) = (0, 0);
        for _ in 0..20_000 {
            let mut s = String::new();
            if next(2) == 0 {
                s.push_str(["postgresql://", "postgres://"][next(2)]);
            }
            for word in 0..1 + next(12) {
                match next(3) {
                    0 => s.push_str(&format!("W{word:02}")),
                    _ => s.push_str(PIECES[next(PIECES.len())]),
                }
            }
            let accepted = libpq_accepts(&s);
            let mirror = libpq_parse::parse(&s, keywords);
            assert_eq!(mirror.is_ok(), accepted, "{s:?}: mirror says {mirror:?}");
            let Err(error) = params(&s) else { continue };
            let message = error.to_string();
            let secrets = Secrets::find(&s);
            if !accepted {
                refused += 1;
                hidden += usize::from(message.contains("not shown"));
            }
            for (at, _) in message.match_indices('W') {
                let word = message.get(at..at + 3).unwrap_or_default();
                if let Some(pos) = s.find(word).filter(|_| word.len() == 3) {
                    assert!(
                        !secrets.hides(Span::new(pos, pos + 3)),
                        "{s:?}: {message:?} quotes {word} from a secret region"
                    );
                }
            }
        }
        // The generator does reach the interesting cases.
        assert!(
            refused > 5_000 && hidden > 1_000,
            "{refused} refused, {hidden} hidden"
        );
    }

    // ---- service entries ---------------------------------------------------

    /// A fresh directory removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static COUNTER: AtomicU32 = AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "netbuf-conninfo-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
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

    fn keywords() -> &'static [String] {
        libpq_keywords().expect("keywords")
    }

    fn group(text: &str, name: &str) -> std::result::Result<Option<Entry>, ()> {
        service::parse_group(text.as_bytes(), name, keywords())
    }

    fn settings(pairs: &[(&str, &str)]) -> Option<Entry> {
        Some(Entry::Settings(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ))
    }

    #[test]
    fn service_file_syntax_follows_libpq() {
        let text = "# comment\n\
                    dbname=outside_any_group_is_ignored\n\
                    [other]\nhost=o\n\
                    [svc]  # libpq ignores what follows ']'\n\
                    \t host=h1  \n\
                    \n# another comment\n\
                    dbname=d = with spaces\n\
                    host=h2\n\
                    [svc]\nport=99\n";
        assert_eq!(
            group(text, "svc"),
            Ok(settings(&[("host", "h1"), ("dbname", "d = with spaces")]))
        );
        assert_eq!(group(text, "other"), Ok(settings(&[("host", "o")])));
        assert_eq!(group(text, "missing"), Ok(None));
        assert_eq!(group(text, "sv"), Ok(None), "a prefix is not a match");
        assert_eq!(group("[svc]\n", "svc"), Ok(settings(&[])));
        // What libpq refuses: the connection fails with libpq's message.
        assert_eq!(group("[svc]\nnoequals\n", "svc"), Err(()));
        assert_eq!(
            group("[svc]\ndbname = x\n", "svc"),
            Err(()),
            "key with a space"
        );
        assert_eq!(group("[svc]\nbogus=1\n", "svc"), Err(()));
        assert_eq!(group("[svc]\nservice=other\n", "svc"), Err(()));
        let long = format!("[svc]\nhost={}\n", "h".repeat(1020));
        assert_eq!(group(&long, "svc"), Err(()));
        // ...but only inside the group read.
        assert_eq!(
            group("[svc]\nhost=h\n[x]\nbogus\n", "svc"),
            Ok(settings(&[("host", "h")]))
        );
        // An LDAP line: settings known only to libpq.
        assert_eq!(
            group("[svc]\nldap://ldap.example/dc=x?y?sub?z\n", "svc"),
            Ok(Some(Entry::Opaque))
        );
    }

    #[test]
    fn service_files_are_found_where_libpq_looks() {
        let dir = TempDir::new();
        let home = dir.0.join("home");
        let sysconf = dir.0.join("etc");
        dir.write("home/.pg_service.conf", "[a]\ndbname=from_home\n");
        dir.write(
            "etc/pg_service.conf",
            "[a]\ndbname=from_sys\n[b]\ndbname=sys_b\n",
        );
        let explicit = dir.write("explicit.conf", "[a]\ndbname=from_env_file\n");
        let lookup = |name: &str, service_file: Option<&Path>, home: Option<&Path>| {
            service::lookup(
                &Sources {
                    name,
                    service_file,
                    home,
                    sysconf_dir: &sysconf,
                },
                keywords(),
            )
            .value("dbname")
        };
        let s = |v: &str| Some(v.to_owned());
        // PGSERVICEFILE first, then ~/.pg_service.conf, then sysconfdir.
        assert_eq!(
            lookup("a", Some(&explicit), Some(&home)),
            s("from_env_file")
        );
        assert_eq!(lookup("a", None, Some(&home)), s("from_home"));
        assert_eq!(lookup("a", None, None), s("from_sys"));
        assert_eq!(
            lookup("a", None, Some(&dir.0.join("nohome"))),
            s("from_sys")
        );
        // Not in the first file: the system file.
        assert_eq!(lookup("b", Some(&explicit), Some(&home)), s("sys_b"));
        assert_eq!(lookup("b", None, Some(&home)), s("sys_b"));
        // Found nowhere, or PGSERVICEFILE missing: libpq fails; absent here.
        assert_eq!(lookup("c", None, Some(&home)), None);
        assert_eq!(lookup("a", Some(&dir.0.join("nofile")), Some(&home)), None);
        // A home directory without the file, and a system dir without one.
        let empty = TempDir::new();
        let none = service::lookup(
            &Sources {
                name: "a",
                service_file: None,
                home: Some(&empty.0),
                sysconf_dir: &empty.0,
            },
            keywords(),
        );
        assert_eq!(none, Entry::Absent);
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
