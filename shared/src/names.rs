//! Name rules for namespaces, services and functions, and the mapping of names to
//! identifiers importable from sandboxed code (`-` becomes `_`).

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} name {name:?}: {rule}")]
pub struct NameError {
    /// What was being named: `namespace`, `service`, `function`.
    pub kind: &'static str,
    /// The refused name.
    pub name: String,
    /// The rule, phrased as what to do.
    pub rule: &'static str,
}

const NAMESPACE_RULE: &str = "use 1-63 characters of a-z, 0-9 and '-', starting and ending with a letter or digit (^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$)";
const ENTITY_RULE: &str = "use 1-63 characters of a-z, 0-9, '-' and '_', starting and ending with a letter or digit (^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$)";

fn check(name: &str, extra: &[u8]) -> bool {
    let b = name.as_bytes();
    if b.is_empty() || b.len() > 63 {
        return false;
    }
    let edge_ok = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !edge_ok(b[0]) || !edge_ok(b[b.len() - 1]) {
        return false;
    }
    b.iter().all(|&c| edge_ok(c) || extra.contains(&c))
}

/// Validates a namespace name: `^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$` (DNS label).
///
/// # Errors
/// [`NameError`] naming the rule when the name does not match.
pub fn validate_namespace(name: &str) -> Result<(), NameError> {
    if check(name, b"-") {
        Ok(())
    } else {
        Err(NameError {
            kind: "namespace",
            name: name.to_owned(),
            rule: NAMESPACE_RULE,
        })
    }
}

/// Validates a service name: `^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$`.
///
/// # Errors
/// [`NameError`] naming the rule when the name does not match.
pub fn validate_service(name: &str) -> Result<(), NameError> {
    if check(name, b"-_") {
        Ok(())
    } else {
        Err(NameError {
            kind: "service",
            name: name.to_owned(),
            rule: ENTITY_RULE,
        })
    }
}

/// Validates a function name: `^[a-z0-9]([a-z0-9_-]{0,61}[a-z0-9])?$`.
///
/// # Errors
/// [`NameError`] naming the rule when the name does not match.
pub fn validate_function(name: &str) -> Result<(), NameError> {
    if check(name, b"-_") {
        Ok(())
    } else {
        Err(NameError {
            kind: "function",
            name: name.to_owned(),
            rule: ENTITY_RULE,
        })
    }
}

/// The identifier under which a service or function is importable from code: `-` → `_`.
/// A name starting with a digit gets a leading `_` so it stays a valid identifier.
pub fn to_identifier(name: &str) -> String {
    let mut s = name.replace('-', "_");
    if s.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        s.insert(0, '_');
    }
    s
}

/// A remote MCP server or tool name as it appears in code: every character outside
/// `[A-Za-z0-9_]` turned into `_`.
pub fn to_code_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The name code calls remote tool `tool` of server `server` by (the package's wrapper,
/// and the name the call is recorded under): `mcp__{server}__{tool}` in [`to_code_name`]
/// form.
pub fn remote_tool_ident(server: &str, tool: &str) -> String {
    format!("mcp__{}__{}", to_code_name(server), to_code_name(tool))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_tool_idents() {
        assert_eq!(
            remote_tool_ident("my-srv", "get-sum"),
            "mcp__my_srv__get_sum"
        );
        assert_eq!(remote_tool_ident("s", "a.b/c d"), "mcp__s__a_b_c_d");
        assert_eq!(remote_tool_ident("s", "ünï"), "mcp__s___n_");
    }

    #[test]
    fn namespace_rules() {
        for ok in ["a", "acme", "a-b", "a1", "0", &"a".repeat(63)] {
            assert!(validate_namespace(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"a".repeat(64), "é"] {
            let err = validate_namespace(bad).unwrap_err();
            assert_eq!(err.kind, "namespace");
        }
    }

    #[test]
    fn entity_rules() {
        for ok in ["hello", "hello_world", "hello-world", "x1"] {
            assert!(validate_service(ok).is_ok());
            assert!(validate_function(ok).is_ok());
        }
        for bad in ["", "_a", "a_", "Hello", "a b", "a.b", &"a".repeat(64)] {
            assert!(validate_function(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn identifiers() {
        assert_eq!(to_identifier("my-func"), "my_func");
        assert_eq!(to_identifier("3d"), "_3d");
    }
}
