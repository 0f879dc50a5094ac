//! Keeping an index fresh while it runs: one full ingest of the roots, then the changes the
//! file system reports, applied in debounced sets, and a periodic full rescan as the safety
//! net.
//!
//! Everything goes through the ingest pipeline ([`ingest`]): a change set is an ingest whose
//! roots are the paths the events named that are still there, plus the paths known to have
//! left (deleted files, renamed or moved files and folders). So a change set has the
//! pipeline's properties: size + mtime skip, content-hash reuse (a moved file is not embedded
//! again), failures recorded, one atomic commit per batch, and a checkpoint at the end that
//! publishes it to readers.
//!
//! What events cannot be trusted with is left to the rescan, a full ingest of the roots every
//! [`WatchOptions::rescan_every`]: changes made on a network share by another machine (inotify
//! sees only this machine's), events lost to an overflowing queue, folders beyond the system's
//! watch limit. A folder that vanishes without an event saying it was moved or its files
//! deleted (a drive unmounted, events lost or off) is not pruned on sight: the rescan removes
//! its photos if it finds it gone while its parent is there. A root that is missing prunes
//! nothing, whatever the events say, as in any ingest: photos on a drive that is away are kept
//! until it comes back. Nor does a root that is now an empty folder other than the one it was
//! when it last had files (a mount point left behind by its drive; [`StandIns`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use xsearch_index::Backend;

use crate::ingest::pipeline::{ingest, IngestEvent, IngestOptions, IngestSummary, Scope};
use crate::ingest::walk::{distinct_roots, reaches};
use crate::keys::path_key;
use crate::{Clip, Error};

/// How to watch: [`WatchOptions::default`] refined with setters (`#[non_exhaustive]`, so
/// options added later do not break callers).
///
/// ```
/// use std::time::Duration;
/// let options = xsearch::WatchOptions::default().rescan_every(Duration::from_secs(60));
/// assert_eq!(options.debounce, Duration::from_secs(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WatchOptions {
    /// How long the file system must stay quiet before the changes it reported are applied
    /// (a copy of a thousand photos is one change set, not a thousand). Under changes that
    /// never stop, a set is applied at the latest ten times this long after its first event.
    /// Default 1 s.
    pub debounce: Duration,
    /// How often every root is walked again in full, for what events miss: other machines'
    /// changes on network shares, overflowed event queues, folders beyond the watch limit,
    /// vanished folders. Unchanged files cost a `stat` each. Default 5 minutes.
    pub rescan_every: Duration,
    /// Whether to listen to file system events at all; without them only the rescans find
    /// changes (for file systems that report none, such as most network shares). Default on.
    pub events: bool,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            debounce: Duration::from_secs(1),
            rescan_every: Duration::from_secs(5 * 60),
            events: true,
        }
    }
}

impl WatchOptions {
    /// How long the file system must stay quiet before its changes are applied.
    pub fn debounce(mut self, debounce: Duration) -> Self {
        self.debounce = debounce;
        self
    }

    /// How often every root is walked again in full.
    pub fn rescan_every(mut self, every: Duration) -> Self {
        self.rescan_every = every;
        self
    }

    /// Whether to listen to file system events (off: rescans only).
    pub fn events(mut self, events: bool) -> Self {
        self.events = events;
        self
    }
}

/// Which kind of pass over the index a watcher made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pass {
    /// The full ingest of the roots the watch starts with.
    Initial,
    /// A debounced set of the changes events reported.
    Changes,
    /// A periodic full ingest of the roots (or one asked for by an overflowed event queue).
    Rescan,
}

/// What a watcher reports while it runs.
#[derive(Debug)]
#[non_exhaustive]
pub enum WatchEvent<'a> {
    /// Progress of the pass under way, as [`crate::Engine::ingest`] reports it.
    Ingest(IngestEvent<'a>),
    /// A pass is over: committed, and published to readers.
    Applied {
        /// Which pass.
        pass: Pass,
        /// What it did.
        summary: &'a IngestSummary,
        /// How long it took.
        took: Duration,
    },
    /// Events from this root (or part of it) cannot be had; the rescans still cover it.
    Unwatched {
        /// The root, or the folder where the system's watch limit was reached.
        path: &'a Path,
        /// Why, in words.
        reason: &'a str,
    },
}

