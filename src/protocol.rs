//! Message framing: what travels inside each CopyData message.
//!
//! A message is a one-byte op code followed by the op's payload.  Every
//! request gets exactly one non-empty reply (libpq cannot carry an empty
//! CopyData message), and no message may exceed the receiver's size limit
//! (below).  The primary serves two built-in ops, and those of the modules
//! loaded into its serving backends:
//!
//! | op  | request                     | reply                        |
//! |-----|-----------------------------|------------------------------|
//! | `N` | `N`, then k >= 1 int32 (BE) | k int32 (BE), each + 300     |
//! | `E` | anything starting with `E`  | the request, byte for byte   |
//!
//! `N` is the seed's demonstration op: its encoding, decoding and answer
//! are in [`demo_op`](crate::demo_op).  Pure: no I/O, no libpq.

use crate::boundary;

/// Op code of the echo request.
pub const OP_ECHO: u8 = b'E';

/// Largest reply a channel accepts unless told otherwise (the default of
/// the GUC `netbuf.max_message_size`, which limits requests on the primary).
/// From c_shim/boundary.h, as the GUC's.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = boundary::NB_MAX_MESSAGE_SIZE_DEFAULT as usize;
/// Bounds of a message size limit: an op code plus a few bytes, up to the
/// largest message the server's protocol layer reads (PQ_LARGE_MESSAGE_LIMIT).
/// From c_shim/boundary.h, as the GUC's bounds.
pub const MAX_MESSAGE_SIZE_RANGE: std::ops::RangeInclusive<usize> =
    boundary::NB_MAX_MESSAGE_SIZE_MIN as usize..=boundary::NB_MAX_MESSAGE_SIZE_MAX as usize;
