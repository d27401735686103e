//! Static dispatch: which slot runs which transaction first.
//!
//! One pass in block order, as BSC does it: a transaction goes to the slot that already has its
//! sender, else the slot that already has its recipient, else the least-loaded slot; then its
//! sender and recipient are mapped to that slot. Transactions likely to conflict (same sender:
//! a nonce chain; same recipient: the same contract) thus run in order in one slot, where a later
//! one reads the earlier one's unconfirmed writes instead of conflicting with them. Load is
//! measured in gas limit, the best cost estimate available before execution. Imbalance left by
//! affinity is corrected at run time by stealing.
//!
//! A token's `transfer`, `transferFrom` and `approve` (told by their selectors) go by the holders
//! they name instead of by the token: they read and write only those holders' balances and
//! allowances, so calls to one token from different holders are independent, and following the
//! token put a block's every transfer of it in one lane, which the other thread could only steal
//! from. ERC-20 transfers went from 0.62–0.78x to 0.93–0.94x (`parevm bench --workload erc20`);
//! on the 100+ transaction mainnet blocks, where such calls are a sixth of the transactions, the
//! geomean went from 1.232x to 1.240x, and 10760440 from 1.18x to 1.27x, its redos from 0.10 to
//! 0.04 per transaction (`docs/benchmarks-log.md`, "Changes measured alone"). A token that does more
//! in `transfer` (a fee to a collector) is still validated like any contract: its calls are
//! redone when they conflict.
//!
//! One kind of transaction goes to no slot: one sent from or to the block's beneficiary. It reads
//! the beneficiary's balance, which every earlier transaction's fee changes, so an early
//! execution is stale whenever any fee is still unmerged (pool payout blocks are hundreds of
//! such transactions in a row). It is left to the merger, which runs a transaction nobody has
//! claimed itself when its turn comes, on exact state.
//!
//! A plain transfer (no input, no gas beyond the intrinsic 21,000) goes by its sender alone. It
//! credits its recipient without reading the recipient's balance, and the merger rebases such a
//! credit instead of redoing it (`parevm_merger`'s `credit.rs`), so transfers to one recipient
//! (an exchange's deposit wallet) are independent, and following the recipient only put them in
//! one lane. On the 100+ transaction mainnet blocks, where 3,252 of 9,012 transactions are
//! plain transfers, eight alternating pairs: geomean 1.247 -> 1.251x; in three earlier pairs with
//! a temporary switch, 1.233 -> 1.249x (6196166 0.89 -> 0.97x).
//!
//! Heavy transactions start first. A transaction that may take a large share of the block (its
//! gas limit at least a sixteenth of all the block's limits, and a million gas) goes to the
//! front of a worker's queue, unless its sender has an earlier transaction in the block (its
//! nonce would not be there yet). A worker's, whatever its affinity: in the merger's lane it
//! ran on the merger's thread and stopped the merges for as long as it ran (mainnet, four
//! pairs: geomean 1.223 -> 1.234x, 5526571 1.02 -> 1.10x, 7279999 1.37 -> 1.54x; with token
//! calls going by their holders, which had moved 18426253's 5M transaction into the merger's
//! lane, 1.41 -> 1.73x there). In block order such a transaction starts when the slot reaches
//! it, and the block then waits for it to the end: on mainnet blocks with one transaction of
//! 1-4 ms (12244000, 18426253, 18988207, 19929064) the other thread idled or waited for most of
//! that. Started first, it runs beside the rest of the block; if a predecessor changes what it
//! read, it is redone at its turn, which is where it would have run anyway. A session is handed
//! transactions one at a time and cannot see the block's limits ahead: it measures against the
//! block's gas limit instead ([`HeavyArrivals`]), and a heavy transaction goes ahead of every
//! lane's queue as it arrives (`Scheduler::push_heavy`). On the 100+ transaction mainnet blocks
//! through the drop-in with the parent state, 18426253 went from 1.28x to 1.78x and 19929064
//! from 1.23x to 1.63x (geomean 1.271 -> 1.308x); without the parent state the slot waits on
//! the caller's answers anyway, and nothing changed (0.949 -> 0.956x).
//!
//! A transaction is heavy too when its call (recipient and selector) ran long before, whatever
//! its gas limit: a proof verification spends milliseconds of a gas limit that the rule above
//! cannot see. The engine remembers, across blocks, the calls of transactions with 200,000 gas
//! or more whose merged executions took 500 µs or more twice in a row (`parevm_slots`'
//! `heavy_calls.rs`).
//!
//! The merger's thread has a lane of its own. In the batch path it is the last queue, which that
//! thread executes from between merges (`Role::Merger`), with affinity like a slot's and half a
//! worker's share of the gas (its load counts double), since the thread also merges and commits
//! every transaction. When it helped the first slot from that slot's queue instead, consecutive
//! transactions of one sender or one contract ran on both threads at once and the later one was
//! stale: a chain of calls to one contract in the middle of a block (mainnet 6196166) was then
//! executed twice, and the chain rule handed the block back at 0.74–0.86x; with the lane the
//! chain stays on one thread and the block runs at 1.02–1.17x. A session (the alloy-evm
//! executor) gives the merger's thread a lane too. Where the caller's thread must answer the
//! slots' reads (it owns the database), its lane is not a queue: it executes the lane's
//! transactions at their turn, exactly, on its own EVM, while the slots run ahead with the
//! others. Where the slots read the block's parent state themselves, its lane is a queue as in
//! the batch path, with the same share.

