//! The loop every primary and shadow worker runs for one block.
//!
//! Find a task, claim it, execute, publish, repeat; when there is nothing to do, sleep until the
//! dispatcher announces new work or the end of the block. The loop never waits on the merger and
//! never spins: an idle worker blocks in [`TaskSource::wait`].
//!
//! The merger's thread is a worker too, one [`Worker::step`] at a time: while the transaction it
//! must merge next is still executing elsewhere, it executes queued work instead of idling.

use std::{
    panic::{AssertUnwindSafe, catch_unwind, resume_unwind},
    sync::{Arc, atomic::AtomicUsize},
};

use parevm_statedb::{BlockDb, ReadSet, TxIndex, TxResult};

use crate::{TaskTable, TxExecutor, exec::ExecCtx};

/// Which of a slot's two workers this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Runs the slot's queue, then redos and stolen work.
    Primary,
    /// Runs redos only, when the slot's primary is busy.
    Shadow,
    /// The merger's thread between merges: takes work like the slot's primary, one task at a
    /// time (see [`Worker::step`]), and never sleeps in the queue (the merger has its own wait).
    Merger,
}

/// Where workers find transactions to execute; implemented by the dispatcher.
pub trait TaskSource: Sync {
    /// A counter that changes whenever work is added or the block ends; read it before looking
    /// for work and hand it to [`TaskSource::wait`], so no announcement is missed.
    fn epoch(&self) -> u64;
    /// Whether the block is over (merged or failed): workers exit.
    fn is_done(&self) -> bool;
    /// The next transaction for this worker to try, if any. It may already be claimed by another
    /// worker; the caller claims it with [`TaskTable::try_claim`].
    fn next_task(&self, slot: usize, role: Role) -> Option<TxIndex>;
    /// Sleeps until the epoch differs from `seen` (or a short timeout passes).
    fn wait(&self, slot: usize, role: Role, seen: u64);
    /// A redo was requested while `tx` executed; it is `Ready` again and must be queued.
    fn requeue(&self, tx: TxIndex);
    /// Whether a primary (or the merger's thread, between merges) that just took `tx` should
    /// leave it to the merger's turn; the merger publishes its count of merged transactions in
    /// `merged`. The transaction then runs at its turn, exactly, on the merger's thread, and the
    /// worker drops it (see the dispatcher's scheduler).
    fn leave_to_merger(&self, tx: TxIndex, merged: &AtomicUsize) -> bool;
    /// The slot's primary starts (`true`) or ends (`false`) an execution.
    fn set_busy(&self, slot: usize, busy: bool);
}

/// Counters of one worker over one block.
#[derive(Debug, Default, Clone, Copy)]
pub struct WorkerStats {
    /// Executions run.
    pub executions: u64,
    /// Executions run by a shadow (takeovers).
    pub shadow_executions: u64,
    /// Time spent executing.
    pub execution_time: std::time::Duration,
}

/// A worker: one thread's loop for one block.
#[derive(Debug)]
pub struct Worker<'c, 'a, D: BlockDb> {
    slot: usize,
    role: Role,
    table: &'c TaskTable,
    executor: TxExecutor<'c, 'a, D>,
    ctx: &'c ExecCtx<'a, D>,
    stats: WorkerStats,
}

