//! The chain rule: when a block turns out to be a chain of dependent transactions, the caller's
//! sequential executor runs the rest of it.
//!
//! Speculation pays only when most results survive validation. Where most transactions must be
//! redone (every transaction touching one hot account, one pool everybody trades on), each is
//! executed twice and still goes through the merger's bookkeeping, which on a cheap transaction
//! costs about as much as executing it: no schedule of ours beats the sequential executor there.
//! The rule cannot know this before executing (ERC-20 transfers all call one contract and are
//! independent), so it watches the merge: at the end of every window of [`WINDOW`] merged
//! transactions, if the block so far needed at least one redo for every two transactions, the
//! engine stops speculating and hands the rest of the block back, and the caller executes it
//! sequentially. The verdict is given as soon as it is certain (redos only grow), so a block that
//! is a chain from the start pays for half a window; a chain of thousands then runs at the
//! sequential executor's speed.
//!
//! The rate is the block's so far, not the last window's: real blocks have bursts (a popular
//! mint, a run of swaps on one pool) in which a window is mostly redone, and handing the whole
//! rest of such a block to the sequential executor lost more than the burst cost (mainnet, 49
//! blocks at 1 slot: 1.07-1.20x total with a per-window rule, 1.19-1.22x with the block's rate,
//! 1.20-1.22x without a rule; `parevm bench --slots 1,2 --runs 5 --warmup 1`).

//!
//! A block can also be a chain by construction: transactions from or to the beneficiary go to no
//! slot (see `dispatch.rs`) and the merger runs them one by one at their turn. When most of a
//! block is such transactions (a mining pool paying out from its coinbase: mainnet blocks
//! 5891667 and 12520364 are 379 of 380 and 650 of 660), the engine is a sequential executor
//! with bookkeeping added, and the rule hands the block back before starting (batch) or once a
//! window of transactions has been handed in (session).
//!
//! Watching the merge costs a chain the engine's setup for the whole block and about a window of
//! speculation: on a block of cheap transactions to one contract that is 5-10% of the block (the
//! `hot` workload: 1148 transactions, handed back after 18, 0.90-0.92x). A block that opens with
//! calls to one account is therefore judged before the engine starts, by the [`ChainProbe`]: the
//! caller executes its first transactions itself, one by one, as the sequential executor would
//! (nothing is lost), and the probe measures the longest chain of dependencies among them from
//! their write sets. A chain runs sequentially from there; anything else goes to the engine,
//! which takes over after the probed transactions. Calls to one ERC-20 contract are independent
//! (different balance slots) and the probe lets them go after a handful; a pool everybody
//! trades on, or a counter everybody bumps, is a chain from the first transaction.

use std::collections::HashMap;

use alloy_primitives::{Address, U256};
use parevm_merger::credited_recipient;
use parevm_statedb::{AccountWrite, TxIndex, TxSource, classify_write};
use revm::{
    context::TxEnv,
    primitives::KECCAK_EMPTY,
    state::{AccountInfo, EvmState},
};

/// Merged transactions per judgement.
pub const WINDOW: usize = 32;

/// The default threshold: half of a window redone.
pub const DEFAULT_REDOS: usize = WINDOW / 2;

/// Watches one block's merge.
#[derive(Debug, Clone)]
pub(crate) struct ChainRule {
    /// Redos per window's worth of merged transactions at which the rule trips; `None`: never.
    threshold: Option<usize>,
    /// Where the current window started, counted from `origin`.
    window_start: TxIndex,
    /// The first transaction the engine merges (the caller merged those before: see
    /// [`ChainProbe`]); the rate counts from there.
    origin: TxIndex,
}

impl ChainRule {
    /// A rule for a block starting at transaction 0 that trips once the block's redos so far
    /// reach `threshold` per [`WINDOW`] merged transactions at the end of a window, or are certain
    /// to (see [`ChainRule::tripped`]; `None`: never; 0: at the end of the first window).
    pub fn new(threshold: Option<usize>) -> Self {
        Self::starting_at(threshold, 0)
    }

    /// A rule for a block whose transactions before `origin` the caller merged itself.
    pub fn starting_at(threshold: Option<usize>, origin: TxIndex) -> Self {
        Self { threshold, window_start: 0, origin }
    }

