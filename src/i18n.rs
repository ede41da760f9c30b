//! The page's strings, one JSON file per language (`static/i18n/<tag>.json`), embedded at build
//! time. A language is added by adding its file: nothing else changes.

use std::collections::{BTreeSet, HashMap};

/// Every language's strings.
pub struct Catalog {
    by_language: HashMap<String, HashMap<String, String>>,
}

impl Catalog {
    /// The language files built into this binary (a file that does not parse is left out, and
    /// the tests make sure none does).
    pub fn embedded() -> Self {
        let mut by_language = HashMap::new();
        for (lang, bytes) in crate::assets::languages() {
            if let Ok(map) = serde_json::from_slice::<HashMap<String, String>>(bytes) {
                by_language.insert(lang.to_string(), map);
            }
        }
        Catalog { by_language }
    }

    /// Language tags, sorted.
    pub fn languages(&self) -> impl Iterator<Item = &str> {
        let sorted: BTreeSet<&str> = self.by_language.keys().map(String::as_str).collect();
        sorted.into_iter()
    }

    /// True if a language file for exactly this tag is embedded (no fallback).
    pub fn has(&self, lang: &str) -> bool {
        self.by_language.contains_key(lang)
    }

    /// The string in exactly `lang`.
    pub fn exact(&self, lang: &str, key: &str) -> Option<&str> {
        self.by_language
            .get(lang)
            .and_then(|m| m.get(key))
            .map(String::as_str)
    }

    /// The string in `lang` (or its primary subtag), else English, else `None`.
    pub fn get(&self, lang: &str, key: &str) -> Option<&str> {
        let primary = lang.split('-').next().unwrap_or(lang).to_ascii_lowercase();
        [lang, primary.as_str(), "en"]
            .iter()
            .find_map(|l| self.exact(l, key))
    }

    /// Like [`Catalog::get`], falling back to the key itself (visible, so a gap gets noticed).
    pub fn text<'a>(&'a self, lang: &str, key: &'a str) -> &'a str {
        self.get(lang, key).unwrap_or(key)
    }

    /// Keys of one language, for the completeness test.
    pub fn keys(&self, lang: &str) -> BTreeSet<&str> {
        self.by_language
            .get(lang)
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_has_every_key() {
        let catalog = Catalog::embedded();
        let reference = catalog.keys("es");
        assert!(reference.len() > 50);
        for lang in catalog.languages() {
            let keys = catalog.keys(lang);
            let missing: Vec<_> = reference.difference(&keys).collect();
            let extra: Vec<_> = keys.difference(&reference).collect();
            assert!(
                missing.is_empty() && extra.is_empty(),
                "{lang}: missing {missing:?}, extra {extra:?}"
            );
            for key in &keys {
                assert!(
                    !catalog.exact(lang, key).unwrap_or("").trim().is_empty(),
                    "{lang}: {key} is empty"
                );
            }
        }
    }
}
