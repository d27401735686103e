//! A block database that lives on another thread: the caller's `State` in the alloy-evm executor.
//!
//! alloy-evm hands a block executor its database as `&mut DB` with `DB: Database`: no `Sync`,
//! no `Send`, no shared reads. The slots, which run on other threads, cannot touch it. So the
//! executor's thread (the *owner*, which also runs the merger) keeps the database and answers
//! the slots' misses: a slot that needs a value the base state does not hold yet queues a
//! [`Request`] and waits, bounded, for the answer; the owner answers queued requests whenever
//! it is inside the engine (handing in a transaction, merging, waiting for a result, and, through
//! a [`ServingDb`], at each read of a transaction it executes itself). Every
//! answer is cached in the base state, so a key crosses threads at most once per block (twice
//! if two slots miss it at the same moment).
//!
//! The owner never asks itself: [`RemoteDb`] refuses requests from the owner's thread with an
//! error instead of deadlocking. The merger's own reads never go to the database: validation
//! only looks at what the base holds (see `parevm_merger::validate`), and the beneficiary, whose
//! deferred fees the merger credits, is loaded before the first merge.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    thread::ThreadId,
    time::{Duration, Instant},
};

/// How long an asker polls for the answer before parking.
const REPLY_SPIN: Duration = Duration::from_micros(20);

use alloy_primitives::{Address, B256, U256};
use revm::{Database, DatabaseRef, bytecode::Bytecode, primitives::KECCAK_EMPTY, state::AccountInfo};

use crate::{DbError, Wakeup};

/// A value a slot needs from the owner's database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    /// An account.
    Basic(Address),
    /// A storage slot.
    Storage(Address, U256),
    /// Code by hash.
    Code(B256),
    /// A block hash by number.
    BlockHash(u64),
}

/// The owner's answer to a [`Query`].
#[derive(Debug, Clone)]
pub enum Answer {
    /// An account (`None`: absent).
    Basic(Option<AccountInfo>),
    /// A storage value.
    Storage(U256),
    /// Code.
    Code(Bytecode),
    /// A block hash.
    BlockHash(B256),
}

/// A queued query and where its answer goes.
#[derive(Debug)]
pub struct Request {
    query: Query,
    reply: mpsc::SyncSender<Result<Answer, DbError>>,
}

impl Request {
    /// Answers it from `db`.
    pub fn answer_from<DB: Database>(self, db: &mut DB) -> Result<(), DbError> {
        let answer = match self.query {
            // With the code attached, or the slot would have to ask a second time for it.
            Query::Basic(address) => db.basic(address).and_then(|info| match info {
                Some(mut info) if info.code.is_none() && info.code_hash != KECCAK_EMPTY => {
                    info.code = Some(db.code_by_hash(info.code_hash)?);
                    Ok(Answer::Basic(Some(info)))
                }
                info => Ok(Answer::Basic(info)),
            }),
            Query::Storage(address, slot) => db.storage(address, slot).map(Answer::Storage),
            Query::Code(hash) => db.code_by_hash(hash).map(Answer::Code),
            Query::BlockHash(number) => db.block_hash(number).map(Answer::BlockHash),
        }
        .map_err(DbError::from_display);
        let failed = answer.as_ref().err().cloned();
        // The asker may have given up (timed out); nothing to do then.
        let _ = self.reply.send(answer);
        failed.map_or(Ok(()), Err)
    }
}

/// The owner's end: the queue of requests.
#[derive(Debug)]
pub struct Requests {
    queue: mpsc::Receiver<Request>,
    /// Sent but not yet received, so the owner's readiness check costs one atomic load.
    pending: Arc<AtomicUsize>,
    /// Requests received so far (the owner's thread only).
    served: std::cell::Cell<u64>,
}

impl Requests {
    /// Whether a request is waiting.
    pub fn has_pending(&self) -> bool {
        // Relaxed: a hint. An asker counts itself before sending, so the count never drops below
        // the queue's length; a count that runs ahead of the send only makes the owner look
        // again. The request itself travels through the channel.
        self.pending.load(Ordering::Relaxed) > 0
    }

    /// How many requests were taken so far.
    pub fn served(&self) -> u64 {
        self.served.get()
    }

    /// The next waiting request, if any.
    pub fn next(&self) -> Option<Request> {
        let request = self.queue.try_recv().ok()?;
        // Relaxed: only a count; the request itself came through the channel.
        self.pending.fetch_sub(1, Ordering::Relaxed);
        self.served.set(self.served.get() + 1);
        Some(request)
    }

