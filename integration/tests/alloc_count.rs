//! The allocation counter the `parevm` binary installs, installed here the same way (one test in
//! this binary: the count is process-wide).

use parevm::{
    Executor,
    alloc_count::{CountingAlloc, count},
    workloads,
};

#[global_allocator]
static GLOBAL: CountingAlloc<std::alloc::System> = CountingAlloc(std::alloc::System);

#[test]
fn counts_what_the_work_allocates() {
    let (kept, counted) = count(|| (vec![1u8; 100], Box::new(5u64), String::from("x")));
    // Three allocations; the test harness may add one of its own meanwhile.
    assert!(matches!(counted, Some(3..=4)), "{counted:?}");
    drop(kept);

    let erc20 = workloads::Erc20Code::Minimal { reason: String::new() };
    let generated = workloads::generate_txs(workloads::Workload::Transfers, 100, 1, &erc20);
    let (output, counted) = count(|| Executor::Sequential.execute(&generated.chain, &generated.block, &generated.db));
    output.unwrap();
    // At least a receipt per transaction.
    assert!(counted.is_some_and(|n| n >= 100), "{counted:?}");
}
