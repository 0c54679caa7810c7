//! Declaring a concurrent scenario, and running one execution of it.
//!
//! A [`Scenario`] is three things:
//!
//! * a **setup** that builds the shared state (datastore, snapshots, clock position) in a fresh
//!   simulated world, once per execution;
//! * 1 to [`MAX_ACTORS`] **actors**, each a plain function running real store operations on that
//!   state and returning a small printable [`Outcome`] (`ok`, `busy`, `not-found`, ...);
//! * a **check** that runs once every actor has finished: the invariants, and which outcome of
//!   each actor is allowed.
//!
//! [`execute`] runs one execution: it makes the world, runs the setup, spawns every actor with
//! the world's sync family (`S::spawn`, so shuttle or loom schedules them), joins them and runs
//! the check. The explorers in [`crate::explore`] call it once per schedule.
//!
//! Actors never panic on a store error: they turn it into an outcome, so a failing execution
//! says what each actor saw. A panicking actor is caught and reported as the outcome
//! `panic: <message>`, which no check allows.

use std::borrow::Cow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sim::SimWorld;
use store::datastore::Error as DatastoreError;
use store::sync::{JoinHandle, SyncFamily};
use store::world::{FileKind, World};

/// Loom runs at most four threads besides the main one, so a scenario has at most four actors.
pub const MAX_ACTORS: usize = 4;

