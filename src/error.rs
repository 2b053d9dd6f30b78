//! Errors of the safe API, shared with the C ABI (which turns them into
//! `ereport(ERROR)` with the same SQLSTATE).

use std::fmt;

/// What went wrong on a netbuf channel.
///
/// Each variant keeps the text it was given at the moment of failure
/// (libpq's message, the primary's ErrorResponse), never a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The connection string could not be used.
    #[error("netbuf: invalid connection string: {0}")]
    InvalidConninfo(String),

    /// libpq could not connect (network, authentication, pg_hba ...).
    #[error("netbuf: could not connect to the primary: {0}")]
    Connect(String),

    /// The primary answered with an ErrorResponse: refused `CALL
    /// netbuf.serve()`, or rejected a request (unknown op, malformed
    /// message, a handler's ERROR), or was cancelled or terminated.
    #[error("{}", .0.message)]
    Primary(Box<PrimaryError>),

    /// The connection broke (peer closed it, socket error, timeout).
    #[error("netbuf: lost the connection to the primary: {0}")]
    ConnectionLost(String),

    /// The channel was reset because a caller gave up on it (an ERROR,
    /// a timeout or a cancel) while replies were in flight; they were
    /// discarded with the connection.  The next send connects again.
    #[error("netbuf: {0}")]
    Reset(String),

    /// A blocking call of the Rust API waited longer than its timeout.
    #[error("netbuf: {0}")]
    Timeout(String),

    /// A blocking call of the Rust API was cancelled through a `Canceller`.
    #[error("netbuf: {0}")]
    Cancelled(String),

    /// The caller passed something netbuf cannot send or use.
    #[error("netbuf: {0}")]
    InvalidArgument(String),

    /// A bug in netbuf caught at a boundary (e.g. a Rust panic).
    #[error("netbuf: internal error: {0}")]
    Internal(String),
}

/// The fields of an ErrorResponse from the primary, as libpq reported them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrimaryError {
    pub sqlstate: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl fmt::Display for PrimaryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (SQLSTATE {})", self.message, self.sqlstate)
    }
}

impl Error {
    /// The SQLSTATE this error carries, as PostgreSQL would report it: the
    /// primary's own code for `Primary`, the matching class-08/22/XX code
    /// for the others.
    pub fn sqlstate(&self) -> &str {
        match self {
            Error::InvalidConninfo(_) => "22023", // invalid_parameter_value
            Error::Connect(_) => "08001",         // sqlclient_unable_to_establish_sqlconnection
            Error::Primary(e) => &e.sqlstate,
            Error::ConnectionLost(_) => "08006", // connection_failure
            Error::Reset(_) => "08003",          // connection_does_not_exist
            Error::Timeout(_) | Error::Cancelled(_) => "57014", // query_canceled
            Error::InvalidArgument(_) => "22023", // invalid_parameter_value
            Error::Internal(_) => "XX000",       // internal_error
        }
    }

    /// Details from the primary, when it sent any.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Error::Primary(e) => e.detail.as_deref(),
            _ => None,
        }
    }

    /// A hint from the primary (netbuf adds one when it refuses the channel
    /// for a well-known cause: missing extension, missing grant).
    pub fn hint(&self) -> Option<&str> {
        match self {
            Error::Primary(e) => e.hint.as_deref(),
            Error::ConnectionLost(_) | Error::Reset(_) => {
                Some("The next send on this channel connects again.")
            }
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
