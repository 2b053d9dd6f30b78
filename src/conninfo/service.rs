//! libpq's service lookup (fe-connect.c: parseServiceInfo and
//! parseServiceFile), to learn what a `service=` entry sets.
//!
//! The name comes from `service` in the string, else PGSERVICE.  The first
//! file is PGSERVICEFILE if set, else ~/.pg_service.conf if it exists; if
//! the entry is not there, PGSYSCONFDIR/pg_service.conf (or libpq's
//! sysconfdir).  Only the first `[name]` group of a file counts, up to the
//! next group; within it, `key=value` lines (whitespace trimmed at the ends
//! of the line only), `#` comments, and the first setting of a key wins.
//! Where libpq would fail (a file it cannot read, a syntax error, no such
//! entry) the outcome here does not matter: the connection fails with
//! libpq's message, so the entry counts as absent.

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conninfo::service;
    use crate::conninfo::tests::{TempDir, keywords};
    use std::path::Path;

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
}
