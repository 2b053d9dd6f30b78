//! The seed's demonstration op, `N`: k int32 in, each + 300 out.
//!
//! Apart from the framing ([`protocol`](crate::protocol)) because it is an
//! example of an op, not part of how messages travel: a client encodes a
//! request with [`encode_add300`] and reads the reply with
//! [`decode_int32s`]; the primary's built-in handler
//! (c_shim/primary/handlers.c) answers with [`add300`] through the C ABI.
//! Values travel in network byte order.
//!
//! Pure, as the framing: no I/O, no libpq, so the fuzz targets in fuzz/
//! and the unit tests reach all of it.

/// Op code of the seed's request: k int32 in, each + 300 out.
pub const OP_ADD300: u8 = b'N';

/// Why an 'N' request was refused; the text goes to the client verbatim.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadRequest {
    #[error(
        "netbuf: malformed 'N' message: it carries no value (expected 'N' followed by at least one int32)"
    )]
    NoValues,
    #[error(
        "netbuf: malformed 'N' message: length {0} is not 1 + 4k (the op code followed by whole int32 values)"
    )]
    PartialValue(usize),
    #[error("netbuf: op code 0x{0:02x} given to the 'N' handler")]
    WrongOp(u8),
    #[error("netbuf: value {0} + 300 is out of range for int32")]
    OutOfRange(i32),
    #[error("netbuf: reply buffer of {have} bytes is too small for {need}")]
    ReplyTooSmall { have: usize, need: usize },
}

impl BadRequest {
    /// SQLSTATE the primary reports for it.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            BadRequest::OutOfRange(_) => "22003", // numeric_value_out_of_range
            BadRequest::ReplyTooSmall { .. } => "XX000", // internal_error
            _ => "08P01",                         // protocol_violation
        }
    }
}

/// Build an 'N' request from its values.
pub fn encode_add300(values: &[i32]) -> Vec<u8> {
    let mut message = Vec::with_capacity(1 + 4 * values.len());
    message.push(OP_ADD300);
    for value in values {
        message.extend_from_slice(&value.to_be_bytes());
    }
    message
}

/// Read a reply made of whole int32 values (network byte order).
pub fn decode_int32s(reply: &[u8]) -> Option<Vec<i32>> {
    if !reply.len().is_multiple_of(4) {
        return None;
    }
    Some(
        reply
            .chunks_exact(4)
            .map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

/// The reply length an 'N' request of this length needs.
pub fn add300_reply_len(request_len: usize) -> usize {
    request_len.saturating_sub(1)
}

/// Answer an 'N' request into `reply`; returns the reply's length.
///
/// Checks everything before writing anything, so a refused request leaves
/// `reply` as it was.
pub fn add300(request: &[u8], reply: &mut [u8]) -> Result<usize, BadRequest> {
    let (&op, payload) = request.split_first().ok_or(BadRequest::NoValues)?;
    if op != OP_ADD300 {
        return Err(BadRequest::WrongOp(op));
    }
    if payload.is_empty() {
        return Err(BadRequest::NoValues);
    }
    if !payload.len().is_multiple_of(4) {
        return Err(BadRequest::PartialValue(request.len()));
    }
    if reply.len() < payload.len() {
        return Err(BadRequest::ReplyTooSmall {
            have: reply.len(),
            need: payload.len(),
        });
    }
    // Decoded in place, twice, rather than into a Vec: on the primary an
    // allocation failure would abort the backend, and with it the server.
    let values = || {
        payload
            .chunks_exact(4)
            .map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    };
    if let Some(bad) = values().find(|v| v.checked_add(300).is_none()) {
        return Err(BadRequest::OutOfRange(bad));
    }
    for (slot, value) in reply.chunks_exact_mut(4).zip(values()) {
        slot.copy_from_slice(&(value + 300).to_be_bytes());
    }
    Ok(payload.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(request: &[u8]) -> Result<Vec<i32>, BadRequest> {
        let mut reply = vec![0u8; add300_reply_len(request.len())];
        let n = add300(request, &mut reply)?;
        Ok(decode_int32s(&reply[..n]).unwrap())
    }

    #[test]
    fn seed_example() {
        let request = encode_add300(&[100, 200, 300]);
        assert_eq!(request.len(), 13);
        let mut reply = [0u8; 12];
        assert_eq!(add300(&request, &mut reply), Ok(12));
        assert_eq!(reply, [0, 0, 1, 144, 0, 0, 1, 244, 0, 0, 2, 88]);
        assert_eq!(
            answer(&encode_add300(&[1, 2, 3, 4])),
            Ok(vec![301, 302, 303, 304])
        );
        assert_eq!(
            answer(&encode_add300(&[-300, i32::MIN])),
            Ok(vec![0, i32::MIN + 300])
        );
    }

    #[test]
    fn refuses_malformed() {
        assert_eq!(answer(b"N"), Err(BadRequest::NoValues));
        assert_eq!(answer(b""), Err(BadRequest::NoValues));
        assert_eq!(answer(b"N\0\0\0\x01\0"), Err(BadRequest::PartialValue(6)));
        assert_eq!(answer(b"E\0\0\0\x01"), Err(BadRequest::WrongOp(b'E')));
        assert_eq!(
            answer(&encode_add300(&[1, i32::MAX])),
            Err(BadRequest::OutOfRange(i32::MAX))
        );
        let mut small = [0u8; 3];
        assert!(matches!(
            add300(&encode_add300(&[1]), &mut small),
            Err(BadRequest::ReplyTooSmall { .. })
        ));
        assert!(
            BadRequest::PartialValue(6)
                .to_string()
                .contains("length 6 is not 1 + 4k")
        );
    }
}
