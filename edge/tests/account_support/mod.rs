//! An account with an API key, made directly in a real [`App`] (no REST round trip), for
//! the tests that drive the control plane and the run tools in process.
#![allow(dead_code, clippy::unwrap_used)]

use paddock_edge::app::{App, Principal, Scope};
use paddock_edge::store::records::AccountRecord;
use paddock_shared::model::Tier;

/// Read, write and execute.
pub const ALL: &[Scope] = &[Scope::Read, Scope::Write, Scope::Execute];

/// The free-tier account of `email` (id `acc_` + the email with `@` and `.` as `_`, made
/// when missing) and a new key of it with `scopes`, bound to `ns` when given: the key's
/// principal and the raw key.
pub fn account(app: &App, email: &str, scopes: &[Scope], ns: Option<&str>) -> (Principal, String) {
    let id = format!("acc_{}", email.replace(['@', '.'], "_"));
    if app.store().account(&id).unwrap().is_none() {
        app.store()
            .create_account(&AccountRecord {
                id: id.clone(),
                email: email.into(),
                name: email.into(),
                tier: Tier::Free,
                password_hash: None,
                is_admin: false,
                created_at: 1,
            })
            .unwrap();
    }
    let (raw, _) = app
        .create_key(&id, "test", scopes.to_vec(), ns.map(str::to_owned), None)
        .unwrap();
    (app.authenticate(&raw).unwrap(), raw)
}
