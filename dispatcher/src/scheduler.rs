//! Dynamic dispatch: the queues the workers take transactions from.
//!
//! Each slot has a FIFO deque filled by static dispatch; a primary takes from its own deque, and
//! when that is empty steals from the front of the others' (the lowest pending indices, which the
//! merger needs first). Redos go to one shared injector that every worker checks first, since a
//! redo is what the merger is waiting for. When the merger asks for a redo while the
//! transaction's home slot is busy, that slot's shadow is woken to take it.
//!
//! A thief does not run a transaction whose sender's previous transaction has no result yet:
//! static dispatch put the sender's transactions in one lane so that each reads its predecessor's
//! unconfirmed nonce and balance, and taken out of it the transaction would read a stale nonce,
//! fail, and be redone at its turn on the merger's thread. A lane holding one sender's long run
//! (an exchange's withdrawals) lost every steal that way. The thief gives it back to the lane's
//! owner, through a queue only that owner takes from, and goes on down the lane. The owner in
//! turn skips one whose predecessor is running elsewhere (the merger's thread overtook the lane
//! and runs it at its turn): the merger then runs the skipped one at its turn too, on exact
//! state, and the chain rule counts the skip like a redo.
//!
//! In a session (the drop-in executor) the merger's thread is the caller's, which owns the
//! database and, unless the slots read the parent state themselves, executes only at a
//! transaction's turn, exactly, on its own EVM. When a primary
//! takes the transaction the merger is about to reach, the merger waits for it; a primary that is
//! the block's bottleneck then stays one transaction ahead of the merger for the whole block,
//! and the two threads run in lockstep, one executing while the other waits (ERC-20 transfers,
//! all in one lane by their token's recipient affinity: 869 of 870 executions were the worker's).
//! So a session's primary leaves the merger's next [`MERGER_TURNS`] transactions to it; a primary
//! running ahead of the merger, the usual case, never meets the rule. With the parent state the
//! merger's thread also executes from its own lane between merges, and leaves the same ones to
//! its turns (they then run exactly there), as it leaves the transactions of a redone recipient
//! ([`Scheduler::leave`]): executed speculatively they would mostly be redone (drop-in AMM swaps
//! 0.79x -> 0.84x when it stopped running them).
//!
//! A session's heavy transactions (see `dispatch.rs`) go to a queue of their own that every
//! primary, and the merger's thread, looks at right after the redos. Unlike the batch path's
//! (the head of their own lane) they leave their lane, so a later transaction of the same sender
//! may run beside one and read a stale nonce; it is then redone.
//!
//! Idle primaries block on a condition variable, woken whenever work is added or the block ends;
//! shadows on one of their own, woken only for a redo their busy primary cannot take and at the
//! end. The wait has a short timeout only as a safety net, so no worker ever spins.

use std::{
    sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    time::Duration,
};

use crossbeam_deque::{Injector, Stealer, Worker as Deque};
use parevm_slots::{Role, TaskSource, TaskTable, TxStatus};
use parevm_statedb::TxIndex;
use parking_lot::{Condvar, Mutex};

use crate::placement::Placement;

/// `home_slot` of a transaction that is in no slot's queue (left to the merger).
const NO_SLOT: usize = usize::MAX;

/// A session's primary leaves a transaction to the merger when it is among the merger's next
/// this many (the one it is merging and the two after): measured against 1, 2, 4 and 8 in
/// `docs/benchmarks-log.md` ("Changes measured alone").
pub const MERGER_TURNS: usize = 3;

/// Longest sleep of an idle worker between checks (a safety net; wake-ups are explicit).
const IDLE_WAIT: Duration = Duration::from_millis(20);

