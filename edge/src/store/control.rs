//! Store operations on namespaces, services, functions and their immutable versions;
//! each mutation logs the replication entry workers need.

use paddock_shared::model::{
    FunctionRecord, NamespaceRecord, ReplOp, ServiceRecord, VersionRecord,
};

use super::records::Confirmation;
use super::{Store, StoreError, T, abort};

/// Key of a service: `ns/svc`.
pub fn service_key(ns: &str, svc: &str) -> String {
    format!("{ns}/{svc}")
}

/// Key of a function: `ns/svc/fn`.
pub fn function_key(ns: &str, svc: &str, name: &str) -> String {
    format!("{ns}/{svc}/{name}")
}

/// Key of a version: `ns/svc/fn#0000000001` (sorts by number).
pub fn version_key(ns: &str, svc: &str, name: &str, v: u32) -> String {
    format!("{ns}/{svc}/{name}#{v:010}")
}

impl Store {
    /// Creates a namespace; `Exists` when the name is taken by anyone.
    ///
    /// # Errors
    /// [`StoreError::Exists`] or a database failure.
    pub fn create_namespace(&self, n: &NamespaceRecord) -> Result<(), StoreError> {
        self.transact(|tx| {
            if tx.exists(T::Namespaces, n.name.as_bytes())? {
                return abort(StoreError::Exists {
                    kind: "namespace",
                    name: n.name.clone(),
                });
            }
            tx.put(T::Namespaces, n.name.as_bytes(), n)?;
            tx.log(ReplOp::PutNamespace(n.clone()))
        })
    }

    /// A namespace by name.
    ///
    /// # Errors
    /// A database failure.
    pub fn namespace(&self, name: &str) -> Result<Option<NamespaceRecord>, StoreError> {
        self.get(T::Namespaces, name.as_bytes())
    }

    /// Namespaces owned by an account, by name.
    ///
    /// # Errors
    /// A database failure.
    pub fn namespaces_of(&self, owner: &str) -> Result<Vec<NamespaceRecord>, StoreError> {
        Ok(self
            .scan::<NamespaceRecord>(T::Namespaces, b"")?
            .into_iter()
            .filter(|n| n.owner == owner)
            .collect())
    }

    /// Creates a service in an existing namespace.
    ///
    /// # Errors
    /// [`StoreError::Missing`] (namespace), [`StoreError::Exists`] or a database failure.
    pub fn create_service(&self, s: &ServiceRecord) -> Result<(), StoreError> {
        let key = service_key(&s.namespace, &s.name);
        self.transact(|tx| {
            if !tx.exists(T::Namespaces, s.namespace.as_bytes())? {
                return abort(StoreError::Missing {
                    kind: "namespace",
                    name: s.namespace.clone(),
                });
            }
            if tx.exists(T::Services, key.as_bytes())? {
                return abort(StoreError::Exists {
                    kind: "service",
                    name: s.name.clone(),
                });
            }
            tx.put(T::Services, key.as_bytes(), s)?;
            tx.log(ReplOp::PutService(s.clone()))
        })
    }

    /// A service.
    ///
    /// # Errors
    /// A database failure.
    pub fn service(&self, ns: &str, name: &str) -> Result<Option<ServiceRecord>, StoreError> {
        self.get(T::Services, service_key(ns, name).as_bytes())
    }

    /// Services of a namespace, by name.
    ///
    /// # Errors
    /// A database failure.
    pub fn services(&self, ns: &str) -> Result<Vec<ServiceRecord>, StoreError> {
        self.scan(T::Services, format!("{ns}/").as_bytes())
    }

