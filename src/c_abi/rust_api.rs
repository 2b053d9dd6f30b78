//! What C calls in Rust: the table `NbRustApi` declared in
//! c_shim/boundary.h, implemented over the same core as the Rust API.
//!
//! Every function here returns a status and fills an `NbError`; none of them
//! blocks, calls into the backend or lets a panic out (a panic becomes an
//! `XX000` error and resets the channel it happened on).  None of them is
//! exported: C reaches them only through [`NB_RUST_API`], whose address
//! `_PG_init` hands to the C side (see [`exports`](super::exports)).

use std::ffi::{CStr, c_char, c_int, c_long};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use crate::boundary::PANIC_POINT_NAMES;
use crate::channel::{Channel, ChannelState, Received, Step, Wait};
use crate::conninfo::redact;
use crate::error::Error;
use crate::{demo_op, protocol};

use super::bindings::{
    NbChannel, NbChannelInfo, NbChannelState, NbConninfoKind, NbError, NbPanicPoint, NbRustApi,
    NbStatus,
};

/// The table the C files call through (see c_shim/boundary.h).
pub(crate) static NB_RUST_API: NbRustApi = NbRustApi {
    connect_start: Some(nb_connect_start),
    connect_continue: Some(nb_connect_continue),
    socket: Some(nb_socket),
    wait_timeout_ms: Some(nb_wait_timeout_ms),
    send: Some(nb_send),
    flush: Some(nb_flush),
    recv: Some(nb_recv),
    in_flight: Some(nb_in_flight),
    reset: Some(nb_reset),
    close: Some(nb_close),
    op_add300: Some(nb_op_add300),
    set_max_message_size: Some(nb_set_max_message_size),
    set_panic_point: Some(nb_set_panic_point),
    describe: Some(nb_describe),
    mask_conninfo: Some(nb_mask_conninfo),
    channel_conninfo: Some(nb_channel_conninfo),
};

/// The largest reply channels opened from now on accept: the standby's
/// GUC netbuf.max_message_size, set through `nb_set_max_message_size`.
static MAX_MESSAGE_SIZE: AtomicUsize = AtomicUsize::new(protocol::DEFAULT_MAX_MESSAGE_SIZE);

/// Where the developer GUC netbuf.debug_panic_at wants a panic.
static PANIC_POINT: AtomicU32 = AtomicU32::new(NbPanicPoint::NB_PANIC_NONE as u32);

/// Panic if netbuf.debug_panic_at names `point`: how the tests prove that a
/// panic anywhere below a C entry point ends as a clean ERROR.
fn injected_panic(point: NbPanicPoint) {
    if PANIC_POINT.load(Ordering::Relaxed) == point as u32 {
        // The GUC's name for it (boundary.h): what the tests set and expect.
        let name = PANIC_POINT_NAMES[point as usize];
        panic!("injected by netbuf.debug_panic_at = {name}");
    }
}

/// Called by the GUC's assign hook (c_shim/common/gucs.c).
extern "C" fn nb_set_panic_point(point: NbPanicPoint) {
    PANIC_POINT.store(point as u32, Ordering::Relaxed);
}

/// Called by the GUC's assign hook (c_shim/common/gucs.c); the GUC's bounds keep
/// it within the range `Channel::start` accepts.
extern "C" fn nb_set_max_message_size(nbytes: c_int) {
    if let Ok(nbytes) = usize::try_from(nbytes) {
        MAX_MESSAGE_SIZE.store(nbytes, Ordering::Relaxed);
    }
}

/// Copy `text` into a fixed C buffer, cut at a character boundary, with NUL.
fn copy_text(buffer: &mut [c_char], text: &str) {
    let mut end = text.len().min(buffer.len() - 1);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    for (slot, byte) in buffer.iter_mut().zip(&text.as_bytes()[..end]) {
        *slot = *byte as c_char;
    }
    buffer[end] = 0;
}

/// Describe an error for ereport.
fn fill(err: *mut NbError, sqlstate: &str, message: &str, detail: &str, hint: &str, context: &str) {
    // SAFETY: the shim passes a pointer to its own NbError (or NULL).
    let Some(err) = (unsafe { err.as_mut() }) else {
        return;
    };
    copy_text(&mut err.sqlstate, sqlstate);
    copy_text(&mut err.message, message);
    copy_text(&mut err.detail, detail);
    copy_text(&mut err.hint, hint);
    copy_text(&mut err.context, context);
}

fn fill_error(err: *mut NbError, error: &Error) {
    let context = match error {
        Error::Primary(_) => "netbuf: error reported by the primary",
        _ => "",
    };
    let detail = error.detail().unwrap_or("");
    fill(
        err,
        error.sqlstate(),
        &error.to_string(),
        detail,
        error.hint().unwrap_or(""),
        context,
    );
}