    /// Called after each merge with the number of merged transactions and the block's redos so
    /// far; returns `true` when the rest of the block should run sequentially.
    ///
    /// Redos only grow, so once they reach what the end of the current window would require,
    /// that window's verdict is certain: the rule gives it at once rather than executing the rest
    /// of the window speculatively (a chain from the start is handed back after half a window).
    /// A zero threshold keeps its meaning for tests: at the end of the first window.
    pub fn tripped(&mut self, merged: TxIndex, redos: u64) -> bool {
        let Some(threshold) = self.threshold else { return false };
        let merged = merged.saturating_sub(self.origin);
        let window_end = self.window_start + WINDOW;
        if threshold > 0 && redos * WINDOW as u64 >= threshold as u64 * window_end as u64 {
            return true;
        }
        if merged < window_end {
            return false;
        }
        self.window_start = merged;
        redos * WINDOW as u64 >= threshold as u64 * merged as u64
    }
}

/// The rule as first written, judged only at window ends: what [`ChainRule::tripped`] must
/// agree with, window by window.
#[cfg(test)]
fn tripped_at_window_end(threshold: usize, window_start: &mut TxIndex, merged: TxIndex, redos: u64) -> bool {
    if merged < *window_start + WINDOW {
        return false;
    }
    *window_start = merged;
    redos * WINDOW as u64 >= threshold as u64 * merged as u64
}

/// Whether a block whose first `txs` transactions include `beneficiary_txs` from or to the
/// beneficiary is serial by construction (judged once at least a window's worth is known).
pub(crate) fn mostly_beneficiary_txs(threshold: Option<usize>, beneficiary_txs: usize, txs: usize) -> bool {
    threshold.is_some() && txs >= WINDOW && 2 * beneficiary_txs > txs
}

/// Transactions a probe executes at most: enough to tell a chain (every one depends on the one
/// before) from a block with some conflicts, few enough to cost a large block nothing (they run
/// at the sequential executor's speed, not slower).
pub const PROBE_TXS: usize = 16;

/// The longest chain among the probed transactions that makes a block a chain: three quarters.
const PROBE_CHAIN: usize = PROBE_TXS * 3 / 4;

/// What a probed transaction depended on or wrote: an account's balance, nonce or code, or one
/// storage slot (ERC-20 transfers share the contract but not its slots).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Account(Address),
    Slot(Address, U256),
}

/// Judges a block by its first transactions, executed one by one by the caller: the longest
/// chain of transactions each reading something an earlier one wrote, as the engine would see
/// it. So the beneficiary is left out (every fee changes it, and the engine credits fees at
/// merge), and so is the balance a plain transfer only adds to (the engine rebases such a
/// credit instead of redoing it, `merger/src/credit.rs`: deposits to one wallet are no chain).
#[derive(Debug)]
pub struct ChainProbe {
    beneficiary: Address,
    /// For each account or slot written so far: the length of the longest chain ending with its
    /// last writer.
    written: HashMap<Key, usize>,
    observed: usize,
    longest: usize,
}

impl ChainProbe {
    /// Whether a block is worth probing before starting the engine (see [`ChainProbe`]): at least
    /// `PROBE_CHAIN` (12) of its first `PROBE_TXS` (16) transactions call one account, and the block is
    /// large enough for the engine to have most of it after the probe. Costs a look at the first
    /// transactions' recipients, nothing more; a block that fails it goes straight to the engine.
    pub fn wanted(txs: &(impl TxSource + ?Sized)) -> bool {
        let opening = Self::opening(txs.len());
        Self::wanted_opening(txs.len(), (0..opening).map(|tx| txs.summary(tx).recipient))
    }

    /// How many of a block of `len` transactions [`ChainProbe::wanted`] looks at: its first
    /// `PROBE_TXS` (16), or none if the block is too short to be probed. A caller that is handed
    /// the block one transaction at a time (a session's) holds that many back before deciding.
    pub fn opening(len: usize) -> usize {
        if len < 4 * PROBE_TXS { 0 } else { PROBE_TXS }
    }

    /// [`ChainProbe::wanted`] from the block's length and the recipients of its first
    /// [`ChainProbe::opening`] transactions (`None`: a contract creation).
    pub fn wanted_opening(len: usize, recipients: impl IntoIterator<Item = Option<Address>>) -> bool {
        if Self::opening(len) == 0 {
            return false;
        }
        let recipients: Vec<Address> = recipients.into_iter().take(PROBE_TXS).flatten().collect();
        recipients.iter().any(|to| recipients.iter().filter(|other| *other == to).count() >= PROBE_CHAIN)
    }

    /// A probe of a block paying `beneficiary`.
    pub fn new(beneficiary: Address) -> Self {
        Self { beneficiary, written: HashMap::new(), observed: 0, longest: 0 }
    }

