//! The runtime of effc's ahead-of-time artifacts (`effc compile --emit lib`): what a
//! model's object calls besides its own code. effc-jit's build script compiles this crate
//! with effc-kernels into one static library whose symbols, but `effc_rt_*`, are made
//! local (`libeffc_rt.a`), shared by every model a program links. It exports:
//! - the micro-kernels, under the `effc_rt_*` names effc-kernels gives them
//!   (`effc_kernels::entry_points`);
//! - the thread team a context with `threads` > 1 runs its steps on.

use effc_kernels::{KernelFn, Team};

/// The kernels' crate, linked whole: its entry points are exported from it.
pub use effc_kernels;

/// A team of `threads` threads, the calling thread one of them; NULL for fewer than 2 or
/// more than 1024, or when the system cannot start the threads.
#[unsafe(no_mangle)]
pub extern "C" fn effc_rt_team_new(threads: u64) -> *mut Team {
    match usize::try_from(threads) {
        Ok(n @ 2..=1024) => Team::try_new(n).map_or(std::ptr::null_mut(), |team| Box::into_raw(Box::new(team))),
        _ => std::ptr::null_mut(),
    }
}

/// Runs `kernel` over `0..extent`, shared with the team; returns when all of it is done.
///
/// # Safety
/// `team` is from [`effc_rt_team_new`] and not freed; `kernel` is valid to call on
/// `arena` and `io` for every sub-range of `0..extent` (a model's step).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn effc_rt_team_run(
    team: *const Team,
    kernel: KernelFn,
    extent: u64,
    arena: *mut u8,
    io: *const *mut u8,
) {
    // SAFETY: the caller's contract.
    unsafe { (*team).run_step(kernel, extent, arena, io) }
}

/// Stops the team's threads and frees it (NULL is fine).
///
/// # Safety
/// `team` is NULL or from [`effc_rt_team_new`], and no step runs on it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn effc_rt_team_free(team: *mut Team) {
    if !team.is_null() {
        // SAFETY: a team made by effc_rt_team_new, freed once (the caller's contract).
        drop(unsafe { Box::from_raw(team) });
    }
}

/// The symbols this crate defines itself, for the archive's checks.
pub const TEAM_SYMBOLS: [&str; 3] = ["effc_rt_team_new", "effc_rt_team_run", "effc_rt_team_free"];

#[cfg(test)]
mod tests {
    use super::*;

    unsafe extern "C" fn square_items(arena: *mut u8, _io: *const *mut u8, lo: u64, hi: u64) {
        for i in lo..hi {
            // SAFETY: the test's arena holds one u64 per item.
            unsafe { *(arena as *mut u64).add(i as usize) = i * i };
        }
    }

    /// The C API runs a step over every item once, and refuses team sizes it cannot make.
    #[test]
    fn a_team_made_through_the_c_api_runs_every_item() {
        assert!(effc_rt_team_new(1).is_null() && effc_rt_team_new(5000).is_null());
        let team = effc_rt_team_new(3);
        let mut items = vec![0u64; 1000];
        // SAFETY: the team is live; the kernel writes items below the extent only.
        unsafe { effc_rt_team_run(team, square_items, 1000, items.as_mut_ptr() as *mut u8, std::ptr::null()) };
        assert!(items.iter().enumerate().all(|(i, &v)| v == (i * i) as u64));
        // SAFETY: made above, no step running.
        unsafe { effc_rt_team_free(team) };
    }
}
