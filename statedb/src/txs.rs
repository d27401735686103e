//! The block's transactions, as the slots and the merger see them.
//!
//! A whole block arrives at once from the CLI, but the alloy-evm executor receives one
//! transaction per `execute_transaction` call, and the slots should start on the first one while
//! the caller is still handing in the rest. So the list is append-only with a fixed capacity:
//! one thread appends, any thread reads an index it was told about (a queue entry, the merger's
//! counter), and a transaction never moves once set.
//!
//! A whole block can also be lent as a [`TxSource`], which builds a transaction's `TxEnv` when
//! an execution needs it. Every execution takes a `TxEnv` of its own anyway (revm owns the one
//! it runs), so building it there from the signed transaction costs what copying it from a
//! converted list would, and the block's conversion no longer runs, serially, before the slots
//! start (on a block of cheap transfers it was 3% of the block).

use std::sync::{
    OnceLock,
    atomic::{AtomicUsize, Ordering},
};

use alloy_primitives::Address;
use revm::context::TxEnv;

use crate::TxIndex;

/// What scheduling and merging need of a transaction before executing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxSummary {
    /// Its sender.
    pub sender: Address,
    /// Its recipient; `None` for a contract creation.
    pub recipient: Option<Address>,
    /// Its gas limit.
    pub gas_limit: u64,
    /// For a call of a token's `transfer`, `transferFrom` or `approve` (told by the selector
    /// alone), the holders it names besides the sender: `transfer`'s recipient, `transferFrom`'s
    /// owner and recipient, none for `approve`. `None` for any other transaction. Such calls to
    /// one token touch only the balances and allowances of the holders they name, so the
    /// dispatch groups them by holder rather than by token (see `parevm_dispatcher`'s
    /// `dispatch.rs`).
    pub token_holders: Option<[Option<Address>; 2]>,
    /// Whether it is a plain transfer: a call with no input and no gas beyond the intrinsic
    /// 21,000, which moves ether and runs no code (a recipient with code runs out of gas at
    /// once). Its recipient's credit does not depend on the recipient's balance, and the merger
    /// rebases it (`parevm_merger`'s `credit.rs`), so transfers to one recipient are independent.
    pub plain_transfer: bool,
    /// For a call with input, the function it calls: the input's first four bytes (`None` for a
    /// creation or input shorter than that). With the recipient, it names the call that the
    /// slots remember as heavy when it runs long (`parevm_slots`' `heavy_calls.rs`).
    pub selector: Option<[u8; 4]>,
}

impl TxSummary {
    /// The summary of a transaction from `sender` to `recipient` with this gas limit and input.
    pub fn new(sender: Address, recipient: Option<Address>, gas_limit: u64, input: &[u8]) -> Self {
        let token_holders = recipient.and_then(|_| token_holders(input));
        let plain_transfer = recipient.is_some() && input.is_empty() && gas_limit <= PLAIN_TRANSFER_GAS;
        let selector = recipient.and_then(|_| input.first_chunk::<4>().copied());
        Self { sender, recipient, gas_limit, token_holders, plain_transfer, selector }
    }
}

impl From<&TxEnv> for TxSummary {
    fn from(tx: &TxEnv) -> Self {
        Self::new(tx.caller, tx.kind.to().copied(), tx.gas_limit, &tx.data)
    }
}

/// The selectors of the token calls [`TxSummary::token_holders`] reads.
pub mod token_selector {
    /// `transfer(address to, uint256 amount)`.
    pub const TRANSFER: [u8; 4] = [0xa9, 0x05, 0x9c, 0xbb];
    /// `transferFrom(address from, address to, uint256 amount)`.
    pub const TRANSFER_FROM: [u8; 4] = [0x23, 0xb8, 0x72, 0xdd];
    /// `approve(address spender, uint256 amount)`.
    pub const APPROVE: [u8; 4] = [0x09, 0x5e, 0xa7, 0xb3];
}

/// The intrinsic gas of a call: all a plain transfer can spend.
const PLAIN_TRANSFER_GAS: u64 = 21_000;

