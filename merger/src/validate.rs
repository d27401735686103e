//! Read-set validation: is every value an execution read still the merged value?
//!
//! Run by the merger when the transaction's turn comes, so the base holds exactly its
//! sequential pre-state and nothing writes to the base meanwhile. Large read sets are split
//! over a thread pool; small ones are cheaper to check inline than to fan out.
//!
//! Validation never reads the database. Almost every key an execution read is in the base
//! (loaded by that read, or written by a merged transaction); the exception is a value read from
//! an unconfirmed result whose final execution no longer writes it. Such a read counts as stale:
//! its source was a stale result, and the redo is exact. Fetching it instead would ask the
//! database's server, which in a session is the very thread that is validating.
//!
//! The merger validates with [`validate_since`]: a value read from the base whose key no merge
//! changed since the execution started is current by the merger's own log (`changes.rs`),
//! without a lookup in the shared maps; [`validate`] compares every value.

use parevm_statedb::{BaseState, BlockDb, Read, ReadSet, TxIndex};
use rayon::prelude::*;

use crate::changes::ChangeLog;

/// Read sets at least this long are validated in parallel when a pool is given.
pub const PARALLEL_VALIDATION_MIN_READS: usize = 256;

/// The first read found stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mismatch(pub Read);

pub(crate) fn current<D: BlockDb>(base: &BaseState<D>, read: &Read) -> bool {
    match *read {
        Read::Account(address, seen) => base.cached_snapshot(address) == Some(seen),
        Read::Storage(address, slot, seen) => base.cached_storage(address, slot) == Some(seen),
        // Says how the balance was used; whether the value is current is the `Account` read's.
        Read::Balance(..) => true,
    }
}

/// Checks `reads` against `base`; `None` if all are current.
pub fn validate<D: BlockDb>(base: &BaseState<D>, reads: &[Read], pool: Option<&rayon::ThreadPool>) -> Option<Mismatch> {
    match pool {
        Some(pool) if reads.len() >= PARALLEL_VALIDATION_MIN_READS => {
            pool.install(|| reads.par_iter().find_any(|read| !current(base, read)).map(|read| Mismatch(*read)))
        }
        _ => reads.iter().find(|read| !current(base, read)).map(|read| Mismatch(*read)),
    }
}

