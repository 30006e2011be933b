//! The seam between the transport (pingora, TLS, routing, rmcp in `server`/`mcp`) and
//! the control plane (store, identity, create tools, REST in `store`/`identity`/`tools`/
//! `rest`). The transport turns HTTP and MCP into calls on [`App`]; `App` never sees
//! sockets, and the transport never touches sled.

use std::net::IpAddr;

use paddock_shared::ErrorCode;
use serde_json::Value;

/// Scopes a key can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Write,
    Execute,
}

/// Which MCP endpoint a request was routed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Create,
    Run,
}

/// Who is calling: the result of authenticating an API key (or a JWT on REST).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub account_id: String,
    pub key_id: String,
    pub tier: paddock_shared::model::Tier,
    pub scopes: Vec<Scope>,
    /// Set when the key is bound to one namespace.
    pub namespace: Option<String>,
    pub is_admin: bool,
}

/// A typed, user-visible failure: a stable code and a message that says what to do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Extra fields merged into the JSON body (e.g. `usage`, `limit`, `tier` for quotas).
    pub details: Option<Value>,
    /// `Retry-After` seconds, for 429/503 answers.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    /// The JSON body: `{"code": "...", "message": "...", ...details}`.
    pub fn body(&self) -> Value {
        let mut v = serde_json::json!({ "code": self.code.as_str(), "message": self.message });
        if let (Some(Value::Object(extra)), Value::Object(map)) = (&self.details, &mut v) {
            for (k, val) in extra {
                map.insert(k.clone(), val.clone());
            }
        }
        v
    }
}

/// A tool as listed by `tools/list`.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDef {
    pub name: String,
    pub description: String,
    /// A JSON Schema object (`{"type":"object",...}`).
    pub input_schema: Value,
}

/// A REST request, already read off the wire (body bounded by the transport).
#[derive(Debug, Clone)]
pub struct RestRequest {
    pub method: String,
    /// Path without the query string, e.g. `/v1/auth/login`.
    pub path: String,
    pub query: Option<String>,
    /// Lower-cased header names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub client_addr: Option<IpAddr>,
}

/// A REST response: status and JSON body.
#[derive(Debug, Clone)]
pub struct RestResponse {
    pub status: u16,
    pub body: Value,
    pub headers: Vec<(String, String)>,
}

// ---------------------------------------------------------------------------------------
// The control plane behind the seam.

use std::path::PathBuf;
use std::sync::Arc;

use paddock_shared::model::Tier;

use crate::identity::jwt::Jwt;
use crate::identity::throttle::LoginThrottle;
use crate::identity::{keys, secrets};
use crate::quota::{Limiter, UsageCounters};
use crate::store::records::{AccountRecord, ApiKeyRecord};
use crate::store::{ReplicationLog, Store, StoreError, now};
use crate::tools;

/// Everything [`App::open`] needs. Build it with [`AppConfig::new`] and set fields.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Data directory: sled at `<data_dir>/state`, `admin.key`, generated secrets.
    pub data_dir: PathBuf,
    /// Whether `POST /v1/auth/register` is open.
    pub registration_enabled: bool,
    /// HS256 secret for JWTs; generated into `<data_dir>/jwt.secret` when unset.
    pub jwt_secret: Option<String>,
    /// Pepper of the API-key digests; generated into `<data_dir>/key.pepper` when unset.
    pub key_pepper: Option<String>,
    /// Email of the admin account made on first start.
    pub admin_email: String,
    /// Key-encryption key of the stored secrets (remote MCP credentials, namespace
    /// secrets); required at start when encrypted data exists.
    pub kek: Option<crate::secrets::Kek>,
    /// Networks remote MCP servers may be in although they are not public (SSRF guard).
    pub allow_private_mcp_hosts: crate::remote::guard::AllowList,
    /// Idle time after which a pooled remote MCP connection is closed.
    pub remote_idle: std::time::Duration,
    /// Monthly quota, rates and concurrency per tier (`[limits]`).
    pub limits: crate::quota::LimitsConfig,
}

