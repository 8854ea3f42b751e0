//! Fuzz target of the Phoenix frames a socket reads: text frames in both
//! serializer versions and binary (user broadcast) frames. Nothing may
//! panic, and a frame that decodes encodes back to itself.

use proptest::prelude::*;
use supa_core::fuzz::{for_a_while, near};
use supa_realtime::protocol::{Frame, Vsn};

#[test]
fn fuzz_phoenix_frames() {
    let text = near(
        &[
            "[",
            "]",
            "{",
            "}",
            "\"1\"",
            "null",
            ",",
            "\"realtime:room\"",
            "\"phx_join\"",
            "\"broadcast\"",
            "\"heartbeat\"",
            "\"phoenix\"",
            "{\"config\":{}}",
            "\"topic\":",
            "\"event\":",
            "\"payload\":",
            "\"ref\":",
            "\"join_ref\":",
            "1",
            "\"\\u0000\"",
        ],
        "[\\[\\]{}\",:a-z0-9 ]{0,8}",
    );
    for_a_while("phoenix text frames", text, |text| {
        for vsn in [Vsn::V1, Vsn::V2] {
            if let Ok(frame) = Frame::decode(&text, vsn) {
                let again = Frame::decode(&frame.encode(vsn), vsn);
                prop_assert_eq!(again.as_ref(), Ok(&frame), "{}", text);
            }
        }
        Ok(())
    });
    for_a_while(
        "phoenix binary frames",
        prop::collection::vec(any::<u8>(), 0..64),
        |bytes| {
            let _ = Frame::decode_binary(&bytes);
            Ok(())
        },
    );
}
