//! Intra-op parallelism: a persistent team of worker threads that share every kernel's
//! parallel range with the calling thread.
//!
//! The range is split into one even share per thread, which each thread takes in a few
//! chunks from the front; a thread whose share is done takes chunks from the backs of the
//! others' shares. So on a core shared with another process a thread that is descheduled holds
//! up only the chunk it has claimed, not the whole step (with fixed shares, every step
//! waited for the slowest thread's whole share), while on a quiet machine each thread
//! computes its own share, the same rows every step. The caller starts on its share at
//! once and never waits for workers to arrive: a worker that wakes late finds the
//! chunks taken. Which thread computes an item never changes its value, so results are
//! bit-identical for every team size.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Signature of every kernel the JIT emits: `(arena, io, lo, hi)`. `arena` is the run's
/// scratch memory, `io` points at the table of caller input/output buffers, and the
/// kernel handles the slice `lo..hi` of its outermost (parallel) loop.
pub type KernelFn = unsafe extern "C" fn(arena: *mut u8, io: *const *mut u8, lo: u64, hi: u64);

/// Chunks per thread's share: enough that the others can take over a stalled thread's
/// rest, few enough that most kernels run each share in a handful of calls.
const CHUNKS_PER_SHARE: usize = 4;

/// One published step: what to run and the shares still to claim. Steps alternate
/// between two slots, so that a worker still leaving step `j` (finding nothing left to
/// claim) never reads the slot the caller is filling for step `j + 1`; the caller waits
/// for the slot's `active` count to drop to zero before reusing it for step `j + 2`.
struct Slot {
    kernel: AtomicUsize,
    extent: AtomicUsize,
    arena: AtomicUsize,
    io: AtomicUsize,
    /// The items of each thread's share that no thread has claimed yet.
    unclaimed: Vec<Unclaimed>,
    /// Items computed so far; the step is over at `extent`.
    done: Line,
    /// Workers inside the slot (claiming or computing).
    active: Line,
}

impl Slot {
    fn new(threads: usize) -> Slot {
        Slot {
            kernel: AtomicUsize::new(0),
            extent: AtomicUsize::new(0),
            arena: AtomicUsize::new(0),
            io: AtomicUsize::new(0),
            unclaimed: (0..threads).map(|_| Unclaimed::default()).collect(),
            done: Line::default(),
            active: Line::default(),
        }
    }

    /// Thread `i`'s share of `0..extent`.
    fn share(&self, extent: usize, i: usize) -> (usize, usize) {
        let threads = self.unclaimed.len();
        (extent * i / threads, extent * (i + 1) / threads)
    }

    /// Claims and computes chunks: of thread `index`'s own share from its front, then of
    /// the others' shares from their backs, so that a helper takes the items their owner
    /// would have reached last (and the owner keeps the front, the rows it computed in
    /// the last step, whose inputs its own cache holds).
    fn work(&self, index: usize) {
        let extent = self.extent.load(Ordering::Relaxed);
        let threads = self.unclaimed.len();
        for owner in (0..threads).map(|o| (index + o) % threads) {
            let (start, end) = self.share(extent, owner);
            let chunk = (end - start).div_ceil(CHUNKS_PER_SHARE).max(1);
            while let Some((lo, hi)) = self.unclaimed[owner].claim(chunk, owner == index) {
                let k = self.kernel.load(Ordering::Relaxed);
                // SAFETY: `kernel` holds a KernelFn published by `Team::run_step` (with the
                // step's id, which this thread acquired), and the compiled model that owns
                // its code outlives the step: run_step returns only when every item is
                // done. Each item is claimed by exactly one thread (a claim moves one end of
                // the unclaimed range past it), and kernels write the items of disjoint
                // ranges without overlap.
                unsafe {
                    let f: KernelFn = std::mem::transmute::<usize, KernelFn>(k);
                    f(
                        self.arena.load(Ordering::Relaxed) as *mut u8,
                        self.io.load(Ordering::Relaxed) as *const *mut u8,
                        lo as u64,
                        hi as u64,
                    );
                }
                // Release: the caller that sees `done` reach `extent` sees the outputs.
                self.done.fetch_add(hi - lo, Ordering::Release);
            }
        }
    }
}

/// The unclaimed items `front..back` of one share, both ends in one word so that the
/// owner (taking from the front) and helpers (from the back) claim with one
/// compare-and-swap each, on a cache line of its own (each thread claims from its own
/// share; on one line they would move it between cores at every claim).
#[repr(align(64))]
#[derive(Default)]
struct Unclaimed(AtomicU64);

impl Unclaimed {
    fn word(front: usize, back: usize) -> u64 {
        ((back as u64) << 32) | front as u64
    }

    fn set(&self, front: usize, back: usize) {
        self.0.store(Self::word(front, back), Ordering::Relaxed);
    }

    /// Up to `chunk` items from the front (the owner) or the back (a helper), if any are
    /// left.
    fn claim(&self, chunk: usize, front_end: bool) -> Option<(usize, usize)> {
        let mut word = self.0.load(Ordering::Relaxed);
        loop {
            let (front, back) = ((word & u64::from(u32::MAX)) as usize, (word >> 32) as usize);
            if front >= back {
                return None;
            }
            let take = chunk.min(back - front);
            let (range, left) = if front_end {
                ((front, front + take), Self::word(front + take, back))
            } else {
                ((back - take, back), Self::word(front, back - take))
            };
            match self.0.compare_exchange_weak(word, left, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Some(range),
                Err(now) => word = now,
            }
        }
    }
}

