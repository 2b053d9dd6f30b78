//! The raw layer: owning wrappers over the libpq objects netbuf uses.
//!
//! Each C-owned object is held by a type whose `Drop` frees it (`PQfinish`,
//! `PQclear`, `PQfreemem`), and every call is made non-blocking: nothing in
//! this module ever waits.  All `unsafe` for libpq lives here.

use std::ffi::{CStr, CString, c_char, c_int};
use std::ptr::NonNull;

use pq_sys as ffi;

pub(crate) use ffi::{ExecStatusType, PostgresPollingStatusType};

/// Copy a NUL-terminated string owned by libpq into a `String`.
///
/// # Safety
/// `ptr` must be NULL or point at a NUL-terminated string valid for the call.
unsafe fn owned_text(ptr: *const c_char) -> Option<String> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: non-NULL and NUL-terminated, per this function's contract.
    Some(
        unsafe { CStr::from_ptr(ptr) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// libpq's messages end with a newline; errors read better without it.
pub(crate) fn trim_message(text: &str) -> String {
    text.trim_end().to_owned()
}

/// One libpq connection (`PGconn`), closed with `PQfinish` on drop.
pub(crate) struct PgConn(NonNull<ffi::PGconn>);

// SAFETY: a PGconn may be used from any thread as long as one thread uses it
// at a time, which `&mut self` on every mutating method guarantees.
unsafe impl Send for PgConn {}

impl PgConn {
    /// `PQconnectStartParams`: begin a non-blocking connection.  `None`
    /// only when libpq could not allocate the connection object.
    pub(crate) fn start(keys: &[CString], values: &[CString], expand_dbname: bool) -> Option<Self> {
        let mut key_ptrs: Vec<*const c_char> = keys.iter().map(|k| k.as_ptr()).collect();
        let mut value_ptrs: Vec<*const c_char> = values.iter().map(|v| v.as_ptr()).collect();
        key_ptrs.push(std::ptr::null());
        value_ptrs.push(std::ptr::null());
        // SAFETY: both arrays are NULL-terminated, of equal length, and their
        // strings outlive the call (libpq copies what it keeps).
        let raw = unsafe {
            ffi::PQconnectStartParams(
                key_ptrs.as_ptr(),
                value_ptrs.as_ptr(),
                c_int::from(expand_dbname),
            )
        };
        NonNull::new(raw).map(PgConn)
    }

    fn raw(&self) -> *mut ffi::PGconn {
        self.0.as_ptr()
    }

    pub(crate) fn connect_poll(&mut self) -> PostgresPollingStatusType {
        // SAFETY: self.0 is a live PGconn.
        unsafe { ffi::PQconnectPoll(self.raw()) }
    }

    pub(crate) fn is_bad(&self) -> bool {
        // SAFETY: self.0 is a live PGconn.
        unsafe { ffi::PQstatus(self.raw()) == ffi::ConnStatusType::CONNECTION_BAD }
    }

    pub(crate) fn socket(&self) -> c_int {
        // SAFETY: self.0 is a live PGconn.
        unsafe { ffi::PQsocket(self.raw()) }
    }

    /// `PQerrorMessage`, copied now: libpq overwrites it on the next call.
    pub(crate) fn error_message(&self) -> String {
        // SAFETY: self.0 is a live PGconn; the message is copied at once.
        let text = unsafe { owned_text(ffi::PQerrorMessage(self.raw())) };
        trim_message(&text.unwrap_or_default())
    }

    pub(crate) fn set_nonblocking(&mut self) -> bool {
        // SAFETY: self.0 is a live PGconn.
        unsafe { ffi::PQsetnonblocking(self.raw(), 1) == 0 }
    }

    /// `PQsendQuery` (simple protocol: one statement, no implicit block).
    pub(crate) fn send_query(&mut self, sql: &CStr) -> bool {
        // SAFETY: self.0 is a live PGconn and sql is NUL-terminated.
        unsafe { ffi::PQsendQuery(self.raw(), sql.as_ptr()) == 1 }
    }

    /// `PQflush`: 0 all sent, 1 more to send (wait), -1 failure.
    pub(crate) fn flush(&mut self) -> c_int {
        // SAFETY: self.0 is a live PGconn.
        unsafe { ffi::PQflush(self.raw()) }
    }

    #[cfg_attr(not(feature = "backend"), allow(dead_code))]
    /// `PQbackendPID`: the pid of the server process serving this
    /// connection (0 before it is known).
    pub(crate) fn backend_pid(&self) -> c_int {
        // SAFETY: self.0 is a live PGconn.
        unsafe { ffi::PQbackendPID(self.raw()) }
    }

    #[cfg_attr(not(feature = "backend"), allow(dead_code))]
    /// `PQconnectionUsedPassword`: whether the server asked for a password
    /// and libpq sent one (the rule of dblink's and postgres_fdw's
    /// password_required).
    pub(crate) fn used_password(&self) -> bool {
        // SAFETY: self.0 is a live PGconn.
        unsafe { ffi::PQconnectionUsedPassword(self.raw()) == 1 }
    }

    /// `PQconsumeInput`: read what the socket has, without blocking.
    pub(crate) fn consume_input(&mut self) -> bool {
        // SAFETY: self.0 is a live PGconn.
        unsafe { ffi::PQconsumeInput(self.raw()) == 1 }
    }

    pub(crate) fn is_busy(&mut self) -> bool {
        // SAFETY: self.0 is a live PGconn.
        unsafe { ffi::PQisBusy(self.raw()) == 1 }
    }

    /// `PQgetResult`; call only when `is_busy()` is false, so it cannot block.
    pub(crate) fn get_result(&mut self) -> Option<PgResult> {
        // SAFETY: self.0 is a live PGconn; the result is owned by PgResult.
        NonNull::new(unsafe { ffi::PQgetResult(self.raw()) }).map(PgResult)
    }

    /// `PQputCopyData`: 1 queued, 0 libpq's buffer is full (wait), -1 failure.
    pub(crate) fn put_copy_data(&mut self, data: &[u8]) -> c_int {
        let Ok(len) = c_int::try_from(data.len()) else {
            return -1;
        };
        // SAFETY: self.0 is a live PGconn; data is valid for len bytes and
        // libpq copies it before returning.
        unsafe { ffi::PQputCopyData(self.raw(), data.as_ptr().cast(), len) }
    }

    /// `PQgetCopyData(async = 1)`: never blocks.
    pub(crate) fn get_copy_data(&mut self) -> CopyData {
        let mut buffer: *mut c_char = std::ptr::null_mut();
        // SAFETY: self.0 is a live PGconn; buffer receives a PQmalloc'ed
        // block that CopyBuffer frees.
        let n = unsafe { ffi::PQgetCopyData(self.raw(), &mut buffer, 1) };
        match n {
            0 => CopyData::WouldBlock,
            -1 => CopyData::Done,
            n if n > 0 => match NonNull::new(buffer) {
                Some(ptr) => CopyData::Message(CopyBuffer {
                    ptr,
                    len: n as usize,
                }),
                None => CopyData::Failed,
            },
            _ => CopyData::Failed,
        }
    }
}

impl Drop for PgConn {
    fn drop(&mut self) {
        // SAFETY: self.0 is a live PGconn, finished exactly once here.
        unsafe { ffi::PQfinish(self.raw()) }
    }
}

/// What `PQgetCopyData` returned.
pub(crate) enum CopyData {
    Message(CopyBuffer),
    WouldBlock,
    /// The copy ended: fetch its results with `get_result`.
    Done,
    Failed,
}

/// A message from `PQgetCopyData`, freed with `PQfreemem` on drop.
pub(crate) struct CopyBuffer {
    ptr: NonNull<c_char>,
    len: usize,
}

// SAFETY: the buffer is plain memory owned by this value alone.
unsafe impl Send for CopyBuffer {}

impl CopyBuffer {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        // SAFETY: libpq returned len readable bytes at ptr, alive until drop.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().cast(), self.len) }
    }

    #[cfg(feature = "backend")]
    pub(crate) fn as_ptr(&self) -> *const c_char {
        self.ptr.as_ptr()
    }
}

impl Drop for CopyBuffer {
    fn drop(&mut self) {
        // SAFETY: ptr came from PQgetCopyData and is freed exactly once.
        unsafe { ffi::PQfreemem(self.ptr.as_ptr().cast()) }
    }
}

/// One `PGresult`, cleared with `PQclear` on drop.
pub(crate) struct PgResult(NonNull<ffi::PGresult>);

impl PgResult {
    pub(crate) fn status(&self) -> ExecStatusType {
        // SAFETY: self.0 is a live PGresult.
        unsafe { ffi::PQresultStatus(self.0.as_ptr()) }
    }

    /// `PQresultErrorField`, e.g. `PG_DIAG_SQLSTATE`.
    pub(crate) fn error_field(&self, field: u8) -> Option<String> {
        // SAFETY: self.0 is a live PGresult; the text is copied at once.
        unsafe { owned_text(ffi::PQresultErrorField(self.0.as_ptr(), c_int::from(field))) }
    }

    pub(crate) fn error_message(&self) -> String {
        // SAFETY: self.0 is a live PGresult; the text is copied at once.
        let text = unsafe { owned_text(ffi::PQresultErrorMessage(self.0.as_ptr())) };
        trim_message(&text.unwrap_or_default())
    }
}

impl Drop for PgResult {
    fn drop(&mut self) {
        // SAFETY: self.0 is a live PGresult, cleared exactly once here.
        unsafe { ffi::PQclear(self.0.as_ptr()) }
    }
}

/// The options of a connection string, from `PQconninfoParse`.
pub(crate) struct ConninfoOptions(NonNull<ffi::PQconninfoOption>);

impl ConninfoOptions {
    /// Parse `conninfo` (key=value or URI) the way libpq will.
    pub(crate) fn parse(conninfo: &CStr) -> Result<Self, String> {
        let mut errmsg: *mut c_char = std::ptr::null_mut();
        // SAFETY: conninfo is NUL-terminated; errmsg receives a PQmalloc'ed
        // string (or stays NULL) that we free below.
        let options = unsafe { ffi::PQconninfoParse(conninfo.as_ptr(), &mut errmsg) };
        match NonNull::new(options) {
            Some(options) => Ok(ConninfoOptions(options)),
            None => {
                // SAFETY: errmsg is NULL or a NUL-terminated PQmalloc'ed string.
                let text = unsafe { owned_text(errmsg) }
                    .map(|t| trim_message(&t))
                    .unwrap_or_else(|| "out of memory".to_owned());
                // SAFETY: errmsg came from libpq (PQfreemem accepts NULL).
                unsafe { ffi::PQfreemem(errmsg.cast()) };
                Err(text)
            }
        }
    }

    /// The value given for `keyword`, if the string set it.
    pub(crate) fn get(&self, keyword: &str) -> Option<String> {
        self.entries()
            .find(|(key, _)| key.to_bytes() == keyword.as_bytes())
            // SAFETY: val is NULL or a NUL-terminated string of the array.
            .and_then(|(_, val)| unsafe { owned_text(val) })
    }

    /// (keyword, value) of every option the string sets, in libpq's order.
    #[cfg_attr(not(feature = "backend"), allow(dead_code))]
    pub(crate) fn set_values(&self) -> Vec<(String, String)> {
        self.entries()
            // SAFETY: val is NULL or a NUL-terminated string of the array.
            .filter_map(|(key, val)| {
                unsafe { owned_text(val) }.map(|v| (key.to_string_lossy().into_owned(), v))
            })
            .collect()
    }

    /// The name of every option this libpq knows: the array lists them all,
    /// set or not.
    pub(crate) fn keywords(&self) -> Vec<String> {
        self.entries()
            .map(|(key, _)| key.to_string_lossy().into_owned())
            .collect()
    }

    /// (keyword, val) of each entry; val is NULL for an option not set.
    fn entries(&self) -> impl Iterator<Item = (&CStr, *const c_char)> + '_ {
        let mut option = self.0.as_ptr();
        std::iter::from_fn(move || {
            // SAFETY: the array from PQconninfoParse ends with an entry whose
            // keyword is NULL; we stop there and never read past it.
            let entry = unsafe { &*option };
            if entry.keyword.is_null() {
                return None;
            }
            // SAFETY: not yet at the terminating entry, so the next exists.
            option = unsafe { option.add(1) };
            // SAFETY: a non-NULL keyword is a NUL-terminated string that
            // lives as long as the array, which self owns.
            Some((
                unsafe { CStr::from_ptr(entry.keyword) },
                entry.val.cast_const(),
            ))
        })
    }
}

impl Drop for ConninfoOptions {
    fn drop(&mut self) {
        // SAFETY: the array came from PQconninfoParse and is freed once.
        unsafe { ffi::PQconninfoFree(self.0.as_ptr()) }
    }
}
