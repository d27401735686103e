//! The cheap-block rule: a block of plain transfers runs on the caller's sequential executor.
//!
//! The engine gains by overlapping executions, and it pays for each transaction in bookkeeping
//! (publishing the result, validating its reads, applying its writes to the base state) about
//! what executing a plain transfer costs. The merger's thread also commits every transaction
//! into revm's `State`, serially, exactly as the sequential executor does, and on a transfer
//! that commit is half of the sequential time. So a block made mostly of transfers leaves the
//! engine nothing to overlap that pays for its bookkeeping, and it runs slower than sequential
//! on any number of slots.
//!
//! A transaction's gas limit bounds its work, and it is known before anything executes. The rule
//! takes the block's mean gas limit, each transaction counted up to [`GAS_CAP`] (so that a few
//! generous limits do not lift a block of transfers over the line), and hands a block whose mean
//! is under the threshold (`EngineConfig::sequential_below_gas`) to the sequential executor
//! before the engine starts. 21,000 gas is all a plain transfer can spend: a block under 40,000
//! is mostly transfers, with some room for the wallets that add a margin to the limit. On the
//! 28 mainnet blocks with 100+ transactions the means split cleanly: the four under 40,000
//! (24,000-37,000, mostly exchange deposits and withdrawals) ran at 0.68-0.97x on the engine,
//! the next one up (47,000) gains 1.2-1.3x (`docs/benchmarks.md`, "The cheap-block rule").
//!
//! The same rule hands back a block with little gas in all, whatever its mean: its capped gas
//! limits sum to less than [`SMALL_BLOCK_GAS`]. On such a block (an empty one, one transaction, a
//! dozen cheap ones: a tenth of a millisecond) the engine's fixed cost per block, waking the
//! worker and setting up the block's shared state, is more than it can overlap: the 10 mainnet
//! blocks under 1.5 M ran at 0.50-0.90x on the engine, and the first above (1.8 M, 24
//! transactions) at 1.2x. Only the engine's own entry point judges it: a session (the alloy-evm
//! executor) is handed transactions one at a time and knows their sum only at the end.

/// Gas a single transaction counts for at most in the block's mean.
pub const GAS_CAP: u64 = 100_000;

/// The default threshold: about two plain transfers' gas.
pub const DEFAULT_SEQUENTIAL_BELOW_GAS: u64 = 40_000;

/// A block whose capped gas limits sum to less than this is handed back (see the module docs):
/// fifteen contract calls, or seventy plain transfers.
pub const SMALL_BLOCK_GAS: u64 = 1_500_000;

/// Whether a block of `txs` transactions within a gas limit of `block_gas_limit` is cheap by
/// what it can spend: its transactions cannot use `threshold` gas each on average, since they
/// use at most the block's limit in all (0 turns the rule off). This is the rule as a caller
/// can judge it before seeing any transaction (a session's: it knows the count from its hint);
/// it is not the rule above, which judges limits and takes a block that can spend more per
/// transaction than it does (a pre-London block is full: what it can spend is what it spent).
pub(crate) fn cheap_by_block_gas_limit(block_gas_limit: u64, txs: usize, threshold: u64) -> bool {
    txs > 0 && u128::from(block_gas_limit) < u128::from(threshold) * txs as u128
}

/// The running mean of a block's capped gas limits.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CappedGas {
    total: u64,
    txs: u64,
}

impl CappedGas {
    /// Counts the transactions with these gas limits.
    pub fn of(gas_limits: impl IntoIterator<Item = u64>) -> Self {
        let mut gas = Self::default();
        for limit in gas_limits {
            gas.add(limit);
        }
        gas
    }

    /// Counts one more transaction.
    pub fn add(&mut self, gas_limit: u64) {
        self.total += gas_limit.min(GAS_CAP);
        self.txs += 1;
    }

    /// Whether the whole block counted has too little gas for the engine to pay off (see
    /// [`SMALL_BLOCK_GAS`]); an empty block has none.
    pub fn is_small(&self) -> bool {
        self.total < SMALL_BLOCK_GAS
    }

