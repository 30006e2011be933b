//! Store operations on remote MCP servers and the namespace secret store. A server is two
//! records written together: the edge-only [`McpServerConfig`] (sealed secrets) and its
//! replicated, secret-free view, logged as `PutRemoteServer`/`DeleteRemoteServer` in the
//! same transaction. Writing any sealed value records the KEK id in `meta`, so a start
//! without (or with the wrong) KEK is refused while encrypted data exists.

use paddock_shared::model::{RemoteServerRecord, ReplOp};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, T, Tx, TxResult, abort};
use crate::remote::model::McpServerConfig;
use crate::secrets::{Kek, Sealed, secret_context, server_context};

/// Meta key: the id of the KEK that wraps the stored secrets (present once any exists).
pub const KEK_ID_KEY: &[u8] = b"kek_id";

/// A namespace secret (`set_secret`): its value is sealed; only the name is ever shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRecord {
    pub namespace: String,
    pub name: String,
    pub value: Sealed,
    pub created_at: u64,
    pub updated_at: u64,
}

/// Key of a server or secret: `ns/name`.
pub fn remote_key(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
}

fn mark_kek(tx: &Tx<'_>, kek_id: &str) -> TxResult<()> {
    tx.put(T::Meta, KEK_ID_KEY, &kek_id.to_owned())
}

impl Store {
    /// Adds a server (`create`) or replaces it; with `expect` set, only if the stored
    /// record still equals it (`Changed` otherwise).
    ///
    /// # Errors
    /// [`StoreError::Missing`] (namespace, or server when replacing),
    /// [`StoreError::Exists`], [`StoreError::Changed`] or a database failure.
    pub fn put_mcp_server(
        &self,
        cfg: &McpServerConfig,
        expect: Option<&McpServerConfig>,
    ) -> Result<(), StoreError> {
        let key = remote_key(&cfg.namespace, &cfg.name);
        let view = cfg.view();
        let expect_bytes = expect.map(super::codec::encode).transpose()?;
        self.transact(|tx| {
            if !tx.exists(T::Namespaces, cfg.namespace.as_bytes())? {
                return abort(StoreError::Missing {
                    kind: "namespace",
                    name: cfg.namespace.clone(),
                });
            }
            let current = tx.t(T::McpServers).get(key.as_bytes())?;
            match (&expect_bytes, current) {
                (None, Some(_)) => {
                    return abort(StoreError::Exists {
                        kind: "MCP server",
                        name: cfg.name.clone(),
                    });
                }
                (Some(_), None) => {
                    return abort(StoreError::Missing {
                        kind: "MCP server",
                        name: cfg.name.clone(),
                    });
                }
                (Some(want), Some(cur)) if cur.as_ref() != want.as_slice() => {
                    return abort(StoreError::Changed {
                        kind: "MCP server",
                        name: cfg.name.clone(),
                    });
                }
                _ => {}
            }
            tx.put(T::McpServers, key.as_bytes(), cfg)?;
            tx.put(T::RemoteServers, key.as_bytes(), &view)?;
            mark_kek(tx, &cfg.url.kek_id)?;
            tx.log(ReplOp::PutRemoteServer(view.clone()))
        })
    }

    /// Removes a server (config and view) and logs the deletion.
    ///
    /// # Errors
    /// [`StoreError::Missing`] or a database failure.
    pub fn delete_mcp_server(&self, ns: &str, name: &str) -> Result<(), StoreError> {
        let key = remote_key(ns, name);
        self.transact(|tx| {
            if !tx.exists(T::McpServers, key.as_bytes())? {
                return abort(StoreError::Missing {
                    kind: "MCP server",
                    name: name.to_owned(),
                });
            }
            tx.remove(T::McpServers, key.as_bytes())?;
            tx.remove(T::RemoteServers, key.as_bytes())?;
            tx.log(ReplOp::DeleteRemoteServer {
                namespace: ns.to_owned(),
                name: name.to_owned(),
            })
        })
    }

    /// One server's edge record.
    ///
    /// # Errors
    /// A database failure.
    pub fn mcp_server(&self, ns: &str, name: &str) -> Result<Option<McpServerConfig>, StoreError> {
        self.get(T::McpServers, remote_key(ns, name).as_bytes())
    }

    /// The servers of a namespace, by name.
    ///
    /// # Errors
    /// A database failure.
    pub fn mcp_servers(&self, ns: &str) -> Result<Vec<McpServerConfig>, StoreError> {
        self.scan(T::McpServers, format!("{ns}/").as_bytes())
    }

    /// Every replicated view, sorted by (namespace, name).
    ///
    /// # Errors
    /// A database failure.
    pub fn remote_server_views(&self) -> Result<Vec<RemoteServerRecord>, StoreError> {
        let mut v: Vec<RemoteServerRecord> = self.scan(T::RemoteServers, b"")?;
        v.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Ok(v)
    }

