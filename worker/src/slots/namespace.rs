//! Where the pools get a namespace's functions: the [`NamespaceSource`] seam (the worker's
//! sled replica in production, anything in tests) and the packages built from it.

use std::sync::{Arc, OnceLock};

use paddock_shared::model::{FunctionRecord, Language, VersionRecord};

use crate::package::{Contents, Package, PackageCache};
use crate::replica::Replica;

/// Packages kept by a pool set (namespace × stamp × language).
pub const PACKAGE_CACHE_CAPACITY: usize = 64;

/// A namespace source could not be read.
#[derive(Debug, thiserror::Error)]
#[error("reading namespace {namespace}: {message}")]
pub struct SourceError {
    pub namespace: String,
    pub message: String,
}

/// The functions of namespaces, as code execution needs them.
pub trait NamespaceSource: Send + Sync {
    /// A stamp that changes whenever the namespace's functions may have changed.
    ///
    /// # Errors
    /// The source cannot be read.
    fn stamp(&self, namespace: &str) -> Result<u64, SourceError>;

    /// Every function of the namespace with its current version, and the stamp they
    /// were read at (read together).
    ///
    /// # Errors
    /// The source cannot be read.
    fn functions(&self, namespace: &str) -> Result<Stamped, SourceError>;

    /// The functions and the remote MCP servers (issue 6) of the namespace with the stamp
    /// they were read at. The default has no remote servers.
    ///
    /// # Errors
    /// The source cannot be read.
    fn contents(&self, namespace: &str) -> Result<Contents, SourceError> {
        self.functions(namespace).map(|(s, f)| (s, f, Vec::new()))
    }

    /// One version of one function (`None` when unknown).
    ///
    /// # Errors
    /// The source cannot be read.
    fn version(
        &self,
        namespace: &str,
        service: &str,
        function: &str,
        version: u32,
    ) -> Result<Option<VersionRecord>, SourceError>;
}

/// Functions with the stamp they were read at.
pub type Stamped = (u64, Vec<(FunctionRecord, VersionRecord)>);

fn source_error(namespace: &str, e: impl std::fmt::Display) -> SourceError {
    SourceError {
        namespace: namespace.to_owned(),
        message: e.to_string(),
    }
}

impl NamespaceSource for Replica {
    fn stamp(&self, namespace: &str) -> Result<u64, SourceError> {
        self.namespace_stamp(namespace)
            .map_err(|e| source_error(namespace, e))
    }

    fn functions(&self, namespace: &str) -> Result<Stamped, SourceError> {
        self.namespace_functions_stamped(namespace)
            .map_err(|e| source_error(namespace, e))
    }

    fn contents(&self, namespace: &str) -> Result<Contents, SourceError> {
        self.namespace_contents_stamped(namespace)
            .map_err(|e| source_error(namespace, e))
    }

    fn version(
        &self,
        namespace: &str,
        service: &str,
        function: &str,
        version: u32,
    ) -> Result<Option<VersionRecord>, SourceError> {
        Replica::version(self, namespace, service, function, version)
            .map_err(|e| source_error(namespace, e))
    }
}

impl<T: NamespaceSource + ?Sized> NamespaceSource for Arc<T> {
    fn stamp(&self, namespace: &str) -> Result<u64, SourceError> {
        (**self).stamp(namespace)
    }

    fn functions(&self, namespace: &str) -> Result<Stamped, SourceError> {
        (**self).functions(namespace)
    }

    fn contents(&self, namespace: &str) -> Result<Contents, SourceError> {
        (**self).contents(namespace)
    }

    fn version(
        &self,
        namespace: &str,
        service: &str,
        function: &str,
        version: u32,
    ) -> Result<Option<VersionRecord>, SourceError> {
        (**self).version(namespace, service, function, version)
    }
}

/// The optional source of a pool set and its package cache.
pub(super) struct Namespaces {
    source: OnceLock<Arc<dyn NamespaceSource>>,
    packages: PackageCache,
}

impl std::fmt::Debug for Namespaces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Namespaces")
            .field("source", &self.source.get().is_some())
            .field("packages", &self.packages.len())
            .finish()
    }
}

impl Namespaces {
    pub(super) fn new() -> Namespaces {
        Namespaces {
            source: OnceLock::new(),
            packages: PackageCache::new(PACKAGE_CACHE_CAPACITY),
        }
    }

    /// Sets the source once; false when one was already set.
    pub(super) fn set(&self, source: Arc<dyn NamespaceSource>) -> bool {
        self.source.set(source).is_ok()
    }

    pub(super) fn source(&self) -> Option<&Arc<dyn NamespaceSource>> {
        self.source.get()
    }

    /// The package of `namespace` for code in `language` (cached by stamp), or `None`
    /// without a source.
    ///
    /// # Errors
    /// The source cannot be read.
    pub(super) fn package(
        &self,
        namespace: &str,
        language: Language,
    ) -> Result<Option<Arc<Package>>, SourceError> {
        let Some(source) = self.source.get() else {
            return Ok(None);
        };
        let stamp = source.stamp(namespace)?;
        self.packages
            .get_or_generate_contents(namespace, stamp, language, || source.contents(namespace))
            .map(Some)
    }
}
