//! Static dispatch: spreading a block's transactions over the slots before execution starts.
//!
//! `static_dispatch` runs on the caller's thread before any slot has work, so its whole cost is
//! added to every block's latency. This measures it as the engine calls it (its worker slots and
//! the merger's lane) on 200 (a typical mainnet block) and 2000 synthetic transactions at 2 and 8
//! slots. Senders come from a pool of 256 addresses and
//! recipients from a pool of 64 (hot contracts), with gas limits of 21k-300k, drawn from a
//! fixed-seed LCG so every run dispatches the same block.

use std::hint::black_box;

use alloy_primitives::{Address, TxKind};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use parevm_dispatcher::dispatch::static_dispatch;
use parevm_statedb::TxSummary;
use revm::context::TxEnv;

fn txs(n: usize) -> Vec<TxEnv> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        state >> 33
    };
    let address = |tag: u8, i: u64| {
        let mut bytes = [tag; 20];
        bytes[12..].copy_from_slice(&i.to_be_bytes());
        Address::from(bytes)
    };
    (0..n)
        .map(|_| TxEnv {
            caller: address(0xaa, next() % 256),
            kind: TxKind::Call(address(0xcc, next() % 64)),
            gas_limit: 21_000 + next() % 280_000,
            ..Default::default()
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("static_dispatch");
    for n in [200, 2000] {
        let block = txs(n);
        group.throughput(Throughput::Elements(n as u64));
        for slots in [2, 8] {
            group.bench_with_input(BenchmarkId::new(format!("{n}txs"), format!("{slots}slots")), &block, |b, block| {
                b.iter(|| {
                    let summaries: Vec<TxSummary> = black_box(block).iter().map(TxSummary::from).collect();
                    black_box(static_dispatch(&summaries, 0, slots - 1, Default::default(), true, &Default::default()))
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