use alloy_primitives::{
    Address,
    map::{AddressMap, AddressSet},
};
use parevm_slots::HeavyCalls;
use parevm_statedb::TxSummary;

/// The dispatch pass, one transaction at a time: a block handed in transaction by transaction
/// (the alloy-evm executor) is dispatched as the same block handed in whole would be over the
/// same lanes (a session has one more, the merger's; see the module's notes).
#[derive(Debug)]
pub struct Dispatcher {
    /// Per lane: the slots, then the merger's lane if it has one.
    load: Vec<u128>,
    affinity: AddressMap<usize>,
    beneficiary: Address,
    slots: usize,
    /// The last lane's load counts this many times over when choosing the least-loaded lane: 2
    /// for the batch path's merger lane (half a worker's share, see `static_dispatch`), else 1.
    last_lane_weight: u128,
    /// Transactions from or to the beneficiary so far.
    beneficiary_txs: usize,
    /// The lanes that are workers' (the first ones): all but the merger's.
    workers: usize,
}

impl Dispatcher {
    /// A pass over `slots` slots, for a block paying `beneficiary`.
    pub fn new(slots: usize, beneficiary: Address) -> Self {
        Self::with_lanes(slots, 0, beneficiary)
    }

    /// A pass over `slots` slots and one more lane for the merger's thread, whose transactions
    /// go to no slot: the merger executes them at their turn.
    pub fn with_merger_lane(slots: usize, beneficiary: Address) -> Self {
        Self::with_lanes(slots, 1, beneficiary)
    }

    /// A pass over `slots` slots and one more lane for the merger's thread that is a queue (the
    /// batch path's, and a session's whose slots read the parent state themselves), whose load
    /// counts double: the merger also merges and commits every transaction.
    pub fn with_merger_queue(slots: usize, beneficiary: Address) -> Self {
        Self {
            last_lane_weight: MERGER_LANE_WEIGHT,
            workers: slots.max(1),
            ..Self::with_lanes(slots.max(1) + 1, 0, beneficiary)
        }
    }

    fn with_lanes(slots: usize, merger_lanes: usize, beneficiary: Address) -> Self {
        let slots = slots.max(1);
        let load = vec![0; slots + merger_lanes];
        Self {
            load,
            affinity: AddressMap::default(),
            beneficiary,
            slots,
            last_lane_weight: 1,
            beneficiary_txs: 0,
            workers: slots,
        }
    }

    /// Transactions from or to the beneficiary so far (they went to no slot).
    pub fn beneficiary_txs(&self) -> usize {
        self.beneficiary_txs
    }

