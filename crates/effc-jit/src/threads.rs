//! Intra-op parallelism: a persistent team of worker threads that split every kernel's
//! parallel range with the calling thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// A reusable barrier that spins briefly (kernels are short), then backs off to sleeping so
/// idle workers do not burn a core between runs.
struct SpinBarrier {
    parties: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
}

impl SpinBarrier {
    fn wait(&self) {
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.parties {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
            return;
        }
        let mut spins = 0u32;
        while self.generation.load(Ordering::Acquire) == generation {
            spins += 1;
            if spins < 1 << 14 {
                std::hint::spin_loop();
            } else if spins < (1 << 14) + 256 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }
}

/// The job all threads execute between two barrier waits.
struct Shared {
    barrier: SpinBarrier,
    kernel: AtomicUsize,
    extent: AtomicUsize,
    arena: AtomicUsize,
    io: AtomicUsize,
    stop: AtomicBool,
    threads: usize,
}

impl Shared {
    /// Runs thread `index`'s share of the current job.
    fn work(&self, index: usize) {
        let extent = self.extent.load(Ordering::Relaxed);
        let lo = extent * index / self.threads;
        let hi = extent * (index + 1) / self.threads;
        if lo < hi {
            let k = self.kernel.load(Ordering::Relaxed);
            // SAFETY: `kernel` holds a KernelFn published by `Team::run_step` before the
            // start barrier, and the compiled model that owns its code outlives the step
            // (run_step waits at the end barrier before returning). The slices `lo..hi` of
            // different threads are disjoint parts of the kernel's parallel range, which
            // kernels write without overlap.
            unsafe {
                let f: crate::module::KernelFn = std::mem::transmute::<usize, crate::module::KernelFn>(k);
                f(
                    self.arena.load(Ordering::Relaxed) as *mut u8,
                    self.io.load(Ordering::Relaxed) as *const *mut u8,
                    lo as u64,
                    hi as u64,
                );
            }
        }
    }
}

/// `threads - 1` workers plus the calling thread.
pub struct Team {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl Team {
    pub fn new(threads: usize) -> Self {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            barrier: SpinBarrier { parties: threads, arrived: AtomicUsize::new(0), generation: AtomicUsize::new(0) },
            kernel: AtomicUsize::new(0),
            extent: AtomicUsize::new(0),
            arena: AtomicUsize::new(0),
            io: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            threads,
        });
        let workers = (1..threads)
            .map(|index| {
                let s = shared.clone();
                std::thread::spawn(move || {
                    loop {
                        s.barrier.wait();
                        if s.stop.load(Ordering::Relaxed) {
                            return;
                        }
                        s.work(index);
                        s.barrier.wait();
                    }
                })
            })
            .collect();
        Team { shared, workers }
    }

    pub fn threads(&self) -> usize {
        self.shared.threads
    }

    /// Runs one kernel over `0..extent`, split across the team; returns when all are done.
    ///
    /// # Safety
    /// `kernel` must be valid to call on `arena`/`io` for every sub-range of `0..extent`.
    pub(crate) unsafe fn run_step(
        &self,
        kernel: crate::module::KernelFn,
        extent: u64,
        arena: *mut u8,
        io: *const *mut u8,
    ) {
        let s = &self.shared;
        if s.threads == 1 || extent < 2 {
            // SAFETY: forwarded from the caller.
            unsafe { kernel(arena, io, 0, extent) };
            return;
        }
        s.kernel.store(kernel as usize, Ordering::Relaxed);
        s.extent.store(extent as usize, Ordering::Relaxed);
        s.arena.store(arena as usize, Ordering::Relaxed);
        s.io.store(io as usize, Ordering::Relaxed);
        s.barrier.wait();
        s.work(0);
        s.barrier.wait();
    }
}

impl Drop for Team {
    fn drop(&mut self) {
        if self.workers.is_empty() {
            return;
        }
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.barrier.wait();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}
