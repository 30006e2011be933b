//! The one public `ErrorCode` enum: stable, user-visible codes that clients match on.
//!
//! Values are explicit and never reused. A code is rendered exactly once per boundary
//! (HTTP body + status at the edge, MCP tool error in the MCP servers, the `error.type`
//! of an execution result); the string form (`QUOTA_EXCEEDED`) is the stable contract.

use serde::{Deserialize, Serialize};

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $name:ident = $value:literal, $text:literal, $status:literal; )*) => {
        /// A stable, user-visible error code. Serialized as its stable string form
        /// ([`ErrorCode::as_str`]), so serde and the rendered bodies can never disagree.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u16)]
        pub enum ErrorCode {
            $( $(#[$doc])* $name = $value, )*
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$name,)*];

            /// The stable string form, e.g. `QUOTA_EXCEEDED`.
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$name => $text,)* }
            }

            /// The HTTP status this code is answered with at the edge.
            pub fn http_status(self) -> u16 {
                match self { $(ErrorCode::$name => $status,)* }
            }

            /// The numeric value (stable, never reused).
            pub fn value(self) -> u16 {
                self as u16
            }

            /// Parses the stable string form.
            pub fn parse(s: &str) -> Option<ErrorCode> {
                match s { $($text => Some(ErrorCode::$name),)* _ => None }
            }
        }
    };
}

