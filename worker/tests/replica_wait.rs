//! Read-your-writes: `Replica::wait_for` returns as soon as the wanted sequence is
//! applied, and times out with `STATE_NOT_READY` otherwise.

mod replica_support;

use std::sync::Arc;
use std::time::Duration;

use paddock_shared::ErrorCode;
use paddock_worker::replica::{NotReady, Replica};
use replica_support::history;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_returns_as_soon_as_a_spawned_applier_reaches_the_seq() {
    let dir = tempfile::tempdir().unwrap();
    let replica = Arc::new(Replica::open(dir.path()).unwrap());
    let (go_on, resume) = std::sync::mpsc::channel::<()>();
    let applier = {
        let replica = replica.clone();
        tokio::task::spawn_blocking(move || {
            for chunk in history(1, 50).chunks(10) {
                replica.apply_batch(chunk).unwrap();
            }
            // Hold the rest back until the waiter has seen 50.
            resume.recv().unwrap();
            replica.apply_batch(&history(51, 100)).unwrap();
        })
    };
    // The applier is parked after 50: the wait can only succeed because 50 was applied.
    replica.wait_for(50, Duration::from_secs(30)).await.unwrap();
    assert!(replica.applied_seq() >= 50);
    assert!(replica.applied_seq() < 51, "the applier is still held back");
    let waiter = {
        let replica = replica.clone();
        tokio::spawn(async move { replica.wait_for(100, Duration::from_secs(30)).await })
    };
    go_on.send(()).unwrap();
    waiter.await.unwrap().unwrap();
    assert_eq!(replica.applied_seq(), 100);
    applier.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn wait_for_times_out_with_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path()).unwrap();
    replica.apply_batch(&history(1, 3)).unwrap();
    let started = tokio::time::Instant::now();
    let err = replica
        .wait_for(5, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        NotReady {
            wanted: 5,
            applied: 3,
            waited: Duration::from_secs(2)
        }
    );
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert_eq!(err.code(), ErrorCode::StateNotReady);
    assert_eq!(err.code().as_str(), "STATE_NOT_READY");
    assert_eq!(
        err.to_string(),
        "state sequence 5 not applied after 2s (replica at 3); retry shortly"
    );
}

#[tokio::test(start_paused = true)]
async fn an_applied_seq_needs_no_wait_even_with_a_zero_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path()).unwrap();
    replica.wait_for(0, Duration::ZERO).await.unwrap();
    replica.apply_batch(&history(1, 3)).unwrap();
    replica.wait_for(3, Duration::ZERO).await.unwrap();
    replica.wait_for(2, Duration::ZERO).await.unwrap();
    assert!(replica.wait_for(4, Duration::ZERO).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn a_subscriber_sees_each_new_applied_seq() {
    let dir = tempfile::tempdir().unwrap();
    let replica = Replica::open(dir.path()).unwrap();
    let mut rx = replica.subscribe();
    assert_eq!(*rx.borrow_and_update(), 0);
    replica.apply_batch(&history(1, 4)).unwrap();
    rx.changed().await.unwrap();
    assert_eq!(*rx.borrow_and_update(), 4);
    // Duplicates change nothing, so no wake-up.
    replica.apply_batch(&history(1, 4)).unwrap();
    assert!(!rx.has_changed().unwrap());
}