    /// Deletes a service with its functions and versions; returns how many functions went.
    ///
    /// # Errors
    /// [`StoreError::Missing`] or a database failure.
    pub fn delete_service(&self, ns: &str, name: &str) -> Result<usize, StoreError> {
        let prefix = format!("{}/", service_key(ns, name));
        let fkeys = self.keys(T::Functions, prefix.as_bytes())?;
        let vkeys = self.keys(T::Versions, prefix.as_bytes())?;
        let skey = service_key(ns, name);
        let n = self.transact(|tx| {
            if !tx.exists(T::Services, skey.as_bytes())? {
                return abort(StoreError::Missing {
                    kind: "service",
                    name: name.to_owned(),
                });
            }
            tx.remove(T::Services, skey.as_bytes())?;
            for k in &fkeys {
                tx.remove(T::Functions, k)?;
            }
            for k in &vkeys {
                tx.remove(T::Versions, k)?;
            }
            tx.log(ReplOp::DeleteService {
                namespace: ns.to_owned(),
                name: name.to_owned(),
            })?;
            Ok(fkeys.len())
        })?;
        // A function made between the scan and the transaction would be left behind; the
        // service is gone now, so none can be added any more: sweep what is left. Workers
        // drop a deleted service's functions themselves, so this needs no log entry.
        let late_f = self.keys(T::Functions, prefix.as_bytes())?;
        let late_v = self.keys(T::Versions, prefix.as_bytes())?;
        if !late_f.is_empty() || !late_v.is_empty() {
            self.transact(|tx| {
                for k in &late_f {
                    tx.remove(T::Functions, k)?;
                }
                for k in &late_v {
                    tx.remove(T::Versions, k)?;
                }
                Ok(())
            })?;
        }
        self.clear_counters(prefix.as_bytes())?;
        Ok(n + late_f.len())
    }

    /// Makes a function with its first version.
    ///
    /// # Errors
    /// [`StoreError::Missing`] (service), [`StoreError::Exists`] or a database failure.
    pub fn create_function(&self, f: &FunctionRecord, v: &VersionRecord) -> Result<(), StoreError> {
        let skey = service_key(&f.namespace, &f.service);
        let fkey = function_key(&f.namespace, &f.service, &f.name);
        let vkey = version_key(&f.namespace, &f.service, &f.name, v.version);
        self.transact(|tx| {
            if !tx.exists(T::Services, skey.as_bytes())? {
                return abort(StoreError::Missing {
                    kind: "service",
                    name: f.service.clone(),
                });
            }
            if tx.exists(T::Functions, fkey.as_bytes())? {
                return abort(StoreError::Exists {
                    kind: "function",
                    name: format!("{}.{}", f.service, f.name),
                });
            }
            tx.put(T::Functions, fkey.as_bytes(), f)?;
            tx.put(T::Versions, vkey.as_bytes(), v)?;
            tx.log(ReplOp::PutFunction {
                function: f.clone(),
                version: Some(v.clone()),
            })
        })
    }

    /// Writes a changed function, with a new version when `v` is set. The new version must
    /// not exist yet (`Exists` means a concurrent update won: read again and retry).
    ///
    /// # Errors
    /// [`StoreError::Missing`], [`StoreError::Exists`] or a database failure.
    pub fn update_function(
        &self,
        f: &FunctionRecord,
        v: Option<&VersionRecord>,
    ) -> Result<(), StoreError> {
        let fkey = function_key(&f.namespace, &f.service, &f.name);
        self.transact(|tx| {
            if !tx.exists(T::Functions, fkey.as_bytes())? {
                return abort(StoreError::Missing {
                    kind: "function",
                    name: format!("{}.{}", f.service, f.name),
                });
            }
            if let Some(v) = v {
                let vkey = version_key(&f.namespace, &f.service, &f.name, v.version);
                if tx.exists(T::Versions, vkey.as_bytes())? {
                    return abort(StoreError::Exists {
                        kind: "version",
                        name: v.version.to_string(),
                    });
                }
                tx.put(T::Versions, vkey.as_bytes(), v)?;
            }
            tx.put(T::Functions, fkey.as_bytes(), f)?;
            tx.log(ReplOp::PutFunction {
                function: f.clone(),
                version: v.cloned(),
            })
        })
    }

