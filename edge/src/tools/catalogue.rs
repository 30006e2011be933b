//! The allowed package catalogue (Python and TypeScript), grouped by category, with
//! aliases (`bs4` → `beautifulsoup4`). Parsed once from TOML in the format of
//! `sandbox-profiles/packages.toml` (`[[python]] {name, version?, category, import?,
//! aliases?, description?}`, `[[typescript]] {name, category, description?}`), embedded at
//! build time. TypeScript entries are Node built-ins (`node:crypto`); a requirement may
//! omit the `node:` prefix.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use paddock_shared::model::Language;
use serde::Deserialize;
use serde_json::{Value, json};

/// The catalogue source: `sandbox-profiles/packages.toml`.
pub const CATALOGUE_TOML: &str = include_str!("../../../sandbox-profiles/packages.toml");

/// One allowed package.
#[derive(Debug, Clone, Deserialize)]
pub struct Package {
    pub name: String,
    #[serde(default)]
    pub version: Option<String>,
    pub category: String,
    #[serde(default)]
    pub import: Option<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Default, Deserialize)]
struct File {
    #[serde(default)]
    python: Vec<Package>,
    #[serde(default)]
    typescript: Vec<Package>,
}

/// The parsed catalogue.
#[derive(Debug, Default)]
pub struct Catalogue {
    python: Vec<Package>,
    typescript: Vec<Package>,
}

/// PEP 503 name normalization (lower case, `_`/`.` → `-`); a `node:` prefix is dropped.
fn norm(s: &str) -> String {
    let s = s.trim().to_ascii_lowercase();
    let s = s.strip_prefix("node:").unwrap_or(&s);
    s.replace(['_', '.'], "-")
}

impl Catalogue {
    /// Parses a catalogue (an unparsable file yields an empty catalogue plus the reason).
    pub fn parse(text: &str) -> Result<Catalogue, String> {
        let f: File = toml::from_str(text).map_err(|e| e.to_string())?;
        Ok(Catalogue {
            python: f.python,
            typescript: f.typescript,
        })
    }

    /// The built-in catalogue.
    pub fn get() -> &'static Catalogue {
        static C: OnceLock<Catalogue> = OnceLock::new();
        C.get_or_init(|| match Catalogue::parse(CATALOGUE_TOML) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "package catalogue does not parse; no packages allowed");
                Catalogue::default()
            }
        })
    }

    /// Packages of a language.
    pub fn packages(&self, lang: Language) -> &[Package] {
        match lang {
            Language::Python => &self.python,
            Language::TypeScript => &self.typescript,
        }
    }

    /// The canonical name of a requirement (name, alias or import name; a version
    /// specifier such as `pandas>=2` is ignored: the sandbox has one fixed version).
    pub fn resolve(&self, lang: Language, requirement: &str) -> Option<&str> {
        let base = requirement
            .split(|c: char| "<>=!~;[ @".contains(c))
            .next()
            .unwrap_or_default();
        let want = norm(base);
        if want.is_empty() {
            return None;
        }
        self.packages(lang)
            .iter()
            .find(|p| {
                norm(&p.name) == want
                    || p.aliases.iter().any(|a| norm(a) == want)
                    || p.import.as_deref().is_some_and(|i| norm(i) == want)
            })
            .map(|p| p.name.as_str())
    }

    /// `list_packages` output: `{language: {category: [{name, description, ...}]}, counts}`.
    pub fn listing(&self, only: Option<Language>) -> Value {
        let mut out = serde_json::Map::new();
        for lang in Language::ALL {
            if only.is_some_and(|o| o != lang) {
                continue;
            }
            let mut cats: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
            for p in self.packages(lang) {
                let mut e = json!({ "name": p.name, "description": p.description });
                if let Value::Object(m) = &mut e {
                    if let Some(v) = &p.version {
                        m.insert("version".into(), json!(v));
                    }
                    if let Some(i) = &p.import {
                        m.insert("import".into(), json!(i));
                    }
                    if !p.aliases.is_empty() {
                        m.insert("aliases".into(), json!(p.aliases));
                    }
                }
                cats.entry(p.category.as_str()).or_default().push(e);
            }
            out.insert(
                lang.as_str().into(),
                json!({ "count": self.packages(lang).len(), "categories": cats }),
            );
        }
        Value::Object(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_catalogue_has_the_seed_packages_and_aliases() {
        let c = Catalogue::get();
        assert_eq!(c.packages(Language::Python).len(), 59);
        for (alias, name) in [
            ("bs4", "beautifulsoup4"),
            ("yaml", "pyyaml"),
            ("dateutil", "python-dateutil"),
            ("slugify", "python-slugify"),
            ("sklearn", "scikit-learn"),
            ("PIL", "pillow"),
            ("jwt", "pyjwt"),
            ("psycopg2", "psycopg2-binary"),
            ("Pandas", "pandas"),
            ("pandas>=2.0", "pandas"),
            ("typing_extensions", "typing-extensions"),
        ] {
            assert_eq!(c.resolve(Language::Python, alias), Some(name), "{alias}");
        }
        assert_eq!(c.resolve(Language::Python, "left-pad"), None);
        assert_eq!(c.resolve(Language::Python, ""), None);
    }

    #[test]
    fn listing_groups_by_category() {
        let l = Catalogue::get().listing(Some(Language::Python));
        assert_eq!(l["python"]["count"], 59);
        let http = l["python"]["categories"]["http"].as_array().unwrap();
        assert_eq!(http[0]["name"], "requests");
        assert!(l.get("typescript").is_none());
    }

    #[test]
    fn typescript_builtins_resolve_with_or_without_prefix() {
        let c = Catalogue::get();
        assert!(!c.packages(Language::TypeScript).is_empty());
        assert_eq!(
            c.resolve(Language::TypeScript, "crypto"),
            Some("node:crypto")
        );
        assert_eq!(
            c.resolve(Language::TypeScript, "node:crypto"),
            Some("node:crypto")
        );
        assert_eq!(c.resolve(Language::TypeScript, "lodash"), None);
    }

    #[test]
    fn typescript_section_parses() {
        let c = Catalogue::parse(
            "[[typescript]]\nname = \"zod\"\ncategory = \"validation\"\ndescription = \"schemas\"\n",
        )
        .unwrap();
        assert_eq!(c.resolve(Language::TypeScript, "zod"), Some("zod"));
        assert_eq!(c.resolve(Language::Python, "zod"), None);
    }
}
