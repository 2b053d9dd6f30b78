//! libpq's connection-string parsers (fe-connect.c: conninfo_parse,
//! conninfo_uri_parse_options, conninfo_uri_parse_params,
//! conninfo_uri_decode) redone to learn *where* they fail: the first error
//! libpq reports and the span of the token it quotes.  libpq stays the
//! authority on whether a string parses; this only explains its refusals
//! without quoting secrets, and finds the parts of an accepted URI.

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
pub(crate) fn uri(conninfo: &str, prefix: usize, keywords: &[String]) -> Result<Uri, Complaint> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conninfo::tests::libpq_accepts;
    use crate::conninfo::{libpq_keywords, libpq_parse};
    use crate::pq::ConninfoOptions;
    use std::ffi::CString;

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
}