    /// Answers every waiting request from `db`. A database error is passed to the asker (whose
    /// execution fails with it) and returned here too. With none waiting it costs one atomic
    /// load, so it can sit on the owner's every read (`ServingDb`).
    pub fn serve<DB: Database>(&self, db: &mut DB) -> Result<(), DbError> {
        if !self.has_pending() {
            return Ok(());
        }
        let mut first_error = None;
        while let Some(request) = self.next() {
            if let Err(e) = request.answer_from(db) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// The owner's database while the owner executes a transaction itself: each of its reads first
/// answers the slots' waiting requests. Without it a slot that missed while the owner executed
/// waited for the whole execution (7 µs per request on the 100+ transaction mainnet blocks at 2
/// slots, where the worker spent half of the block waiting); with it, for the owner's next read.
/// The answers go through the same database, so the owner's execution reads what it would have.
pub struct ServingDb<'a, DB> {
    db: &'a mut DB,
    requests: &'a Requests,
}

impl<DB> std::fmt::Debug for ServingDb<'_, DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingDb").field("requests", self.requests).finish_non_exhaustive()
    }
}

impl<'a, DB: Database> ServingDb<'a, DB> {
    /// `db`, answering `requests` at each read.
    pub fn new(db: &'a mut DB, requests: &'a Requests) -> Self {
        Self { db, requests }
    }

    fn serve(&mut self) {
        // A failed answer is the asking slot's to report (see `Requests::serve`); the owner's
        // own read below meets the same error if it reads the same key.
        let _ = self.requests.serve(self.db);
    }
}

impl<DB: Database> Database for ServingDb<'_, DB> {
    type Error = DB::Error;

    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        self.serve();
        self.db.basic(address)
    }

    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, Self::Error> {
        self.serve();
        self.db.code_by_hash(code_hash)
    }

    fn storage(&mut self, address: Address, index: U256) -> Result<U256, Self::Error> {
        self.serve();
        self.db.storage(address, index)
    }

    fn block_hash(&mut self, number: u64) -> Result<B256, Self::Error> {
        self.serve();
        self.db.block_hash(number)
    }
}

/// The slots' end: a `DatabaseRef` whose every read is a request to the owner.
#[derive(Debug, Clone)]
pub struct RemoteDb {
    queue: mpsc::Sender<Request>,
    pending: Arc<AtomicUsize>,
    wakeup: Arc<Wakeup>,
    owner: ThreadId,
    timeout: Duration,
}

impl RemoteDb {
    /// A database served by the current thread, which signals it on `wakeup`; an asker gives up
    /// after `timeout`.
    pub fn served_here(wakeup: Arc<Wakeup>, timeout: Duration) -> (Self, Requests) {
        let (sender, queue) = mpsc::channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let owner = std::thread::current().id();
        (
            Self { queue: sender, pending: pending.clone(), wakeup, owner, timeout },
            Requests { queue, pending, served: Default::default() },
        )
    }

    fn ask(&self, query: Query) -> Result<Answer, DbError> {
        if std::thread::current().id() == self.owner {
            return Err(DbError(format!("{query:?} asked on the database owner's own thread (an engine bug)")));
        }
        let (reply, answer) = mpsc::sync_channel(1);
        // Counted before it is sent (see `Requests::has_pending`), uncounted if it cannot be.
        // Relaxed: a hint; the channel carries the request.
        self.pending.fetch_add(1, Ordering::Relaxed);
        if self.queue.send(Request { query, reply }).is_err() {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            return Err(DbError("the block was abandoned".into()));
        }
        self.wakeup.notify();
        // Bounded poll first: the owner answers within microseconds when it is inside the engine,
        // and parking costs more than that.
        let spin_until = Instant::now() + REPLY_SPIN;
        while Instant::now() < spin_until {
            match answer.try_recv() {
                Ok(answer) => return answer,
                Err(mpsc::TryRecvError::Empty) => std::thread::yield_now(),
                Err(mpsc::TryRecvError::Disconnected) => return Err(DbError("the block was abandoned".into())),
            }
        }
        answer.recv_timeout(self.timeout).map_err(|e| match e {
            mpsc::RecvTimeoutError::Timeout => {
                DbError(format!("{query:?}: no answer from the database owner within {:?}", self.timeout))
            }
            mpsc::RecvTimeoutError::Disconnected => DbError("the block was abandoned".into()),
        })?
    }
}