/// The work queues of one block.
#[derive(Debug)]
pub struct Scheduler {
    table: TaskTable,
    /// Owner side of each lane's deque: a slot's, locked by its primary, or the last one, the
    /// merger's thread's (the batch path's, a session's with the parent state; taken from between
    /// merges); rarely contended.
    locals: Vec<Mutex<Deque<TxIndex>>>,
    stealers: Vec<Stealer<TxIndex>>,
    redos: Injector<TxIndex>,
    /// A session's heavy transactions (see `dispatch.rs`), taken before any lane's.
    heavy: Injector<TxIndex>,
    /// Per lane, transactions a thief gave back (see the module's notes); only the lane's owner
    /// takes from it.
    returned: Vec<Injector<TxIndex>>,
    /// Per transaction, its sender's previous transaction in the block (batch path only: a
    /// session's workers do not see the block ahead; empty there).
    predecessors: Vec<Option<TxIndex>>,
    home_slot: Vec<AtomicUsize>,
    /// A session's: primaries leave the merger's next turns to it (see the module's notes).
    leave_turns: bool,
    steal: bool,
    shadows: bool,
    busy: Vec<AtomicBool>,
    shadow_wanted: Vec<AtomicBool>,
    epoch: AtomicU64,
    /// Primaries inside `wait`: announcing to nobody skips the wake-up, which matters when a
    /// session pushes transactions one by one.
    sleepers: AtomicUsize,
    /// Shadows inside `wait`, on a condition variable of their own: new work is not theirs, and
    /// a session announces every transaction it is handed. When they shared the primaries' one,
    /// each announcement woke the sleeping shadow for nothing, a futex call on the caller's
    /// thread and a context switch on a core the other two threads were using (the drop-in at 2
    /// slots: 0.90x geomean with shadows, 0.94x without; ERC-20 transfers 0.71x and 0.83x).
    shadow_sleepers: AtomicUsize,
    done: AtomicBool,
    idle: Mutex<()>,
    wakeup: Condvar,
    shadow_wakeup: Condvar,
    /// Transactions taken from another slot's queue.
    pub steals: AtomicU64,
    /// Transactions a lane's owner skipped, their sender's previous one running elsewhere (see
    /// `next_task`): each then runs at its turn on the merger's thread, in order, as in a chain.
    pub skipped: AtomicU64,
    /// Which cores the block's threads run on, so that one woken onto another's core steps off
    /// it (see `placement.rs`); updated where they park, here and in the merger's wait.
    pub(crate) placement: Placement,
}

impl Scheduler {
    /// Empty queues for a session's `slots` slots over the claims in `table`, filled as
    /// transactions arrive ([`Scheduler::push`]), whose primaries leave the merger's next turns
    /// to it (see the module's notes).
    pub fn for_session(table: TaskTable, slots: usize, steal: bool, shadows: bool) -> Self {
        let empty = vec![Vec::new(); slots.max(1)];
        Self { leave_turns: true, ..Self::with_plan(table, &empty, Vec::new(), steal, shadows) }
    }

    /// Queues built from a static dispatch plan (`plan[slot]` = its transactions in order), with
    /// each transaction's sender's previous one (`dispatch::sender_predecessors`; empty: none).
    pub fn with_plan(
        table: TaskTable,
        plan: &[Vec<TxIndex>],
        predecessors: Vec<Option<TxIndex>>,
        steal: bool,
        shadows: bool,
    ) -> Self {
        let slots = plan.len().max(1);
        let home_slot: Vec<_> = (0..table.len()).map(|_| AtomicUsize::new(NO_SLOT)).collect();
        let deques: Vec<_> = (0..slots).map(|_| Deque::new_fifo()).collect();
        // Filled before any lock exists: a whole block's entries, one lock each, were a fifth of
        // the engine's set-up on a block of cheap transactions.
        for (slot, txs) in plan.iter().enumerate() {
            for &tx in txs {
                // Relaxed: no other thread has the scheduler yet (and see `push`).
                home_slot[tx].store(slot, Ordering::Relaxed);
                deques[slot].push(tx);
            }
        }
        let stealers = deques.iter().map(Deque::stealer).collect();
        let locals = deques.into_iter().map(Mutex::new).collect();
        Self {
            table,
            locals,
            stealers,
            redos: Injector::new(),
            heavy: Injector::new(),
            returned: (0..slots).map(|_| Injector::new()).collect(),
            predecessors,
            home_slot,
            leave_turns: false,
            steal,
            shadows,
            busy: (0..slots).map(|_| AtomicBool::new(false)).collect(),
            shadow_wanted: (0..slots).map(|_| AtomicBool::new(false)).collect(),
            epoch: AtomicU64::new(0),
            sleepers: AtomicUsize::new(0),
            shadow_sleepers: AtomicUsize::new(0),
            done: AtomicBool::new(false),
            idle: Mutex::new(()),
            wakeup: Condvar::new(),
            shadow_wakeup: Condvar::new(),
            steals: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            placement: Placement::new(slots),
        }
    }