    /// Deletes a function and its versions.
    ///
    /// # Errors
    /// [`StoreError::Missing`] or a database failure.
    pub fn delete_function(&self, ns: &str, svc: &str, name: &str) -> Result<(), StoreError> {
        let fkey = function_key(ns, svc, name);
        let vkeys = self.keys(T::Versions, format!("{fkey}#").as_bytes())?;
        self.transact(|tx| {
            if !tx.exists(T::Functions, fkey.as_bytes())? {
                return abort(StoreError::Missing {
                    kind: "function",
                    name: format!("{svc}.{name}"),
                });
            }
            tx.remove(T::Functions, fkey.as_bytes())?;
            for k in &vkeys {
                tx.remove(T::Versions, k)?;
            }
            tx.log(ReplOp::DeleteFunction {
                namespace: ns.to_owned(),
                service: svc.to_owned(),
                name: name.to_owned(),
            })
        })?;
        self.counters_remove(fkey.as_bytes())
    }

    fn counters_remove(&self, key: &[u8]) -> Result<(), StoreError> {
        self.counters.remove(key)?;
        Ok(())
    }

    /// A function.
    ///
    /// # Errors
    /// A database failure.
    pub fn function(
        &self,
        ns: &str,
        svc: &str,
        name: &str,
    ) -> Result<Option<FunctionRecord>, StoreError> {
        self.get(T::Functions, function_key(ns, svc, name).as_bytes())
    }

    /// Functions of a service, by name.
    ///
    /// # Errors
    /// A database failure.
    pub fn functions(&self, ns: &str, svc: &str) -> Result<Vec<FunctionRecord>, StoreError> {
        self.scan(
            T::Functions,
            format!("{}/", service_key(ns, svc)).as_bytes(),
        )
    }

    /// Every version of a function, oldest first.
    ///
    /// # Errors
    /// A database failure.
    pub fn versions(
        &self,
        ns: &str,
        svc: &str,
        name: &str,
    ) -> Result<Vec<VersionRecord>, StoreError> {
        self.scan(
            T::Versions,
            format!("{}#", function_key(ns, svc, name)).as_bytes(),
        )
    }

    /// One version of a function.
    ///
    /// # Errors
    /// A database failure.
    pub fn version(
        &self,
        ns: &str,
        svc: &str,
        name: &str,
        v: u32,
    ) -> Result<Option<VersionRecord>, StoreError> {
        self.get(T::Versions, version_key(ns, svc, name, v).as_bytes())
    }

    /// Stores a pending confirmation.
    ///
    /// # Errors
    /// A database failure.
    pub fn put_confirmation(&self, token: &str, c: &Confirmation) -> Result<(), StoreError> {
        // Drop tokens that expired unused, so the tree stays small.
        let t = super::now();
        for item in self.tree(T::Confirmations).iter() {
            let (k, v) = item?;
            if super::codec::decode::<Confirmation>(&v).map_or(true, |old| old.expires_at < t) {
                self.tree(T::Confirmations).remove(k)?;
            }
        }
        self.transact(|tx| tx.put(T::Confirmations, token.as_bytes(), c))
    }

    /// Takes (reads and removes) a pending confirmation.
    ///
    /// # Errors
    /// A database failure.
    pub fn take_confirmation(&self, token: &str) -> Result<Option<Confirmation>, StoreError> {
        self.transact(|tx| {
            let c = tx.get::<Confirmation>(T::Confirmations, token.as_bytes())?;
            if c.is_some() {
                tx.remove(T::Confirmations, token.as_bytes())?;
            }
            Ok(c)
        })
    }

    /// Call count of a function.
    ///
    /// # Errors
    /// A database failure.
    pub fn call_count(&self, ns: &str, svc: &str, name: &str) -> Result<u64, StoreError> {
        self.counter(function_key(ns, svc, name).as_bytes())
    }
}
