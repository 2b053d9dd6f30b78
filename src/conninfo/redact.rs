//! No password in any error built from a connection string.
//!
//! libpq's parse errors quote the token they stop at, and for a malformed
//! string that token can be the password or part of it: a bad
//! percent-encoding quotes the whole encoded component (`invalid
//! percent-encoded token: "Hunter%zz2"`), an unclosed IPv6 bracket the whole
//! URI, and a password with an unquoted space or stray quote, a ':' for
//! '=', or a '&' in a URI's `password=` becomes the next "option name".
//! Which part of a malformed string the user meant as a password is not
//! knowable, so the rule is positional and conservative:
//!
//! - The *secret region* of a string is everything from the first
//!   `password` in it (any case; `sslpassword` included; in a URI, after
//!   percent-decoding, so `%70assword` counts) to its end, plus in a URI
//!   everything between the first ':' and the last '@' after the scheme
//!   (the userinfo password, whatever unencoded '@' or '/' it holds).
//!   libpq parses left to right and stops at the first error, and a
//!   password can only leak into tokens after its own start.
//! - A string with no secret region gets libpq's message verbatim.
//! - Otherwise netbuf writes the message itself from [`libpq_parse`], which
//!   finds the same error and the span of the token libpq would quote; the
//!   token is quoted only if its span misses the secret region (so an
//!   invalid option name *before* the password is still named), and is
//!   replaced by a description of where it is otherwise.  If the two
//!   parsers ever disagree, the message says only that libpq refused the
//!   string.
//!
//! A string libpq accepts can still misplace a password: a URI password
//! with an unencoded '@' or '/' is cut there and the rest becomes the host,
//! port or database name, which connection errors quote ("could not
//! translate host name "ss@h""). [`check_parsed`] refuses those shapes
//! before connecting, with a message that quotes nothing.

use super::libpq_parse::{self, Complaint, Part, Span};
use super::{Error, uri_prefix_len};
use crate::pq::ConninfoOptions;

/// Shown for a password in [`masked`].
#[cfg_attr(not(feature = "backend"), allow(dead_code))]
const MASK: &str = "********";

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
    let complaint =
        super::libpq_keywords().and_then(|keywords| libpq_parse::parse(conninfo, keywords).err());
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
        Complaint::Unterminated => "unterminated quoted string in connection info string".into(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conninfo::libpq_keywords;
    use crate::conninfo::libpq_parse::{self, Span};
    use crate::conninfo::tests::{libpq_accepts, params};
    use crate::error::Error;

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
}

/// A connection string for display (the standby's `netbuf.channels()`):
/// libpq's own reading of it, as `keyword=value` pairs in libpq's order,
/// with the value of `password` and `sslpassword` replaced by `********`.
/// Rebuilding the string from libpq's parse, rather than editing the text,
/// leaves nothing of a password behind whatever its quoting or encoding.
/// `None` when libpq cannot parse the string.  The flag says whether the
/// string sets a non-empty `password` (the password_required rule).
#[cfg_attr(not(feature = "backend"), allow(dead_code))]
pub(crate) fn masked(conninfo: &str) -> Option<(String, bool)> {
    let conninfo = std::ffi::CString::new(conninfo).ok()?;
    let options = ConninfoOptions::parse(&conninfo).ok()?;
    let mut has_password = false;
    let mut shown = Vec::new();
    for (key, value) in options.set_values() {
        let value = if key == "password" || key == "sslpassword" {
            if key == "password" && !value.is_empty() {
                has_password = true;
            }
            MASK.to_owned()
        } else {
            quote_value(&value)
        };
        shown.push(format!("{key}={value}"));
    }
    Some((shown.join(" "), has_password))
}

/// A value quoted as libpq's key=value parser reads it back.
#[cfg_attr(not(feature = "backend"), allow(dead_code))]
fn quote_value(value: &str) -> String {
    if !value.is_empty()
        && !value
            .bytes()
            .any(|b| super::is_space(b) || b == b'\'' || b == b'\\')
    {
        return value.to_owned();
    }
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[cfg(test)]
mod masked_tests {
    use super::masked;

    #[test]
    fn passwords_are_masked_whatever_the_syntax() {
        for (conninfo, shown) in [
            (
                "host=h port=5 user=u password=Hunter22 dbname=d",
                "user=u password=******** dbname=d host=h port=5",
            ),
            (
                "postgresql://u:Hunter22@h:5/d?sslpassword=Zebra99",
                "user=u password=******** dbname=d host=h port=5 sslpassword=********",
            ),
            (
                r"password='it\'s a secret' host=h",
                "password=******** host=h",
            ),
            (
                "application_name='a b' host=h",
                "host=h application_name='a b'",
            ),
        ] {
            let (text, _) = masked(conninfo).unwrap_or_else(|| panic!("{conninfo} parses"));
            assert_eq!(text, shown, "{conninfo}");
            assert!(
                !text.contains("Hunter") && !text.contains("Zebra") && !text.contains("secret")
            );
        }
    }

    #[test]
    fn has_password_means_a_non_empty_password() {
        assert_eq!(masked("host=h password=x").map(|m| m.1), Some(true));
        assert_eq!(masked("host=h password=''").map(|m| m.1), Some(false));
        assert_eq!(masked("host=h sslpassword=x").map(|m| m.1), Some(false));
        assert_eq!(masked("postgresql://u:pw@h/d").map(|m| m.1), Some(true));
        assert_eq!(masked("host=h").map(|m| m.1), Some(false));
        assert_eq!(masked("host=h password"), None);
    }
}
