//! Reads through a slot's StateDB, and the merger's write into the base.
//!
//! Every account and storage read of every execution goes through `SlotDb`: it searches the
//! unconfirmed results newest first, falls through to the base, and records the value. These
//! benches price each path: (a) base only (warm cache over a 1000-account `InMemoryDb`; again with
//! an account seeded with known storage, as in every Cancun block), (b) a
//! hit in the unconfirmed layer N txs back, (c) a miss that walks an N-tx window before reaching
//! the base, (d) storage reads of a token contract that each of N unmerged transactions wrote,
//! at a slot of its own (a worker far ahead of the merger on ERC-20 transfers): of the oldest
//! writers' slots and of slots nobody wrote, and `BaseState::apply` of a typical write set,
//! which the merger pays once per tx.
//! A read iteration is a batch of `BATCH` reads (one `begin`/`finish`), reported per read.

use std::{
    hint::black_box,
    sync::{Arc, atomic::AtomicUsize},
};

use alloy_primitives::{Address, U256};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use parevm_statedb::{BaseState, ExecOutcome, InMemoryDb, ReadSet, SlotDb, TxResult, Unconfirmed};
use revm::{
    Database,
    context::result::{ExecutionResult, Output, ResultGas, SuccessReason},
    state::{Account, AccountInfo, EvmState, EvmStorageSlot},
};

const ACCOUNTS: u64 = 1000;
const SLOTS: u64 = 8;
const BATCH: u64 = 64;

fn addr(i: u64) -> Address {
    InMemoryDb::synthetic_address(i)
}

fn db() -> InMemoryDb {
    InMemoryDb::synthetic(ACCOUNTS, SLOTS)
}

/// A write set: `accounts` touched with a new balance and nonce, one changed slot each.
fn write_set(accounts: impl IntoIterator<Item = u64>, slots: u64) -> EvmState {
    let mut state = EvmState::default();
    for i in accounts {
        let info = AccountInfo { balance: U256::from(i + 7) << 61, nonce: i + 1, ..Default::default() };
        let storage = (0..slots)
            .map(|s| (U256::from(s), EvmStorageSlot::new_changed(U256::ZERO, U256::from(s + 1), Default::default())));
        state.insert(addr(i), Account::from(info).with_storage(storage).with_touched_mark());
    }
    state
}

fn publish(unconfirmed: &Unconfirmed, tx: usize, state: EvmState) {
    let result = ExecutionResult::Success {
        reason: SuccessReason::Stop,
        gas: ResultGas::default(),
        logs: Vec::new(),
        output: Output::Call(Default::default()),
    };
    let outcome = ExecOutcome::Executed { result, state, deferred_reward: None };
    unconfirmed.publish(
        tx,
        Arc::new(TxResult { incarnation: 1, outcome, reads: ReadSet::new(), merged_at_start: 0, took: None }),
    );
}

/// Reads `BATCH` accounts and `BATCH` slots (`keys` cycles over addresses) as tx `reader`.
fn read_batch<D: parevm_statedb::BlockDb>(db: &mut SlotDb<'_, D>, reader: usize, keys: &[u64], storage: bool) {
    db.begin(reader);
    for &k in keys {
        if storage {
            black_box(db.storage(addr(k), U256::ZERO).unwrap());
        } else {
            black_box(db.basic(addr(k)).unwrap());
        }
    }
    black_box(db.finish());
}