/// Receives [`WatchEvent`]s; called from the watcher's threads.
pub trait WatchObserver: Sync {
    /// One event.
    fn event(&self, event: WatchEvent<'_>);
}

impl<F: Fn(WatchEvent<'_>) + Sync> WatchObserver for F {
    fn event(&self, event: WatchEvent<'_>) {
        self(event)
    }
}

/// Ignores every event.
impl WatchObserver for () {
    fn event(&self, _: WatchEvent<'_>) {}
}

/// How often a waiting watcher looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

/// Indexes `roots`, then keeps the index in step with them until `stop` is set; see the
/// module's documentation. A pass under way when `stop` is set ends after the batches already
/// prepared, which are committed whole, and is checkpointed.
pub(crate) fn watch(
    clip: &Clip,
    index: &dyn Backend,
    roots: &[PathBuf],
    ingest_options: &IngestOptions,
    options: &WatchOptions,
    observer: &dyn WatchObserver,
    stop: &AtomicBool,
) -> Result<(), Error> {
    let roots = distinct_roots(roots, ingest_options.walk());
    let indexer = Indexer {
        clip,
        index,
        index_dir: std::path::absolute(index.location())
            .unwrap_or_else(|_| index.location().into()),
        roots: &roots,
        options: ingest_options,
        stop,
        observer,
    };
    // The channel stays open while `sender` lives (to the end of this function), also when no
    // watcher holds a copy.
    let (sender, events) = mpsc::channel();
    let mut watches = Watches::new(options.events, sender.clone(), &indexer);
    // Watching starts before the first pass, so that nothing changed during it is missed.
    watches.refresh();
    let mut stand_ins = StandIns::default();
    indexer.pass(Pass::Initial, &stand_ins.walkable(&roots), &[])?;
    let mut changes = Changes::default();
    let mut next_rescan = Instant::now() + options.rescan_every;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let due = changes.due(options.debounce).unwrap_or(next_rescan);
        let wait = due.min(next_rescan).saturating_duration_since(now);
        match events.recv_timeout(wait.min(STOP_POLL)) {
            Ok(Ok(event)) => {
                if event.need_rescan() {
                    changes.rescan = true;
                }
                changes.add(&event, &|path| indexer.relevant(path));
                watches.forget_moved_root(&event);
            }
            // Such as the watch limit reached in a new folder: the rescans cover that part.
            Ok(Err(err)) => watches.report(&err, None),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
        }
        let now = Instant::now();
        if changes.rescan || now >= next_rescan {
            // A rescan covers every change seen so far; events that come during it are kept
            // in the channel for the next set.
            changes = Changes::default();
            watches.refresh();
            indexer.pass(Pass::Rescan, &stand_ins.walkable(&roots), &[])?;
            next_rescan = Instant::now() + options.rescan_every;
        } else if changes.due(options.debounce).is_some_and(|due| now >= due) {
            let set = std::mem::take(&mut changes);
            let (mut present, gone) = set.split(index, &roots)?;
            // An event on a root itself (made again, say) walks it whole, as a rescan does.
            present.retain(|path| !roots.contains(path) || stand_ins.walkable_root(path));
            // A set of vanished folders alone is left to the rescan.
            if !present.is_empty() || !gone.is_empty() {
                indexer.pass(Pass::Changes, &present, &gone)?;
            }
        }
    }
    Ok(())
}

/// What every pass needs.
struct Indexer<'a> {
    clip: &'a Clip,
    index: &'a dyn Backend,
    /// The index's folder, absolute like the paths events name: its own files are ignored.
    index_dir: PathBuf,
    /// The watched roots, absolute.
    roots: &'a [PathBuf],
    options: &'a IngestOptions,
    stop: &'a AtomicBool,
    observer: &'a dyn WatchObserver,
}

impl Indexer<'_> {
    /// One ingest over `roots`, removing what left under them and under `gone`.
    fn pass(&self, pass: Pass, roots: &[PathBuf], gone: &[PathBuf]) -> Result<(), Error> {
        let scope = Scope {
            roots,
            gone,
            stop: self.stop,
        };
        let started = Instant::now();
        let progress = |event: IngestEvent<'_>| self.observer.event(WatchEvent::Ingest(event));
        let summary = ingest(self.clip, self.index, &scope, self.options, &progress)?;
        self.observer.event(WatchEvent::Applied {
            pass,
            summary: &summary,
            took: started.elapsed(),
        });
        Ok(())
    }

    /// Whether a path an event names is the watcher's business: under a root, reached by the
    /// walk (not hidden, no link unless links are followed), and not the index's own files.
    fn relevant(&self, path: &Path) -> bool {
        let walk = self.options.walk();
        !path.starts_with(&self.index_dir)
            && self.roots.iter().any(|root| reaches(root, path, walk))
    }
}