    /// Whether `tx` went to a slot's queue (else the merger runs it at its turn).
    pub fn is_queued(&self, tx: TxIndex) -> bool {
        // Relaxed: written before the transaction was announced, by the thread that asks.
        self.home_slot[tx].load(Ordering::Relaxed) != NO_SLOT
    }

    /// The claims on the block's transactions.
    pub fn table(&self) -> &TaskTable {
        &self.table
    }

    /// Queues a newly arrived transaction on `slot` and wakes the workers.
    pub fn push(&self, tx: TxIndex, slot: usize) {
        // Relaxed: read only as a hint for waking a shadow (see `wake_for_redo`).
        self.home_slot[tx].store(slot, Ordering::Relaxed);
        self.locals[slot].lock().push(tx);
        self.announce();
    }

    /// Queues a newly arrived heavy transaction of `slot` ahead of every lane's.
    pub fn push_heavy(&self, tx: TxIndex, slot: usize) {
        // Relaxed: as in `push`.
        self.home_slot[tx].store(slot, Ordering::Relaxed);
        self.heavy.push(tx);
        self.announce();
    }

    /// A session's: leaves queued transaction `tx` to the merger, which runs it at its turn; a
    /// primary that takes it from its queue drops it. Relaxed: a hint, as in `push`; a primary
    /// that misses it runs the transaction speculatively, as it would have anyway.
    pub fn leave(&self, tx: TxIndex) {
        self.home_slot[tx].store(NO_SLOT, Ordering::Relaxed);
    }

    /// Whether all `workers` of the block sleep in [`TaskSource::wait`]: each found nothing to
    /// take, and nothing is pushed during a batch block but requeued redos, which the merger's
    /// thread can take itself. Workers count themselves under the idle lock before they park and
    /// uncount on the way out, so this errs only towards "no".
    pub fn all_asleep(&self, workers: usize) -> bool {
        // SeqCst: like every access to `sleepers` (see `announce`); a stale "no" only delays the
        // release to the next merge.
        self.sleepers.load(Ordering::SeqCst) + self.shadow_sleepers.load(Ordering::SeqCst) >= workers
    }

    /// Ends the block: every worker returns from its loop.
    pub fn finish(&self) {
        // SeqCst: a worker about to park must see it or be woken (see `announce`).
        self.done.store(true, Ordering::SeqCst);
        self.announce();
        self.wake_shadows();
    }

    fn announce(&self) {
        // SeqCst, with the SeqCst increment and epoch load in `wait`: either the waiter counted
        // itself before our load (we then take the lock, which it holds until it is parked, and
        // wake it), or our bump comes before its load of the epoch (it sees the new epoch and
        // does not park). Either way no announcement is lost.
        self.epoch.fetch_add(1, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            let _guard = self.idle.lock();
            self.wakeup.notify_all();
        }
    }

    /// Wakes the sleeping shadows, after raising a `shadow_wanted` flag or `done`.
    fn wake_shadows(&self) {
        // SeqCst: the same pattern as `announce`, with the flag (or `done`) stored before this
        // load and a shadow counting itself before it looks at them.
        if self.shadow_sleepers.load(Ordering::SeqCst) > 0 {
            let _guard = self.idle.lock();
            self.shadow_wakeup.notify_all();
        }
    }