fn unexpected(query: Query, answer: Answer) -> DbError {
    DbError(format!("{query:?} answered with {answer:?}"))
}

impl DatabaseRef for RemoteDb {
    type Error = DbError;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, DbError> {
        let query = Query::Basic(address);
        match self.ask(query)? {
            Answer::Basic(info) => Ok(info),
            other => Err(unexpected(query, other)),
        }
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, DbError> {
        let query = Query::Code(code_hash);
        match self.ask(query)? {
            Answer::Code(code) => Ok(code),
            other => Err(unexpected(query, other)),
        }
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, DbError> {
        let query = Query::Storage(address, index);
        match self.ask(query)? {
            Answer::Storage(value) => Ok(value),
            other => Err(unexpected(query, other)),
        }
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, DbError> {
        let query = Query::BlockHash(number);
        match self.ask(query)? {
            Answer::BlockHash(hash) => Ok(hash),
            other => Err(unexpected(query, other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InMemoryDb;

    #[test]
    fn a_slot_thread_is_answered_by_the_owner_and_the_owner_never_asks_itself() {
        let wakeup = Arc::new(Wakeup::default());
        let (remote, requests) = RemoteDb::served_here(wakeup.clone(), Duration::from_secs(10));
        let mut db = revm::database::WrapDatabaseRef(InMemoryDb::synthetic(2, 2));
        let address = InMemoryDb::synthetic_address(1);
        assert!(remote.basic_ref(address).is_err(), "the owner asking itself is refused, not a deadlock");
        std::thread::scope(|s| {
            let asker = s.spawn(|| (remote.basic_ref(address), remote.storage_ref(address, U256::from(1))));
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut served = 0;
            while served < 2 {
                let request = wakeup.wait_until(deadline, || requests.next()).expect("a request within 10 s");
                request.answer_from(&mut db).unwrap();
                served += 1;
            }
            let (info, value) = asker.join().unwrap();
            assert_eq!(info.unwrap(), db.0.basic_ref(address).unwrap());
            assert_eq!(value.unwrap(), db.0.storage_ref(address, U256::from(1)).unwrap());
        });
        assert!(!requests.has_pending());
    }

    #[test]
    fn the_owner_answers_a_waiting_slot_at_each_of_its_own_reads() {
        let wakeup = Arc::new(Wakeup::default());
        let (remote, requests) = RemoteDb::served_here(wakeup, Duration::from_secs(10));
        let mut db = revm::database::WrapDatabaseRef(InMemoryDb::synthetic(2, 2));
        let (asked, own) = (InMemoryDb::synthetic_address(1), InMemoryDb::synthetic_address(2));
        let own_info = db.0.basic_ref(own).unwrap();
        let asked_value = db.0.storage_ref(asked, U256::from(1)).unwrap();
        std::thread::scope(|s| {
            let asker = s.spawn(|| remote.storage_ref(asked, U256::from(1)));
            // The owner reading its own keys, as its EVM does: the only place the request is
            // served. (The request is counted just before it is queued, so a read may find
            // nothing yet; the next one serves it.)
            let mut serving = ServingDb::new(&mut db, &requests);
            let deadline = Instant::now() + Duration::from_secs(10);
            while requests.served() == 0 {
                assert!(Instant::now() < deadline, "not served within 10 s");
                assert_eq!(serving.basic(own).unwrap(), own_info, "the owner reads its own key");
                std::thread::yield_now();
            }
            assert_eq!(asker.join().unwrap().unwrap(), asked_value);
        });
        assert!(!requests.has_pending());
    }

    #[test]
    fn an_unanswered_request_times_out() {
        let wakeup = Arc::new(Wakeup::default());
        let (remote, requests) = RemoteDb::served_here(wakeup, Duration::from_millis(20));
        let error = std::thread::scope(|s| s.spawn(|| remote.basic_ref(Address::ZERO)).join().unwrap()).unwrap_err();
        assert!(error.0.contains("no answer"), "{error}");
        drop(requests);
        let error = std::thread::scope(|s| s.spawn(|| remote.basic_ref(Address::ZERO)).join().unwrap()).unwrap_err();
        assert!(error.0.contains("abandoned"), "{error}");
    }
}