/// The changes events reported since the last set was applied.
#[derive(Default)]
struct Changes {
    /// Every relevant path an event named: created, written, deleted, either side of a rename.
    paths: BTreeSet<PathBuf>,
    /// Sources of renames: moved, not vanished, so what was indexed there goes at once (after
    /// the destination, when it is in the same set, has reused their vectors).
    moved: BTreeSet<PathBuf>,
    /// Events were lost: only a rescan can tell what changed.
    rescan: bool,
    /// When the first and the last event of the set came.
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Changes {
    fn add(&mut self, event: &notify::Event, relevant: &impl Fn(&Path) -> bool) {
        match event.kind {
            // Reads (ours included: ingest opens every file it embeds) change nothing.
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => {}
            EventKind::Access(_) => return,
            // The source of a rename (a move within the roots, out of them, to the trash) left
            // on purpose, wherever it went: the other side, if it is under the roots, comes as
            // a path of its own. `Any`: backends that cannot tell the sides apart.
            EventKind::Modify(ModifyKind::Name(
                RenameMode::From | RenameMode::Both | RenameMode::Any,
            )) => {
                if let Some(from) = event.paths.first().filter(|path| relevant(path)) {
                    self.moved.insert(from.clone());
                }
            }
            _ => {}
        }
        let mut named = false;
        for path in event.paths.iter().filter(|path| relevant(path)) {
            self.paths.insert(path.clone());
            named = true;
        }
        if named {
            let now = Instant::now();
            self.first.get_or_insert(now);
            self.last = Some(now);
        }
    }

    /// When the set is to be applied: after the debounce's quiet time, or ten debounces after
    /// its first event under changes that never stop. `None` while it is empty.
    fn due(&self, debounce: Duration) -> Option<Instant> {
        let (first, last) = (self.first?, self.last?);
        Some((last + debounce).min(first + debounce * 10))
    }

    /// The paths to ingest (still there) and those to remove (gone, and known to be a file
    /// the index holds, or renamed away). A folder that is gone without a rename is neither:
    /// its files' own events, if any, removed them; else the next rescan does if its parent
    /// is still there. A root is never removed: a missing drive is not deleted photos.
    fn split(
        self,
        index: &dyn Backend,
        roots: &[PathBuf],
    ) -> Result<(Vec<PathBuf>, Vec<PathBuf>), Error> {
        let mut present = Vec::new();
        let mut gone = Vec::new();
        for path in self.paths {
            if path.symlink_metadata().is_ok() {
                present.push(path);
            } else {
                let key = path_key(&path);
                if (self.moved.contains(&path) && !roots.contains(&path))
                    || index.images().get(&key)?.is_some()
                    || index.failure(&key)?.is_some()
                {
                    gone.push(path);
                }
            }
        }
        Ok((present, gone))
    }
}

/// The roots being watched for events, and notify's watcher.
struct Watches<'a> {
    watcher: Option<RecommendedWatcher>,
    /// Each root watched, with what it was on disk when its watch was set up.
    watched: BTreeMap<PathBuf, Identity>,
    indexer: &'a Indexer<'a>,
}

impl<'a> Watches<'a> {
    /// A watcher sending its events to `sender`; none when `events` is off or the system
    /// gives none (said through the observer, for each root).
    fn new(
        events: bool,
        sender: mpsc::Sender<notify::Result<notify::Event>>,
        indexer: &'a Indexer<'a>,
    ) -> Self {
        let config =
            notify::Config::default().with_follow_symlinks(indexer.options.follow_symlinks);
        let mut watches = Self {
            watcher: None,
            watched: BTreeMap::new(),
            indexer,
        };
        if events {
            match RecommendedWatcher::new(sender, config) {
                Ok(watcher) => watches.watcher = Some(watcher),
                Err(err) => {
                    for root in indexer.roots {
                        watches.report(&err, Some(root));
                    }
                }
            }
        }
        watches
    }