    /// The slot the next transaction goes to; `None`: to none, the merger runs it at its turn. A
    /// `heavy` one (see the module's notes) goes to the least-loaded worker's lane whatever its
    /// affinity, never to the merger's.
    pub fn assign(&mut self, tx: TxSummary, heavy: bool) -> Option<usize> {
        if is_beneficiary_tx(self.beneficiary, tx.sender, tx.recipient) {
            self.beneficiary_txs += 1;
            return None;
        }
        // Sender first, then the recipient, or, for a token call, the holders it names; a plain
        // transfer's recipient is none of its business (see the module's notes).
        let keys = match tx.token_holders {
            Some([first, second]) => [Some(tx.sender), first, second],
            None if tx.plain_transfer => [Some(tx.sender), None, None],
            None => [Some(tx.sender), tx.recipient, None],
        };
        let least_loaded = |lanes: usize| {
            let last = self.load.len() - 1;
            let weighted = |s: usize| if s == last { self.load[s] * self.last_lane_weight } else { self.load[s] };
            (0..lanes).min_by_key(|&s| (weighted(s), s)).expect("at least one slot")
        };
        let slot = if heavy {
            least_loaded(self.workers)
        } else {
            keys.iter()
                .flatten()
                .find_map(|key| self.affinity.get(key))
                .copied()
                .unwrap_or_else(|| least_loaded(self.load.len()))
        };
        // Every transaction costs at least the intrinsic 21000 gas; count that at minimum so that
        // zero-gas test transactions still spread.
        self.load[slot] += u128::from(tx.gas_limit.max(21_000));
        for key in keys.into_iter().flatten() {
            self.affinity.insert(key, slot);
        }
        (slot < self.slots).then_some(slot)
    }
}

/// Whether a transaction from `from` to `to` is from or to the beneficiary: such transactions go
/// to no slot (every fee credits the beneficiary, so they depend on all their predecessors).
pub(crate) fn is_beneficiary_tx(beneficiary: Address, from: Address, to: Option<Address>) -> bool {
    from == beneficiary || to == Some(beneficiary)
}

/// The test for heavy transactions (see the module's notes), one transaction at a time in block
/// order: no earlier transaction from the same sender, and a gas limit at the line or a call
/// the engine remembers as heavy. A session judges its transactions as they arrive, against a
/// line of a sixteenth of the block's gas limit and a million gas; the batch path against the
/// total of the gas limits of the transactions it dispatches (`heavy_txs`).
#[derive(Debug)]
pub struct HeavyArrivals {
    line: u128,
    senders: AddressSet,
}

impl HeavyArrivals {
    /// For a block of `block_gas_limit`.
    pub fn new(block_gas_limit: u64) -> Self {
        Self::with_line(heavy_line(u128::from(block_gas_limit)))
    }

    fn with_line(line: u128) -> Self {
        Self { line, senders: AddressSet::default() }
    }

    /// Whether `tx`, the block's next transaction, is heavy, by its gas limit or as a call
    /// `calls` remembers. Called for every transaction, in order: it records the sender.
    pub fn arrives(&mut self, tx: &TxSummary, calls: &HeavyCalls) -> bool {
        self.judge(tx, || calls.is_heavy(tx))
    }

    fn judge(&mut self, tx: &TxSummary, remembered: impl FnOnce() -> bool) -> bool {
        self.senders.insert(tx.sender) && (u128::from(tx.gas_limit) >= self.line || remembered())
    }
}

/// The least gas limit of a heavy transaction, against `gas`: the block's total of gas limits
/// (the batch path), or its gas limit (a session, which does not see the rest ahead).
fn heavy_line(gas: u128) -> u128 {
    (gas / HEAVY_SHARE).max(u128::from(HEAVY_MIN_GAS))
}

/// The batch path's merger lane gets 1/this of a worker's share of the block's gas.
const MERGER_LANE_WEIGHT: u128 = 2;

/// A transaction is heavy (see the module's notes) with at least this share of the block's gas
/// limits...
const HEAVY_SHARE: u128 = 16;
/// ...and at least this much gas.
const HEAVY_MIN_GAS: u64 = 1_000_000;

