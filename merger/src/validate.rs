//! Read-set validation: is every value an execution read still the merged value?
//!
//! Run by the merger when the transaction's turn comes, so the base holds exactly its
//! sequential pre-state and nothing writes to the base meanwhile. Large read sets are split
//! over a thread pool; small ones are cheaper to check inline than to fan out.

use parevm_statedb::{BaseState, BlockDb, DbError, Read};
use rayon::prelude::*;

/// Read sets at least this long are validated in parallel when a pool is given.
pub const PARALLEL_VALIDATION_MIN_READS: usize = 256;

/// The first read found stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mismatch(pub Read);

fn check<D: BlockDb>(base: &BaseState<D>, read: &Read) -> Result<bool, DbError> {
    Ok(match *read {
        Read::Account(address, seen) => base.snapshot(address)? == seen,
        Read::Storage(address, slot, seen) => base.storage(address, slot)? == seen,
    })
}

/// Checks `reads` against `base`; `Ok(None)` if all are current.
pub fn validate<D: BlockDb>(
    base: &BaseState<D>,
    reads: &[Read],
    pool: Option<&rayon::ThreadPool>,
) -> Result<Option<Mismatch>, DbError> {
    match pool {
        Some(pool) if reads.len() >= PARALLEL_VALIDATION_MIN_READS => pool.install(|| {
            reads
                .par_iter()
                .map(|read| check(base, read).map(|ok| (!ok).then_some(Mismatch(*read))))
                .find_map_any(|r| match r {
                    Ok(None) => None,
                    other => Some(other),
                })
                .unwrap_or(Ok(None))
        }),
        _ => {
            for read in reads {
                if !check(base, read)? {
                    return Ok(Some(Mismatch(*read)));
                }
            }
            Ok(None)
        }
    }
}