fn panic_error(payload: Box<dyn std::any::Any + Send>) -> Error {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    Error::Internal(format!("Rust panic: {text}"))
}

fn status(step: Step<()>) -> NbStatus {
    match step {
        Step::Ready(()) => NbStatus::NB_DONE,
        Step::Wait(Wait::Read) => NbStatus::NB_WAIT_READ,
        Step::Wait(Wait::Write) => NbStatus::NB_WAIT_WRITE,
    }
}

/// Run one step on a channel: errors go to `err`, panics are caught and
/// poison the channel.
fn on_channel(
    chan: *mut NbChannel,
    err: *mut NbError,
    step: impl FnOnce(&mut Channel) -> Result<NbStatus, Error>,
) -> NbStatus {
    let chan = chan.cast::<Channel>();
    if chan.is_null() {
        fill_error(
            err,
            &Error::InvalidArgument(
                "the connection is NULL (netbuf_connect did not succeed?)".into(),
            ),
        );
        return NbStatus::NB_ERROR;
    }
    // SAFETY: a non-NULL chan came from nb_connect_start and is not yet closed
    // (the shim's contract); the backend is single-threaded.
    let outcome = catch_unwind(AssertUnwindSafe(|| step(unsafe { &mut *chan })));
    let error = match outcome {
        Ok(Ok(status)) => return status,
        Ok(Err(error)) => error,
        Err(payload) => {
            let error = panic_error(payload);
            // SAFETY: as above; the step's borrow ended with the unwind.
            let _ = catch_unwind(AssertUnwindSafe(|| unsafe { (*chan).poison(&error) }));
            error
        }
    };
    fill_error(err, &error);
    NbStatus::NB_ERROR
}

/// # Safety
/// `conninfo` must be NULL or NUL-terminated; `err` must be NULL or valid.
unsafe extern "C" fn nb_connect_start(
    conninfo: *const c_char,
    err: *mut NbError,
) -> *mut NbChannel {
    let outcome = catch_unwind(|| {
        injected_panic(NbPanicPoint::NB_PANIC_CONNECT);
        if conninfo.is_null() {
            return Err(Error::InvalidConninfo(
                "the connection string is NULL".into(),
            ));
        }
        // SAFETY: non-NULL and NUL-terminated per this function's contract.
        let conninfo = unsafe { CStr::from_ptr(conninfo) };
        let conninfo = conninfo.to_str().map_err(|_| {
            Error::InvalidConninfo("the connection string is not valid UTF-8".into())
        })?;
        Channel::start(conninfo, MAX_MESSAGE_SIZE.load(Ordering::Relaxed))
    });
    match outcome.unwrap_or_else(|payload| Err(panic_error(payload))) {
        Ok(channel) => Box::into_raw(Box::new(channel)).cast(),
        Err(error) => {
            fill_error(err, &error);
            ptr::null_mut()
        }
    }
}

/// # Safety
/// `chan` must be NULL or from nb_connect_start and not closed.
unsafe extern "C" fn nb_connect_continue(chan: *mut NbChannel, err: *mut NbError) -> NbStatus {
    on_channel(chan, err, |c| c.poll_connect().map(status))
}

/// # Safety
/// `chan` must be NULL or from nb_connect_start and not closed.
unsafe extern "C" fn nb_socket(chan: *const NbChannel) -> c_int {
    // SAFETY: NULL or a live channel, per the contract.
    match unsafe { chan.cast::<Channel>().as_ref() } {
        Some(channel) => channel.socket(),
        None => -1,
    }
}

/// # Safety
/// `chan` must be NULL or from nb_connect_start and not closed.
unsafe extern "C" fn nb_wait_timeout_ms(chan: *const NbChannel) -> c_long {
    // SAFETY: NULL or a live channel, per the contract.
    match unsafe { chan.cast::<Channel>().as_ref() }.and_then(Channel::wait_timeout_ms) {
        Some(ms) => ms.min(c_long::MAX as u64) as c_long,
        None => -1,
    }
}

/// # Safety
/// `chan` must be NULL or live; `data` must be NULL or valid for `nbytes`.
unsafe extern "C" fn nb_send(
    chan: *mut NbChannel,
    data: *const c_char,
    nbytes: c_int,
    err: *mut NbError,
) -> NbStatus {
    on_channel(chan, err, |c| {
        injected_panic(NbPanicPoint::NB_PANIC_SEND);
        let len = usize::try_from(nbytes).map_err(|_| {
            Error::InvalidArgument(format!("cannot send a message of negative length {nbytes}"))
        })?;
        let message = match (data.is_null(), len) {
            (_, 0) => &[][..],
            (true, _) => {
                return Err(Error::InvalidArgument(format!(
                    "the buffer is NULL but nbytes is {nbytes}"
                )));
            }
            // SAFETY: non-NULL and valid for nbytes bytes per the contract.
            (false, len) => unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) },
        };
        c.poll_send(message).map(status)
    })
}

