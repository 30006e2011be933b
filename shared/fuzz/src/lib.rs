//! The fuzzed property of the wire-protocol decoder, shared by the libFuzzer target and
//! a stable-toolchain test: no input panics, feeding the bytes piecewise decodes the same
//! messages as feeding them at once, and every decoded message survives a re-encode.

use bytes::BytesMut;
use paddock_shared::protocol::{FromWorker, Message, ToWorker, decode_frame, encode_frame};

/// Frame cap used while fuzzing: small, so oversized headers are found quickly.
pub const FUZZ_CAP: usize = 64 * 1024;

/// Checks the decoder properties on `data`. The first byte chooses the chunk size of
/// the piecewise feed; the rest is the byte stream. Panics when a property breaks.
pub fn check(data: &[u8]) {
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 64) + 1;
    check_as::<ToWorker>(stream, chunk);
    check_as::<FromWorker>(stream, chunk);
}

/// Messages decoded until the end of input or the first error, and whether it ended
/// with an error.
fn decode_all<T: Message + PartialEq>(stream: &[u8], chunk: usize) -> (Vec<T>, bool) {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match decode_frame::<T>(&mut buf, FUZZ_CAP) {
                Ok(Some(m)) => out.push(m),
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

fn check_as<T: Message + PartialEq>(stream: &[u8], chunk: usize) {
    let (whole, whole_err) = decode_all::<T>(stream, stream.len().max(1));
    let (piecewise, piece_err) = decode_all::<T>(stream, chunk);
    assert!(
        whole == piecewise,
        "piecewise decoding differs from whole decoding"
    );
    assert_eq!(whole_err, piece_err, "piecewise decoding errs differently");
    for msg in whole {
        let mut buf = BytesMut::new();
        // A decoded message may still be over the cap when re-encoded only if the
        // encoding is not canonical; then there is nothing to compare.
        if encode_frame(&msg, &mut buf, FUZZ_CAP).is_err() {
            continue;
        }
        let again = decode_frame::<T>(&mut buf, FUZZ_CAP).expect("re-encoded frame decodes");
        assert!(again.as_ref() == Some(&msg), "re-encoded message differs");
        assert!(buf.is_empty(), "re-encoded frame left bytes behind");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paddock_shared::exec::ExecutionRequest;
    use paddock_shared::model::Language;
    use paddock_shared::protocol::Hello;

    fn seeds() -> Vec<Vec<u8>> {
        let msgs = [
            ToWorker::Hello(Hello {
                version: 1,
                peer_id: "edge".into(),
            }),
            ToWorker::Execute(ExecutionRequest {
                execution_id: "e1".into(),
                namespace: "ns".into(),
                profile: "free".into(),
                language: Language::Python,
                code: "result = 1 + 1".into(),
                input_json: "{}".into(),
                timeout_ms: Some(5),
            }),
            ToWorker::Cancel {
                execution_id: "e1".into(),
            },
            ToWorker::StatsRequest,
            ToWorker::Ping { nonce: 1 },
        ];
        let mut all = BytesMut::new();
        let mut seeds = Vec::new();
        for m in &msgs {
            let mut one = BytesMut::new();
            encode_frame(m, &mut one, FUZZ_CAP).expect("encode");
            encode_frame(m, &mut all, FUZZ_CAP).expect("encode");
            seeds.push(one.to_vec());
        }
        seeds.push(all.to_vec());
        seeds
    }

    /// A stable-toolchain stand-in for the fuzzer: deterministic mutations of valid
    /// frames (bit flips, byte overwrites, truncation, duplication).
    #[test]
    fn mutated_frames_keep_the_properties() {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for seed in seeds() {
            for _ in 0..4000 {
                let mut data = seed.clone();
                for _ in 0..(next() % 4 + 1) {
                    let i = (next() as usize) % data.len();
                    match next() % 4 {
                        0 => data[i] ^= 1 << (next() % 8),
                        1 => data[i] = next() as u8,
                        2 => data.truncate(i),
                        _ => data.extend_from_within(..i),
                    }
                    if data.is_empty() {
                        break;
                    }
                }
                let mut input = vec![next() as u8];
                input.extend_from_slice(&data);
                check(&input);
            }
        }
    }
}
