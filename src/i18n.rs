//! The page's strings, one JSON file per language (`static/i18n/<tag>.json`), embedded at build
//! time. A language is added by adding its file: nothing else changes (see `docs/languages.md`).
//!
//! A string missing in one language is shown in the fallback language, Spanish (the form's
//! default, `static/form.json`), never in English first and never as its key; English is the
//! last resort only when Spanish lacks the key too, and the key itself only when no file has
//! it at all (a deployment's form field without a label). The tests keep every file's keys and
//! `{placeholders}` the same as Spanish's.

use std::collections::{BTreeSet, HashMap};

/// The language a missing string falls back to: the form's default language (`es`).
pub const FALLBACK_LANGUAGE: &str = "es";

/// The order of the language picker for the languages it knows (the form's default first, then
/// the languages of Peru, then English); any other file comes after these, by tag.
const PICKER_ORDER: &[&str] = &["es", "qu", "ay", "en"];

/// Every language's strings.
pub struct Catalog {
    by_language: HashMap<String, HashMap<String, String>>,
    fallback: String,
}

impl Catalog {
    /// The language files built into this binary (a file that does not parse is left out, and
    /// the tests make sure none does), falling back to [`FALLBACK_LANGUAGE`].
    pub fn embedded() -> Self {
        let mut by_language = HashMap::new();
        for (lang, bytes) in crate::assets::languages() {
            if let Ok(map) = serde_json::from_slice::<HashMap<String, String>>(bytes) {
                by_language.insert(lang.to_string(), map);
            }
        }
        Catalog {
            by_language,
            fallback: FALLBACK_LANGUAGE.to_string(),
        }
    }

    /// The same strings, falling back to `lang` instead (the form's default language).
    pub fn with_fallback(mut self, lang: &str) -> Self {
        self.fallback = lang.to_string();
        self
    }

    /// Language tags, sorted.
    pub fn languages(&self) -> impl Iterator<Item = &str> {
        let sorted: BTreeSet<&str> = self.by_language.keys().map(String::as_str).collect();
        sorted.into_iter()
    }