impl<'c, 'a, D> Worker<'c, 'a, D>
where
    D: BlockDb,
{
    /// A worker of `slot` in `role`.
    pub fn new(slot: usize, role: Role, table: &'c TaskTable, ctx: &'c ExecCtx<'a, D>) -> Self {
        Self { slot, role, table, executor: TxExecutor::new(ctx), ctx, stats: WorkerStats::default() }
    }

    /// Runs until the block is over.
    pub fn run(mut self, source: &impl TaskSource) -> WorkerStats {
        loop {
            let epoch = source.epoch();
            if source.is_done() {
                break;
            }
            if !self.step(source) {
                source.wait(self.slot, self.role, epoch);
            }
        }
        self.stats()
    }

    /// Counters so far.
    pub fn stats(&self) -> WorkerStats {
        WorkerStats { execution_time: self.executor.busy(), ..self.stats }
    }

    /// Takes the next task, if any, and executes it unless someone else claimed it first.
    /// Returns whether there was a task.
    pub fn step(&mut self, source: &impl TaskSource) -> bool {
        let Some(tx) = source.next_task(self.slot, self.role) else { return false };
        if self.role != Role::Shadow && source.leave_to_merger(tx, self.ctx.merged) {
            // The merger may be waiting for this very transaction (a requeued redo): it runs it.
            self.ctx.unconfirmed.wakeup().notify();
            return true;
        }
        if let Some(incarnation) = self.table.try_claim(tx) {
            self.execute(source, tx, incarnation);
        }
        true
    }

    /// The worker's EVM, for executions the caller schedules itself (the merger's runs at a
    /// transaction's turn).
    pub fn executor(&mut self) -> &mut TxExecutor<'c, 'a, D> {
        &mut self.executor
    }

    fn execute(&mut self, source: &impl TaskSource, tx: TxIndex, incarnation: u32) {
        if self.role == Role::Primary {
            source.set_busy(self.slot, true);
        }
        // The execution catches its own panics (revm's, the slot database's). One in the work
        // around it (the transaction's environment, the read set, publishing) is a bug of the
        // engine's; caught here, the transaction gets a panicked result, which the merger redoes
        // at its turn (or fails the block with, for a first transaction), instead of staying
        // claimed until the block stalls after `stall_timeout`.
        let run = catch_unwind(AssertUnwindSafe(|| {
            let result = self.executor.execute(tx, incarnation);
            self.ctx.unconfirmed.publish(tx, Arc::new(result));
        }));
        if let Err(panic) = run {
            let outcome = self.executor.panicked(panic.as_ref());
            let result = TxResult { incarnation, outcome, reads: ReadSet::default(), merged_at_start: 0, took: None };
            // The unconfirmed layer may be what broke: then this worker ends as before (its loop's
            // catch), and the block stalls, boundedly.
            if catch_unwind(AssertUnwindSafe(|| self.ctx.unconfirmed.publish(tx, Arc::new(result)))).is_err() {
                resume_unwind(panic);
            }
        }
        if self.table.finish(tx) {
            source.requeue(tx);
        }
        if self.role == Role::Primary {
            source.set_busy(self.slot, false);
        }
        self.stats.executions += 1;
        if self.role == Role::Shadow {
            self.stats.shadow_executions += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Mutex, atomic::AtomicUsize};

    use alloy_primitives::{Address, U256};
    use parevm_statedb::{BaseState, BlockTxs, ExecOutcome, InMemoryDb, Unconfirmed};
    use revm::{
        context::{BlockEnv, CfgEnv, TxEnv},
        primitives::{TxKind, hardfork::SpecId},
        state::AccountInfo,
    };

    use super::*;
    use crate::TxStatus;

    /// Hands out the transactions it was given, once each, in order.
    struct Listed(Mutex<Vec<TxIndex>>);

    impl TaskSource for Listed {
        fn epoch(&self) -> u64 {
            0
        }
        fn is_done(&self) -> bool {
            self.0.lock().unwrap().is_empty()
        }
        fn next_task(&self, _: usize, _: Role) -> Option<TxIndex> {
            let mut txs = self.0.lock().unwrap();
            (!txs.is_empty()).then(|| txs.remove(0))
        }
        fn wait(&self, _: usize, _: Role, _: u64) {}
        fn requeue(&self, _: TxIndex) {}
        fn leave_to_merger(&self, _: TxIndex, _: &AtomicUsize) -> bool {
            false
        }
        fn set_busy(&self, _: usize, _: bool) {}
    }

    /// A panic around an execution (here its transaction's environment, which a bug scheduled
    /// before it was appended) leaves the transaction with a panicked result, not claimed
    /// forever, and the worker's next execution runs on a rebuilt EVM.
    #[test]
    fn a_panic_around_an_execution_publishes_a_panicked_result() {
        let sender = Address::with_last_byte(0xa1);
        let mut db = InMemoryDb::default();
        db.insert_account(sender, AccountInfo::from_balance(U256::from(10).pow(U256::from(18))), Default::default());
        let (base, unconfirmed, merged) = (BaseState::new(&db), Unconfirmed::new(2), AtomicUsize::new(0));
        let txs = BlockTxs::with_capacity(2);
        let transfer = TxEnv {
            caller: sender,
            kind: TxKind::Call(Address::with_last_byte(0xb2)),
            gas_limit: 21_000,
            ..Default::default()
        };
        txs.push(transfer).expect("room");
        let (block, cfg) = (BlockEnv::default(), CfgEnv::new_with_spec(SpecId::CANCUN));
        let ctx = ExecCtx {
            base: &base,
            unconfirmed: &unconfirmed,
            merged: &merged,
            txs: &txs,
            block: &block,
            cfg: &cfg,
            time_executions: false,
        };
        let table = TaskTable::new(2);
        let mut worker = Worker::new(0, Role::Primary, &table, &ctx);
        let source = Listed(Mutex::new(vec![1, 0]));

        assert!(worker.step(&source), "transaction 1, never appended");
        assert_eq!(table.status(1), TxStatus::Done, "finished, not left claimed");
        let result = unconfirmed.newer(1, 0).expect("a result is published");
        match &result.outcome {
            ExecOutcome::Panicked(message) => assert!(message.contains("appended"), "{message}"),
            other => panic!("expected a panicked result, got {other:?}"),
        }

        assert!(worker.step(&source), "transaction 0");
        let result = unconfirmed.newer(0, 0).expect("a result is published");
        assert!(result.state().is_some(), "executed: {:?}", result.outcome);
    }
}
