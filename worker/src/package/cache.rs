//! A small bounded cache of generated packages keyed by (namespace, stamp, language),
//! evicting the least recently used entry when full.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use paddock_shared::model::{FunctionRecord, Language, RemoteServerRecord, VersionRecord};

use super::{Package, generate_with_remote};

/// What a package is generated from: the stamp it was read at, the functions with their
/// current versions, and the remote MCP servers.
pub type Contents = (
    u64,
    Vec<(FunctionRecord, VersionRecord)>,
    Vec<RemoteServerRecord>,
);

type Key = (String, u64, Language);

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<Key, (Arc<Package>, u64)>,
    tick: u64,
}

/// Packages by (namespace, stamp, language). `stamp` is whatever changes when the
/// namespace's functions change (e.g. the replica sequence of its last change), so a
/// stale package is never served: a new stamp is a new key and old ones age out.
#[derive(Debug)]
pub struct PackageCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

impl PackageCache {
    /// A cache holding at most `capacity` packages (at least one).
    pub fn new(capacity: usize) -> PackageCache {
        PackageCache {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map inconsistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached package, marking it recently used.
    pub fn get(&self, namespace: &str, stamp: u64, language: Language) -> Option<Arc<Package>> {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        let key = (namespace.to_owned(), stamp, language);
        inner.entries.get_mut(&key).map(|(p, used)| {
            *used = tick;
            Arc::clone(p)
        })
    }

    /// Stores `package`, evicting the least recently used entry when full.
    pub fn insert(&self, namespace: &str, stamp: u64, package: Package) -> Arc<Package> {
        let package = Arc::new(package);
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        let key = (namespace.to_owned(), stamp, package.language);
        if !inner.entries.contains_key(&key) && inner.entries.len() >= self.capacity {
            let oldest = inner
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                inner.entries.remove(&oldest);
            }
        }
        inner.entries.insert(key, (Arc::clone(&package), tick));
        package
    }

    /// The package cached under (`namespace`, `stamp`, `language`), or one generated from
    /// `load()` (called only on a miss). `load` returns the functions together with the
    /// stamp they were read at (e.g. `Replica::namespace_functions_stamped`), and the new
    /// package is cached under that stamp, so functions are never cached under a stamp
    /// older than they are.
    ///
    /// # Errors
    /// Whatever `load` returns (e.g. a replica read error); nothing is cached then.
    pub fn get_or_generate<E>(
        &self,
        namespace: &str,
        stamp: u64,
        language: Language,
        load: impl FnOnce() -> Result<(u64, Vec<(FunctionRecord, VersionRecord)>), E>,
    ) -> Result<Arc<Package>, E> {
        if let Some(p) = self.get(namespace, stamp, language) {
            return Ok(p);
        }
        let (read_stamp, functions) = load()?;
        let package = generate_with_remote(namespace, &functions, &[], language);
        Ok(self.insert(namespace, read_stamp, package))
    }

    /// [`PackageCache::get_or_generate`] with the namespace's remote MCP servers too:
    /// `load` returns [`Contents`] read together at one stamp (e.g.
    /// `Replica::namespace_contents_stamped`).
    ///
    /// # Errors
    /// Whatever `load` returns; nothing is cached then.
    pub fn get_or_generate_contents<E>(
        &self,
        namespace: &str,
        stamp: u64,
        language: Language,
        load: impl FnOnce() -> Result<Contents, E>,
    ) -> Result<Arc<Package>, E> {
        if let Some(p) = self.get(namespace, stamp, language) {
            return Ok(p);
        }
        let (read_stamp, functions, remote) = load()?;
        let package = generate_with_remote(namespace, &functions, &remote, language);
        Ok(self.insert(namespace, read_stamp, package))
    }

    /// Number of cached packages.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