    /// Language tags in the language picker's order: the fallback language first, then those
    /// of `PICKER_ORDER`, then any other by tag.
    pub fn picker_order(&self) -> Vec<&str> {
        let rank = |l: &str| {
            if l == self.fallback {
                0
            } else {
                PICKER_ORDER
                    .iter()
                    .position(|p| *p == l)
                    .map_or(PICKER_ORDER.len() + 1, |i| i + 1)
            }
        };
        let mut tags: Vec<&str> = self.languages().collect();
        tags.sort_by_key(|l| (rank(l), *l));
        tags
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

    /// The string in `lang` (or its primary subtag), else in the fallback language (Spanish),
    /// else in English, else `None`.
    pub fn get(&self, lang: &str, key: &str) -> Option<&str> {
        let primary = lang.split('-').next().unwrap_or(lang).to_ascii_lowercase();
        [lang, primary.as_str(), self.fallback.as_str(), "en"]
            .iter()
            .find_map(|l| self.exact(l, key))
    }

    /// Like [`Catalog::get`]; the key itself only when no language file has it.
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

/// The `{name}` placeholders of a string, sorted (for the tests that keep them equal across
/// languages).
pub fn placeholders(text: &str) -> BTreeSet<&str> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end) => {
                found.insert(&after[..end]);
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(files: &[(&str, &[(&str, &str)])]) -> Catalog {
        let by_language = files
            .iter()
            .map(|(lang, pairs)| {
                let map = pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                (lang.to_string(), map)
            })
            .collect();
        Catalog {
            by_language,
            fallback: FALLBACK_LANGUAGE.to_string(),
        }
    }

    #[test]
    fn every_language_has_every_key() {
        let catalog = Catalog::embedded();
        let reference = catalog.keys("es");
        assert!(reference.len() > 50);
        for lang in ["es", "en", "qu", "ay"] {
            assert!(catalog.has(lang), "{lang}.json is embedded");
        }
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

    /// `{seconds}` translated as `{segundos}` would be shown raw and leave the number out.
    #[test]
    fn every_language_keeps_the_placeholders_of_spanish() {
        let catalog = Catalog::embedded();
        for lang in catalog.languages() {
            for key in catalog.keys("es") {
                let es = placeholders(catalog.exact("es", key).unwrap_or(""));
                let other = placeholders(catalog.exact(lang, key).unwrap_or(""));
                assert_eq!(es, other, "{lang}: {key} has other placeholders than es");
            }
        }
        assert_eq!(
            placeholders("{n} de {limit} {n} {"),
            ["limit", "n"].into_iter().collect()
        );
    }

    /// A string that names another in «quotes» («Recibido», «Lee las respuestas del equipo»)
    /// names it as that language words it: a reporter looks for those words on the page.
    #[test]
    fn strings_that_name_a_button_or_title_use_its_words_in_every_language() {
        let catalog = Catalog::embedded();
        let mut checked = 0;
        for key in catalog.keys("es") {
            let es = catalog.exact("es", key).unwrap_or("");
            for quoted in es.split('«').skip(1).filter_map(|s| s.split('»').next()) {
                let named: Vec<&str> = catalog
                    .keys("es")
                    .into_iter()
                    .filter(|k| catalog.exact("es", k) == Some(quoted))
                    .collect();
                if named.is_empty() {
                    continue; // Tor Browser's menus, a file name: not ours
                }
                checked += 1;
                for lang in catalog.languages() {
                    let text = catalog.exact(lang, key).unwrap_or("");
                    assert!(
                        named
                            .iter()
                            .any(|n| text.contains(catalog.exact(lang, n).unwrap_or("\0"))),
                        "{lang}: {key} names {named:?} but does not use its words: {text}"
                    );
                }
            }
        }
        assert!(checked >= 8, "{checked}");
    }

    /// Every language names itself in the picker, each with a name of its own.
    #[test]
    fn every_language_has_its_own_name() {
        let catalog = Catalog::embedded();
        let names: BTreeSet<&str> = catalog
            .languages()
            .map(|l| catalog.exact(l, "language.name").unwrap_or(l))
            .collect();
        assert_eq!(names.len(), catalog.languages().count());
        assert_eq!(catalog.exact("qu", "language.name"), Some("Runasimi"));
        assert_eq!(catalog.exact("ay", "language.name"), Some("Aymar aru"));
        assert_eq!(catalog.picker_order(), ["es", "qu", "ay", "en"]);
    }

    #[test]
    fn a_missing_key_falls_back_to_spanish_never_to_english_first_or_the_key() {
        let c = catalog(&[
            ("es", &[("a", "en español"), ("b", "solo español")]),
            (
                "en",
                &[("a", "in English"), ("b", "English only"), ("c", "only en")],
            ),
            ("qu", &[("a", "runasimipi")]),
        ]);
        assert_eq!(c.get("qu", "a"), Some("runasimipi"));
        assert_eq!(c.text("qu", "b"), "solo español", "not English first");
        assert_eq!(
            c.text("qu-PE", "b"),
            "solo español",
            "by its primary subtag"
        );
        assert_eq!(
            c.text("ay", "b"),
            "solo español",
            "a language without a file"
        );
        assert_eq!(c.text("en", "b"), "English only");
        assert_eq!(
            c.text("qu", "c"),
            "only en",
            "English only when Spanish lacks it"
        );
        assert_eq!(c.text("qu", "d"), "d", "the key only when no file has it");
        assert_eq!(c.get("qu", "d"), None);
        let c = c.with_fallback("en");
        assert_eq!(
            c.text("qu", "b"),
            "English only",
            "the form's default decides"
        );
    }

    #[test]
    fn the_picker_puts_the_fallback_first_then_the_known_order_then_the_rest() {
        let c = catalog(&[
            ("zz", &[]),
            ("en", &[]),
            ("ay", &[]),
            ("es", &[]),
            ("qu", &[]),
            ("aa", &[]),
        ]);
        assert_eq!(c.picker_order(), ["es", "qu", "ay", "en", "aa", "zz"]);
        assert_eq!(
            c.with_fallback("en").picker_order(),
            ["en", "es", "qu", "ay", "aa", "zz"]
        );
    }
}