fn bench(c: &mut Criterion) {
    let db = db();
    let base = BaseState::new(&db);
    let merged = AtomicUsize::new(0);
    let mut group = c.benchmark_group("slot_db");
    group.throughput(Throughput::Elements(BATCH));
    // Hot keys 0..BATCH live in the unconfirmed layer; cold keys BATCH..2*BATCH only in the base.
    let hot: Vec<u64> = (0..BATCH).collect();
    let cold: Vec<u64> = (BATCH..2 * BATCH).collect();

    // (a) no unconfirmed predecessors: straight to the base (warm after the first pass).
    let empty = Unconfirmed::new(1);
    let mut slot = SlotDb::new(&base, &empty, &merged);
    for storage in [false, true] {
        let kind = if storage { "storage" } else { "basic" };
        group.bench_function(format!("base/{kind}"), |b| b.iter(|| read_batch(&mut slot, 0, &cold, storage)));
    }

    // (a') the same with one account seeded with known storage, as the pre-block system call
    // leaves the beacon-roots contract in every Cancun block.
    let mut seeded = BaseState::new(&db);
    seeded.seed_account(addr(ACCOUNTS + 1), None, true, []).unwrap();
    let mut slot = SlotDb::new(&seeded, &empty, &merged);
    group.bench_function("base_seeded/storage", |b| b.iter(|| read_batch(&mut slot, 0, &cold, true)));

    for n in [1usize, 8, 64] {
        // Tx 0 writes the hot keys; txs 1..n write unrelated transfers; the reader is tx n.
        let unconfirmed = Unconfirmed::new(n + 1);
        publish(&unconfirmed, 0, write_set(hot.iter().copied(), 1));
        for tx in 1..n as u64 {
            publish(&unconfirmed, tx as usize, write_set([200 + 3 * tx, 201 + 3 * tx, 999], 2));
        }
        let mut slot = SlotDb::new(&base, &unconfirmed, &merged);
        for storage in [false, true] {
            let kind = if storage { "storage" } else { "basic" };
            group.bench_with_input(BenchmarkId::new(format!("hit/{kind}"), n), &n, |b, &n| {
                b.iter(|| read_batch(&mut slot, n, &hot, storage))
            });
            group.bench_with_input(BenchmarkId::new(format!("miss/{kind}"), n), &n, |b, &n| {
                b.iter(|| read_batch(&mut slot, n, &cold, storage))
            });
        }
    }

    // (d) a token contract written by each of `n` unmerged transactions, at a slot of its own.
    let token = addr(ACCOUNTS / 2);
    // Spread like mapping keys (keccak hashes): the low bits differ from holder to holder.
    let holder_slot = |i: u64| U256::from(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)) << 64 | U256::from(i * 0x2545_f491);
    for n in [16usize, 256, 1024] {
        let unconfirmed = Unconfirmed::new(n + 1);
        for tx in 0..n as u64 {
            let mut state = EvmState::default();
            let slot = EvmStorageSlot::new_changed(U256::ZERO, U256::from(tx + 1), Default::default());
            // A balance: an empty account would read as destroyed.
            let info = AccountInfo { balance: U256::from(1), ..Default::default() };
            let account = Account::from(info).with_storage([(holder_slot(tx), slot)].into_iter());
            state.insert(token, account.with_touched_mark());
            publish(&unconfirmed, tx as usize, state);
        }
        let mut slot = SlotDb::new(&base, &unconfirmed, &merged);
        // The oldest writers' slots (all `n` of them, over and over, when there are fewer than a
        // batch), and slots nobody wrote.
        let oldest = (0..BATCH).map(|i| holder_slot(i % n as u64)).collect();
        let unwritten = (0..BATCH).map(|i| holder_slot((1 << 20) + i)).collect();
        for (kind, keys) in [("oldest", oldest), ("unwritten", unwritten)] {
            let keys: Vec<U256> = keys;
            group.bench_with_input(BenchmarkId::new(format!("hot_contract/{kind}"), n), &n, |b, &n| {
                b.iter(|| {
                    slot.begin(n);
                    for key in &keys {
                        black_box(slot.storage(token, *key).unwrap());
                    }
                    black_box(slot.finish());
                })
            });
        }
    }
    group.finish();

    // Merger side: a token transfer's write set (sender, recipient contract, coinbase; 2 slots each).
    let ws = write_set([300, 301, 999], 2);
    c.bench_function("base_apply/3acc_6slots", |b| b.iter(|| base.apply(black_box(&ws))));
}

criterion_group!(benches, bench);
criterion_main!(benches);