/// The holders a token call names (see [`TxSummary::token_holders`]), if `input` is one of
/// the three calls with well-formed address arguments.
fn token_holders(input: &[u8]) -> Option<[Option<Address>; 2]> {
    let (selector, args) = input.split_first_chunk::<4>()?;
    // The `i`th argument as an address: its word's first 12 bytes are zero.
    let address = |i: usize| {
        let word = args.get(32 * i..32 * (i + 1))?;
        word[..12].iter().all(|&b| b == 0).then(|| Address::from_slice(&word[12..]))
    };
    let amount = |i: usize| args.get(32 * i..32 * (i + 1));
    match *selector {
        token_selector::TRANSFER => {
            amount(1)?;
            Some([Some(address(0)?), None])
        }
        token_selector::TRANSFER_FROM => {
            amount(2)?;
            Some([Some(address(0)?), Some(address(1)?)])
        }
        // The sender's allowance only.
        token_selector::APPROVE => {
            amount(1)?;
            address(0)?;
            Some([None, None])
        }
        _ => None,
    }
}

/// A block's transactions held by the caller, converted for revm one at a time, on demand.
pub trait TxSource: Sync {
    /// Number of transactions.
    fn len(&self) -> usize;
    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Transaction `tx` as revm takes it, built anew at every call.
    fn tx_env(&self, tx: TxIndex) -> TxEnv;
    /// Its summary ([`TxSummary::new`]: sender, recipient, gas limit and input), without
    /// building the `TxEnv`.
    fn summary(&self, tx: TxIndex) -> TxSummary;
    /// Its gas limit alone: what the cheap-block rule judges a whole block by before anything
    /// else is built, and what the merger checks against the block's gas at every merge. The
    /// default takes it from the summary; a source that holds the transactions answers without
    /// looking at their input (a summary parses it for token calls).
    fn gas_limit(&self, tx: TxIndex) -> u64 {
        self.summary(tx).gas_limit
    }
    /// Its sender and recipient alone: what the payout-block rule judges a whole block by
    /// before anything else is built. The default takes them from the summary, like
    /// [`TxSource::gas_limit`].
    fn parties(&self, tx: TxIndex) -> (Address, Option<Address>) {
        let summary = self.summary(tx);
        (summary.sender, summary.recipient)
    }
}

/// A block already converted: each execution takes a copy.
impl TxSource for Vec<TxEnv> {
    fn len(&self) -> usize {
        self.len()
    }

    fn tx_env(&self, tx: TxIndex) -> TxEnv {
        self[tx].clone()
    }

    fn summary(&self, tx: TxIndex) -> TxSummary {
        TxSummary::from(&self[tx])
    }

    fn gas_limit(&self, tx: TxIndex) -> u64 {
        self[tx].gas_limit
    }

    fn parties(&self, tx: TxIndex) -> (Address, Option<Address>) {
        (self[tx].caller, self[tx].kind.to().copied())
    }
}

/// An append-only, fixed-capacity list of transactions.
#[derive(Debug)]
pub struct BlockTxs<'t> {
    txs: Txs<'t>,
    len: AtomicUsize,
}

enum Txs<'t> {
    /// A whole block, lent and converted by each execution.
    Source(&'t dyn TxSource),
    /// Filled one by one.
    Appending(Box<[OnceLock<TxEnv>]>),
}

impl std::fmt::Debug for Txs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Source(source) => f.debug_tuple("Source").field(&source.len()).finish(),
            Self::Appending(cells) => f.debug_tuple("Appending").field(&cells.len()).finish(),
        }
    }
}

/// The transactions a [`BlockTxs`] owned, for freeing elsewhere (nothing for a lent source).
#[derive(Debug)]
pub struct OwnedTxs(#[allow(dead_code, reason = "held only to be dropped")] Option<Box<[OnceLock<TxEnv>]>>);

impl BlockTxs<'static> {
    /// Room for `capacity` transactions.
    pub fn with_capacity(capacity: usize) -> Self {
        Self { txs: Txs::Appending((0..capacity).map(|_| OnceLock::new()).collect()), len: AtomicUsize::new(0) }
    }
}

impl<'t> BlockTxs<'t> {
    /// A complete block, lent.
    pub fn from_source(source: &'t dyn TxSource) -> Self {
        Self { txs: Txs::Source(source), len: AtomicUsize::new(source.len()) }
    }

    /// Appends `tx`, returning its index, or gives it back when the list is full (or was not
    /// made to be appended to). One thread appends.
    #[allow(clippy::result_large_err, reason = "the transaction is moved in either way; boxing it would allocate")]
    pub fn push(&self, tx: TxEnv) -> Result<TxIndex, TxEnv> {
        // Relaxed: only the appending thread writes `len`.
        let index = self.len.load(Ordering::Relaxed);
        let Txs::Appending(cells) = &self.txs else { return Err(tx) };
        let Some(cell) = cells.get(index) else { return Err(tx) };
        cell.set(tx)?;
        // Release: a reader that sees the new length (Acquire) sees the transaction.
        self.len.store(index + 1, Ordering::Release);
        Ok(index)
    }