/// What one actor did, as a short printable label.
///
/// Outcomes are compared as text: two executions whose actors did the same things have equal
/// outcome vectors, which is what the explorers count as "distinct outcomes".
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Outcome(Cow<'static, str>);

impl Outcome {
    /// The operation succeeded.
    pub const OK: Outcome = Outcome::label("ok");
    /// The operation met a lock held by somebody else (busy, timed out or replaced).
    pub const BUSY: Outcome = Outcome::label("busy");
    /// The object the operation was about did not exist (any more).
    pub const NOT_FOUND: Outcome = Outcome::label("not-found");

    /// An outcome with a fixed label.
    pub const fn label(label: &'static str) -> Outcome {
        Outcome(Cow::Borrowed(label))
    }

    /// An outcome with a computed label.
    pub fn new(text: impl Into<String>) -> Outcome {
        Outcome(Cow::Owned(text.into()))
    }

    /// An unexpected error: `error: <message>`.
    pub fn error(err: impl fmt::Display) -> Outcome {
        Outcome::new(format!("error: {err}"))
    }

    /// An actor that panicked: `panic: <message>`.
    pub fn panicked(message: &str) -> Outcome {
        Outcome::new(format!("panic: {message}"))
    }

    /// The classification of a datastore result: `ok`, `busy` (lock contention), `not-found`
    /// (the snapshot is gone) or `error: ...`.
    pub fn of<T>(result: &Result<T, DatastoreError>) -> Outcome {
        match result {
            Ok(_) => Outcome::OK,
            Err(err) if err.is_contention() => Outcome::BUSY,
            Err(DatastoreError::SnapshotNotFound(_)) => Outcome::NOT_FOUND,
            Err(err) => Outcome::error(err),
        }
    }

    /// The label.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Is this one of `allowed`?
    pub fn is_one_of(&self, allowed: &[Outcome]) -> bool {
        allowed.contains(self)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The outcomes of one execution, one per actor, in the order [`Scenario::actors`] lists them.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Outcomes(Vec<(&'static str, Outcome)>);

impl Outcomes {
    /// Outcomes from (actor name, outcome) pairs.
    pub fn new(pairs: Vec<(&'static str, Outcome)>) -> Outcomes {
        Outcomes(pairs)
    }

    /// The outcome of the actor called `actor`, if there is one.
    pub fn of(&self, actor: &str) -> Option<&Outcome> {
        self.0
            .iter()
            .find(|(name, _)| *name == actor)
            .map(|(_, outcome)| outcome)
    }

    /// (actor name, outcome) pairs in actor order.
    pub fn iter(&self) -> impl Iterator<Item = &(&'static str, Outcome)> {
        self.0.iter()
    }

    /// Checks that `actor`'s outcome is one of `allowed`.
    pub fn expect(&self, actor: &str, allowed: &[Outcome]) -> Result<(), ScenarioError> {
        match self.of(actor) {
            Some(outcome) if outcome.is_one_of(allowed) => Ok(()),
            Some(outcome) => {
                let allowed: Vec<&str> = allowed.iter().map(Outcome::as_str).collect();
                Err(ScenarioError::violation(format!(
                    "{actor} ended `{outcome}`, allowed: {}",
                    allowed.join(" | ")
                )))
            }
            None => Err(ScenarioError::violation(format!("no actor called {actor}"))),
        }
    }
}

impl fmt::Display for Outcomes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, (name, outcome)) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{name}={outcome}")?;
        }
        Ok(())
    }
}

/// Why an execution of a scenario failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScenarioError {
    /// The setup could not build the state (a bug in the scenario or in the store's basics).
    #[error("setup failed: {0}")]
    Setup(String),
    /// The scenario itself is malformed (no actors, too many actors, duplicate names).
    #[error("malformed scenario: {0}")]
    Malformed(String),
    /// An invariant or an actor's allowed outcome was violated.
    #[error("invariant violated: {0}")]
    Violation(String),
}

impl ScenarioError {
    /// A violated invariant.
    pub fn violation(message: impl Into<String>) -> ScenarioError {
        ScenarioError::Violation(message.into())
    }

    /// A failed setup step, from any error.
    pub fn setup(what: &str, err: impl fmt::Display) -> ScenarioError {
        ScenarioError::Setup(format!("{what}: {err}"))
    }
}

/// One actor: a name (unique within the scenario) and the function it runs on the shared state.
pub struct Actor<T> {
    name: &'static str,
    run: fn(&T) -> Outcome,
}

impl<T> Actor<T> {
    /// An actor called `name` that runs `run`.
    pub fn new(name: &'static str, run: fn(&T) -> Outcome) -> Actor<T> {
        Actor { name, run }
    }

    /// Its name.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl<T> Clone for Actor<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Actor<T> {}

impl<T> fmt::Debug for Actor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Actor")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A concurrent scenario over the real store code.
///
/// Everything is built per execution (shuttle and loom objects cannot outlive one), so the
/// scenario value itself only carries parameters (which fixes are reverted, which variant).
pub trait Scenario: Clone + Send + Sync + 'static {
    /// What the actors share, built by [`Scenario::setup`] in a fresh world.
    type State<S: SyncFamily>: Send + Sync + 'static;

    /// A name that identifies the scenario and its variant, e.g. `insert-sweep/B4-reverted`.
    /// Failure records are matched to scenarios by this name on replay.
    fn name(&self) -> String;

    /// Builds the shared state in `world` (a fresh world of this execution).
    fn setup<S: SyncFamily>(&self, world: &SimWorld<S>) -> Result<Self::State<S>, ScenarioError>;

    /// The actors, run concurrently on the state (1 to [`MAX_ACTORS`], unique names).
    fn actors<S: SyncFamily>(&self) -> Vec<Actor<Self::State<S>>>;

    /// Runs once every actor has finished: the invariants and the allowed outcomes.
    fn check<S: SyncFamily>(
        &self,
        state: &Self::State<S>,
        outcomes: &Outcomes,
    ) -> Result<(), ScenarioError>;

    /// Seed of the simulated world (it picks the `read_dir` order) when the explorer does not
    /// choose one; shuttle explorers choose it per execution from their data source, so every
    /// listing order gets explored and replays stay exact.
    fn world_seed(&self) -> u64 {
        1
    }

    /// Is the scenario small enough for loom's exhaustive exploration? Loom explorers skip
    /// scenarios that say no.
    fn loom(&self) -> bool {
        true
    }
}

/// What one passing execution produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionRecord {
    /// Each actor's outcome.
    pub outcomes: Outcomes,
    /// Digest of the whole simulated disk after the check, if it was asked for.
    pub world_digest: Option<u64>,
}