/// For each slot, the transactions it starts with: heavy ones first, then the rest, each in block
/// order (those that go to no slot are in none of the lists). `txs[i]` is the block's transaction
/// `first + i` (the caller merged those before `first`: see `ParallelBlock::prefix`).
///
/// With `merger_lane`, there is one more queue, the last, for the merger's thread, which executes
/// from it between merges (`Role::Merger`).
pub fn static_dispatch(
    txs: &[TxSummary],
    first: usize,
    slots: usize,
    beneficiary: Address,
    merger_lane: bool,
    calls: &HeavyCalls,
) -> Vec<Vec<usize>> {
    let mut dispatcher = if merger_lane {
        Dispatcher::with_merger_queue(slots, beneficiary)
    } else {
        Dispatcher::new(slots, beneficiary)
    };
    // A sender and a recipient per transaction: sized once rather than rehashed as it grows.
    dispatcher.affinity.reserve(2 * txs.len());
    let mut queues = vec![Vec::new(); dispatcher.slots];
    let heavy = heavy_txs(txs, calls);
    let is_heavy = |i: usize| heavy.as_ref().is_some_and(|heavy| heavy[i]);
    for (i, tx) in txs.iter().enumerate() {
        if let Some(slot) = dispatcher.assign(*tx, is_heavy(i)) {
            queues[slot].push(first + i);
        }
    }
    if heavy.is_some() {
        for queue in &mut queues {
            if queue.iter().any(|&tx| is_heavy(tx - first)) {
                let (mut reordered, light): (Vec<usize>, Vec<usize>) =
                    queue.iter().partition(|&&tx| is_heavy(tx - first));
                reordered.extend(light);
                *queue = reordered;
            }
        }
    }
    queues
}

/// For each block index, the sender's previous transaction in the block, if any (`None` before
/// `first`): a transaction executed before it reads a stale nonce. The scheduler keeps a thief
/// from taking such a transaction out of its sender's lane (see `scheduler.rs`).
pub fn sender_predecessors(txs: &[TxSummary], first: usize) -> Vec<Option<usize>> {
    let mut last = AddressMap::<usize>::default();
    last.reserve(txs.len());
    let mut predecessors = vec![None; first];
    predecessors.extend(txs.iter().enumerate().map(|(i, tx)| last.insert(tx.sender, first + i)));
    predecessors
}

