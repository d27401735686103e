//! The status of every transaction of the block, and the compare-and-swap that claims one.
//!
//! A transaction is executed by at most one worker at a time: whoever wins the swap from
//! `Ready` to `Executing` runs it; everyone else who found it in a queue drops it. A redo asked
//! for while the transaction is executing is remembered (`ExecutingRedo`) and honoured by the
//! worker when it finishes, so no request is lost and no two executions of one transaction ever
//! overlap (their results are therefore published in incarnation order).

use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};

use crossbeam_utils::CachePadded;

use parevm_statedb::TxIndex;

/// Where a transaction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum TxStatus {
    /// Waiting in a queue to be (re-)executed.
    Ready = 0,
    /// A worker is executing it.
    Executing = 1,
    /// A worker is executing it and the merger has asked for another execution.
    ExecutingRedo = 2,
    /// Its newest result is published.
    Done = 3,
}

impl TxStatus {
    fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Ready,
            1 => Self::Executing,
            2 => Self::ExecutingRedo,
            _ => Self::Done,
        }
    }
}

/// What [`TaskTable::request_redo`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedoRequest {
    /// The transaction became `Ready`: the caller must queue it.
    Queue,
    /// It is executing; the worker will queue it when it finishes.
    Deferred,
    /// It is already waiting for an execution.
    AlreadyPending,
}

/// Status and execution counter of every transaction of a block.
#[derive(Debug)]
pub struct TaskTable {
    /// One cache line per transaction: the slots and the merger claim, finish and look up
    /// neighbouring transactions all the time, and packed flags (64 to a line) would make every
    /// such access a cache miss on the other core (false sharing).
    cells: Vec<CachePadded<Cell>>,
}

#[derive(Debug)]
struct Cell {
    status: AtomicU8,
    incarnation: AtomicU32,
}

impl TaskTable {
    /// All `len` transactions `Ready`, none executed.
    pub fn new(len: usize) -> Self {
        Self {
            cells: (0..len)
                .map(|_| {
                    CachePadded::new(Cell {
                        status: AtomicU8::new(TxStatus::Ready as u8),
                        incarnation: AtomicU32::new(0),
                    })
                })
                .collect(),
        }
    }

    /// Number of transactions.
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// Whether the block is empty.
    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    /// Current status.
    pub fn status(&self, tx: TxIndex) -> TxStatus {
        // Acquire: a caller that sees `Done` also sees the result published before it.
        TxStatus::from_u8(self.cells[tx].status.load(Ordering::Acquire))
    }

    /// Claims `tx` for execution; returns its incarnation number (1 for the first execution) if
    /// this caller won it.
    pub fn try_claim(&self, tx: TxIndex) -> Option<u32> {
        // AcqRel: acquiring pairs with the Release of whoever made it Ready (so its queue push and
        // any state it published are visible); releasing publishes our claim to competing workers.
        self.cells[tx]
            .status
            .compare_exchange(TxStatus::Ready as u8, TxStatus::Executing as u8, Ordering::AcqRel, Ordering::Acquire)
            .ok()?;
        // Relaxed: only the claimant touches the counter, and claims of one tx are serialised by
        // the status swap above.
        Some(self.cells[tx].incarnation.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// Marks the execution finished (its result already published). Returns `true` if a redo
    /// was requested meanwhile: the transaction is `Ready` again and the caller must queue it.
    pub fn finish(&self, tx: TxIndex) -> bool {
        // Release: the published result happens-before anyone who observes `Done`.
        match self.cells[tx].status.compare_exchange(
            TxStatus::Executing as u8,
            TxStatus::Done as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => false,
            Err(_) => {
                // Only `ExecutingRedo` can be here: nobody but the claimant leaves `Executing`
                // except the merger, which only moves it to `ExecutingRedo`.
                // Release: the claim that follows (Acquire) sees our published result.
                self.cells[tx].status.store(TxStatus::Ready as u8, Ordering::Release);
                true
            }
        }
    }

    /// Asks for another execution of `tx`.
    pub fn request_redo(&self, tx: TxIndex) -> RedoRequest {
        let cell = &self.cells[tx].status;
        // Acquire: the value only seeds the swap below, which re-checks it.
        let mut current = cell.load(Ordering::Acquire);
        loop {
            let (next, outcome) = match TxStatus::from_u8(current) {
                TxStatus::Done => (TxStatus::Ready, RedoRequest::Queue),
                TxStatus::Executing => (TxStatus::ExecutingRedo, RedoRequest::Deferred),
                TxStatus::Ready | TxStatus::ExecutingRedo => return RedoRequest::AlreadyPending,
            };
            // AcqRel as in `try_claim`: the swap orders our request against the worker's finish.
            match cell.compare_exchange(current, next as u8, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return outcome,
                // The status moved under us (at most twice: Executing -> Done -> ...): retry with
                // the new value. Bounded because every transition is towards Done or Ready.
                Err(actual) => current = actual,
            }
        }
    }

    /// How many executions of `tx` have started.
    pub fn executions(&self, tx: TxIndex) -> u32 {
        // Relaxed: a statistic.
        self.cells[tx].incarnation.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn exactly_one_of_many_threads_claims_a_transaction() {
        for _ in 0..200 {
            let table = TaskTable::new(1);
            let winners = AtomicUsize::new(0);
            std::thread::scope(|s| {
                for _ in 0..4 {
                    s.spawn(|| {
                        if table.try_claim(0).is_some() {
                            winners.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
            });
            assert_eq!(winners.into_inner(), 1);
            assert_eq!(table.status(0), TxStatus::Executing);
        }
    }

    #[test]
    fn a_redo_during_execution_is_honoured_when_it_finishes() {
        let table = TaskTable::new(1);
        assert_eq!(table.try_claim(0), Some(1));
        assert_eq!(table.request_redo(0), RedoRequest::Deferred);
        assert_eq!(table.request_redo(0), RedoRequest::AlreadyPending);
        assert!(table.finish(0), "the worker must requeue it");
        assert_eq!(table.status(0), TxStatus::Ready);
        assert_eq!(table.try_claim(0), Some(2));
        assert!(!table.finish(0));
        assert_eq!(table.status(0), TxStatus::Done);
        assert_eq!(table.request_redo(0), RedoRequest::Queue);
        assert_eq!(table.request_redo(0), RedoRequest::AlreadyPending);
        assert_eq!(table.executions(0), 2);
    }

    #[test]
    fn redo_requests_racing_with_finish_are_never_lost() {
        for _ in 0..500 {
            let table = TaskTable::new(1);
            table.try_claim(0).unwrap();
            let (requeued, redo) = std::thread::scope(|s| {
                let worker = s.spawn(|| table.finish(0));
                let merger = s.spawn(|| table.request_redo(0));
                (worker.join().unwrap(), merger.join().unwrap())
            });
            // Either the merger saw it Done and must queue it, or the worker saw the request.
            assert!(requeued ^ (redo == RedoRequest::Queue), "requeued {requeued}, redo {redo:?}");
            assert_eq!(table.status(0), TxStatus::Ready);
        }
    }
}
