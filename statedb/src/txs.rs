//! The block's transactions, as the slots and the merger see them.
//!
//! A whole block arrives at once from the CLI, but the alloy-evm executor receives one
//! transaction per `execute_transaction` call, and the slots should start on the first one while
//! the caller is still handing in the rest. So the list is append-only with a fixed capacity:
//! one thread appends, any thread reads an index it was told about (a queue entry, the merger's
//! counter), and a transaction never moves once set.

use std::sync::{
    OnceLock,
    atomic::{AtomicUsize, Ordering},
};

use revm::context::TxEnv;

use crate::TxIndex;

/// An append-only, fixed-capacity list of transactions.
#[derive(Debug)]
pub struct BlockTxs {
    txs: Txs,
    len: AtomicUsize,
}

#[derive(Debug)]
enum Txs {
    /// A whole block, given at once: kept as given (wrapping each in a cell would copy them all
    /// before the slots start, on every block of the batch path).
    Complete(Vec<TxEnv>),
    /// Filled one by one.
    Appending(Box<[OnceLock<TxEnv>]>),
}

impl BlockTxs {
    /// Room for `capacity` transactions.
    pub fn with_capacity(capacity: usize) -> Self {
        Self { txs: Txs::Appending((0..capacity).map(|_| OnceLock::new()).collect()), len: AtomicUsize::new(0) }
    }

    /// A complete block.
    pub fn from_vec(txs: Vec<TxEnv>) -> Self {
        let len = txs.len();
        Self { txs: Txs::Complete(txs), len: AtomicUsize::new(len) }
    }

    /// Appends `tx`, returning its index, or gives it back when the list is full. One thread
    /// appends.
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

    /// Transaction `tx`. Panics if it was not appended yet, which would be a scheduling bug:
    /// an index is handed out only after its transaction is in.
    pub fn get(&self, tx: TxIndex) -> &TxEnv {
        match &self.txs {
            Txs::Complete(txs) => &txs[tx],
            Txs::Appending(cells) => cells[tx].get().expect("a transaction is scheduled only after it is appended"),
        }
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
            Txs::Complete(txs) => txs.len(),
            Txs::Appending(cells) => cells.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_until_full_then_gives_the_transaction_back() {
        let txs = BlockTxs::with_capacity(2);
        assert!(txs.is_empty());
        assert_eq!(txs.push(TxEnv { nonce: 1, ..Default::default() }), Ok(0));
        assert_eq!(txs.push(TxEnv { nonce: 2, ..Default::default() }), Ok(1));
        let back = txs.push(TxEnv { nonce: 3, ..Default::default() }).unwrap_err();
        assert_eq!((back.nonce, txs.len(), txs.get(1).nonce), (3, 2, 2));
        let complete = BlockTxs::from_vec(vec![TxEnv::default(); 3]);
        assert_eq!((complete.len(), complete.capacity()), (3, 3));
        assert!(complete.push(TxEnv::default()).is_err(), "a complete block takes no more");
    }
}