error_codes! {
    // --- request routing and transport (1xx) ---
    /// Host or path matches none of the accepted routing forms.
    InvalidHost = 100, "INVALID_HOST", 404;
    /// TLS SNI names a different host than the `Host` header.
    MisdirectedRequest = 101, "MISDIRECTED_REQUEST", 421;
    /// Request body is over the configured limit.
    PayloadTooLarge = 102, "PAYLOAD_TOO_LARGE", 413;
    /// Request is malformed (bad JSON, wrong content type, bad header).
    BadRequest = 103, "BAD_REQUEST", 400;
    /// HTTP method not allowed on this path.
    MethodNotAllowed = 104, "METHOD_NOT_ALLOWED", 405;
    /// MCP session id unknown or terminated.
    SessionNotFound = 105, "SESSION_NOT_FOUND", 404;

    // --- identity (2xx) ---
    /// Missing, malformed, unknown, expired or revoked credentials.
    AuthenticationFailed = 200, "AUTHENTICATION_FAILED", 401;
    /// The key lacks the scope the operation needs.
    ScopeDenied = 201, "SCOPE_DENIED", 403;
    /// The key is bound to another namespace, or the namespace belongs to another account.
    NamespaceDenied = 202, "NAMESPACE_DENIED", 403;
    /// Self-registration is turned off by the operator.
    RegistrationDisabled = 203, "REGISTRATION_DISABLED", 403;
    /// An account with this email exists already.
    AccountExists = 204, "ACCOUNT_EXISTS", 409;
    /// Too many failed logins from this client address.
    LoginThrottled = 205, "LOGIN_THROTTLED", 429;

    // --- limits (3xx) ---
    /// Monthly execution quota of the account's tier is used up.
    QuotaExceeded = 300, "QUOTA_EXCEEDED", 429;
    /// Per-minute rate limit hit.
    RateLimited = 301, "RATE_LIMITED", 429;
    /// Too many executions in flight for the account.
    ConcurrencyLimited = 302, "CONCURRENCY_LIMITED", 429;

    // --- create endpoint validation (4xx) ---
    /// A namespace, service or function name breaks the naming rules.
    InvalidName = 400, "INVALID_NAME", 400;
    /// An argument is missing, has the wrong type, or is out of range.
    InvalidArgument = 401, "INVALID_ARGUMENT", 400;
    /// Code, description or schema is over its size limit.
    InputTooLarge = 402, "INPUT_TOO_LARGE", 400;
    /// An input or output schema is not valid JSON Schema.
    InvalidSchema = 403, "INVALID_SCHEMA", 400;
    /// A requirement is not in the allowed package catalogue.
    PackageNotAllowed = 404, "PACKAGE_NOT_ALLOWED", 400;
    /// Template name unknown.
    UnknownTemplate = 405, "UNKNOWN_TEMPLATE", 400;
    /// Neither code nor a template was given.
    NoCodeProvided = 406, "NO_CODE_PROVIDED", 400;
    /// Backend is not `code_sandbox`.
    UnknownBackend = 407, "UNKNOWN_BACKEND", 400;
    /// Language is not python or typescript.
    UnsupportedLanguage = 408, "UNSUPPORTED_LANGUAGE", 400;
    /// Namespace does not exist (or is not visible to the caller).
    NamespaceNotFound = 410, "NAMESPACE_NOT_FOUND", 404;
    /// Service does not exist.
    ServiceNotFound = 411, "SERVICE_NOT_FOUND", 404;
    /// Function does not exist.
    FunctionNotFound = 412, "FUNCTION_NOT_FOUND", 404;
    /// Function version does not exist.
    VersionNotFound = 413, "VERSION_NOT_FOUND", 404;
    /// The object exists already.
    AlreadyExists = 414, "ALREADY_EXISTS", 409;
    /// A destructive operation needs the confirmation token from the first call.
    ConfirmationRequired = 415, "CONFIRMATION_REQUIRED", 409;
    /// The confirmation token is wrong or expired.
    ConfirmationInvalid = 416, "CONFIRMATION_INVALID", 409;
    /// Tool name unknown to this endpoint.
    UnknownTool = 417, "UNKNOWN_TOOL", 404;
    /// Tool-mode name is not `service.function`.
    InvalidToolName = 418, "INVALID_TOOL_NAME", 400;
    /// Tool arguments violate the function's input schema.
    InvalidToolArguments = 419, "INVALID_TOOL_ARGUMENTS", 400;
    /// Execution record not found.
    ExecutionNotFound = 420, "EXECUTION_NOT_FOUND", 404;

    // --- execution (5xx) ---
    /// No worker is connected to run the execution.
    NoWorkers = 500, "NO_WORKERS", 503;
    /// The worker running the execution went away mid-execution.
    WorkerLost = 501, "WORKER_LOST", 502;
    /// Every slot and queue is full; retry later.
    WorkerBusy = 502, "WORKER_BUSY", 503;
    /// The worker's replica did not reach the required state in time.
    StateNotReady = 503, "STATE_NOT_READY", 503;
    /// Sandbox profile (tier) unknown to the worker.
    UnknownProfile = 504, "UNKNOWN_PROFILE", 400;
    /// The sandbox could not be started or failed outside the user's code.
    SandboxFailure = 505, "SANDBOX_FAILURE", 500;
    /// Wire protocol violation between edge and worker.
    ProtocolError = 506, "PROTOCOL_ERROR", 502;

    // --- remote MCP servers and bridge (6xx) ---
    /// Bridge key unknown, expired, revoked or bound to another namespace/execution.
    BridgeKeyInvalid = 600, "BRIDGE_KEY_INVALID", 403;
    /// The execution's remote call budget is used up.
    CallBudgetExceeded = 601, "CALL_BUDGET_EXCEEDED", 429;
    /// A request rule blocked the call.
    RuleBlocked = 602, "RULE_BLOCKED", 403;
    /// The MCP server URL resolves to a disallowed address.
    HostNotAllowed = 603, "HOST_NOT_ALLOWED", 400;
    /// The remote MCP server could not be reached.
    McpServerUnavailable = 604, "MCP_SERVER_UNAVAILABLE", 502;
    /// The remote MCP server did not answer in time.
    McpServerTimeout = 605, "MCP_SERVER_TIMEOUT", 504;
    /// The remote tool returned an error.
    McpToolError = 606, "MCP_TOOL_ERROR", 502;
    /// MCP server unknown in this namespace.
    McpServerNotFound = 607, "MCP_SERVER_NOT_FOUND", 404;
    /// The remote MCP server is disabled.
    McpServerDisabled = 608, "MCP_SERVER_DISABLED", 409;

    // --- server (9xx) ---
    /// The server is not ready (starting or draining).
    NotReady = 900, "NOT_READY", 503;
    /// An unexpected internal failure; the message carries an id for the logs.
    Internal = 999, "INTERNAL", 500;

    // --- appended (values are new; never reuse) ---
    /// No REST route at this path.
    RouteNotFound = 106, "NOT_FOUND", 404;
    /// API key id unknown to the caller's account.
    ApiKeyNotFound = 206, "API_KEY_NOT_FOUND", 404;
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        ErrorCode::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown error code {text:?}")))
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn values_and_strings_are_unique_and_round_trip() {
        let mut values = HashSet::new();
        let mut texts = HashSet::new();
        for code in ErrorCode::ALL {
            assert!(
                values.insert(code.value()),
                "duplicate value {}",
                code.value()
            );
            assert!(
                texts.insert(code.as_str()),
                "duplicate text {}",
                code.as_str()
            );
            assert_eq!(ErrorCode::parse(code.as_str()), Some(*code));
            let json = serde_json::to_string(code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn stable_values_do_not_move() {
        assert_eq!(ErrorCode::QuotaExceeded.value(), 300);
        assert_eq!(ErrorCode::QuotaExceeded.http_status(), 429);
        assert_eq!(ErrorCode::InvalidHost.as_str(), "INVALID_HOST");
        assert_eq!(ErrorCode::NoWorkers.as_str(), "NO_WORKERS");
        assert_eq!(ErrorCode::WorkerLost.value(), 501);
    }
}