/// Like [`validate`], with the same answer (the first stale read), but a value read from the
/// base whose key no merge changed since the execution started, with `since` transactions
/// merged, passes on the merger's own log without a look at the base (`changes.rs`). Values
/// read from unconfirmed results are checked as `validate` checks them.
pub(crate) fn validate_since<D: BlockDb>(
    base: &BaseState<D>,
    reads: &ReadSet,
    changes: &ChangeLog,
    since: TxIndex,
    pool: Option<&rayon::ThreadPool>,
) -> Option<Mismatch> {
    if pool.is_some() && reads.len() >= PARALLEL_VALIDATION_MIN_READS {
        return validate(base, reads, pool);
    }
    let mut unconfirmed = reads.unconfirmed().iter().copied().peekable();
    reads
        .iter()
        .enumerate()
        .find(|&(at, read)| {
            // Called for every read in order until one is stale, so the positions keep pace.
            let from_unconfirmed = unconfirmed.next_if_eq(&(at as u32)).is_some();
            (from_unconfirmed || !changes.unchanged_since(read, since)) && !current(base, read)
        })
        .map(|(_, read)| Mismatch(*read))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{Address, U256};
    use parevm_statedb::{Applied, InMemoryDb, ReadSetPool};
    use revm::{
        DatabaseRef,
        bytecode::Bytecode,
        primitives::B256,
        state::{Account, AccountInfo},
    };

    /// A database validation must never touch.
    #[derive(Debug)]
    struct Untouchable;

    impl DatabaseRef for Untouchable {
        type Error = std::convert::Infallible;
        fn basic_ref(&self, _: Address) -> Result<Option<AccountInfo>, Self::Error> {
            panic!("validation read the database")
        }
        fn code_by_hash_ref(&self, _: B256) -> Result<Bytecode, Self::Error> {
            panic!("validation read the database")
        }
        fn storage_ref(&self, _: Address, _: U256) -> Result<U256, Self::Error> {
            panic!("validation read the database")
        }
        fn block_hash_ref(&self, _: u64) -> Result<B256, Self::Error> {
            panic!("validation read the database")
        }
    }

    /// A base that holds one account (balance 5) and nothing else, and a current read of it.
    fn base_knowing_one_account() -> (BaseState<Untouchable>, Address, Read) {
        let base = BaseState::new(Untouchable);
        let address = InMemoryDb::synthetic_address(0);
        base.fill_account(address, Some(AccountInfo::from_balance(U256::from(5))));
        let known = Read::Account(address, base.cached_snapshot(address).unwrap());
        (base, address, known)
    }

    #[test]
    fn a_value_the_base_does_not_hold_is_stale_and_never_fetched() {
        let (base, address, known) = base_knowing_one_account();
        let unknown_slot = Read::Storage(address, U256::from(1), U256::from(7));
        let unknown_account = Read::Account(InMemoryDb::synthetic_address(1), None);
        assert_eq!(validate(&base, &[known], None), None);
        assert_eq!(validate(&base, &[known, unknown_slot], None), Some(Mismatch(unknown_slot)));
        assert_eq!(validate(&base, &[unknown_account], None), Some(Mismatch(unknown_account)));
    }

    #[test]
    fn a_long_read_set_is_judged_the_same_split_over_a_pool() {
        let (base, address, known) = base_knowing_one_account();
        let stale = Read::Account(address, Some((&AccountInfo::from_balance(U256::from(6))).into()));
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let mut reads = vec![known; 2 * PARALLEL_VALIDATION_MIN_READS];
        assert_eq!(validate(&base, &reads, Some(&pool)), None);
        reads[PARALLEL_VALIDATION_MIN_READS + 7] = stale;
        assert_eq!(validate(&base, &reads, Some(&pool)), Some(Mismatch(stale)));
    }

    #[test]
    fn base_reads_no_merge_changed_pass_on_the_log_and_the_rest_are_checked_by_value() {
        let (base, address, known) = base_knowing_one_account();
        let stale = Read::Account(address, Some((&AccountInfo::from_balance(U256::from(6))).into()));
        // Never cached: the base cannot vouch for it, so by value it is stale.
        let elsewhere = Read::Account(InMemoryDb::synthetic_address(1), None);
        let pool = ReadSetPool::new(1);
        let mut changes = ChangeLog::default();
        // Transaction 4's merge changed the account.
        let changed = Applied { account: true, wiped: false };
        changes.record(4, address, &Account::from(AccountInfo::default()), changed);

        // Started with 4 merged: it read the account before that merge, so the value is checked.
        let mut reads = pool.take();
        reads.extend([elsewhere, known, stale]);
        assert_eq!(validate_since(&base, &reads, &changes, 4, None), Some(Mismatch(stale)));
        // Started with 5 merged: nothing changed since, so nothing is looked up.
        assert_eq!(validate_since(&base, &reads, &changes, 5, None), None);
        assert_eq!(validate(&base, &reads, None), Some(Mismatch(elsewhere)));

        // A value from an unconfirmed result is checked whatever the log says.
        let mut reads = pool.take();
        reads.push(elsewhere);
        reads.push_unconfirmed(stale);
        assert_eq!(reads.unconfirmed(), [1]);
        assert_eq!(validate_since(&base, &reads, &changes, 5, None), Some(Mismatch(stale)));
        let mut reads = pool.take();
        reads.push_unconfirmed(known);
        assert_eq!(validate_since(&base, &reads, &changes, 5, None), None);
    }
}