impl AppConfig {
    /// Defaults: registration on, generated secrets, admin `admin@localhost`.
    pub fn new(data_dir: impl Into<PathBuf>) -> AppConfig {
        AppConfig {
            data_dir: data_dir.into(),
            registration_enabled: true,
            jwt_secret: None,
            key_pepper: None,
            admin_email: "admin@localhost".to_owned(),
            kek: None,
            allow_private_mcp_hosts: crate::remote::guard::AllowList::default(),
            remote_idle: crate::remote::pool::DEFAULT_IDLE,
            limits: crate::quota::LimitsConfig::default(),
        }
    }
}

/// Why the control plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot open the state database under {path}: {source}")]
    Store { path: String, source: StoreError },
    #[error(transparent)]
    Secret(#[from] secrets::SecretError),
    #[error("cannot write the admin key to {path}: {source}")]
    AdminKey {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot create the admin account: {0}")]
    Admin(String),
    /// Encrypted secrets exist but no (or another) key-encryption key is configured.
    #[error("cannot start: {0}")]
    Kek(crate::secrets::SecretError),
    #[error("cannot start the remote MCP runtime: {0}")]
    Remote(std::io::Error),
    #[error("invalid limits:\n  - {}", .0.join("\n  - "))]
    Limits(Vec<String>),
    #[error("cannot open the usage counters: {0}")]
    Usage(#[from] crate::quota::durable::UsageStoreError),
}

/// File names under the data directory.
pub const STATE_DIR: &str = "state";
/// The admin key file (mode 0600).
pub const ADMIN_KEY_FILE: &str = "admin.key";
/// Generated key pepper (mode 0600).
pub const PEPPER_FILE: &str = "key.pepper";
/// Generated JWT secret (mode 0600).
pub const JWT_SECRET_FILE: &str = "jwt.secret";

/// The control plane: durable state, identity, create tools and REST. Cheap to clone.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: AppConfig,
    store: Store,
    pepper: Vec<u8>,
    pub(crate) jwt: Jwt,
    throttle: LoginThrottle,
    remote: Arc<crate::remote::Remote>,
    /// Quota, rate and concurrency checks (in memory).
    limiter: Arc<Limiter>,
    /// The limiter's monthly counters, durable in the store's sled database.
    usage: UsageCounters,
}

/// Every scope.
pub const ALL_SCOPES: [Scope; 3] = [Scope::Read, Scope::Write, Scope::Execute];

fn internal(e: impl std::fmt::Display) -> ApiError {
    let id = uuid::Uuid::new_v4().simple().to_string();
    tracing::error!(error = %e, error_id = %id, "internal failure");
    ApiError::new(
        ErrorCode::Internal,
        format!("internal error (id {id}); try again, and report the id if it persists"),
    )
}

impl App {
    /// Opens (creates) sled at `<data_dir>/state`; on first start creates the admin account
    /// (tier enterprise) and a key with every scope written to `<data_dir>/admin.key`
    /// (mode 0600), returned once. Secrets not configured are generated and kept (0600).
    ///
    /// # Errors
    /// [`StartupError`] naming the path that failed.
    pub fn open(cfg: AppConfig) -> Result<(App, Option<String>), StartupError> {
        let dir = cfg.data_dir.clone();
        std::fs::create_dir_all(&dir).map_err(|source| StartupError::DataDir {
            path: dir.display().to_string(),
            source,
        })?;
        let state = dir.join(STATE_DIR);
        let store = Store::open(&state).map_err(|source| StartupError::Store {
            path: state.display().to_string(),
            source,
        })?;
        check_kek(&store, cfg.kek.as_ref())?;
        let remote = Arc::new(
            crate::remote::Remote::start(
                cfg.kek.clone(),
                cfg.allow_private_mcp_hosts.clone(),
                cfg.remote_idle,
            )
            .map_err(StartupError::Remote)?,
        );
        let pepper = secrets::load_or_create(cfg.key_pepper.as_deref(), &dir.join(PEPPER_FILE))?;
        let jwt_secret =
            secrets::load_or_create(cfg.jwt_secret.as_deref(), &dir.join(JWT_SECRET_FILE))?;
        let limiter = Arc::new(Limiter::new(
            cfg.limits.table().map_err(StartupError::Limits)?,
        ));
        let usage = UsageCounters::open_in(
            store.db(),
            Arc::clone(&limiter),
            cfg.limits.flush_interval(),
            crate::quota::now_ms(),
        )?;
        let app = App {
            inner: Arc::new(Inner {
                cfg,
                store,
                pepper,
                jwt: Jwt::new(&jwt_secret),
                throttle: LoginThrottle::default(),
                remote,
                limiter,
                usage,
            }),
        };
        let key = app.ensure_admin()?;
        Ok((app, key))
    }

    fn ensure_admin(&self) -> Result<Option<String>, StartupError> {
        let email = self.inner.cfg.admin_email.trim().to_ascii_lowercase();
        let key_path = self.inner.cfg.data_dir.join(ADMIN_KEY_FILE);
        let admin = match self
            .inner
            .store
            .account_by_email(&email)
            .map_err(|e| StartupError::Admin(e.to_string()))?
        {
            Some(a) => {
                if key_path.exists() {
                    return Ok(None);
                }
                a
            }
            None => {
                let a = AccountRecord {
                    id: new_id("acc"),
                    email,
                    name: "Administrator".to_owned(),
                    tier: Tier::Enterprise,
                    password_hash: None,
                    is_admin: true,
                    created_at: now(),
                };
                self.inner
                    .store
                    .create_account(&a)
                    .map_err(|e| StartupError::Admin(e.to_string()))?;
                a
            }
        };
        let (raw, _) = self
            .create_key(&admin.id, "admin", ALL_SCOPES.to_vec(), None, None)
            .map_err(|e| StartupError::Admin(e.message))?;
        secrets::write_private(&key_path, &format!("{raw}\n")).map_err(|source| {
            StartupError::AdminKey {
                path: key_path.display().to_string(),
                source,
            }
        })?;
        Ok(Some(raw))
    }

    /// The remote MCP machinery (KEK, SSRF allow list, client pool).
    pub fn remote(&self) -> &crate::remote::Remote {
        &self.inner.remote
    }

    /// The state store (replication readers, tests).
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The replication log.
    pub fn replication(&self) -> &ReplicationLog {
        self.inner.store.log()
    }

    /// A consistent snapshot of the replicated state (for workers too far behind).
    ///
    /// # Errors
    /// `INTERNAL` on store failure.
    pub fn replication_snapshot(&self) -> Result<paddock_shared::replication::Snapshot, ApiError> {
        self.inner.store.snapshot().map_err(internal)
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &AppConfig {
        &self.inner.cfg
    }

    pub(crate) fn jwt(&self) -> &Jwt {
        &self.inner.jwt
    }

    pub(crate) fn throttle(&self) -> &LoginThrottle {
        &self.inner.throttle
    }

    /// The quota, rate and concurrency limiter (admission on the MCP path).
    pub fn limiter(&self) -> &Arc<Limiter> {
        &self.inner.limiter
    }

    /// The durable monthly usage counters (flushes, stored values).
    pub fn usage_counters(&self) -> &UsageCounters {
        &self.inner.usage
    }

    /// This month's usage of `p`'s account: executions, limit, reset time, rate and
    /// concurrency (the `get_usage` tool and `GET /v1/usage`).
    pub fn usage_report(&self, p: &Principal) -> crate::quota::UsageReport {
        self.inner
            .limiter
            .usage(&p.account_id, p.tier, crate::quota::now_ms())
    }

    /// Makes and stores a key; returns the raw key (shown once) and its record.
    ///
    /// # Errors
    /// `INTERNAL` on store failure.
    pub fn create_key(
        &self,
        account_id: &str,
        name: &str,
        scopes: Vec<Scope>,
        namespace: Option<String>,
        expires_at: Option<u64>,
    ) -> Result<(String, ApiKeyRecord), ApiError> {
        let raw = keys::generate();
        let rec = ApiKeyRecord {
            id: new_id("key"),
            account_id: account_id.to_owned(),
            name: name.to_owned(),
            digest: keys::digest(&self.inner.pepper, &raw),
            prefix: raw.chars().take(keys::SHOWN_PREFIX_LEN).collect(),
            scopes,
            namespace,
            expires_at,
            revoked_at: None,
            created_at: now(),
        };
        self.inner.store.put_key(&rec).map_err(internal)?;
        Ok((raw, rec))
    }

    /// API key → Principal: one HMAC and two sled reads (microseconds).
    ///
    /// # Errors
    /// `AUTHENTICATION_FAILED` saying what was wrong (malformed, unknown, expired, revoked).
    pub fn authenticate(&self, raw_key: &str) -> Result<Principal, ApiError> {
        let fail = |m: String| ApiError::new(ErrorCode::AuthenticationFailed, m);
        keys::check_format(raw_key).map_err(|e| fail(format!("Authentication failed: {e}")))?;
        let digest = keys::digest(&self.inner.pepper, raw_key);
        let k = self
            .inner
            .store
            .key_by_digest(&digest)
            .map_err(internal)?
            .ok_or_else(|| fail("Authentication failed: unknown API key — check the key, or create one with POST /v1/auth/api-keys".into()))?;
        if k.revoked_at.is_some() {
            return Err(fail(format!(
                "Authentication failed: API key '{}' ({}) was revoked — create a new key",
                k.name, k.prefix
            )));
        }
        if k.expires_at.is_some_and(|e| now() >= e) {
            return Err(fail(format!(
                "Authentication failed: API key '{}' ({}) has expired — create a new key",
                k.name, k.prefix
            )));
        }
        let acc = self
            .inner
            .store
            .account(&k.account_id)
            .map_err(internal)?
            .ok_or_else(|| {
                fail("Authentication failed: the key's account no longer exists".into())
            })?;
        Ok(Principal {
            account_id: acc.id,
            key_id: k.id,
            tier: acc.tier,
            scopes: k.scopes,
            namespace: k.namespace,
            is_admin: acc.is_admin,
        })
    }

    /// Scope and namespace checks for an MCP request to `endpoint` of namespace `ns`.
    ///
    /// # Errors
    /// `SCOPE_DENIED`, `NAMESPACE_DENIED`, `NAMESPACE_NOT_FOUND` (run endpoint only).
    pub fn authorize(&self, p: &Principal, endpoint: Endpoint, ns: &str) -> Result<(), ApiError> {
        if let Some(bound) = &p.namespace
            && bound != ns
        {
            return Err(ApiError::new(
                ErrorCode::NamespaceDenied,
                format!("This API key is bound to namespace '{bound}' and cannot reach '{ns}'"),
            ));
        }
        match endpoint {
            Endpoint::Create
                if !p
                    .scopes
                    .iter()
                    .any(|s| matches!(s, Scope::Read | Scope::Write)) =>
            {
                return Err(ApiError::new(
                    ErrorCode::ScopeDenied,
                    "The create endpoint needs the 'read' or 'write' scope, which this API key lacks — create a key with them (POST /v1/auth/api-keys)",
                ));
            }
            Endpoint::Run if !p.scopes.contains(&Scope::Execute) => {
                return Err(ApiError::new(
                    ErrorCode::ScopeDenied,
                    "The run endpoint needs the 'execute' scope, which this API key lacks — create a key with it (POST /v1/auth/api-keys)",
                ));
            }
            _ => {}
        }
        match self.inner.store.namespace(ns).map_err(internal)? {
            Some(n) if n.owner == p.account_id => Ok(()),
            Some(_) => Err(tools::namespace_denied(ns)),
            None if endpoint == Endpoint::Create => Ok(()),
            None => Err(ApiError::new(
                ErrorCode::NamespaceNotFound,
                format!(
                    "Namespace '{ns}' does not exist — create it with make_namespace on the create endpoint"
                ),
            )),
        }
    }

    /// Tools of the create endpoint for this caller.
    pub fn create_tools(&self, p: &Principal, _ns: &str) -> Vec<ToolDef> {
        tools::definitions(p)
    }

    /// Runs one create tool (on the blocking pool: sled writes flush to disk).
    ///
    /// # Errors
    /// The tool's typed error.
    pub async fn call_create_tool(
        &self,
        p: &Principal,
        ns: &str,
        tool: &str,
        args: serde_json::Map<String, Value>,
    ) -> Result<Value, ApiError> {
        let (app, p, ns, tool) = (self.clone(), p.clone(), ns.to_owned(), tool.to_owned());
        tokio::task::spawn_blocking(move || {
            let ctx = tools::Ctx {
                app: &app,
                p: &p,
                ns: &ns,
            };
            tools::call(&ctx, &tool, args)
        })
        .await
        .map_err(internal)?
    }

    /// Every REST route under `/v1/auth/*` (see [`crate::rest`]).
    pub async fn rest(&self, req: RestRequest) -> RestResponse {
        let app = self.clone();
        match tokio::task::spawn_blocking(move || crate::rest::handle(&app, req)).await {
            Ok(r) => r,
            Err(e) => crate::rest::error_response(&internal(e)),
        }
    }

    /// Sets the tier of the account with `email`.
    ///
    /// # Errors
    /// `INVALID_ARGUMENT` when there is no such account.
    pub fn set_tier(&self, email: &str, tier: Tier) -> Result<AccountRecord, ApiError> {
        let email = email.trim().to_ascii_lowercase();
        let acc = self
            .inner
            .store
            .account_by_email(&email)
            .map_err(internal)?
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidArgument,
                    format!("No account with email '{email}' — check the address"),
                )
            })?;
        self.inner.store.set_tier(&acc.id, tier).map_err(internal)
    }

    /// Counts one call of a function (for `list_services`' call_count; not replicated).
    pub fn record_call(&self, ns: &str, service: &str, function: &str) {
        let key = crate::store::control::function_key(ns, service, function);
        if let Err(e) = self.inner.store.bump_counter(key.as_bytes(), 1) {
            tracing::warn!(error = %e, "cannot count a function call");
        }
    }

    /// Latest committed replication sequence.
    pub fn committed_seq(&self) -> u64 {
        self.inner.store.log().committed_seq()
    }

    /// Writes the usage counters a last time, then flushes sled; called on shutdown.
    pub fn shutdown(&self) {
        match self.inner.usage.shutdown() {
            Ok(n) => tracing::info!(counters = n, "usage counters flushed"),
            Err(e) => tracing::error!(error = %e, "usage counters not flushed at shutdown"),
        }
        if let Err(e) = self.inner.store.flush() {
            tracing::error!(error = %e, "flushing the state database on shutdown failed");
        }
    }
}

/// Refuses to start when sealed secrets exist and the configured KEK cannot open them.
fn check_kek(store: &Store, kek: Option<&crate::secrets::Kek>) -> Result<(), StartupError> {
    let stored = store.kek_id().map_err(|source| StartupError::Store {
        path: "kek_id".to_owned(),
        source,
    })?;
    let sealed = store
        .has_sealed_data()
        .map_err(|source| StartupError::Store {
            path: "mcp_servers".to_owned(),
            source,
        })?;
    match (stored, kek) {
        (Some(_), None) if sealed => Err(StartupError::Kek(crate::secrets::SecretError::NoKek)),
        (Some(found), Some(k)) if sealed && found != k.id() => {
            Err(StartupError::Kek(crate::secrets::SecretError::WrongKek {
                found,
                configured: k.id().to_owned(),
            }))
        }
        _ => Ok(()),
    }
}

/// A new random id with a prefix, e.g. `acc_3f2a…`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}
