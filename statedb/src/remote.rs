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
//! A caller that can give the slots a `Sync` view of the state the block starts from (a
//! [`ParentState`]) spares them the round trip: [`RemoteDb::reading_parent`] reads from that view
//! everything but what the caller changed before the session started ([`OwnerChanges`]: the
//! pre-block system calls' contracts, a probed opening's accounts and slots), which still goes
//! to the owner. Code is content-addressed, so it comes from the view whenever the view has it.
//!
//! The owner never waits for itself: [`RemoteDb`] refuses requests from the owner's thread with
//! an error instead of deadlocking, except inside [`answering_own_reads`], where the owner,
//! executing speculatively on the slots' state, answers its own misses from its database
//! directly. The merger's own reads never go to the database: validation only looks at what the
//! base holds (see `parevm_merger::validate`), and the beneficiary, whose deferred fees the
//! merger credits, is loaded before the first merge.

use std::{
    cell::Cell,
    ptr::NonNull,
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

use alloy_primitives::{
    Address, B256, U256,
    map::{AddressSet, HashSet},
};
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

impl Query {
    /// Its answer from `db`.
    fn answer<DB: Database>(self, db: &mut DB) -> Result<Answer, DbError> {
        match self {
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
        .map_err(DbError::from_display)
    }
}

impl Request {
    /// Answers it from `db`.
    pub fn answer_from<DB: Database>(self, db: &mut DB) -> Result<(), DbError> {
        let answer = self.query.answer(db);
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

/// A view of the state a block starts from that any thread may read: the state after the
/// block's parent, exactly as the owner's database reads it for every account the block's
/// pre-block changes leave alone, and code it does not hold read as empty (as revm's databases
/// read unknown code; the owner is then asked). reth can build one per block (its state
/// providers are `Send + Sync`); the owner's own `State` is neither.
pub type ParentState = Arc<dyn DatabaseRef<Error = DbError> + Send + Sync>;

/// A [`ParentState`] over any shareable database, its errors carried as [`DbError`].
#[derive(Debug)]
pub struct SharedParent<D>(pub D);

impl<D: DatabaseRef<Error: std::fmt::Display> + Send + Sync + 'static> SharedParent<D> {
    /// `db` as a [`ParentState`].
    pub fn view(db: D) -> ParentState {
        Arc::new(Self(db))
    }
}

impl<D: DatabaseRef<Error: std::fmt::Display>> DatabaseRef for SharedParent<D> {
    type Error = DbError;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, DbError> {
        self.0.basic_ref(address).map_err(DbError::from_display)
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, DbError> {
        self.0.code_by_hash_ref(code_hash).map_err(DbError::from_display)
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, DbError> {
        self.0.storage_ref(address, index).map_err(DbError::from_display)
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, DbError> {
        self.0.block_hash_ref(number).map_err(DbError::from_display)
    }
}

/// What the owner changed before a session's slots started, which a [`ParentState`] does not
/// hold: those reads go to the owner.
#[derive(Debug, Clone, Default)]
pub struct OwnerChanges {
    /// Accounts whose info and every storage slot may differ from the view's (the pre-block
    /// system calls' contracts, whose slots nobody lists; an account created or destroyed).
    pub accounts: AddressSet,
    /// Accounts whose info may differ from the view's (loaded by a transaction the owner ran).
    pub infos: AddressSet,
    /// Storage slots that may differ from the view's (loaded by a transaction the owner ran).
    pub slots: HashSet<(Address, U256)>,
}

impl OwnerChanges {
    fn has_info(&self, address: &Address) -> bool {
        self.accounts.contains(address) || self.infos.contains(address)
    }

    fn has_slot(&self, address: Address, index: U256) -> bool {
        self.accounts.contains(&address) || (!self.slots.is_empty() && self.slots.contains(&(address, index)))
    }
}

/// The slots' end: a `DatabaseRef` whose reads are requests to the owner, or, with a
/// [`ParentState`], reads of that view for the accounts the owner has not changed.
#[derive(Clone)]
pub struct RemoteDb {
    queue: mpsc::Sender<Request>,
    pending: Arc<AtomicUsize>,
    wakeup: Arc<Wakeup>,
    owner: ThreadId,
    timeout: Duration,
    parent: Option<(ParentState, Arc<OwnerChanges>)>,
}

impl std::fmt::Debug for RemoteDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteDb")
            .field("owner", &self.owner)
            .field("reads_parent", &self.parent.is_some())
            .finish_non_exhaustive()
    }
}

impl RemoteDb {
    /// A database served by the current thread, which signals it on `wakeup`; an asker gives up
    /// after `timeout`.
    pub fn served_here(wakeup: Arc<Wakeup>, timeout: Duration) -> (Self, Requests) {
        let (sender, queue) = mpsc::channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let owner = std::thread::current().id();
        (
            Self { queue: sender, pending: pending.clone(), wakeup, owner, timeout, parent: None },
            Requests { queue, pending, served: Default::default() },
        )
    }

    /// Reads from `parent` instead of asking the owner, except what is in `changed`: what the
    /// owner changed before the slots started, whose values only its database holds.
    pub fn reading_parent(self, parent: ParentState, changed: OwnerChanges) -> Self {
        Self { parent: Some((parent, Arc::new(changed))), ..self }
    }

    fn ask(&self, query: Query) -> Result<Answer, DbError> {
        if std::thread::current().id() == self.owner {
            return own_answer(query).unwrap_or_else(|| {
                Err(DbError(format!("{query:?} asked on the database owner's own thread (an engine bug)")))
            });
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

/// The owner's database, type-erased, while the owner executes speculatively on the slots'
/// state (see [`answering_own_reads`]).
type OwnDb = NonNull<dyn FnMut(Query) -> Result<Answer, DbError>>;

thread_local! {
    static OWN_DB: Cell<Option<OwnDb>> = const { Cell::new(None) };
    /// A panic of the owner's database inside [`answering_own_reads`], raised again when `f`
    /// returns: the execution that read catches its panics (a slot's must not take the thread
    /// down), but the owner's database is the caller's, whose panics are the caller's.
    static OWN_PANIC: Cell<Option<Box<dyn std::any::Any + Send>>> = const { Cell::new(None) };
}

/// Runs `f` on the owner's thread with `db`, the owner's database, answering the misses of the
/// owner's own executions on the slots' state (a session's merger helping from its lane while it
/// waits): a slot asks the owner, the owner asks itself. Outside `f` the owner asking itself is
/// an error, as it would otherwise wait for itself.
pub fn answering_own_reads<DB: Database, R>(db: &mut DB, f: impl FnOnce() -> R) -> R {
    /// Puts back what was there before, however `f` ends. If `f` unwinds, a panic of the
    /// owner's database kept for raising at the scope's end goes with it: the thread is already
    /// unwinding with `f`'s own, and left in the cell it would be raised in a later scope that
    /// never saw it.
    struct Restore(Option<OwnDb>);
    impl Drop for Restore {
        fn drop(&mut self) {
            OWN_DB.set(self.0.take());
            if std::thread::panicking() {
                drop(OWN_PANIC.take());
            }
        }
    }
    let mut answer = |query: Query| query.answer(db);
    let erased: NonNull<dyn FnMut(Query) -> Result<Answer, DbError> + '_> = NonNull::from(&mut answer);
    // SAFETY: only the lifetime changes (same fat pointer). The pointer is reachable only from
    // this thread's `OWN_DB`, and only until `Restore` runs at the end of this function, while
    // `answer` (and the `db` it borrows) is still alive; `own_answer` takes it out of the cell
    // while calling it, so it is never called reentrantly or twice at once.
    let erased: OwnDb = unsafe { std::mem::transmute(erased) };
    let restore = Restore(OWN_DB.replace(Some(erased)));
    let result = f();
    drop(restore);
    if let Some(panic) = OWN_PANIC.take() {
        std::panic::resume_unwind(panic);
    }
    result
}

/// The owner's answer to its own query, inside [`answering_own_reads`].
fn own_answer(query: Query) -> Option<Result<Answer, DbError>> {
    let mut own = OWN_DB.take()?;
    // SAFETY: set by `answering_own_reads` on this thread, whose frame (and so the closure) is
    // still live: the cell is cleared before that frame returns. Taken out of the cell for the
    // call, so no other `&mut` to the closure exists meanwhile.
    let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { own.as_mut() }(query)));
    match answer {
        Ok(answer) => {
            OWN_DB.set(Some(own));
            Some(answer)
        }
        // Left out of the cell: the database panicked midway and is asked nothing more.
        Err(panic) => {
            OWN_PANIC.set(Some(panic));
            Some(Err(DbError(format!("{query:?}: the database owner's own read panicked"))))
        }
    }
}

fn unexpected(query: Query, answer: Answer) -> DbError {
    DbError(format!("{query:?} answered with {answer:?}"))
}

impl DatabaseRef for RemoteDb {
    type Error = DbError;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, DbError> {
        if let Some((parent, changed)) = &self.parent
            && !changed.has_info(&address)
        {
            return parent.basic_ref(address);
        }
        let query = Query::Basic(address);
        match self.ask(query)? {
            Answer::Basic(info) => Ok(info),
            other => Err(unexpected(query, other)),
        }
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, DbError> {
        // Code the view lacks (deployed by a transaction the owner ran before the session)
        // reads as empty there, as revm's databases read unknown code; the owner has it.
        if let Some((parent, _)) = &self.parent {
            let code = parent.code_by_hash_ref(code_hash)?;
            if !code.is_empty() || code_hash == KECCAK_EMPTY {
                return Ok(code);
            }
        }
        let query = Query::Code(code_hash);
        match self.ask(query)? {
            Answer::Code(code) => Ok(code),
            other => Err(unexpected(query, other)),
        }
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, DbError> {
        if let Some((parent, changed)) = &self.parent
            && !changed.has_slot(address, index)
        {
            return parent.storage_ref(address, index);
        }
        let query = Query::Storage(address, index);
        match self.ask(query)? {
            Answer::Storage(value) => Ok(value),
            other => Err(unexpected(query, other)),
        }
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, DbError> {
        if let Some((parent, _)) = &self.parent {
            return parent.block_hash_ref(number);
        }
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
    use std::panic::AssertUnwindSafe;

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

    /// The owner's database after it changed account 1 (what a pre-block call or a probed
    /// opening leaves in its `State`), and the unchanged view of the parent state.
    fn changed_owner_and_parent() -> (revm::database::WrapDatabaseRef<InMemoryDb>, ParentState) {
        let parent = InMemoryDb::synthetic(2, 2);
        let mut owner = parent.clone();
        let changed = InMemoryDb::synthetic_address(1);
        owner.accounts.get_mut(&changed).unwrap().storage.insert(U256::from(1), U256::from(777));
        owner.accounts.get_mut(&changed).unwrap().info.nonce = 9;
        (revm::database::WrapDatabaseRef(owner), Arc::new(SharedParent(parent)))
    }

    #[test]
    fn with_the_parent_state_only_what_the_owner_changed_is_asked_for() {
        let wakeup = Arc::new(Wakeup::default());
        let (remote, requests) = RemoteDb::served_here(wakeup.clone(), Duration::from_secs(10));
        let (mut owner, parent) = changed_owner_and_parent();
        let (unchanged, changed) = (InMemoryDb::synthetic_address(0), InMemoryDb::synthetic_address(1));
        let changes = OwnerChanges {
            infos: [changed].into_iter().collect(),
            slots: [(changed, U256::from(1))].into_iter().collect(),
            ..OwnerChanges::default()
        };
        let remote = remote.reading_parent(parent.clone(), changes);
        std::thread::scope(|s| {
            let asker = s.spawn(|| {
                let direct =
                    (remote.basic_ref(unchanged).unwrap(), remote.storage_ref(unchanged, U256::from(1)).unwrap());
                let other_slot = remote.storage_ref(changed, U256::ZERO).unwrap();
                (
                    direct,
                    other_slot,
                    remote.basic_ref(changed).unwrap(),
                    remote.storage_ref(changed, U256::from(1)).unwrap(),
                )
            });
            let deadline = Instant::now() + Duration::from_secs(10);
            while !asker.is_finished() {
                if let Some(request) =
                    wakeup.wait_until(deadline.min(Instant::now() + Duration::from_millis(5)), || requests.next())
                {
                    request.answer_from(&mut owner).unwrap();
                }
                assert!(Instant::now() < deadline, "not answered within 10 s");
            }
            let (direct, other_slot, info, value) = asker.join().unwrap();
            assert_eq!(other_slot, parent.storage_ref(changed, U256::ZERO).unwrap(), "a slot it did not change");
            assert_eq!(
                direct,
                (parent.basic_ref(unchanged).unwrap(), parent.storage_ref(unchanged, U256::from(1)).unwrap())
            );
            assert_eq!(info.unwrap().nonce, 9, "the owner's account, not the view's");
            assert_eq!(value, U256::from(777), "the owner's storage, not the view's");
        });
        assert_eq!(requests.served(), 2, "only the changed info and slot were asked for");
    }

    #[test]
    fn code_the_parent_state_lacks_comes_from_the_owner() {
        let wakeup = Arc::new(Wakeup::default());
        let (remote, requests) = RemoteDb::served_here(wakeup.clone(), Duration::from_secs(10));
        let (mut owner, parent) = changed_owner_and_parent();
        let code = Bytecode::new_raw(alloy_primitives::Bytes::from_static(&[0x60, 0x01, 0x00]));
        let hash = code.hash_slow();
        owner.0.contracts.insert(hash, code.clone());
        let remote = remote.reading_parent(parent, OwnerChanges::default());
        std::thread::scope(|s| {
            let asker = s.spawn(|| remote.code_by_hash_ref(hash));
            let request = wakeup.wait_until(Instant::now() + Duration::from_secs(10), || requests.next()).unwrap();
            request.answer_from(&mut owner).unwrap();
            assert_eq!(asker.join().unwrap().unwrap(), code);
        });
    }

    #[test]
    fn the_owner_answers_itself_only_inside_answering_own_reads() {
        let wakeup = Arc::new(Wakeup::default());
        let (remote, _requests) = RemoteDb::served_here(wakeup, Duration::from_secs(10));
        let (mut owner, _) = changed_owner_and_parent();
        let changed = InMemoryDb::synthetic_address(1);
        assert!(remote.storage_ref(changed, U256::from(1)).is_err(), "refused: it would wait for itself");
        let value = answering_own_reads(&mut owner, || remote.storage_ref(changed, U256::from(1)));
        assert_eq!(value.unwrap(), U256::from(777));
        assert!(remote.storage_ref(changed, U256::from(1)).is_err(), "refused again once outside");
        let nested = answering_own_reads(&mut owner, || {
            let inner = answering_own_reads(&mut revm::database::WrapDatabaseRef(InMemoryDb::default()), || {
                remote.storage_ref(changed, U256::from(1))
            });
            (inner, remote.storage_ref(changed, U256::from(1)))
        });
        assert_eq!(nested.0.unwrap(), U256::ZERO, "the innermost database answers");
        assert_eq!(nested.1.unwrap(), U256::from(777), "the outer one again once the inner scope ends");
    }

    /// A database that panics on every read.
    struct Panicky;

    impl Database for Panicky {
        type Error = DbError;
        fn basic(&mut self, _: Address) -> Result<Option<AccountInfo>, DbError> {
            panic!("the owner's database broke")
        }
        fn code_by_hash(&mut self, _: B256) -> Result<Bytecode, DbError> {
            panic!("the owner's database broke")
        }
        fn storage(&mut self, _: Address, _: U256) -> Result<U256, DbError> {
            panic!("the owner's database broke")
        }
        fn block_hash(&mut self, _: u64) -> Result<B256, DbError> {
            panic!("the owner's database broke")
        }
    }

    #[test]
    fn a_panic_of_the_owners_database_reaches_the_owner_even_if_the_reader_catches_it() {
        let (remote, _requests) = RemoteDb::served_here(Arc::new(Wakeup::default()), Duration::from_secs(10));
        let caught = std::panic::catch_unwind(AssertUnwindSafe(|| {
            answering_own_reads(&mut Panicky, || {
                // The reader (a slot's execution) catches panics and goes on.
                let read = std::panic::catch_unwind(AssertUnwindSafe(|| remote.basic_ref(Address::ZERO)));
                let error = read.expect("the reader sees an error, not the panic").unwrap_err();
                assert!(error.0.contains("panicked"), "{error}");
                assert!(remote.basic_ref(Address::ZERO).is_err(), "asked nothing more");
            })
        }));
        let panic = caught.expect_err("raised again when the scope ends");
        assert_eq!(panic.downcast_ref::<&str>(), Some(&"the owner's database broke"));
        assert!(remote.basic_ref(Address::ZERO).is_err(), "and refused outside it, as ever");
    }

    #[test]
    fn a_kept_database_panic_goes_with_a_scope_that_unwinds_for_its_own() {
        let (remote, _requests) = RemoteDb::served_here(Arc::new(Wakeup::default()), Duration::from_secs(10));
        let first = std::panic::catch_unwind(AssertUnwindSafe(|| {
            answering_own_reads(&mut Panicky, || {
                let _ = remote.basic_ref(Address::ZERO);
                panic!("the scope's own panic");
            })
        }));
        let panic = first.expect_err("the scope's own panic goes on");
        assert_eq!(panic.downcast_ref::<&str>(), Some(&"the scope's own panic"));
        // A later scope on the same thread, over a healthy database, is not hit by the old one.
        let mut healthy = revm::database::WrapDatabaseRef(InMemoryDb::default());
        let later = std::panic::catch_unwind(AssertUnwindSafe(|| {
            answering_own_reads(&mut healthy, || remote.basic_ref(Address::ZERO).map(|info| info.is_none()))
        }));
        assert!(later.expect("no stale panic").expect("answered"), "an empty database has no such account");
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