/// # Safety
/// `chan` must be NULL or from nb_connect_start and not closed.
unsafe extern "C" fn nb_flush(chan: *mut NbChannel, err: *mut NbError) -> NbStatus {
    on_channel(chan, err, |c| c.poll_flush().map(status))
}

/// # Safety
/// `chan` must be NULL or live; `data` and `nbytes` must be valid pointers.
unsafe extern "C" fn nb_recv(
    chan: *mut NbChannel,
    data: *mut *const c_char,
    nbytes: *mut c_int,
    err: *mut NbError,
) -> NbStatus {
    on_channel(chan, err, |c| {
        injected_panic(NbPanicPoint::NB_PANIC_RECV);
        match c.poll_recv()? {
            Step::Wait(wait) => Ok(status(Step::Wait(wait))),
            Step::Ready(Received::EndOfStream) => Ok(NbStatus::NB_END_OF_STREAM),
            Step::Ready(Received::Message) => {
                let message = c.message().expect("a received message is kept");
                // SAFETY: the shim passes pointers to its own locals.
                unsafe {
                    *data = message.as_ptr();
                    *nbytes = message.as_bytes().len() as c_int;
                }
                Ok(NbStatus::NB_DONE)
            }
        }
    })
}

/// # Safety
/// `chan` must be NULL or from nb_connect_start and not closed.
unsafe extern "C" fn nb_in_flight(chan: *const NbChannel) -> c_int {
    // SAFETY: NULL or a live channel, per the contract.
    match unsafe { chan.cast::<Channel>().as_ref() } {
        Some(channel) => c_int::try_from(channel.in_flight()).unwrap_or(c_int::MAX),
        None => 0,
    }
}

/// # Safety
/// `chan` must be NULL or from nb_connect_start and not closed; `why` NULL
/// or NUL-terminated.
unsafe extern "C" fn nb_reset(chan: *mut NbChannel, why: *const c_char) {
    let chan = chan.cast::<Channel>();
    if chan.is_null() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let why = if why.is_null() {
            "an ERROR".into()
        } else {
            // SAFETY: non-NULL and NUL-terminated per the contract.
            unsafe { CStr::from_ptr(why) }.to_string_lossy()
        };
        // SAFETY: a live channel per the contract; the backend is single-threaded.
        unsafe { (*chan).reset(&why) };
    }));
}

/// # Safety
/// `chan` must be NULL or from nb_connect_start, and is invalid afterwards.
unsafe extern "C" fn nb_close(chan: *mut NbChannel) {
    if chan.is_null() {
        return;
    }
    // SAFETY: chan came from Box::into_raw in nb_connect_start, closed once.
    let channel = unsafe { Box::from_raw(chan.cast::<Channel>()) };
    // Dropping runs PQfinish; a panic there must not reach C.
    let _ = catch_unwind(AssertUnwindSafe(move || drop(channel)));
}

/// # Safety
/// `request` valid for `nbytes`, `reply` writable for `reply_cap` bytes.
unsafe extern "C" fn nb_op_add300(
    request: *const c_char,
    nbytes: c_int,
    reply: *mut c_char,
    reply_cap: c_int,
    err: *mut NbError,
) -> c_int {
    let outcome = catch_unwind(|| {
        injected_panic(NbPanicPoint::NB_PANIC_SERVE);
        let (Ok(len), Ok(cap)) = (usize::try_from(nbytes), usize::try_from(reply_cap)) else {
            return Err(Error::Internal(
                "negative length given to the 'N' handler".into(),
            ));
        };
        if (request.is_null() && len > 0) || (reply.is_null() && cap > 0) {
            return Err(Error::Internal(
                "NULL buffer given to the 'N' handler".into(),
            ));
        }
        let request: &[u8] = if len == 0 {
            &[]
        } else {
            // SAFETY: non-NULL and valid for nbytes bytes per the contract.
            unsafe { std::slice::from_raw_parts(request.cast(), len) }
        };
        let reply: &mut [u8] = if cap == 0 {
            &mut []
        } else {
            // SAFETY: non-NULL and writable for reply_cap bytes per the contract.
            unsafe { std::slice::from_raw_parts_mut(reply.cast(), cap) }
        };
        Ok(demo_op::add300(request, reply))
    });
    match outcome {
        Ok(Ok(Ok(len))) => len as c_int,
        Ok(Ok(Err(bad))) => {
            fill(err, bad.sqlstate(), &bad.to_string(), "", "", "");
            -1
        }
        Ok(Err(error)) => {
            fill_error(err, &error);
            -1
        }
        Err(payload) => {
            fill_error(err, &panic_error(payload));
            -1
        }
    }
}

