//! Edge-only records (never replicated): accounts, API keys (digests only) and pending
//! confirmations of destructive operations.

use paddock_shared::model::Tier;
use serde::{Deserialize, Serialize};

use crate::app::Scope;

/// An account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRecord {
    pub id: String,
    /// Lower-cased email.
    pub email: String,
    pub name: String,
    pub tier: Tier,
    /// Argon2id PHC string; `None` for accounts that cannot log in with a password.
    pub password_hash: Option<String>,
    pub is_admin: bool,
    pub created_at: u64,
}

/// An API key: only its keyed digest is stored, never the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    pub id: String,
    pub account_id: String,
    pub name: String,
    /// HMAC-SHA256(pepper, raw key).
    pub digest: Vec<u8>,
    /// The first characters of the raw key (`pdk_1a2b3c4d`), for recognising it in lists.
    pub prefix: String,
    pub scopes: Vec<Scope>,
    pub namespace: Option<String>,
    pub expires_at: Option<u64>,
    pub revoked_at: Option<u64>,
    pub created_at: u64,
}

/// A pending two-step deletion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    pub account_id: String,
    pub namespace: String,
    /// What the token deletes, e.g. `service:tools`.
    pub target: String,
    pub expires_at: u64,
}