/// A counter on a cache line of its own (the caller polls `done` while the others add
/// to it).
#[repr(align(64))]
#[derive(Default)]
struct Line(AtomicUsize);

impl std::ops::Deref for Line {
    type Target = AtomicUsize;
    fn deref(&self) -> &AtomicUsize {
        &self.0
    }
}

/// How a thread waits: spinning first (steps are microseconds apart), then yielding
/// (the thread it waits for may be waiting for this core), then, where allowed, sleeping.
#[derive(Default)]
struct Backoff {
    spins: u32,
}

impl Backoff {
    fn snooze(&mut self, may_sleep: bool) {
        self.spins = self.spins.saturating_add(1);
        if self.spins < 1 << 14 {
            std::hint::spin_loop();
        } else if self.spins < (1 << 14) + 256 || !may_sleep {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}

/// What the team shares: the two step slots and the id of the current step.
struct Shared {
    slots: [Slot; 2],
    /// The id of the last published step (0: none yet); its slot is `id % 2`.
    step: AtomicUsize,
    stop: AtomicBool,
    threads: usize,
    /// Whether a caller is running a step (a second caller runs its steps alone).
    busy: AtomicBool,
}

impl Shared {
    /// Waits for a step after `seen` (or for the team to stop); idle workers end up
    /// sleeping, so they do not burn a core between runs.
    fn wait_for_step(&self, seen: usize) -> usize {
        let mut backoff = Backoff::default();
        loop {
            let id = self.step.load(Ordering::SeqCst);
            if id != seen || self.stop.load(Ordering::Relaxed) {
                return id;
            }
            backoff.snooze(true);
        }
    }

    /// A worker's life: join each step it sees while the step is still current.
    fn worker(&self, index: usize) {
        let mut seen = 0;
        loop {
            seen = self.wait_for_step(seen);
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            let slot = &self.slots[seen % 2];
            // SeqCst on both sides: either the caller, about to refill this slot for step
            // `seen + 2`, sees this count, or this thread sees that the step moved on
            // (the caller published `seen + 1` before it looked).
            slot.active.fetch_add(1, Ordering::SeqCst);
            if self.step.load(Ordering::SeqCst) == seen {
                slot.work(index);
            }
            slot.active.fetch_sub(1, Ordering::Release);
        }
    }
}

/// `threads - 1` workers plus the calling thread.
pub struct Team {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl Team {
    /// A team of `threads` (at least 1); panics if the system cannot start a thread.
    pub fn new(threads: usize) -> Self {
        Self::try_new(threads).unwrap_or_else(|e| panic!("cannot start a thread: {e}"))
    }

    /// A team of `threads` (at least 1), or why the system could not start its threads
    /// (those started are stopped again).
    pub fn try_new(threads: usize) -> std::io::Result<Self> {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            slots: [Slot::new(threads), Slot::new(threads)],
            step: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            threads,
            busy: AtomicBool::new(false),
        });
        let mut team = Team { shared, workers: Vec::with_capacity(threads - 1) };
        for index in 1..threads {
            let s = team.shared.clone();
            // On failure, dropping the team stops the workers started so far.
            team.workers.push(std::thread::Builder::new().spawn(move || s.worker(index))?);
        }
        Ok(team)
    }

    pub fn threads(&self) -> usize {
        self.shared.threads
    }

    /// Runs one kernel over `0..extent`, shared with the team; returns when all of it is
    /// done. A caller that finds the team running another caller's step runs this one
    /// alone.
    ///
    /// # Safety
    /// `kernel` must be valid to call on `arena`/`io` for every sub-range of `0..extent`.
    pub unsafe fn run_step(&self, kernel: KernelFn, extent: u64, arena: *mut u8, io: *const *mut u8) {
        let s = &self.shared;
        // (Items are counted in 32 bits: a larger range, which no model has, runs alone.)
        let alone = s.threads == 1
            || !(2..=u64::from(u32::MAX)).contains(&extent)
            || s.busy.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_err();
        if alone {
            // SAFETY: forwarded from the caller.
            unsafe { kernel(arena, io, 0, extent) };
            return;
        }
        let id = s.step.load(Ordering::Relaxed) + 1;
        let slot = &s.slots[id % 2];
        // Workers still leaving step id − 2 only find its chunks taken; wait them out.
        let mut backoff = Backoff::default();
        while slot.active.load(Ordering::SeqCst) != 0 {
            backoff.snooze(false);
        }
        let extent = extent as usize;
        slot.kernel.store(kernel as usize, Ordering::Relaxed);
        slot.extent.store(extent, Ordering::Relaxed);
        slot.arena.store(arena as usize, Ordering::Relaxed);
        slot.io.store(io as usize, Ordering::Relaxed);
        for (owner, unclaimed) in slot.unclaimed.iter().enumerate() {
            let (front, back) = slot.share(extent, owner);
            unclaimed.set(front, back);
        }
        slot.done.store(0, Ordering::Relaxed);
        // Publishes the slot (SeqCst: see `Shared::worker`).
        s.step.store(id, Ordering::SeqCst);
        slot.work(0);
        // Acquire: the items other threads computed are visible once counted.
        let mut backoff = Backoff::default();
        while slot.done.load(Ordering::Acquire) < extent {
            backoff.snooze(false);
        }
        s.busy.store(false, Ordering::Release);
    }
}

impl Drop for Team {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}
