//! The primary's 'N' handler on arbitrary request bytes, with a reply buffer
//! of the advertised size, one byte short, and a few bytes to spare.

#![no_main]

use libfuzzer_sys::fuzz_target;
use netbuf::demo_op::{
    BadRequest, OP_ADD300, add300, add300_reply_len, decode_int32s, encode_add300,
};

/// Fill byte of the reply buffer: any byte add300 did not write keeps it.
const FILL: u8 = 0xa5;

/// The refusal the handler owes for this request and reply size, if any;
/// the checks come in the order add300 makes them.
fn expected_error(request: &[u8], have: usize) -> Option<BadRequest> {
    let len = request.len();
    match request {
        [] => Some(BadRequest::NoValues),
        [op, ..] if *op != OP_ADD300 => Some(BadRequest::WrongOp(*op)),
        [_] => Some(BadRequest::NoValues),
        _ if !(len - 1).is_multiple_of(4) => Some(BadRequest::PartialValue(len)),
        _ if have < len - 1 => Some(BadRequest::ReplyTooSmall {
            have,
            need: len - 1,
        }),
        [_, payload @ ..] => payload
            .chunks_exact(4)
            .map(|c| i32::from_be_bytes(c.try_into().unwrap()))
            .find(|&v| v > i32::MAX - 300)
            .map(BadRequest::OutOfRange),
    }
}

fn check(request: &[u8], have: usize) {
    let mut reply = vec![FILL; have];
    let result = add300(request, &mut reply);
    let expected = expected_error(request, have);
    match result {
        Ok(n) => {
            assert_eq!(expected, None, "accepted a request it should refuse");
            let len = request.len();
            assert_eq!(n, len - 1);
            assert_eq!(request[0], OP_ADD300);
            assert!(len >= 5 && (len - 1).is_multiple_of(4));
            let values = decode_int32s(&request[1..]).unwrap();
            let answers = decode_int32s(&reply[..n]).unwrap();
            assert_eq!(values.len(), answers.len());
            for (v, a) in values.iter().zip(&answers) {
                assert_eq!(i64::from(*a), i64::from(*v) + 300);
            }
            assert_eq!(encode_add300(&values), request);
            assert!(
                reply[n..].iter().all(|&b| b == FILL),
                "wrote past the reply"
            );
        }
        Err(e) => {
            assert_eq!(Some(e), expected);
            assert!(
                reply.iter().all(|&b| b == FILL),
                "refused but wrote the reply"
            );
        }
    }
}

fuzz_target!(|request: &[u8]| {
    let need = add300_reply_len(request.len());
    check(request, need);
    check(request, need.saturating_sub(1));
    check(request, need + 3);
});
