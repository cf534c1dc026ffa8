//! The thread team: every item of a step runs exactly once, before the step returns,
//! however many threads share it and however many callers share the team. (Integration
//! tests, so the crate's kernels are not compiled a second time for a unit-test build.)

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use effc_kernels::Team;

/// Counts each item of `lo..hi` in the `AtomicU32`s at `arena` (one per item), with a
/// pause in the middle item of every range so that a chunk is still running when the
/// others run out of their own.
unsafe extern "C" fn count_items(arena: *mut u8, _io: *const *mut u8, lo: u64, hi: u64) {
    let counts = arena as *const AtomicU32;
    for i in lo..hi {
        if i == (lo + hi) / 2 && i % 3 == 0 {
            std::thread::sleep(Duration::from_micros(20));
        }
        // SAFETY: the test's arena holds an AtomicU32 for every item of the step.
        unsafe { (*counts.add(i as usize)).fetch_add(1, Ordering::Relaxed) };
    }
}

/// Every item of every step is computed exactly once and before `run_step` returns,
/// for teams larger than this machine's cores too (threads descheduled mid-step), over
/// steps of 2 items (fewer than some teams' threads) up to thousands.
#[test]
fn every_item_runs_exactly_once_before_the_step_returns() {
    for threads in [2, 3, 5] {
        let team = Team::new(threads);
        for (round, extent) in [2usize, 3, 7, 64, 1000, 4097].iter().cycle().take(60).enumerate() {
            let counts: Vec<AtomicU32> = (0..*extent).map(|_| Default::default()).collect();
            // SAFETY: count_items touches only the counts of items below the extent.
            unsafe { team.run_step(count_items, *extent as u64, counts.as_ptr() as *mut u8, std::ptr::null()) };
            for (i, c) in counts.iter().enumerate() {
                let n = c.load(Ordering::Relaxed);
                assert_eq!(n, 1, "{threads} threads, round {round}: item {i} of {extent} ran {n} times");
            }
        }
    }
}

/// Two callers sharing one team at once: one of them runs its steps alone, and both
/// get every item once.
#[test]
fn concurrent_callers_share_a_team_safely() {
    let team = Team::new(2);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..200 {
                    let counts: Vec<AtomicU32> = (0..50).map(|_| Default::default()).collect();
                    // SAFETY: as above.
                    unsafe { team.run_step(count_items, 50, counts.as_ptr() as *mut u8, std::ptr::null()) };
                    assert!(counts.iter().all(|c| c.load(Ordering::Relaxed) == 1));
                }
            });
        }
    });
}
