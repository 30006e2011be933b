//! Frame encode/decode cost of a typical `Execute` and `Result` (shared::protocol, bincode
//! in a `PDK` frame), against serde_json of the same message as the naive baseline.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use paddock_shared::exec::{ExecStatus, ExecutionRequest, ExecutionResult, Truncation, Usage};
use paddock_shared::model::Language;
use paddock_shared::protocol::{
    DEFAULT_MAX_FRAME_LEN, FromWorker, Message, ToWorker, decode_frame, encode_frame,
};

fn execute() -> ToWorker {
    ToWorker::Execute(ExecutionRequest {
        execution_id: "0b6f3c1e-9d1a-4f2e-8a61-3c2d5e7f9a10".into(),
        namespace: "acme-data".into(),
        profile: "builder".into(),
        language: Language::Python,
        code: "from functions import hello\nresult = hello(name=input_data['name'])\n".repeat(8),
        input_json: r#"{"name":"World","items":[1,2,3,4,5,6,7,8]}"#.into(),
        timeout_ms: Some(30_000),
    })
}

fn result() -> FromWorker {
    FromWorker::Result(ExecutionResult {
        execution_id: "0b6f3c1e-9d1a-4f2e-8a61-3c2d5e7f9a10".into(),
        status: ExecStatus::Completed,
        result_json: Some(format!(
            "{{\"rows\":[{}]}}",
            vec!["{\"a\":1,\"b\":\"x\"}"; 64].join(",")
        )),
        stdout: "processing 64 rows\ndone\n".into(),
        stderr: String::new(),
        error: None,
        duration_us: 812,
        usage: Usage {
            cpu_ms: 3,
            peak_memory_bytes: 24 << 20,
        },
        calls: Vec::new(),
        truncated: Truncation::default(),
    })
}

fn bench_message<T: Message + Clone + PartialEq>(c: &mut Criterion, name: &str, msg: T) {
    let mut frame = BytesMut::new();
    encode_frame(&msg, &mut frame, DEFAULT_MAX_FRAME_LEN).expect("encode");
    let frame = frame.freeze();
    let json = serde_json::to_vec(&msg).expect("json");
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    group.bench_function("frame_encode", |b| {
        let mut buf = BytesMut::with_capacity(frame.len() * 2);
        b.iter(|| {
            buf.clear();
            encode_frame(black_box(&msg), &mut buf, DEFAULT_MAX_FRAME_LEN).expect("encode");
        });
    });
    group.bench_function("frame_decode", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(&frame[..]);
            let m: T = decode_frame(&mut buf, DEFAULT_MAX_FRAME_LEN)
                .expect("decode")
                .expect("whole frame");
            black_box(m)
        });
    });
    group.bench_function("json_encode_baseline", |b| {
        let mut buf = Vec::with_capacity(json.len() * 2);
        b.iter(|| {
            buf.clear();
            serde_json::to_writer(&mut buf, black_box(&msg)).expect("json");
        });
    });
    group.bench_function("json_decode_baseline", |b| {
        b.iter(|| black_box(serde_json::from_slice::<T>(black_box(&json)).expect("json")));
    });
    group.finish();
    eprintln!(
        "{name}: frame {} bytes, json {} bytes",
        frame.len(),
        json.len()
    );
}

fn codec(c: &mut Criterion) {
    bench_message(c, "execute", execute());
    bench_message(c, "result", result());
}

criterion_group!(benches, codec);
criterion_main!(benches);
