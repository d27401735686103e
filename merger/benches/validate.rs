//! Read-set validation: the merger's per-transaction check that every value read is still current.
//!
//! The merger is the engine's one sequential stage, and validation is most of its work per
//! transaction, so its cost bounds the block's throughput. This measures `validate` on read sets
//! of 16, 256 and 4096 reads (a quarter accounts, the rest storage) against a warm base over a
//! 1000-account `InMemoryDb`, inline and on a 2-thread rayon pool (sets below
//! `PARALLEL_VALIDATION_MIN_READS` run inline either way), when all reads are valid (the common
//! case: the whole set is scanned) and when only the last one is stale.

use std::hint::black_box;

use alloy_primitives::{Address, U256};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use parevm_merger::validate;
use parevm_statedb::{AccountSnapshot, BaseState, InMemoryDb, Read};

const ACCOUNTS: u64 = 1000;
const SLOTS: u64 = 8;

fn addr(i: u64) -> Address {
    InMemoryDb::synthetic_address(i)
}

fn db() -> InMemoryDb {
    InMemoryDb::synthetic(ACCOUNTS, SLOTS)
}

/// `n` distinct reads with their current values (which also warms the base's cache).
fn reads(base: &BaseState<&InMemoryDb>, n: u64) -> Vec<Read> {
    (0..n)
        .map(|i| {
            let a = addr(i / 4 % ACCOUNTS);
            if i % 4 == 0 {
                Read::Account(a, base.basic(a).unwrap().as_ref().map(AccountSnapshot::from))
            } else {
                let slot = U256::from((i / 4 / ACCOUNTS * 3 + i % 4) % SLOTS);
                Read::Storage(a, slot, base.storage(a, slot).unwrap())
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let db = db();
    let base = BaseState::new(&db);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let mut group = c.benchmark_group("validate");
    for n in [16u64, 256, 4096] {
        let valid = reads(&base, n);
        let mut stale = valid.clone();
        if let Some(Read::Storage(_, _, value)) = stale.last_mut() {
            *value += U256::from(1);
        }
        assert_eq!(validate(&base, &stale, None).map(|m| m.0), stale.last().copied());
        group.throughput(Throughput::Elements(n));
        for (case, set) in [("valid", &valid), ("stale_last", &stale)] {
            for (mode, p) in [("inline", None), ("pool2", Some(&pool))] {
                group.bench_with_input(BenchmarkId::new(format!("{case}/{mode}"), n), set, |b, set| {
                    b.iter(|| black_box(validate(&base, black_box(set), p)))
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
