//! Store operations on accounts and API keys.

use super::records::{AccountRecord, ApiKeyRecord};
use super::{Store, StoreError, T, abort};
use paddock_shared::model::Tier;

impl Store {
    /// Creates an account; fails with `Exists` when the email is taken.
    ///
    /// # Errors
    /// [`StoreError::Exists`] or a database failure.
    pub fn create_account(&self, a: &AccountRecord) -> Result<(), StoreError> {
        self.transact(|tx| {
            if tx.exists(T::Emails, a.email.as_bytes())? {
                return abort(StoreError::Exists {
                    kind: "account",
                    name: a.email.clone(),
                });
            }
            tx.put(T::Emails, a.email.as_bytes(), &a.id)?;
            tx.put(T::Accounts, a.id.as_bytes(), a)
        })
    }

    /// An account by id.
    ///
    /// # Errors
    /// A database failure.
    pub fn account(&self, id: &str) -> Result<Option<AccountRecord>, StoreError> {
        self.get(T::Accounts, id.as_bytes())
    }

    /// An account by (lower-cased) email.
    ///
    /// # Errors
    /// A database failure.
    pub fn account_by_email(&self, email: &str) -> Result<Option<AccountRecord>, StoreError> {
        match self.get::<String>(T::Emails, email.as_bytes())? {
            Some(id) => self.account(&id),
            None => Ok(None),
        }
    }

    /// Sets an account's tier.
    ///
    /// # Errors
    /// [`StoreError::Missing`] or a database failure.
    pub fn set_tier(&self, account_id: &str, tier: Tier) -> Result<AccountRecord, StoreError> {
        self.transact(|tx| {
            let Some(mut a) = tx.get::<AccountRecord>(T::Accounts, account_id.as_bytes())? else {
                return abort(StoreError::Missing {
                    kind: "account",
                    name: account_id.to_owned(),
                });
            };
            a.tier = tier;
            tx.put(T::Accounts, account_id.as_bytes(), &a)?;
            Ok(a)
        })
    }

    /// Stores a new key (by id and by digest).
    ///
    /// # Errors
    /// A database failure.
    pub fn put_key(&self, k: &ApiKeyRecord) -> Result<(), StoreError> {
        self.transact(|tx| {
            tx.put(T::KeysByDigest, &k.digest, &k.id)?;
            tx.put(T::KeysById, k.id.as_bytes(), k)
        })
    }

    /// A key by its digest.
    ///
    /// # Errors
    /// A database failure.
    pub fn key_by_digest(&self, digest: &[u8]) -> Result<Option<ApiKeyRecord>, StoreError> {
        match self.get::<String>(T::KeysByDigest, digest)? {
            Some(id) => self.get(T::KeysById, id.as_bytes()),
            None => Ok(None),
        }
    }

    /// Every key of an account, oldest first.
    ///
    /// # Errors
    /// A database failure.
    pub fn keys_of(&self, account_id: &str) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let mut keys: Vec<ApiKeyRecord> = self
            .scan::<ApiKeyRecord>(T::KeysById, b"")?
            .into_iter()
            .filter(|k| k.account_id == account_id)
            .collect();
        keys.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(keys)
    }

    /// Revokes a key of `account_id`; `Missing` when there is no such key of that account.
    ///
    /// # Errors
    /// [`StoreError::Missing`] or a database failure.
    pub fn revoke_key(
        &self,
        account_id: &str,
        key_id: &str,
        at: u64,
    ) -> Result<ApiKeyRecord, StoreError> {
        self.transact(
            |tx| match tx.get::<ApiKeyRecord>(T::KeysById, key_id.as_bytes())? {
                Some(mut k) if k.account_id == account_id => {
                    if k.revoked_at.is_none() {
                        k.revoked_at = Some(at);
                    }
                    tx.put(T::KeysById, key_id.as_bytes(), &k)?;
                    Ok(k)
                }
                _ => abort(StoreError::Missing {
                    kind: "api key",
                    name: key_id.to_owned(),
                }),
            },
        )
    }
}
