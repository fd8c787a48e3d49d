//! Where signatures run.
//!
//! Fast in-memory signatures (ECDSA, Ed25519: tens of microseconds) run inline on the async
//! worker: handing them to another thread would cost about as much as the signature. Slow ones
//! (RSA, and HSM round trips) go to a pool of dedicated threads, one per core, fed by a queue:
//! a worker blocked for a millisecond would delay the archive writer's wake-ups and the
//! sockets, and dedicated threads pull the next job at once, so no core idles while signatures
//! wait (a semaphore around `spawn_blocking` leaves a gap between jobs).
//!
//! A thread whose signatures are heavy on the CPU lowers its own priority ([`HEAVY_NICE`]):
//! with RSA in software the signing threads keep both cores busy, and at equal priority the
//! scheduler made the archive's commits and the HTTP replies wait behind them, so with few
//! connections a batch's requests were still in the commit or on the wire when the threads ran
//! out of work. But "slow" signers include HSM keys whose signature costs the CPU little more
//! than the rest of a token (SoftHSM2's P-256: about 70 µs), and lowered, those lost 10-13% at 64
//! connections, starved behind the runtime's workers (BENCHMARKS.md, "Eighth slice"). So each
//! thread measures its first [`SAMPLES`] signatures on its own CPU clock (real signatures: the
//! key signs nothing but tokens) and lowers itself only when their median is at least
//! [`HEAVY_SIGNATURE`]; a network HSM's round trip costs the thread's CPU nothing and keeps it
//! where it is.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// A pool of signing threads.
pub struct SigningPool {
    jobs: SyncSender<Job>,
    running: Running,
}

/// The pool's load, which the archive's writer reads to size its commits: how many signatures
/// the threads are making right now (at most one per thread), how many were asked for and are
/// not done yet (queued ones included), and how many threads sign.
#[derive(Debug, Clone)]
pub struct Running {
    counts: Arc<Counts>,
    threads: usize,
}

#[derive(Debug, Default)]
struct Counts {
    signing: AtomicUsize,
    pending: AtomicUsize,
}

impl Running {
    /// Signatures in progress now.
    pub fn now(&self) -> usize {
        self.counts.signing.load(Ordering::Relaxed)
    }

    /// Signatures asked for and not done: in progress or queued.
    pub fn pending(&self) -> usize {
        self.counts.pending.load(Ordering::Relaxed)
    }

    /// Signing threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Counts one signature as pending until the returned guard drops (also when the job
    /// panics, or is dropped unrun).
    fn submit(&self) -> Counted {
        self.counts.pending.fetch_add(1, Ordering::Relaxed);
        Counted {
            counts: Arc::clone(&self.counts),
            signing: false,
        }
    }
}

#[cfg(test)]
impl Running {
    /// Counts fixed at these values, for tests of what reads them.
    pub(crate) fn fixed(signing: usize, pending: usize, threads: usize) -> Running {
        Running {
            counts: Arc::new(Counts {
                signing: AtomicUsize::new(signing),
                pending: AtomicUsize::new(pending),
            }),
            threads,
        }
    }
}

/// One signature counted in [`Running`] until dropped: pending from its submission, signing
/// too once a thread runs it.
struct Counted {
    counts: Arc<Counts>,
    signing: bool,
}

impl Counted {
    fn start(&mut self) {
        self.counts.signing.fetch_add(1, Ordering::Relaxed);
        self.signing = true;
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if self.signing {
            self.counts.signing.fetch_sub(1, Ordering::Relaxed);
        }
        self.counts.pending.fetch_sub(1, Ordering::Relaxed);
    }
}

impl PartialEq for Running {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.counts, &other.counts)
    }
}

impl Eq for Running {}

impl std::fmt::Debug for SigningPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningPool").finish_non_exhaustive()
    }
}

/// Queued signatures at most; beyond this `run` waits (backpressure on the handlers).
const QUEUE: usize = 4096;

/// Signatures each thread times on its CPU clock before it settles its priority.
const SAMPLES: usize = 16;

/// A signature whose median CPU time on its thread is at least this is heavy, and its thread
/// runs at [`HEAVY_NICE`]. Between SoftHSM2's P-256 (about 70 µs, which must not be lowered)
/// and RSA-2048 in software (520-580 µs on the benchmark machines), and several times the rest
/// of a token's CPU (60-130 µs).
const HEAVY_SIGNATURE: std::time::Duration = std::time::Duration::from_micros(250);

/// The nice value of a thread with heavy signatures (the rest of the server keeps its own,
/// usually 0): at 5 a thread weighs about a third of one at 0, so it yields a core to the
/// runtime and the archive when they have work and still gets a third of it when they are
/// saturated. Linux only: there a nice value belongs to a thread; elsewhere it would renice
/// the process.
const HEAVY_NICE: i32 = 5;

impl SigningPool {
    /// Starts `threads` signing threads. They end when the pool is dropped.
    pub fn new(threads: usize) -> std::io::Result<SigningPool> {
        let (jobs, queue) = sync_channel::<Job>(QUEUE);
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads.max(1) {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("tsa-signer-{i}"))
                .spawn(move || worker(&queue))?;
        }
        Ok(SigningPool {
            jobs,
            running: Running {
                counts: Arc::default(),
                threads: threads.max(1),
            },
        })
    }

    /// The pool's load, for the archive's writer.
    pub fn running(&self) -> Running {
        self.running.clone()
    }

    /// Runs `f` on a signing thread and waits for its result without blocking the runtime.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        let mut counted = self.running.submit();
        let job: Job = Box::new(move || {
            // Counted until its result can be seen, not after.
            let out = {
                counted.start();
                let _counted = counted;
                f()
            };
            let _ = tx.send(out);
        });
        // A full queue means the signers are far behind; wait for room on a blocking thread
        // rather than on the runtime.
        if let Err(std::sync::mpsc::TrySendError::Full(job)) = self.jobs.try_send(job) {
            let jobs = self.jobs.clone();
            tokio::task::spawn_blocking(move || jobs.send(job))
                .await
                .ok()?
                .ok()?;
        }
        rx.await.ok()
    }
}