    /// Sets a namespace secret (creates or replaces it).
    ///
    /// # Errors
    /// [`StoreError::Missing`] (namespace) or a database failure.
    pub fn put_secret(&self, rec: &SecretRecord) -> Result<bool, StoreError> {
        let key = remote_key(&rec.namespace, &rec.name);
        self.transact(|tx| {
            if !tx.exists(T::Namespaces, rec.namespace.as_bytes())? {
                return abort(StoreError::Missing {
                    kind: "namespace",
                    name: rec.namespace.clone(),
                });
            }
            let old: Option<SecretRecord> = tx.get(T::Secrets, key.as_bytes())?;
            let mut rec = rec.clone();
            if let Some(old) = &old {
                rec.created_at = old.created_at;
            }
            tx.put(T::Secrets, key.as_bytes(), &rec)?;
            mark_kek(tx, &rec.value.kek_id)?;
            Ok(old.is_none())
        })
    }

    /// A namespace secret.
    ///
    /// # Errors
    /// A database failure.
    pub fn secret(&self, ns: &str, name: &str) -> Result<Option<SecretRecord>, StoreError> {
        self.get(T::Secrets, remote_key(ns, name).as_bytes())
    }

    /// The secrets of a namespace, by name.
    ///
    /// # Errors
    /// A database failure.
    pub fn secrets(&self, ns: &str) -> Result<Vec<SecretRecord>, StoreError> {
        self.scan(T::Secrets, format!("{ns}/").as_bytes())
    }

    /// Deletes a namespace secret.
    ///
    /// # Errors
    /// [`StoreError::Missing`] or a database failure.
    pub fn delete_secret(&self, ns: &str, name: &str) -> Result<(), StoreError> {
        let key = remote_key(ns, name);
        self.transact(|tx| {
            if !tx.exists(T::Secrets, key.as_bytes())? {
                return abort(StoreError::Missing {
                    kind: "secret",
                    name: name.to_owned(),
                });
            }
            tx.remove(T::Secrets, key.as_bytes())
        })
    }

    /// The id of the KEK that wraps the stored secrets, if any secret was ever stored.
    ///
    /// # Errors
    /// A database failure.
    pub fn kek_id(&self) -> Result<Option<String>, StoreError> {
        self.get(T::Meta, KEK_ID_KEY)
    }

    /// Whether any sealed value is stored.
    ///
    /// # Errors
    /// A database failure.
    pub fn has_sealed_data(&self) -> Result<bool, StoreError> {
        Ok(!self.tree(T::McpServers).is_empty() || !self.tree(T::Secrets).is_empty())
    }

    /// Rewraps every data key (servers' URLs, tokens, headers; namespace secrets) from
    /// `old` to `new` in one transaction: all or nothing. Returns how many values moved.
    ///
    /// # Errors
    /// [`StoreError::Rewrap`] naming the first value that does not open under `old`
    /// (nothing is changed then), or a database failure.
    pub fn rotate_kek(&self, old: &Kek, new: &Kek) -> Result<usize, StoreError> {
        let rewrap = |ctx: String, s: &Sealed| -> TxResult<Sealed> {
            if s.kek_id == new.id() {
                return Ok(s.clone());
            }
            old.rewrap(new, &ctx, s).map_err(|e| {
                sled::transaction::ConflictableTransactionError::Abort(StoreError::Rewrap {
                    context: ctx.clone(),
                    reason: e.to_string(),
                })
            })
        };
        // Read first (a sled transaction must not iterate the trees it writes); this runs
        // offline, with the edge stopped, so nothing changes in between.
        let servers: Vec<(sled::IVec, McpServerConfig)> = self
            .tree(T::McpServers)
            .iter()
            .map(|item| {
                let (k, v) = item?;
                Ok((k, super::codec::decode(&v)?))
            })
            .collect::<Result<_, StoreError>>()?;
        let secrets: Vec<(sled::IVec, SecretRecord)> = self
            .tree(T::Secrets)
            .iter()
            .map(|item| {
                let (k, v) = item?;
                Ok((k, super::codec::decode(&v)?))
            })
            .collect::<Result<_, StoreError>>()?;
        self.transact(|tx| {
            let mut n = 0;
            for (k, cfg) in &servers {
                let mut cfg = cfg.clone();
                let ctx = |f: &str| server_context(&cfg.namespace, &cfg.name, f);
                cfg.url = rewrap(ctx("url"), &cfg.url)?;
                if let Some(t) = &cfg.auth_token {
                    cfg.auth_token = Some(rewrap(ctx("auth_token"), t)?);
                }
                let mut headers = cfg.headers.clone();
                for (h, s) in headers.iter_mut() {
                    *s = rewrap(ctx(&format!("header/{h}")), s)?;
                }
                n += 1 + usize::from(cfg.auth_token.is_some()) + headers.len();
                cfg.headers = headers;
                tx.put(T::McpServers, k, &cfg)?;
            }
            for (k, rec) in &secrets {
                let mut rec = rec.clone();
                rec.value = rewrap(secret_context(&rec.namespace, &rec.name), &rec.value)?;
                tx.put(T::Secrets, k, &rec)?;
                n += 1;
            }
            mark_kek(tx, new.id())?;
            Ok(n)
        })
    }
}