    fn steal_from_slots(&self, me: usize) -> Option<TxIndex> {
        let slots = self.stealers.len();
        for offset in 1..slots {
            let victim = (me + offset) % slots;
            loop {
                match self.stealers[victim].steal() {
                    crossbeam_deque::Steal::Success(tx) => {
                        // Skip entries someone already claimed: only runnable work counts.
                        if self.table.status(tx) != TxStatus::Ready {
                            continue;
                        }
                        if self.waits_for_predecessor(tx) {
                            // Back to the lane's owner, and on down the lane: what follows may be
                            // other senders' work. Each transaction is given back at most once
                            // (thieves never take from `returned`), so this ends.
                            self.returned[victim].push(tx);
                            // The owner may be asleep, waiting on work a third thread holds.
                            self.announce();
                            continue;
                        }
                        // Relaxed: a statistic.
                        self.steals.fetch_add(1, Ordering::Relaxed);
                        return Some(tx);
                    }
                    crossbeam_deque::Steal::Empty => break,
                    crossbeam_deque::Steal::Retry => {}
                }
            }
        }
        None
    }

    /// Whether `tx`'s sender has an earlier transaction in the block with no result yet.
    fn waits_for_predecessor(&self, tx: TxIndex) -> bool {
        self.predecessors.get(tx).copied().flatten().is_some_and(|p| self.table.status(p) != TxStatus::Done)
    }
}

/// The next transaction of a shared queue (the redos, a lane's given-back ones), if any.
fn take(queue: &Injector<TxIndex>) -> Option<TxIndex> {
    loop {
        match queue.steal() {
            crossbeam_deque::Steal::Success(tx) => return Some(tx),
            crossbeam_deque::Steal::Empty => return None,
            // Another thief won a race; the queue is not empty, try again. Each retry follows
            // someone else's progress, so this is lock-free, not a spin on a condition.
            crossbeam_deque::Steal::Retry => {}
        }
    }
}

impl TaskSource for Scheduler {
    fn epoch(&self) -> u64 {
        // Acquire: pairs with `announce`'s Release, so work pushed before the bump is found.
        self.epoch.load(Ordering::Acquire)
    }

    fn is_done(&self) -> bool {
        // SeqCst: see `finish`.
        self.done.load(Ordering::SeqCst)
    }

    fn next_task(&self, slot: usize, role: Role) -> Option<TxIndex> {
        if let Some(tx) = take(&self.redos) {
            return Some(tx);
        }
        if role == Role::Shadow {
            return None;
        }
        if let Some(tx) = take(&self.heavy) {
            return Some(tx);
        }
        // Given back by a thief first: lower indices than anything left in the lane. Either way,
        // skip a transaction whose sender's previous one has no result yet (see the module's
        // notes): that one is running elsewhere, on the merger's thread at its turn when it
        // overtook this lane, and the skipped one is then next in line there too, where it runs
        // on exact state instead of failing here on a stale nonce and being redone there.
        while let Some(tx) = take(&self.returned[slot]).or_else(|| self.locals[slot].lock().pop()) {
            if !self.waits_for_predecessor(tx) {
                return Some(tx);
            }
            // Relaxed: a count the merger's thread reads for the chain rule, where a late value
            // only delays the verdict to a later merge.
            self.skipped.fetch_add(1, Ordering::Relaxed);
        }
        if self.steal { self.steal_from_slots(slot) } else { None }
    }

    fn wait(&self, slot: usize, role: Role, seen: u64) {
        self.placement.parked(Placement::worker(slot, role == Role::Shadow), || self.sleep(slot, role, seen));
    }

    fn requeue(&self, tx: TxIndex) {
        self.redos.push(tx);
        self.wake_for_redo(tx);
    }

    fn leave_to_merger(&self, tx: TxIndex, merged: &AtomicUsize) -> bool {
        if !self.leave_turns {
            return false;
        }
        // Relaxed: a hint (see `leave`).
        if self.home_slot[tx].load(Ordering::Relaxed) == NO_SLOT {
            return true;
        }
        // Relaxed: a hint; a stale count only makes the check err towards the primary running it.
        // Loaded only in a session: the batch path's primaries never leave a turn.
        if tx >= merged.load(Ordering::Relaxed) + MERGER_TURNS {
            return false;
        }
        // The merger's loop then runs it at its turn instead of waiting for a slot
        // (`Session::merge_ready`); a merger that looked just before waits a little.
        self.leave(tx);
        true
    }