/// For each of `txs`, whether it is heavy (see the module's notes), by its gas against the
/// block's total or as a call `calls` remembers; `None` if no transaction can be, which spares
/// most blocks the pass over their senders.
fn heavy_txs(txs: &[TxSummary], calls: &HeavyCalls) -> Option<Vec<bool>> {
    let total: u128 = txs.iter().map(|tx| u128::from(tx.gas_limit)).sum();
    let line = heavy_line(total);
    let remembered = calls.heavy(txs);
    if remembered.is_none() && txs.iter().all(|tx| u128::from(tx.gas_limit) < line) {
        return None;
    }
    let mut arrivals = HeavyArrivals::with_line(line);
    Some(
        txs.iter()
            .enumerate()
            .map(|(i, tx)| arrivals.judge(tx, || remembered.as_ref().is_some_and(|r| r[i])))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{TxKind, address};
    use parevm_statedb::token_selector::{TRANSFER, TRANSFER_FROM};
    use revm::context::TxEnv;

    /// No heavy calls remembered.
    static NONE: std::sync::LazyLock<HeavyCalls> = std::sync::LazyLock::new(HeavyCalls::default);

    /// A beneficiary none of the test transactions involves.
    const NOBODY: Address = Address::repeat_byte(0xfe);

    /// A call with a byte of input: never a plain transfer, whatever its gas.
    fn tx(from: Address, to: Address, gas: u64) -> TxEnv {
        TxEnv { caller: from, kind: TxKind::Call(to), gas_limit: gas, data: vec![0].into(), ..Default::default() }
    }

    #[test]
    fn a_session_sees_a_heavy_transaction_by_the_blocks_gas_limit_and_its_senders_first() {
        let (a, b) = (Address::repeat_byte(1), Address::repeat_byte(2));
        let mut heavy = HeavyArrivals::new(32_000_000);
        let summary = |from, gas| TxSummary::from(&tx(from, NOBODY, gas));
        assert!(!heavy.arrives(&summary(a, 21_000), &NONE), "light");
        assert!(!heavy.arrives(&summary(a, 5_000_000), &NONE), "its sender sent before: its nonce is not there yet");
        assert!(!heavy.arrives(&summary(b, 1_999_999), &NONE), "under a sixteenth of the block");
        let mut heavy = HeavyArrivals::new(32_000_000);
        assert!(heavy.arrives(&summary(b, 2_000_000), &NONE));
        assert!(HeavyArrivals::new(1_000_000).arrives(&summary(a, 1_000_000), &NONE), "a million gas at least");
        assert!(!HeavyArrivals::new(1_000_000).arrives(&summary(a, 999_999), &NONE));
    }

    fn dispatch(txs: &[TxEnv], slots: usize, beneficiary: Address) -> Vec<Vec<usize>> {
        let summaries: Vec<TxSummary> = txs.iter().map(TxSummary::from).collect();
        static_dispatch(&summaries, 0, slots, beneficiary, false, &NONE)
    }

    #[test]
    fn same_sender_and_same_recipient_share_a_slot() {
        let (a, b, c, d, x) = (
            address!("0x00000000000000000000000000000000000000a1"),
            address!("0x00000000000000000000000000000000000000b2"),
            address!("0x00000000000000000000000000000000000000c3"),
            address!("0x00000000000000000000000000000000000000d4"),
            address!("0x00000000000000000000000000000000000000e5"),
        );
        let txs = vec![tx(a, x, 21_000), tx(b, c, 21_000), tx(a, d, 21_000), tx(d, c, 21_000), tx(x, b, 21_000)];
        let queues = dispatch(&txs, 2, NOBODY);
        // tx0 a->x: slot 0 (a, x -> 0). tx1 b->c: nothing mapped, least loaded is slot 1 (b, c -> 1).
        // tx2 a->d: sender a -> slot 0 (d -> 0). tx3 d->c: the sender's slot wins over the
        // recipient's: slot 0. tx4 x->b: sender x -> slot 0.
        assert_eq!(queues, vec![vec![0, 2, 3, 4], vec![1]]);
        // Recipient affinity applies when the sender is new.
        let txs = vec![tx(a, x, 21_000), tx(b, c, 21_000), tx(d, c, 21_000)];
        assert_eq!(dispatch(&txs, 2, NOBODY), vec![vec![0], vec![1, 2]]);
    }

    #[test]
    fn unrelated_transactions_balance_by_gas() {
        let txs: Vec<_> = (0..8u8)
            .map(|i| {
                tx(Address::with_last_byte(i), Address::with_last_byte(100 + i), if i == 0 { 80_000 } else { 21_000 })
            })
            .collect();
        let queues = dispatch(&txs, 2, NOBODY);
        // Loads after each step: 80k|0, 80k|21k, 80k|42k, 80k|63k, 80k|84k, 101k|84k, 101k|105k, 122k|105k.
        assert_eq!(queues[0], vec![0, 5, 7]);
        assert_eq!(queues[1], vec![1, 2, 3, 4, 6]);
        assert_eq!(queues.iter().map(Vec::len).sum::<usize>(), 8);
    }

    #[test]
    fn one_slot_gets_every_transaction_but_the_beneficiarys_in_order() {
        let (coinbase, a, b) = (Address::with_last_byte(0xcb), Address::with_last_byte(1), Address::with_last_byte(2));
        let txs = vec![tx(a, b, 21_000), tx(coinbase, a, 21_000), tx(b, a, 90_000), tx(b, coinbase, 21_000)];
        assert_eq!(dispatch(&txs, 1, coinbase), vec![vec![0, 2]]);
        assert_eq!(dispatch(&txs, 0, coinbase), vec![vec![0, 2]]);
    }

    #[test]
    fn transactions_from_or_to_the_beneficiary_go_to_no_slot() {
        let (coinbase, a, b) = (Address::with_last_byte(0xcb), Address::with_last_byte(1), Address::with_last_byte(2));
        let txs = vec![tx(coinbase, a, 21_000), tx(a, b, 21_000), tx(b, coinbase, 21_000), tx(b, a, 21_000)];
        let queues = dispatch(&txs, 2, coinbase);
        assert_eq!(queues, vec![vec![1, 3], vec![]]);
    }

    #[test]
    fn the_merger_lane_is_balanced_like_a_slot_and_keeps_affinity() {
        let (a, b, c, d) = (
            Address::with_last_byte(1),
            Address::with_last_byte(2),
            Address::with_last_byte(3),
            Address::with_last_byte(4),
        );
        let mut dispatcher = Dispatcher::with_merger_lane(1, NOBODY);
        let lanes: Vec<_> = [tx(a, b, 21_000), tx(c, d, 21_000), tx(a, d, 21_000), tx(c, b, 21_000), tx(d, a, 21_000)]
            .iter()
            .map(|t| dispatcher.assign(t.into(), false))
            .collect();
        // a->b: slot 0. c->d: the least-loaded lane is the merger's. a->d: a's lane. c->b: c's
        // lane (the sender wins). d->a: d was mapped to slot 0 by a->d.
        assert_eq!(lanes, vec![Some(0), None, Some(0), None, Some(0)]);
        assert_eq!(dispatcher.beneficiary_txs(), 0);
    }

    #[test]
    fn the_batch_paths_merger_lane_is_a_queue_with_half_a_share_and_keeps_affinity() {
        let (to, other) = (Address::with_last_byte(0xdd), Address::with_last_byte(0xee));
        // Twelve senders of one transaction each, to distinct recipients: balanced two to one.
        let spread: Vec<_> =
            (0..12u8).map(|i| tx(Address::with_last_byte(i), Address::with_last_byte(100 + i), 21_000)).collect();
        let queues = dispatch_with_merger_lane(&spread);
        assert_eq!(queues.len(), 2, "one worker slot and the merger's lane");
        assert_eq!((queues[0].len(), queues[1].len()), (8, 4), "{queues:?}");
        // A chain of calls to one contract, from many senders, stays in one lane, whichever.
        let mut chain: Vec<_> = (0..6u8).map(|i| tx(Address::with_last_byte(i), other, 21_000)).collect();
        chain.extend((6..12u8).map(|i| tx(Address::with_last_byte(i), to, 50_000)));
        let queues = dispatch_with_merger_lane(&chain);
        let lane_of = |tx: usize| queues.iter().position(|q| q.contains(&tx)).unwrap();
        assert!((7..12).all(|t| lane_of(t) == lane_of(6)), "{queues:?}");
        assert!((1..6).all(|t| lane_of(t) == lane_of(0)), "{queues:?}");
        // Transactions from or to the beneficiary still go to no lane.
        let beneficiary = Address::with_last_byte(0xbe);
        let summaries: Vec<TxSummary> =
            [tx(beneficiary, to, 21_000), tx(to, other, 21_000)].iter().map(TxSummary::from).collect();
        assert_eq!(static_dispatch(&summaries, 0, 1, beneficiary, true, &NONE), vec![vec![1], vec![]]);
    }

    fn dispatch_with_merger_lane(txs: &[TxEnv]) -> Vec<Vec<usize>> {
        let summaries: Vec<TxSummary> = txs.iter().map(TxSummary::from).collect();
        static_dispatch(&summaries, 0, 1, NOBODY, true, &NONE)
    }

    #[test]
    fn one_slot_gets_everything_in_order() {
        let txs: Vec<_> =
            (0..5u8).map(|i| tx(Address::with_last_byte(i), Address::with_last_byte(i), 21_000)).collect();
        assert_eq!(dispatch(&txs, 1, NOBODY), vec![vec![0, 1, 2, 3, 4]]);
    }

    #[test]
    fn heavy_transactions_go_first_unless_their_sender_comes_earlier() {
        let sender = Address::with_last_byte;
        let to = Address::with_last_byte(0xdd);
        // 20 transactions of 100k and two of 5M: 10.6M in all, a sixteenth is 662,500, so the
        // 5M ones are heavy and the 100k ones are not.
        let mut txs: Vec<_> = (0..20u8).map(|i| tx(sender(i), to, 100_000)).collect();
        txs.insert(7, tx(sender(50), to, 5_000_000));
        txs.push(tx(sender(51), to, 5_000_000));
        let mut expected = vec![7, 21];
        expected.extend((0..21).filter(|&i| i != 7));
        assert_eq!(dispatch(&txs, 1, NOBODY), vec![expected]);
        // The last one's sender also sent transaction 3: it keeps its place.
        txs[21].caller = sender(3);
        let mut expected = vec![7];
        expected.extend((0..22).filter(|&i| i != 7));
        assert_eq!(dispatch(&txs, 1, NOBODY), vec![expected]);
        // Under a million gas nothing is heavy, whatever its share.
        let small: Vec<_> = (0..4u8).map(|i| tx(sender(i), to, if i == 3 { 900_000 } else { 21_000 })).collect();
        assert_eq!(dispatch(&small, 1, NOBODY), vec![vec![0, 1, 2, 3]]);
        // With more slots, each queue puts its own heavy transactions first.
        let queues = dispatch(&txs, 2, NOBODY);
        assert!(queues.iter().any(|q| q.first() == Some(&7)), "{queues:?}");
        for queue in &queues {
            let light: Vec<_> = queue.iter().filter(|&&tx| tx != 7).collect();
            assert!(light.is_sorted(), "{queue:?}");
        }
    }

    /// A call of `selector` with these words as arguments.
    fn call(from: Address, to: Address, selector: [u8; 4], words: &[[u8; 32]]) -> TxEnv {
        let mut data = selector.to_vec();
        words.iter().for_each(|word| data.extend_from_slice(word));
        TxEnv { data: data.into(), ..tx(from, to, 60_000) }
    }

    fn word(address: Address) -> [u8; 32] {
        address.into_word().0
    }

    #[test]
    fn token_calls_go_by_the_holders_they_name_not_by_the_token() {
        let (token, amount) = (Address::with_last_byte(0xdd), [0u8; 32]);
        let (a, b, c, d, e) = (
            Address::with_last_byte(1),
            Address::with_last_byte(2),
            Address::with_last_byte(3),
            Address::with_last_byte(4),
            Address::with_last_byte(5),
        );
        let txs = vec![
            call(a, token, TRANSFER, &[word(b), amount]),
            // Another sender and holder: the other slot, though the token is the same.
            call(c, token, TRANSFER, &[word(d), amount]),
            // Names d: d's slot.
            call(e, token, TRANSFER, &[word(d), amount]),
            // transferFrom(b, e): b's slot, its first holder.
            call(Address::with_last_byte(6), token, TRANSFER_FROM, &[word(b), word(e), amount]),
            // Any other call to the token goes by the token, which no token call mapped: to the
            // least-loaded slot (tied at 120,000 gas each: the first).
            tx(Address::with_last_byte(7), token, 60_000),
        ];
        assert_eq!(dispatch(&txs, 2, NOBODY), vec![vec![0, 3, 4], vec![1, 2]]);
        // Without the holders (plain calls to the token), all of them follow the token.
        let plain: Vec<_> = txs.iter().map(|t| TxEnv { data: Default::default(), ..t.clone() }).collect();
        assert_eq!(dispatch(&plain, 2, NOBODY), vec![vec![0, 1, 2, 3, 4], vec![]]);
    }

    #[test]
    fn plain_transfers_go_by_their_sender_alone() {
        let (exchange, other) = (Address::with_last_byte(0xdd), Address::with_last_byte(0xee));
        let plain =
            |from: u8| TxEnv { data: Default::default(), ..tx(Address::with_last_byte(from), exchange, 21_000) };
        // Four deposits to one exchange spread like unrelated transactions; the exchange's own
        // transaction (a call) goes by its sender, which no deposit mapped.
        let txs = vec![plain(1), plain(2), plain(3), plain(4), tx(exchange, other, 21_000)];
        assert_eq!(dispatch(&txs, 2, NOBODY), vec![vec![0, 2, 4], vec![1, 3]]);
        // With input, or gas for code to run, a transfer to the exchange follows it.
        let calls =
            vec![tx(Address::with_last_byte(1), exchange, 21_000), tx(Address::with_last_byte(2), exchange, 21_000)];
        assert_eq!(dispatch(&calls, 2, NOBODY), vec![vec![0, 1], vec![]]);
        let generous = TxEnv { gas_limit: 21_001, ..plain(2) };
        assert_eq!(dispatch(&[plain(1), generous.clone()], 2, NOBODY), vec![vec![0], vec![1]]);
        assert_eq!(dispatch(&[calls[0].clone(), generous], 2, NOBODY), vec![vec![0, 1], vec![]]);
    }

    #[test]
    fn a_heavy_transaction_goes_to_a_workers_lane_whatever_its_affinity() {
        let (pool, other) = (Address::with_last_byte(0xdd), Address::with_last_byte(0xee));
        // The first call to the pool lands in the merger's lane (the worker's is loaded first);
        // the heavy one to the same pool (5M of 5.2M in all) goes to the worker's lane, first,
        // and the pool's later calls follow it there.
        let txs = vec![
            tx(Address::with_last_byte(1), other, 100_000),
            tx(Address::with_last_byte(2), pool, 21_000),
            tx(Address::with_last_byte(3), pool, 5_000_000),
            tx(Address::with_last_byte(4), pool, 21_000),
        ];
        assert_eq!(dispatch_with_merger_lane(&txs), vec![vec![2, 0, 3], vec![1]]);
        // Not heavy (under a million gas): it follows the pool into the merger's lane.
        let mut light = txs.clone();
        light[2].gas_limit = 900_000;
        assert_eq!(dispatch_with_merger_lane(&light), vec![vec![0], vec![1, 2, 3]]);
    }

    #[test]
    fn a_call_remembered_as_heavy_goes_first_in_a_workers_lane_whatever_its_gas() {
        let (pool, verifier) = (Address::with_last_byte(0xdd), Address::with_last_byte(0xee));
        // A proof verification that ran long before, at the block's end with a modest gas limit.
        let verify =
            |from: u8| TxEnv { data: vec![1, 2, 3, 4].into(), ..tx(Address::with_last_byte(from), verifier, 400_000) };
        let txs = [
            tx(Address::with_last_byte(1), pool, 100_000),
            tx(Address::with_last_byte(2), pool, 100_000),
            verify(3),
            verify(1),
        ];
        let summaries: Vec<TxSummary> = txs.iter().map(TxSummary::from).collect();
        let plan = |calls: &HeavyCalls| static_dispatch(&summaries, 0, 1, NOBODY, true, calls);
        // By gas alone the verification lands in the merger's lane, the worker's being loaded.
        assert_eq!(plan(&NONE), vec![vec![0, 1, 3], vec![2]]);
        let calls = HeavyCalls::default();
        calls.remember(&summaries[2]);
        // Transaction 3 makes the same call, but its sender's nonce comes after transaction 0's:
        // it follows its sender, in block order.
        assert_eq!(plan(&calls), vec![vec![2, 0, 1, 3], vec![]]);

        // A session sees it as it arrives.
        let mut arrivals = HeavyArrivals::new(30_000_000);
        let heavy: Vec<bool> = summaries.iter().map(|tx| arrivals.arrives(tx, &calls)).collect();
        assert_eq!(heavy, [false, false, true, false]);

        // After a prefix of two merged elsewhere, the block indices stay, and transaction 3 is
        // now its sender's first of the transactions dispatched: both start first.
        let rest = static_dispatch(&summaries[2..], 2, 2, NOBODY, false, &calls);
        assert_eq!(rest, vec![vec![2], vec![3]]);
        // Unremembered, 3 follows 2 to the verifier's slot.
        assert_eq!(static_dispatch(&summaries[2..], 2, 2, NOBODY, false, &NONE), vec![vec![2, 3], vec![]]);
    }

    #[test]
    fn transactions_after_a_prefix_keep_their_block_indices() {
        let txs: Vec<_> =
            (0..4u8).map(|i| tx(Address::with_last_byte(i), Address::with_last_byte(i), 21_000)).collect();
        let summaries: Vec<TxSummary> = txs.iter().map(TxSummary::from).collect();
        assert_eq!(static_dispatch(&summaries, 10, 1, NOBODY, false, &NONE), vec![vec![10, 11, 12, 13]]);
        assert_eq!(static_dispatch(&summaries, 10, 2, NOBODY, false, &NONE), vec![vec![10, 12], vec![11, 13]]);
    }
}