/// Runs one execution of `scenario` in a fresh `SimWorld<S>` seeded with `world_seed`; with
/// `digest`, also hashes the final state of the simulated disk.
///
/// Must run inside an execution of `S`'s scheduler (any thread for `StdSync`). The error is
/// the full failure message: scenario name, what went wrong, and every actor's outcome.
pub fn execute<Sc: Scenario, S: SyncFamily>(
    scenario: &Sc,
    world_seed: u64,
    digest: bool,
) -> Result<ExecutionRecord, String> {
    let name = scenario.name();
    let fail = |err: ScenarioError, outcomes: Option<&Outcomes>| match outcomes {
        Some(outcomes) => format!("{name}: {err} [outcomes: {outcomes}]"),
        None => format!("{name}: {err}"),
    };
    let actors = scenario.actors::<S>();
    check_actors(&actors).map_err(|err| fail(err, None))?;
    let world = SimWorld::<S>::new(world_seed);
    let state = Arc::new(scenario.setup(&world).map_err(|err| fail(err, None))?);
    let handles: Vec<_> = actors
        .iter()
        .map(|actor| {
            let (run, state) = (actor.run, Arc::clone(&state));
            S::spawn(move || {
                catch_panic(|| run(&state)).unwrap_or_else(|message| Outcome::panicked(&message))
            })
        })
        .collect();
    let outcomes = Outcomes::new(
        actors
            .iter()
            .zip(handles)
            .map(|(actor, handle)| {
                let outcome = handle
                    .join()
                    .unwrap_or_else(|_| Outcome::panicked("join failed"));
                (actor.name, outcome)
            })
            .collect(),
    );
    // The simulator checks itself where tests run (debug assertions on): a bug of the world is
    // not the store's.
    if cfg!(debug_assertions)
        && let Err(inconsistency) = world.check_consistency()
    {
        return Err(fail(
            ScenarioError::Malformed(inconsistency.to_string()),
            Some(&outcomes),
        ));
    }
    if let Some((actor, outcome)) = outcomes
        .iter()
        .find(|(_, outcome)| outcome.as_str().starts_with("panic: "))
    {
        let err = ScenarioError::violation(format!("actor {actor} panicked ({outcome})"));
        return Err(fail(err, Some(&outcomes)));
    }
    scenario
        .check(&state, &outcomes)
        .map_err(|err| fail(err, Some(&outcomes)))?;
    let world_digest = if digest {
        let digest = world_digest(&world, Path::new("/")).map_err(|err| {
            fail(
                ScenarioError::setup("hashing the world", err),
                Some(&outcomes),
            )
        })?;
        Some(digest)
    } else {
        None
    };
    Ok(ExecutionRecord {
        outcomes,
        world_digest,
    })
}

fn check_actors<T>(actors: &[Actor<T>]) -> Result<(), ScenarioError> {
    if actors.is_empty() || actors.len() > MAX_ACTORS {
        return Err(ScenarioError::Malformed(format!(
            "{} actors (1 to {MAX_ACTORS} allowed)",
            actors.len()
        )));
    }
    for (index, actor) in actors.iter().enumerate() {
        if actors[..index].iter().any(|other| other.name == actor.name) {
            return Err(ScenarioError::Malformed(format!(
                "two actors called {}",
                actor.name
            )));
        }
    }
    Ok(())
}

/// A 64-bit FNV-1a hasher: deterministic across runs and builds of the same code, unlike std's
/// randomly keyed hashers.
#[derive(Debug, Clone, Copy)]
pub struct Fnv(u64);

impl Fnv {
    /// A fresh hasher.
    pub fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    /// The hash of one value.
    pub fn hash_of(value: &impl Hash) -> u64 {
        let mut hasher = Fnv::new();
        value.hash(&mut hasher);
        hasher.finish()
    }
}

impl Default for Fnv {
    fn default() -> Self {
        Fnv::new()
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Digest of everything under `root` in `world`: every path (in name order, not listing order),
/// its kind, size, access and modification times and, for files, the contents. Two worlds with
/// equal digests hold the same tree.
pub fn world_digest<W: World>(world: &W, root: &Path) -> io::Result<u64> {
    let mut hasher = Fnv::new();
    let mut pending: Vec<PathBuf> = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        let mut entries = world.read_dir(&dir)?;
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        for entry in entries.iter().rev() {
            let path = dir.join(&entry.name);
            let metadata = match world.try_metadata(&path)? {
                Some(metadata) => metadata,
                None => continue,
            };
            path.hash(&mut hasher);
            (metadata.kind == FileKind::Dir).hash(&mut hasher);
            (metadata.len, metadata.atime, metadata.mtime).hash(&mut hasher);
            if metadata.kind == FileKind::Dir {
                pending.push(path);
            } else {
                world.read_file(&path)?.hash(&mut hasher);
            }
        }
    }
    Ok(hasher.finish())
}

/// Runs `f`, turning a panic into its message.
pub fn catch_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| {
                payload
                    .downcast_ref::<&str>()
                    .map(|text| (*text).to_owned())
            })
            .unwrap_or_else(|| "non-string panic payload".to_owned())
    })
}