fn worker(queue: &Mutex<Receiver<Job>>) {
    // The CPU times of the first signatures, until the priority is settled.
    let mut timed: Option<Vec<std::time::Duration>> = Some(Vec::with_capacity(SAMPLES));
    loop {
        // Hold the lock only while taking a job, never while signing.
        let job = match queue.lock() {
            Ok(q) => q.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else {
            return; // the pool was dropped
        };
        let Some(times) = timed.as_mut() else {
            job();
            continue;
        };
        let before = thread_cpu_time();
        job();
        times.push(thread_cpu_time().saturating_sub(before));
        if times.len() == SAMPLES {
            times.sort_unstable();
            if times[SAMPLES / 2] >= HEAVY_SIGNATURE {
                lower_priority();
            }
            timed = None;
        }
    }
}

/// The CPU time the calling thread has used (zero where there is no such clock: the thread
/// then never counts as heavy).
fn thread_cpu_time() -> std::time::Duration {
    #[cfg(target_os = "linux")]
    {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        std::time::Duration::new(
            u64::try_from(t.tv_sec).unwrap_or(0),
            u32::try_from(t.tv_nsec).unwrap_or(0),
        )
    }
    #[cfg(not(target_os = "linux"))]
    {
        std::time::Duration::ZERO
    }
}

/// Lowers the calling thread's priority to [`HEAVY_NICE`] (never raises it). A refusal (a
/// sandbox without `setpriority`) leaves the thread as it was: signatures are then only slower
/// to share the cores.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let now = rustix::process::getpriority_process(None).unwrap_or(0);
        if now < HEAVY_NICE {
            match rustix::process::setpriority_process(None, HEAVY_NICE) {
                Ok(()) => tracing::debug!(
                    nice = HEAVY_NICE,
                    "heavy signatures: signing thread lowered"
                ),
                Err(error) => tracing::debug!(%error, "cannot lower the signing thread's priority"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_run_off_the_runtime_and_all_answer() {
        let pool = Arc::new(SigningPool::new(2).expect("pool"));
        let mut handles = Vec::new();
        for i in 0..200u32 {
            let pool = Arc::clone(&pool);
            handles.push(tokio::spawn(async move {
                pool.run(move || (i, std::thread::current().name().map(str::to_owned)))
                    .await
            }));
        }
        for (i, h) in handles.into_iter().enumerate() {
            let (n, thread) = h.await.expect("task").expect("answered");
            assert_eq!(usize::try_from(n).expect("small"), i);
            assert!(thread.is_some_and(|t| t.starts_with("tsa-signer-")));
        }
    }

    /// Runs `SAMPLES` jobs of `f` on a one-thread pool, then returns the thread's nice value.
    #[cfg(target_os = "linux")]
    async fn nice_after(f: fn()) -> i32 {
        let pool = SigningPool::new(1).expect("pool");
        for _ in 0..SAMPLES {
            pool.run(f).await.expect("answered");
        }
        pool.run(|| rustix::process::getpriority_process(None).expect("priority"))
            .await
            .expect("answered")
    }

    /// A thread whose signatures take [`HEAVY_SIGNATURE`] of its CPU or more lowers itself to
    /// [`HEAVY_NICE`]; one whose signatures are light keeps its priority, and so does the
    /// thread that made the pool.
    #[cfg(target_os = "linux")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_heavy_signers_lower_their_priority() {
        let mine = rustix::process::getpriority_process(None).expect("own priority");
        let heavy = nice_after(|| {
            let start = thread_cpu_time();
            while thread_cpu_time().saturating_sub(start) < HEAVY_SIGNATURE * 2 {
                std::hint::spin_loop();
            }
        })
        .await;
        assert_eq!(heavy, HEAVY_NICE.max(mine));
        // Sleeping costs the thread no CPU: an HSM's round trip is not heavy.
        let light = nice_after(|| std::thread::sleep(HEAVY_SIGNATURE * 2)).await;
        assert_eq!(light, mine);
        assert_eq!(
            rustix::process::getpriority_process(None).expect("own priority"),
            mine
        );
    }

    /// `now` counts the jobs on the threads, `pending` the queued ones too; both drop to zero
    /// when they end.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn running_counts_the_signatures_in_progress() {
        let pool = Arc::new(SigningPool::new(1).expect("pool"));
        let running = pool.running();
        assert_eq!(
            (running.now(), running.pending(), running.threads()),
            (0, 0, 1)
        );
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = oneshot::channel();
        let first = {
            let pool = Arc::clone(&pool);
            tokio::spawn(async move {
                pool.run(move || {
                    let _ = started_tx.send(());
                    wait.recv().is_ok()
                })
                .await
            })
        };
        started.await.expect("the job started");
        // A second job waits in the queue behind the first: one thread, one in progress.
        let second = {
            let pool = Arc::clone(&pool);
            tokio::spawn(async move { pool.run(|| true).await })
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while running.pending() < 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "the second job never queued"
            );
            tokio::task::yield_now().await;
        }
        assert_eq!((running.now(), running.pending()), (1, 2));
        release.send(()).expect("release");
        assert_eq!(first.await.expect("task"), Some(true));
        assert_eq!(second.await.expect("task"), Some(true));
        assert_eq!((running.now(), running.pending()), (0, 0));
    }
}