    /// Transaction `tx`, for an execution to own. Panics if it was not appended yet, which
    /// would be a scheduling bug: an index is handed out only after its transaction is in.
    pub fn tx_env(&self, tx: TxIndex) -> TxEnv {
        match &self.txs {
            Txs::Source(source) => source.tx_env(tx),
            Txs::Appending(cells) => Self::appended(cells, tx).clone(),
        }
    }

    /// Sender, recipient and gas limit of transaction `tx` (panics like [`BlockTxs::tx_env`]).
    pub fn summary(&self, tx: TxIndex) -> TxSummary {
        match &self.txs {
            Txs::Source(source) => source.summary(tx),
            Txs::Appending(cells) => TxSummary::from(Self::appended(cells, tx)),
        }
    }

    /// Gas limit of transaction `tx` (panics like [`BlockTxs::tx_env`]), without the summary.
    pub fn gas_limit(&self, tx: TxIndex) -> u64 {
        match &self.txs {
            Txs::Source(source) => source.gas_limit(tx),
            Txs::Appending(cells) => Self::appended(cells, tx).gas_limit,
        }
    }

    /// Sender and recipient of transaction `tx` (panics like [`BlockTxs::tx_env`]).
    pub fn parties(&self, tx: TxIndex) -> (Address, Option<Address>) {
        match &self.txs {
            Txs::Source(source) => source.parties(tx),
            Txs::Appending(cells) => {
                let tx = Self::appended(cells, tx);
                (tx.caller, tx.kind.to().copied())
            }
        }
    }

    fn appended(cells: &[OnceLock<TxEnv>], tx: TxIndex) -> &TxEnv {
        cells[tx].get().expect("a transaction is scheduled only after it is appended")
    }

    /// Transactions appended so far.
    pub fn len(&self) -> usize {
        // Acquire: pairs with `push`'s Release.
        self.len.load(Ordering::Acquire)
    }

    /// Whether none were appended.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Most transactions the list can take.
    pub fn capacity(&self) -> usize {
        match &self.txs {
            Txs::Source(source) => source.len(),
            Txs::Appending(cells) => cells.len(),
        }
    }

