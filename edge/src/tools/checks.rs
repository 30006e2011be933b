//! Input checks of the create tools: size limits (at the edge of the limit: exactly the
//! limit passes, one byte more fails), names, JSON Schema validity, requirements.

use paddock_shared::ErrorCode;
use paddock_shared::model::Language;
use paddock_shared::names::NameError;
use serde_json::Value;

use super::catalogue::Catalogue;
use crate::app::ApiError;

/// Largest code, bytes (100 KiB).
pub const MAX_CODE_BYTES: usize = 100 * 1024;
/// Largest description, bytes (10 KiB).
pub const MAX_DESCRIPTION_BYTES: usize = 10 * 1024;
/// Largest schema (and config), bytes of compact JSON (50 KiB).
pub const MAX_SCHEMA_BYTES: usize = 50 * 1024;
/// Most tags per function, and longest tag.
pub const MAX_TAGS: usize = 32;
/// Longest tag, characters.
pub const MAX_TAG_LEN: usize = 64;
/// Most requirements per function.
pub const MAX_REQUIREMENTS: usize = 64;

/// Maps a name error to `INVALID_NAME`.
pub fn name_error(e: NameError) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidName,
        format!("Invalid {} name '{}': {}", e.kind, e.name, e.rule),
    )
}

/// Refuses text over `limit` bytes.
///
/// # Errors
/// `INPUT_TOO_LARGE` naming the field, its size and the limit.
pub fn size(field: &str, len: usize, limit: usize) -> Result<(), ApiError> {
    if len > limit {
        return Err(ApiError::new(
            ErrorCode::InputTooLarge,
            format!(
                "{field} is {len} bytes; the limit is {limit} bytes ({} KiB) — make it smaller",
                limit / 1024
            ),
        ));
    }
    Ok(())
}

/// Checks a schema: an object, at most 50 KiB, compiling as JSON Schema. Returns its text.
///
/// # Errors
/// `INPUT_TOO_LARGE` or `INVALID_SCHEMA` with the reason.
pub fn schema(field: &str, v: &Value) -> Result<String, ApiError> {
    let text = v.to_string();
    size(field, text.len(), MAX_SCHEMA_BYTES)?;
    if !v.is_object() {
        return Err(ApiError::new(
            ErrorCode::InvalidSchema,
            format!("{field} must be a JSON Schema object"),
        ));
    }
    if let Err(e) = jsonschema::validator_for(v) {
        return Err(ApiError::new(
            ErrorCode::InvalidSchema,
            format!(
                "{field} is not a valid JSON Schema: {e} — fix the schema (see https://json-schema.org)"
            ),
        ));
    }
    Ok(text)
}

/// Checks tags: at most 32, each 1–64 characters of a-z, 0-9, `-`, `_`, `.`, `:` (lower-cased).
///
/// # Errors
/// `INVALID_ARGUMENT` naming the bad tag.
pub fn tags(tags: Vec<String>) -> Result<Vec<String>, ApiError> {
    if tags.len() > MAX_TAGS {
        return Err(ApiError::new(
            ErrorCode::InvalidArgument,
            format!("at most {MAX_TAGS} tags are allowed"),
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for t in tags {
        let t = t.trim().to_ascii_lowercase();
        let ok = !t.is_empty()
            && t.len() <= MAX_TAG_LEN
            && t.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"-_.:".contains(&c));
        if !ok {
            return Err(ApiError::new(
                ErrorCode::InvalidArgument,
                format!(
                    "invalid tag '{t}': use 1-{MAX_TAG_LEN} characters of a-z, 0-9, '-', '_', '.', ':'"
                ),
            ));
        }
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

/// Resolves requirements against the catalogue of `lang` into canonical names.
///
/// # Errors
/// `PACKAGE_NOT_ALLOWED` naming the first package that is not allowed.
pub fn requirements(lang: Language, reqs: Vec<String>) -> Result<Vec<String>, ApiError> {
    if reqs.len() > MAX_REQUIREMENTS {
        return Err(ApiError::new(
            ErrorCode::InvalidArgument,
            format!("at most {MAX_REQUIREMENTS} requirements are allowed"),
        ));
    }
    let cat = Catalogue::get();
    let mut out: Vec<String> = Vec::new();
    for r in reqs {
        let r = r.trim();
        if r.is_empty() {
            continue;
        }
        match cat.resolve(lang, r) {
            Some(name) => {
                if !out.iter().any(|o| o == name) {
                    out.push(name.to_owned());
                }
            }
            None => {
                return Err(ApiError::new(
                    ErrorCode::PackageNotAllowed,
                    format!(
                        "Package '{r}' is not in the allowed list for {lang} — see list_packages(language=\"{lang}\"); packages cannot be installed at run time"
                    ),
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn size_limits_at_the_edge() {
        assert!(size("code", MAX_CODE_BYTES, MAX_CODE_BYTES).is_ok());
        let e = size("code", MAX_CODE_BYTES + 1, MAX_CODE_BYTES).unwrap_err();
        assert_eq!(e.code, ErrorCode::InputTooLarge);
        assert_eq!(
            e.message,
            "code is 102401 bytes; the limit is 102400 bytes (100 KiB) — make it smaller"
        );
    }

    #[test]
    fn schemas_must_compile() {
        assert!(schema("input_schema", &json!({"type": "object"})).is_ok());
        let e = schema("input_schema", &json!({"type": "nonsense"})).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidSchema);
        assert!(
            e.message
                .starts_with("input_schema is not a valid JSON Schema: "),
            "{}",
            e.message
        );
        let e = schema("output_schema", &json!([1])).unwrap_err();
        assert_eq!(e.message, "output_schema must be a JSON Schema object");
    }

    #[test]
    fn requirements_resolve_aliases_and_refuse_unknown() {
        assert_eq!(
            requirements(
                Language::Python,
                vec!["bs4".into(), "pandas".into(), "beautifulsoup4".into()]
            )
            .unwrap(),
            vec!["beautifulsoup4", "pandas"]
        );
        let e = requirements(Language::Python, vec!["left-pad".into()]).unwrap_err();
        assert_eq!(e.code, ErrorCode::PackageNotAllowed);
        assert!(
            e.message
                .starts_with("Package 'left-pad' is not in the allowed list"),
            "{}",
            e.message
        );
        let e = requirements(Language::TypeScript, vec!["pandas".into()]).unwrap_err();
        assert_eq!(e.code, ErrorCode::PackageNotAllowed);
    }

    #[test]
    fn tags_are_normalised() {
        assert_eq!(
            tags(vec!["A".into(), "a".into(), "b-1".into()]).unwrap(),
            vec!["a", "b-1"]
        );
        assert_eq!(
            tags(vec!["bad tag".into()]).unwrap_err().code,
            ErrorCode::InvalidArgument
        );
    }
}