    /// Transactions observed so far.
    pub fn observed(&self) -> usize {
        self.observed
    }

    /// Records the next transaction, `tx`, executed and not yet committed: `state` is its
    /// `EvmState` (every account and slot it loaded, changed or not), `before` an account's info
    /// before it (`None`: it did not exist). An account counts as written when its info changed
    /// or it was created or destroyed; a touched account whose info is unchanged (a contract that
    /// was only called) counts as read.
    pub fn observe<'s>(&mut self, tx: &TxEnv, state: &EvmState, before: impl Fn(&Address) -> Option<&'s AccountInfo>) {
        let codeless = |info: Option<&AccountInfo>| info.is_some_and(|info| info.code_hash == KECCAK_EMPTY);
        // Credited only, and rebased by the engine, under the conditions `credit.rs` checks.
        let credited = credited_recipient(tx, self.beneficiary)
            .filter(|to| codeless(before(to)) && codeless(state.get(to).map(|account| &account.info)));
        let beneficiary = self.beneficiary;
        let accounts = || state.iter().filter(move |(address, _)| **address != beneficiary);
        let depends_on = accounts()
            .flat_map(|(address, account)| {
                (Some(*address) != credited)
                    .then_some(Key::Account(*address))
                    .into_iter()
                    .chain(account.storage.keys().map(|slot| Key::Slot(*address, *slot)))
            })
            .filter_map(|key| self.written.get(&key).copied())
            .max()
            .unwrap_or(0);
        let length = depends_on + 1;
        for (address, account) in accounts() {
            let changed = match classify_write(account) {
                AccountWrite::None => false,
                AccountWrite::Changed => before(address) != Some(&account.info),
                AccountWrite::Created | AccountWrite::Destroyed => true,
            };
            if changed {
                self.written.insert(Key::Account(*address), length);
            }
            for (slot, _) in account.storage.iter().filter(|(_, value)| value.is_changed()) {
                self.written.insert(Key::Slot(*address, *slot), length);
            }
        }
        self.longest = self.longest.max(length);
        self.observed += 1;
    }

    /// The verdict as soon as it is certain: `Some(true)`, a chain (run the block sequentially);
    /// `Some(false)`, not one (start the engine after the observed transactions); `None`, observe
    /// another. A chain grows by at most one per transaction, so a block whose chain cannot reach
    /// `PROBE_CHAIN` by `PROBE_TXS` is let go early (independent transactions after 7).
    pub fn verdict(&self) -> Option<bool> {
        if self.longest >= PROBE_CHAIN {
            Some(true)
        } else if self.longest + PROBE_TXS.saturating_sub(self.observed) < PROBE_CHAIN {
            Some(false)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds merges one at a time; `redone(i)` says whether transaction `i` needed a redo.
    fn trips_at(threshold: Option<usize>, txs: usize, redone: impl Fn(usize) -> bool) -> Option<TxIndex> {
        let mut rule = ChainRule::new(threshold);
        let mut redos = 0;
        for tx in 0..txs {
            redos += u64::from(redone(tx));
            if rule.tripped(tx + 1, redos) {
                return Some(tx + 1);
            }
        }
        None
    }

    #[test]
    fn a_chain_trips_as_soon_as_its_first_window_is_certain_to() {
        // 16 redos out of 16: the first window cannot end below half.
        assert_eq!(trips_at(Some(DEFAULT_REDOS), 1000, |_| true), Some(DEFAULT_REDOS));
    }

    #[test]
    fn half_of_a_window_redone_trips_and_less_does_not() {
        // Transactions 0, 2, ..., 30 redone: the 16th redo comes with the 31st merge.
        assert_eq!(trips_at(Some(DEFAULT_REDOS), 1000, |tx| tx % 2 == 0), Some(WINDOW - 1));
        assert_eq!(trips_at(Some(DEFAULT_REDOS), 1000, |tx| tx % 3 == 0), None);
    }

    #[test]
    fn a_chain_that_starts_late_trips_once_it_is_half_the_block() {
        // Independent for 100 transactions, then a chain. The window ending at 192 would need 96
        // redos (there are 92 then); the one ending at 224 needs 112, reached at 212.
        assert_eq!(trips_at(Some(DEFAULT_REDOS), 1000, |tx| tx >= 100), Some(212));
    }

    #[test]
    fn the_early_verdict_is_the_window_end_verdict() {
        // Pseudo-random redo patterns of varying density: the rule trips in exactly the window
        // whose end the original rule trips at, never in another one.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for density in [2u64, 3, 4, 6, 10] {
            for _ in 0..200 {
                let pattern: Vec<bool> = (0..400)
                    .map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        seed.is_multiple_of(density)
                    })
                    .collect();
                let early = trips_at(Some(DEFAULT_REDOS), pattern.len(), |tx| pattern[tx]);
                let (mut start, mut redos, mut late) = (0, 0, None);
                for (tx, &redone) in pattern.iter().enumerate() {
                    redos += u64::from(redone);
                    if tripped_at_window_end(DEFAULT_REDOS, &mut start, tx + 1, redos) {
                        late = Some(tx + 1);
                        break;
                    }
                }
                match (early, late) {
                    (None, None) => {}
                    (Some(e), Some(l)) => assert!(e <= l && l - e < WINDOW, "early {e}, at window end {l}"),
                    other => panic!("verdicts differ: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn a_burst_in_a_long_block_does_not_trip() {
        // A window entirely redone, after 200 independent transactions.
        assert_eq!(trips_at(Some(DEFAULT_REDOS), 1000, |tx| (200..232).contains(&tx)), None);
    }

    #[test]
    fn a_steady_rate_below_half_never_trips() {
        // 15 redos in every window: below half, forever.
        assert_eq!(trips_at(Some(DEFAULT_REDOS), 10_000, |tx| tx % WINDOW < 15), None);
    }

    #[test]
    fn a_zero_threshold_trips_at_the_end_of_the_first_window() {
        assert_eq!(trips_at(Some(0), 1000, |_| false), Some(WINDOW));
    }

    #[test]
    fn a_block_of_mostly_beneficiary_transactions_is_serial() {
        assert!(mostly_beneficiary_txs(Some(DEFAULT_REDOS), 379, 380));
        assert!(!mostly_beneficiary_txs(Some(DEFAULT_REDOS), 23, 1346));
        assert!(!mostly_beneficiary_txs(Some(DEFAULT_REDOS), 10, 10), "fewer than a window");
        assert!(!mostly_beneficiary_txs(None, 379, 380), "rule off");
    }

    #[test]
    fn a_rule_starting_after_a_prefix_counts_from_there() {
        // 50 transactions merged by the caller, then a chain: half a window after the origin.
        let mut rule = ChainRule::starting_at(Some(DEFAULT_REDOS), 50);
        let tripped = (1..=100u64).find(|&redos| rule.tripped(50 + redos as usize, redos));
        assert_eq!(tripped, Some(DEFAULT_REDOS as u64));
    }

    #[test]
    fn a_disabled_rule_never_trips() {
        assert_eq!(trips_at(None, 1000, |_| true), None);
    }

    mod probe {
        use super::super::*;
        use alloy_primitives::{Address, TxKind, U256};
        use revm::state::{Account, EvmStorageSlot, TransactionId};

        const BENEFICIARY: Address = Address::repeat_byte(0xbe);
        const CONTRACT: Address = Address::repeat_byte(0xc0);

        fn sender(i: usize) -> Address {
            Address::left_padding_from(&(0x1000 + i as u32).to_be_bytes())
        }

        fn call(from: Address, to: Address, value: u64) -> TxEnv {
            TxEnv { caller: from, kind: TxKind::Call(to), value: U256::from(value), ..Default::default() }
        }

        /// An account a transaction touched: balance added, slots loaded as (slot, old, new).
        type Touch<'a> = (Address, u64, &'a [(u64, u64, u64)]);

        /// Plays transactions through a probe, keeping the accounts' infos as a commit would.
        struct Run {
            probe: ChainProbe,
            infos: HashMap<Address, AccountInfo>,
        }

        impl Run {
            fn new() -> Self {
                let code_hash = alloy_primitives::B256::repeat_byte(0xcc);
                let infos = HashMap::from([(CONTRACT, AccountInfo { code_hash, ..AccountInfo::default() })]);
                Self { probe: ChainProbe::new(BENEFICIARY), infos }
            }

            /// `tx` touched `changes` (address, balance added, slots read or written as
            /// (slot, old, new)); it also pays the beneficiary a fee.
            fn tx(&mut self, tx: TxEnv, changes: &[Touch<'_>]) -> Option<bool> {
                let mut state = EvmState::default();
                for &(address, added, slots) in changes.iter().chain([&(BENEFICIARY, 1, &[][..])]) {
                    let mut info = self.infos.get(&address).cloned().unwrap_or_default();
                    info.balance += U256::from(added);
                    if address == tx.caller {
                        info.nonce += 1;
                    }
                    let mut account = Account::from(info);
                    account.mark_touch();
                    for &(slot, old, new) in slots {
                        let value = EvmStorageSlot::new_changed(U256::from(old), U256::from(new), TransactionId::ZERO);
                        account.storage.insert(U256::from(slot), value);
                    }
                    state.insert(address, account);
                }
                let infos = &self.infos;
                self.probe.observe(&tx, &state, |address| infos.get(address));
                for (address, account) in state {
                    self.infos.insert(address, account.info);
                }
                self.probe.verdict()
            }
        }

        #[test]
        fn a_counter_everybody_bumps_is_a_chain() {
            let mut run = Run::new();
            for i in 0..PROBE_CHAIN - 1 {
                let slot: &[_] = &[(0, i as u64, i as u64 + 1)];
                assert_eq!(run.tx(call(sender(i), CONTRACT, 0), &[(sender(i), 0, &[]), (CONTRACT, 0, slot)]), None);
            }
            let i = PROBE_CHAIN - 1;
            let slot: &[_] = &[(0, i as u64, i as u64 + 1)];
            assert_eq!(run.tx(call(sender(i), CONTRACT, 0), &[(sender(i), 0, &[]), (CONTRACT, 0, slot)]), Some(true));
        }

        #[test]
        fn token_transfers_between_distinct_holders_are_let_go_early() {
            let mut run = Run::new();
            // Each reads the contract (unchanged) and moves two slots of its own.
            let mut verdicts = Vec::new();
            for i in 0..PROBE_TXS {
                let (from, to) = (2 * i as u64, 2 * i as u64 + 1);
                let slots: &[_] = &[(from, 100, 90), (to, 0, 10)];
                verdicts.push(run.tx(call(sender(i), CONTRACT, 0), &[(sender(i), 0, &[]), (CONTRACT, 0, slots)]));
                if verdicts.last() != Some(&None) {
                    break;
                }
            }
            // A chain of 1 can reach 12 by the 16th transaction until 6 are seen.
            assert_eq!(verdicts.len(), PROBE_TXS - PROBE_CHAIN + 2);
            assert_eq!(verdicts.last(), Some(&Some(false)));
        }

        #[test]
        fn deposits_to_one_wallet_are_no_chain_but_a_payout_from_it_depends_on_them() {
            let wallet = Address::repeat_byte(0xaa);
            let mut run = Run::new();
            run.infos.insert(wallet, AccountInfo::default());
            for i in 0..PROBE_TXS - 1 {
                assert_ne!(run.tx(call(sender(i), wallet, 5), &[(sender(i), 0, &[]), (wallet, 5, &[])]), Some(true));
            }
            assert_eq!(run.probe.longest, 1);
            // The wallet spending (it observes its balance) follows every deposit.
            let payout = call(wallet, sender(99), 1);
            run.tx(payout, &[(wallet, 0, &[]), (sender(99), 1, &[])]);
            assert_eq!(run.probe.longest, 2);
        }

        #[test]
        fn a_value_call_to_a_contract_is_a_read_of_its_balance() {
            // Code runs at the target: it may observe the balance, so no rebase and a chain.
            let mut run = Run::new();
            for i in 0..PROBE_CHAIN {
                run.tx(call(sender(i), CONTRACT, 5), &[(sender(i), 0, &[]), (CONTRACT, 5, &[])]);
            }
            assert_eq!(run.probe.verdict(), Some(true));
        }

        #[test]
        fn the_beneficiary_links_nothing() {
            let mut run = Run::new();
            for i in 0..PROBE_TXS {
                run.tx(call(sender(i), sender(1000 + i), 1), &[(sender(i), 0, &[]), (sender(1000 + i), 1, &[])]);
            }
            assert_eq!(run.probe.longest, 1);
            assert_eq!(run.probe.verdict(), Some(false));
        }

        #[test]
        fn only_blocks_opening_with_calls_to_one_account_and_long_enough_are_probed() {
            let block = |to_contract: usize, len: usize| -> Vec<TxEnv> {
                (0..len).map(|i| call(sender(i), if i < to_contract { CONTRACT } else { sender(500 + i) }, 0)).collect()
            };
            assert!(ChainProbe::wanted(&block(PROBE_CHAIN, 4 * PROBE_TXS)));
            assert!(!ChainProbe::wanted(&block(PROBE_CHAIN - 1, 4 * PROBE_TXS)));
            assert!(!ChainProbe::wanted(&block(PROBE_TXS, 4 * PROBE_TXS - 1)));
        }
    }
}