    /// What the list owned, which borrows nothing.
    pub fn into_owned(self) -> OwnedTxs {
        OwnedTxs(match self.txs {
            Txs::Appending(cells) => Some(cells),
            Txs::Source(_) => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_call_names_its_holders_and_anything_else_none() {
        let (holder, other) = (Address::with_last_byte(7), Address::with_last_byte(8));
        let word = |address: Address| address.into_word().0.to_vec();
        let amount = vec![0xff; 32];
        let input = |selector: [u8; 4], words: &[Vec<u8>]| [selector.to_vec(), words.concat()].concat();
        let transfer = input(token_selector::TRANSFER, &[word(holder), amount.clone()]);
        assert_eq!(token_holders(&transfer), Some([Some(holder), None]));
        let transfer_from = input(token_selector::TRANSFER_FROM, &[word(holder), word(other), amount.clone()]);
        assert_eq!(token_holders(&transfer_from), Some([Some(holder), Some(other)]));
        let approve = input(token_selector::APPROVE, &[word(holder), amount.clone()]);
        assert_eq!(token_holders(&approve), Some([None, None]));
        // Short arguments, an argument that is no address, another selector, no input.
        assert_eq!(token_holders(&transfer[..transfer.len() - 1]), None);
        assert_eq!(token_holders(&input(token_selector::TRANSFER, &[amount.clone(), amount.clone()])), None);
        assert_eq!(token_holders(&input([0xa9, 0x05, 0x9c, 0xbc], &[word(holder), amount])), None);
        assert_eq!(token_holders(&[]), None);
        // A contract creation whose code happens to start with the selector is no call.
        assert_eq!(TxSummary::new(other, None, 100_000, &transfer).token_holders, None);
        assert_eq!(TxSummary::new(other, Some(other), 100_000, &transfer).token_holders, Some([Some(holder), None]));
    }

    #[test]
    fn a_source_gives_the_parties_its_summary_names() {
        let (a, b) = (Address::with_last_byte(1), Address::with_last_byte(2));
        let txs = vec![
            TxEnv { caller: a, kind: revm::primitives::TxKind::Call(b), ..Default::default() },
            TxEnv { caller: b, kind: revm::primitives::TxKind::Create, ..Default::default() },
        ];
        let lent = BlockTxs::from_source(&txs);
        for tx in 0..txs.len() {
            let summary = txs.summary(tx);
            assert_eq!(txs.parties(tx), (summary.sender, summary.recipient));
            assert_eq!(lent.parties(tx), txs.parties(tx));
        }
        let appended = BlockTxs::with_capacity(1);
        appended.push(txs[0].clone()).unwrap();
        assert_eq!(appended.parties(0), (a, Some(b)));
    }

    #[test]
    fn a_plain_transfer_is_a_call_without_input_or_gas_for_code() {
        let (a, b) = (Address::with_last_byte(1), Address::with_last_byte(2));
        assert!(TxSummary::new(a, Some(b), 21_000, &[]).plain_transfer);
        assert!(!TxSummary::new(a, Some(b), 21_000, &[0]).plain_transfer, "input");
        assert!(!TxSummary::new(a, Some(b), 21_001, &[]).plain_transfer, "gas for code");
        assert!(!TxSummary::new(a, None, 21_000, &[]).plain_transfer, "a creation");
    }

    #[test]
    fn appends_until_full_then_gives_the_transaction_back() {
        let txs = BlockTxs::with_capacity(2);
        assert!(txs.is_empty());
        assert_eq!(txs.push(TxEnv { nonce: 1, ..Default::default() }), Ok(0));
        assert_eq!(txs.push(TxEnv { nonce: 2, ..Default::default() }), Ok(1));
        let back = txs.push(TxEnv { nonce: 3, ..Default::default() }).unwrap_err();
        assert_eq!((back.nonce, txs.len(), txs.tx_env(1).nonce), (3, 2, 2));
        let converted = vec![TxEnv::default(); 3];
        let complete = BlockTxs::from_source(&converted);
        assert_eq!((complete.len(), complete.capacity()), (3, 3));
        assert!(complete.push(TxEnv::default()).is_err(), "a complete block takes no more");
    }

    /// A lent block converts a transaction at each call and answers summaries without converting.
    #[test]
    fn a_lent_block_converts_on_demand_and_takes_no_appends() {
        struct Counting(std::sync::atomic::AtomicUsize);
        impl TxSource for Counting {
            fn len(&self) -> usize {
                4
            }
            fn tx_env(&self, tx: TxIndex) -> TxEnv {
                self.0.fetch_add(1, Ordering::Relaxed);
                TxEnv { nonce: tx as u64, gas_limit: 21_000, ..Default::default() }
            }
            fn summary(&self, _: TxIndex) -> TxSummary {
                TxSummary::new(Address::ZERO, None, 21_000, &[])
            }
        }
        /// A source that answers gas limits itself, unlike `Counting`, which leaves them to the
        /// summary.
        struct OwnLimits;
        impl TxSource for OwnLimits {
            fn len(&self) -> usize {
                1
            }
            fn tx_env(&self, _: TxIndex) -> TxEnv {
                unreachable!("a gas limit converts nothing")
            }
            fn summary(&self, _: TxIndex) -> TxSummary {
                unreachable!("a gas limit needs no summary")
            }
            fn gas_limit(&self, _: TxIndex) -> u64 {
                30_000
            }
        }
        assert_eq!(BlockTxs::from_source(&OwnLimits).gas_limit(0), 30_000);
        let source = Counting(AtomicUsize::new(0));
        let txs = BlockTxs::from_source(&source);
        assert_eq!((txs.len(), txs.capacity()), (4, 4));
        assert_eq!((txs.summary(3).gas_limit, txs.gas_limit(3)), (21_000, 21_000));
        assert_eq!(source.0.load(Ordering::Relaxed), 0, "a summary converts nothing");
        assert_eq!((txs.tx_env(2).nonce, txs.tx_env(2).nonce), (2, 2));
        assert_eq!(source.0.load(Ordering::Relaxed), 2, "each call converts anew");
        assert!(txs.push(TxEnv::default()).is_err(), "a lent block takes no more");
        assert!(txs.into_owned().0.is_none(), "nothing owned to free");
    }
}