    /// Watches the roots that are there and not yet watched (a drive plugged back in, a
    /// folder moved back), watches again those that are another folder than when they were
    /// watched (a drive mounted or unmounted on them, a folder deleted and made again: the old
    /// watches see nothing of the new one), and forgets those that are gone.
    fn refresh(&mut self) {
        let Some(watcher) = &mut self.watcher else {
            return;
        };
        let mut failed = Vec::new();
        for root in self.indexer.roots {
            let now = identity(root);
            if self.watched.get(root) == now.as_ref() {
                continue;
            }
            if self.watched.remove(root).is_some() {
                // Its watches died with what it was, but notify may still hold their paths.
                let _ = watcher.unwatch(root);
            }
            let Some(now) = now else { continue };
            match watcher.watch(root, RecursiveMode::Recursive) {
                Ok(()) => {
                    self.watched.insert(root.clone(), now);
                }
                // Part of the tree may be watched: the next refresh tries again.
                Err(err) => failed.push((root, err)),
            }
        }
        for (root, err) in failed {
            self.report(&err, Some(root));
        }
    }

    /// A root deleted or moved away as a whole stops being watched at once: events from a
    /// moved folder would still carry the root's paths. A refresh watches it again when it is
    /// back.
    fn forget_moved_root(&mut self, event: &notify::Event) {
        let gone = matches!(
            event.kind,
            EventKind::Remove(_)
                | EventKind::Modify(ModifyKind::Name(RenameMode::From | RenameMode::Any))
        );
        let Some(watcher) = &mut self.watcher else {
            return;
        };
        for path in event.paths.iter().filter(|_| gone) {
            if self.watched.remove(path).is_some() {
                let _ = watcher.unwatch(path);
            }
        }
    }

    /// Tells the observer that events are missing for the error's path, else `root`, else the
    /// first root.
    fn report(&self, err: &notify::Error, root: Option<&PathBuf>) {
        let path = err.paths.first().or(root).or(self.indexer.roots.first());
        if let Some(path) = path {
            self.indexer.observer.event(WatchEvent::Unwatched {
                path,
                reason: &reason(err),
            });
        }
    }
}

/// Tells a root from the empty folder that stands in for it while its drive is away: a mount
/// point left behind when a drive is unmounted (a fixed mount point, from `/etc/fstab`) is
/// another folder than the drive's own, and empty. Walking it would remove every photo of the
/// drive, so a root that is now another folder than when it last had files, and empty, is
/// left out of the pass, its photos kept, as a missing root's are.
#[derive(Default)]
struct StandIns {
    /// Each root as the last pass that walked it found it, with files in it.
    seen: BTreeMap<PathBuf, Identity>,
}

impl StandIns {
    /// The roots a full pass may walk now.
    fn walkable(&mut self, roots: &[PathBuf]) -> Vec<PathBuf> {
        roots
            .iter()
            .filter(|root| self.walkable_root(root))
            .cloned()
            .collect()
    }

    /// Whether a pass may walk `root`: it is missing (nothing is pruned under a missing root
    /// anyway), has files, or is the folder it was when it last had files.
    fn walkable_root(&mut self, root: &Path) -> bool {
        let Some(now) = identity(root) else {
            return true;
        };
        let empty = std::fs::read_dir(root).is_ok_and(|mut entries| entries.next().is_none());
        if !empty {
            self.seen.insert(root.to_path_buf(), now);
            return true;
        }
        self.seen.get(root).is_none_or(|before| *before == now)
    }
}

/// What a folder is on disk: its device and inode, where the platform has such things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity(u64, u64);

/// The identity of the folder at `path`; `None` when there is none.
fn identity(path: &Path) -> Option<Identity> {
    let metadata = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some(Identity(metadata.dev(), metadata.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = metadata;
        Some(Identity(0, 0))
    }
}

/// Why events cannot be had, in words, with what to do.
fn reason(err: &notify::Error) -> String {
    match &err.kind {
        notify::ErrorKind::MaxFilesWatch => "the system's limit on watched folders is reached, \
             so changes below are found by the periodic rescan only\n\n\
             Raise the limit (the sysctl fs.inotify.max_user_watches) to watch them."
            .to_owned(),
        _ => format!("{err}; changes are found by the periodic rescan only"),
    }
}
