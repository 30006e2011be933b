//! Credential scanner: flags secrets pasted into function code (cloud and provider keys,
//! private keys, JWTs, URLs with passwords, literal password assignments). Findings are
//! warnings with a line number; the secret itself is never echoed (first 4 characters +
//! `…`).

use std::sync::OnceLock;

use regex::Regex;
use serde::Serialize;

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// 1-based line number.
    pub line: usize,
    pub kind: &'static str,
    pub message: String,
}

const RULES: &[(&str, &str, &str)] = &[
    (
        "private_key",
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",
        "a private key block",
    ),
    (
        "aws_access_key",
        r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
        "an AWS access key id",
    ),
    (
        "aws_secret_key",
        r#"(?i)aws.{0,20}secret.{0,20}[:=]\s*["']?[A-Za-z0-9/+=]{40}\b"#,
        "an AWS secret access key",
    ),
    (
        "anthropic_key",
        r"\bsk-ant-[A-Za-z0-9_\-]{20,}",
        "an Anthropic API key",
    ),
    (
        "openai_key",
        r"\bsk-(?:proj-|svcacct-)?[A-Za-z0-9_\-]{20,}",
        "an OpenAI-style API key",
    ),
    (
        "github_token",
        r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})",
        "a GitHub token",
    ),
    (
        "slack_token",
        r"\bxox[abposr]-[A-Za-z0-9\-]{10,}",
        "a Slack token",
    ),
    (
        "stripe_key",
        r"\b(?:sk|rk)_live_[A-Za-z0-9]{16,}",
        "a Stripe live key",
    ),
    ("paddock_key", r"\bpdk_[0-9a-f]{64}\b", "a Paddock API key"),
    (
        "jwt",
        r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
        "a JSON Web Token",
    ),
    (
        "url_password",
        r#"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@"'`]+:[^\s@/"'`]+@[^\s"'`]+"#,
        "a URL with an embedded password",
    ),
    (
        "password_assignment",
        r#"(?i)\b[A-Za-z_]*(?:password|passwd|pwd|secret|api_?key|access_?token)\b\s*[:=]\s*["'][^"'\s]{4,}["']"#,
        "a password or secret assigned as a literal",
    ),
];

fn compiled() -> &'static [(&'static str, Regex, &'static str)] {
    static R: OnceLock<Vec<(&'static str, Regex, &'static str)>> = OnceLock::new();
    R.get_or_init(|| {
        RULES
            .iter()
            .filter_map(|(k, re, what)| Regex::new(re).ok().map(|r| (*k, r, *what)))
            .collect()
    })
}

fn redact(s: &str) -> String {
    let head: String = s.chars().take(4).collect();
    format!("{head}…")
}

/// Scans code; at most one warning per line (the first rule that matches).
pub fn scan(code: &str) -> Vec<Warning> {
    let mut out = Vec::new();
    for (i, line) in code.lines().enumerate() {
        for (kind, re, what) in compiled() {
            if let Some(m) = re.find(line) {
                out.push(Warning {
                    line: i + 1,
                    kind,
                    message: format!(
                        "line {}: looks like {what} ({}); do not put credentials in code — pass them in the input or configure them on the platform",
                        i + 1,
                        redact(m.as_str())
                    ),
                });
                break;
            }
        }
        if out.len() >= 100 {
            break;
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn kinds(code: &str) -> Vec<(usize, &'static str)> {
        scan(code).into_iter().map(|w| (w.line, w.kind)).collect()
    }

    #[test]
    fn finds_each_kind_with_its_line() {
        let code = [
            "import os",
            "AWS = 'AKIAIOSFODNN7EXAMPLE'",
            "aws_secret_access_key = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'",
            "k = 'sk-ant-api03-abcdefghijklmnopqrstuvwxyz'",
            "o = 'sk-proj-abcdefghijklmnopqrstuvwx'",
            "g = 'ghp_abcdefghijklmnopqrstuvwxyz0123456789'",
            "s = 'xoxb-1234567890-abcdefghij'",
            "-----BEGIN RSA PRIVATE KEY-----",
            "t = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U'",
            "db = 'postgres://user:hunter22@db.example.com/app'",
            "password = \"hunter22\"",
            "p = 'pdk_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef'",
            "x = 1",
        ]
        .join("\n");
        assert_eq!(
            kinds(&code),
            vec![
                (2, "aws_access_key"),
                (3, "aws_secret_key"),
                (4, "anthropic_key"),
                (5, "openai_key"),
                (6, "github_token"),
                (7, "slack_token"),
                (8, "private_key"),
                (9, "jwt"),
                (10, "url_password"),
                (11, "password_assignment"),
                (12, "paddock_key"),
            ]
        );
    }

    #[test]
    fn never_echoes_the_secret() {
        let w = scan("key = 'AKIAIOSFODNN7EXAMPLE'");
        assert_eq!(w.len(), 1);
        assert!(!w[0].message.contains("AKIAIOSFODNN7EXAMPLE"));
        assert!(w[0].message.contains("AKIA…"));
    }

    #[test]
    fn clean_code_has_no_warnings() {
        let code = "def main(input_data):\n    password = input_data['password']\n    url = 'https://example.com/a'\n    return {'ok': True}\n";
        assert!(scan(code).is_empty());
    }
}
