//! The client's reply decoder on arbitrary bytes: whole int32 values or
//! nothing, and the exact inverse of the request encoder's payload.

#![no_main]

use libfuzzer_sys::fuzz_target;
use netbuf::demo_op::{OP_ADD300, decode_int32s, encode_add300};

fuzz_target!(|reply: &[u8]| {
    match decode_int32s(reply) {
        Some(values) => {
            assert!(reply.len().is_multiple_of(4));
            assert_eq!(values.len(), reply.len() / 4);
            let request = encode_add300(&values);
            assert_eq!(request[0], OP_ADD300);
            assert_eq!(&request[1..], reply);
        }
        None => assert!(!reply.len().is_multiple_of(4)),
    }
});