    fn set_busy(&self, slot: usize, busy: bool) {
        // Relaxed: a hint for choosing whom to wake; a stale value costs at most one needless
        // wake-up or one redo taken by an idle primary instead of the shadow.
        self.busy[slot].store(busy, Ordering::Relaxed);
    }
}

impl Scheduler {
    /// Parks the calling worker until work is announced (or, a shadow, wanted) or the block ends.
    fn sleep(&self, slot: usize, role: Role, seen: u64) {
        let mut guard = self.idle.lock();
        let (sleepers, wakeup) = match role {
            Role::Shadow => (&self.shadow_sleepers, &self.shadow_wakeup),
            Role::Primary | Role::Merger => (&self.sleepers, &self.wakeup),
        };
        // SeqCst: see `announce` and `wake_shadows`.
        sleepers.fetch_add(1, Ordering::SeqCst);
        let _counted = Uncount(sleepers);
        loop {
            if self.is_done() {
                return;
            }
            let woken = match role {
                // SeqCst: see `announce`.
                // The merger never waits here (it has its own wait); treated as a primary.
                Role::Primary | Role::Merger => self.epoch.load(Ordering::SeqCst) != seen,
                // Relaxed is enough for a flag whose only effect is to make us look at the
                // injector, which has its own synchronisation.
                // SeqCst: like the epoch, so a flag raised while the shadow counts itself as a
                // sleeper is either seen here or answered with a wake-up (see `announce`).
                Role::Shadow => self.shadow_wanted[slot].swap(false, Ordering::SeqCst),
            };
            if woken || wakeup.wait_for(&mut guard, IDLE_WAIT).timed_out() {
                return;
            }
        }
    }

    fn wake_for_redo(&self, tx: TxIndex) {
        // Relaxed: a hint (see `enqueue`).
        let home = self.home_slot[tx].load(Ordering::Relaxed);
        // Relaxed: a hint (see `set_busy`); the flag itself is SeqCst (see `wait`).
        if self.shadows && home != NO_SLOT && self.busy[home].load(Ordering::Relaxed) {
            // SeqCst: see `wait`.
            self.shadow_wanted[home].store(true, Ordering::SeqCst);
            self.wake_shadows();
        }
        self.announce();
    }
}

/// Takes a waiting worker off the sleeper count when it leaves `wait`, however it leaves.
struct Uncount<'a>(&'a AtomicUsize);

