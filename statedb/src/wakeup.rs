//! The one place the merger's thread sleeps.
//!
//! The merger waits for the next result it needs. With a database owned by the merger's thread
//! (the alloy-evm executor: the caller's `&mut State` cannot be shared), it must also wake up when
//! a slot asks it for a value the base state does not hold yet. Both events signal the same
//! [`Wakeup`], and the merger's wait takes a readiness check that looks for either, so neither
//! can be missed and the merger never sleeps while a slot waits on it.

use std::{
    sync::atomic::{AtomicBool, Ordering, fence},
    time::{Duration, Instant},
};

use parking_lot::{Condvar, Mutex};

/// How long a waiter polls before parking: most results arrive within a few microseconds of
/// being awaited, and a park/unpark round trip costs more than that.
const SPIN: Duration = Duration::from_micros(30);

/// A parking spot for one waiting thread, signalled by any number of others.
#[derive(Debug, Default)]
pub struct Wakeup {
    /// Guards nothing but the wait itself.
    lock: Mutex<()>,
    condvar: Condvar,
    /// Set while the waiter is (about to be) parked, so signalling pays for a wake-up only then.
    waiting: AtomicBool,
}

impl Wakeup {
    /// Wakes the waiter, if it is parked. Call after making the awaited event visible.
    pub fn notify(&self) {
        // SeqCst fence, paired with the one in `wait_until`: either the waiter sees our event
        // when it re-checks after raising `waiting`, or we see `waiting` raised and wake it.
        fence(Ordering::SeqCst);
        // Relaxed: ordered by the fences.
        if self.waiting.load(Ordering::Relaxed) {
            let _guard = self.lock.lock();
            self.condvar.notify_all();
        }
    }

    /// Waits until `ready` returns something, or `deadline` passes (then `ready` is asked once
    /// more). Only one thread may wait at a time.
    pub fn wait_until<T>(&self, deadline: Instant, mut ready: impl FnMut() -> Option<T>) -> Option<T> {
        let spin_until = (Instant::now() + SPIN).min(deadline);
        // Bounded poll first (see `SPIN`), yielding so a slot on the same core can finish.
        while Instant::now() < spin_until {
            if let Some(found) = ready() {
                return Some(found);
            }
            std::thread::yield_now();
        }
        let mut guard = self.lock.lock();
        // Relaxed store, then a SeqCst fence pairing with `notify`'s: from here on a notifier
        // either sees `waiting` or its event is visible to the re-check below.
        self.waiting.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        let found = loop {
            if let Some(found) = ready() {
                break Some(found);
            }
            if self.condvar.wait_until(&mut guard, deadline).timed_out() {
                break ready();
            }
        };
        // Relaxed: a stale `true` only costs a notifier one needless wake-up.
        self.waiting.store(false, Ordering::Relaxed);
        found
    }
}