    /// Whether the transactions counted so far are, on average, too cheap for the engine to pay
    /// off: their mean capped gas limit is under `threshold` (0: never).
    pub fn is_cheap(&self, threshold: u64) -> bool {
        // total < threshold * txs, in u128: no overflow, no rounding.
        self.txs > 0 && u128::from(self.total) < u128::from(threshold) * u128::from(self.txs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_that_cannot_spend_the_threshold_per_transaction_is_cheap() {
        // 14396881: 1,346 transactions in 30 M, at most 22,300 each.
        assert!(cheap_by_block_gas_limit(30_000_000, 1_346, DEFAULT_SEQUENTIAL_BELOW_GAS));
        // 30 M over 750 transactions is exactly 40,000: not under.
        assert!(!cheap_by_block_gas_limit(30_000_000, 750, DEFAULT_SEQUENTIAL_BELOW_GAS));
        assert!(cheap_by_block_gas_limit(30_000_000, 751, DEFAULT_SEQUENTIAL_BELOW_GAS));
        assert!(!cheap_by_block_gas_limit(30_000_000, 1_346, 0), "rule off");
        assert!(!cheap_by_block_gas_limit(30_000_000, 0, DEFAULT_SEQUENTIAL_BELOW_GAS), "nothing to judge");
    }

    #[test]
    fn a_block_of_transfers_is_cheap() {
        assert!(CappedGas::of([21_000; 100]).is_cheap(DEFAULT_SEQUENTIAL_BELOW_GAS));
        // Wallets that add a margin: 25,200 is 21,000 and a fifth.
        assert!(CappedGas::of([25_200; 100]).is_cheap(DEFAULT_SEQUENTIAL_BELOW_GAS));
    }

    #[test]
    fn contract_calls_are_not() {
        assert!(!CappedGas::of([100_000; 100]).is_cheap(DEFAULT_SEQUENTIAL_BELOW_GAS));
        // Three transfers to one call of 100,000 average 40,750.
        let mixed = (0..100).map(|i| if i % 4 == 0 { 100_000 } else { 21_000 });
        assert!(!CappedGas::of(mixed).is_cheap(DEFAULT_SEQUENTIAL_BELOW_GAS));
    }

    #[test]
    fn a_few_generous_limits_do_not_lift_a_block_of_transfers() {
        // Uncapped, two 30 M limits would make the mean 621,000.
        let limits = (0..100).map(|i| if i < 2 { 30_000_000 } else { 21_000 });
        assert!(CappedGas::of(limits).is_cheap(DEFAULT_SEQUENTIAL_BELOW_GAS));
    }

    #[test]
    fn the_threshold_is_strict_and_zero_turns_the_rule_off() {
        assert!(!CappedGas::of([40_000; 3]).is_cheap(40_000));
        assert!(CappedGas::of([40_000, 40_000, 39_999]).is_cheap(40_000));
        assert!(!CappedGas::of([21_000; 100]).is_cheap(0));
        assert!(!CappedGas::default().is_cheap(40_000), "no transactions: nothing to judge");
    }

    #[test]
    fn a_block_with_little_gas_in_all_is_small_whatever_its_mean() {
        assert!(CappedGas::default().is_small(), "an empty block");
        assert!(CappedGas::of([30_000_000]).is_small(), "one transaction counts 100,000 at most");
        assert!(CappedGas::of([100_000; 14]).is_small());
        assert!(!CappedGas::of([100_000; 15]).is_small());
        assert!(CappedGas::of([21_000; 71]).is_small() && !CappedGas::of([21_000; 72]).is_small());
    }

    #[test]
    fn the_running_mean_is_the_mean_of_all_added() {
        let mut gas = CappedGas::default();
        for limit in [21_000, 200_000, 21_000] {
            gas.add(limit);
        }
        // (21,000 + 100,000 + 21,000) / 3 = 47,333.
        assert!(!gas.is_cheap(47_333));
        assert!(gas.is_cheap(47_334));
    }
}