impl Drop for Uncount<'_> {
    fn drop(&mut self) {
        // Relaxed: an over-count only costs an announcer one needless wake-up.
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// One lane holds a sender's three transactions in a row (each one's predecessor the one
    /// before); the other lane is empty and steals.
    fn one_senders_run() -> Scheduler {
        Scheduler::with_plan(TaskTable::new(3), &[vec![0, 1, 2], vec![]], vec![None, Some(0), Some(1)], true, false)
    }

    #[test]
    fn a_thief_gives_back_a_transaction_whose_senders_previous_one_has_no_result() {
        let scheduler = one_senders_run();
        let table = scheduler.table();
        assert_eq!(scheduler.next_task(0, Role::Primary), Some(0));
        table.try_claim(0).unwrap();
        // 1 would read a nonce 0 has not written yet, and 2 one that 1 has not: both given back,
        // and nothing else to take.
        assert_eq!(scheduler.next_task(1, Role::Primary), None);
        assert_eq!(scheduler.steals.load(Ordering::Relaxed), 0);
        assert!(!table.finish(0));
        // The lane's owner takes it back, in order, once 0 has its result.
        assert_eq!(scheduler.next_task(0, Role::Primary), Some(1));
        table.try_claim(1).unwrap();
        assert!(!table.finish(1));
        // And the last one, in order, once 1 has its result.
        assert_eq!(scheduler.next_task(0, Role::Primary), Some(2));
        assert_eq!(scheduler.steals.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_lane_overtaken_by_the_merger_skips_what_would_read_a_stale_nonce() {
        let scheduler = one_senders_run();
        let table = scheduler.table();
        // The merger's thread runs 0 at its turn before the lane's owner reaches it.
        table.try_claim(0).unwrap();
        // The owner finds 0 (its claim then fails) and skips 1 and 2, whose predecessors have no
        // result: they stay unclaimed, for the merger to run at their turns.
        assert_eq!(scheduler.next_task(0, Role::Primary), Some(0));
        assert_eq!(table.try_claim(0), None);
        assert_eq!(scheduler.next_task(0, Role::Primary), None);
        assert_eq!((table.status(1), table.status(2)), (TxStatus::Ready, TxStatus::Ready));
        assert_eq!(scheduler.skipped.load(Ordering::Relaxed), 2);
    }

    /// A session's scheduler of one slot with transactions `0..n` queued on it.
    fn session_with_queued(n: usize) -> Scheduler {
        let session = Scheduler::for_session(TaskTable::new(n), 1, true, true);
        for tx in 0..n {
            session.push(tx, 0);
        }
        session
    }

    #[test]
    fn a_sessions_heavy_transaction_is_taken_before_any_lanes_and_after_the_redos() {
        let session = Scheduler::for_session(TaskTable::new(4), 1, true, true);
        for tx in 0..3 {
            session.push(tx, 0);
        }
        session.push_heavy(3, 0);
        session.requeue(2);
        assert_eq!(session.next_task(0, Role::Primary), Some(2), "a redo first: the merger waits for it");
        assert_eq!(session.next_task(0, Role::Shadow), None, "not a shadow's");
        assert_eq!(session.next_task(0, Role::Merger), Some(3), "then the heavy one, whoever asks");
        assert_eq!(session.next_task(0, Role::Primary), Some(0), "then the lane, in order");
        assert!(session.is_queued(3));
    }

    #[test]
    fn a_sessions_primary_leaves_the_mergers_next_turns_to_it() {
        let session = session_with_queued(8);
        // Merged 2: the merger is at 2, and its next turns follow.
        let merged = AtomicUsize::new(2);
        for tx in 2..2 + MERGER_TURNS {
            assert!(session.leave_to_merger(tx, &merged), "{tx}");
            assert!(!session.is_queued(tx), "{tx} is the merger's now");
        }
        assert!(!session.leave_to_merger(2 + MERGER_TURNS, &merged), "ahead of the merger: the primary's");
        assert!(session.is_queued(2 + MERGER_TURNS));
        let batch = Scheduler::with_plan(TaskTable::new(2), &[vec![0, 1]], Vec::new(), true, true);
        assert!(!batch.leave_to_merger(0, &AtomicUsize::new(0)), "the batch path's merger runs its own lane");
        assert!(batch.is_queued(0));
    }

    #[test]
    fn a_transaction_left_to_the_merger_is_dropped_by_a_primary_however_far_ahead() {
        let session = session_with_queued(8);
        let merged = AtomicUsize::new(0);
        assert!(!session.leave_to_merger(6, &merged), "far ahead of the merger: the primary's");
        session.leave(6);
        assert!(!session.is_queued(6), "the merger's now");
        assert!(session.leave_to_merger(6, &merged), "dropped by the primary that takes it");
        assert!(!session.leave_to_merger(7, &merged) && session.is_queued(7), "the others stay");
    }

    #[test]
    fn workers_count_as_asleep_only_while_they_wait_and_finish_wakes_them() {
        let scheduler = Scheduler::for_session(TaskTable::new(4), 1, true, true);
        assert!(!scheduler.all_asleep(2), "nobody waits yet");
        std::thread::scope(|scope| {
            for role in [Role::Primary, Role::Shadow] {
                let scheduler = &scheduler;
                scope.spawn(move || {
                    // As a worker's loop does: wait until the block ends.
                    while !scheduler.is_done() {
                        scheduler.wait(0, role, scheduler.epoch());
                    }
                });
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while !scheduler.all_asleep(2) {
                assert!(Instant::now() < deadline, "the workers never counted as asleep");
                std::thread::sleep(Duration::from_millis(1));
            }
            scheduler.finish();
        });
        assert!(!scheduler.all_asleep(1), "every worker left its wait");
    }
}