/// # Safety
/// `chan` must be NULL or from nb_connect_start and not closed; `info` must
/// be NULL or writable.
unsafe extern "C" fn nb_describe(chan: *const NbChannel, info: *mut NbChannelInfo) {
    // SAFETY: NULL or the caller's own NbChannelInfo, per the contract.
    let Some(info) = (unsafe { info.as_mut() }) else {
        return;
    };
    *info = NbChannelInfo {
        state: NbChannelState::NB_CHANNEL_BROKEN,
        serving_pid: 0,
        used_password: 0,
        in_flight: 0,
        requests: 0,
        replies: 0,
        bytes_sent: 0,
        bytes_received: 0,
    };
    // SAFETY: NULL or a live channel, per the contract.
    let Some(channel) = (unsafe { chan.cast::<Channel>().as_ref() }) else {
        return;
    };
    let Ok(snapshot) = catch_unwind(AssertUnwindSafe(|| channel.snapshot())) else {
        return;
    };
    info.state = match snapshot.state {
        ChannelState::Connecting => NbChannelState::NB_CHANNEL_CONNECTING,
        ChannelState::Streaming => NbChannelState::NB_CHANNEL_STREAMING,
        ChannelState::Draining => NbChannelState::NB_CHANNEL_DRAINING,
        ChannelState::Idle => NbChannelState::NB_CHANNEL_IDLE,
        ChannelState::Broken => NbChannelState::NB_CHANNEL_BROKEN,
    };
    info.serving_pid = snapshot.serving_pid;
    info.used_password = c_int::from(snapshot.used_password);
    info.in_flight = c_int::try_from(snapshot.in_flight).unwrap_or(c_int::MAX);
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    info.requests = count(snapshot.counters.requests);
    info.replies = count(snapshot.counters.replies);
    info.bytes_sent = count(snapshot.counters.bytes_sent);
    info.bytes_received = count(snapshot.counters.bytes_received);
}

/// Said instead of a connection string libpq cannot parse.
const NOT_SHOWN: &str = "(not shown: libpq cannot parse it)";

/// # Safety
/// `conninfo` must be NULL or NUL-terminated; `out` NULL or writable for
/// `cap` bytes.
unsafe extern "C" fn nb_mask_conninfo(
    conninfo: *const c_char,
    out: *mut c_char,
    cap: c_int,
) -> NbConninfoKind {
    let outcome = catch_unwind(|| {
        if conninfo.is_null() {
            return None;
        }
        // SAFETY: non-NULL and NUL-terminated per the contract.
        let conninfo = unsafe { CStr::from_ptr(conninfo) }.to_str().ok()?;
        redact::masked(conninfo)
    });
    let (text, kind) = match outcome.ok().flatten() {
        Some((text, true)) => (text, NbConninfoKind::NB_CONNINFO_HAS_PASSWORD),
        Some((text, false)) => (text, NbConninfoKind::NB_CONNINFO_NO_PASSWORD),
        None => (NOT_SHOWN.to_owned(), NbConninfoKind::NB_CONNINFO_INVALID),
    };
    // SAFETY: per this function's contract.
    unsafe { copy_out(out, cap, &text) };
    kind
}

/// Copy `text` into the caller's buffer `out` of `cap` bytes, if any.
///
/// # Safety
/// `out` must be NULL or writable for `cap` bytes.
unsafe fn copy_out(out: *mut c_char, cap: c_int, text: &str) {
    if let Ok(cap) = usize::try_from(cap)
        && cap > 0
        && !out.is_null()
    {
        // SAFETY: non-NULL and writable for cap bytes per the contract.
        let buffer = unsafe { std::slice::from_raw_parts_mut(out, cap) };
        copy_text(buffer, text);
    }
}

/// # Safety
/// `chan` must be NULL or from nb_connect_start and not closed; `out` NULL
/// or writable for `cap` bytes.
unsafe extern "C" fn nb_channel_conninfo(chan: *const NbChannel, out: *mut c_char, cap: c_int) {
    // SAFETY: NULL or a live channel, per the contract.
    let channel = unsafe { chan.cast::<Channel>().as_ref() };
    let text = channel
        .and_then(|c| {
            catch_unwind(AssertUnwindSafe(|| c.masked_conninfo()))
                .ok()
                .flatten()
        })
        .unwrap_or_else(|| NOT_SHOWN.to_owned());
    // SAFETY: per this function's contract.
    unsafe { copy_out(out, cap, &text) };
}
