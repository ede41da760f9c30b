//! The language `resguardo-review` talks to the reviewer in: Spanish or English.
//!
//! Chosen from `RESGUARDO_LANG`, then the POSIX locale variables in their order of precedence
//! (`LC_ALL`, `LC_MESSAGES`, `LANG`): a value starting with `es` means Spanish, anything else
//! English. It governs what the tool prints (help, the summary table, keygen's output, the
//! sandbox line, error messages), `index.txt`, and the labels of `report.txt` for a report in
//! any other language than Spanish or English (Quechua, Aymara: see `docs/languages.md`; a report
//! in Spanish or English keeps its own language's labels); files meant for programs
//! (`index.csv`, the receipt, `report.json`) never change.

/// A language of the reviewer's tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// English: the default when no variable starts with `es`.
    En,
    /// Spanish: the deciding variable starts with `es` (any case).
    Es,
}

impl Lang {
    /// From this process's environment.
    pub fn from_env() -> Lang {
        let var = |name| std::env::var(name).ok();
        Lang::from_vars(
            var("RESGUARDO_LANG").as_deref(),
            var("LC_ALL").as_deref(),
            var("LC_MESSAGES").as_deref(),
            var("LANG").as_deref(),
        )
    }

    /// The first variable that is set and not empty decides.
    pub fn from_vars(
        resguardo: Option<&str>,
        lc_all: Option<&str>,
        lc_messages: Option<&str>,
        lang: Option<&str>,
    ) -> Lang {
        let chosen = [resguardo, lc_all, lc_messages, lang]
            .into_iter()
            .flatten()
            .map(str::trim)
            .find(|v| !v.is_empty());
        match chosen {
            Some(v) if v.to_ascii_lowercase().starts_with("es") => Lang::Es,
            _ => Lang::En,
        }
    }

    /// Its language tag, as the parser's `--lang` carries it (`en`, `es`).
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Es => "es",
        }
    }

    /// The language of exactly this tag (`en`, `es`), else `None`.
    pub fn from_tag(tag: &str) -> Option<Lang> {
        match tag {
            "en" => Some(Lang::En),
            "es" => Some(Lang::Es),
            _ => None,
        }
    }

    /// The English or the Spanish text.
    pub fn pick<'a>(self, en: &'a str, es: &'a str) -> &'a str {
        match self {
            Lang::En => en,
            Lang::Es => es,
        }
    }
}

/// The short reasons `open` gives for a submission it could not open (stable English strings,
/// also written into the receipt), with their Spanish translation.
pub const REASONS: &[(&str, &str)] = &[
    (
        "not encrypted to this key",
        "no está cifrado para esta clave",
    ),
    (
        "cannot be decrypted (damaged or tampered)",
        "no se puede descifrar (dañado o alterado)",
    ),
    (
        "integrity check failed (tampered or damaged)",
        "falló la comprobación de integridad (alterado o dañado)",
    ),
    ("damaged in the bundle", "dañado dentro del paquete"),
    ("write error", "error de escritura"),
    ("report.json missing", "falta report.json"),
    ("report.json invalid", "report.json no es válido"),
    (
        "unexpected archive entry",
        "entrada inesperada en el archivo",
    ),
    (
        "attachment does not match its report",
        "un adjunto no coincide con su reporte",
    ),
    ("payload over its bound", "el contenido supera su límite"),
    (
        "payload archive malformed",
        "el archivo del contenido está mal formado",
    ),
    ("I/O error", "error de entrada/salida"),
    (
        "bundle plaintext bound reached",
        "se alcanzó el límite de contenido descifrado del paquete",
    ),
    ("disk almost full", "disco casi lleno"),
    ("parser failed", "falló el proceso que lee el contenido"),
    (
        "parser sandbox not active",
        "el aislamiento del proceso que lee el contenido no está activo",
    ),
    (
        "a different file is already there",
        "ya hay un archivo distinto con ese nombre",
    ),
];

/// The known reason equal to `reason`, if any (so a reason from another process maps back to
/// one of ours).
pub fn known_reason(reason: &str) -> Option<&'static str> {
    REASONS.iter().map(|(en, _)| *en).find(|en| *en == reason)
}

/// A reason in the reviewer's language.
pub fn reason(lang: Lang, reason: &str) -> String {
    match lang {
        Lang::En => reason.to_string(),
        Lang::Es => REASONS
            .iter()
            .find(|(en, _)| *en == reason)
            .map(|(_, es)| es.to_string())
            .unwrap_or_else(|| reason.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_follows_the_environment_in_order() {
        assert_eq!(Lang::from_vars(None, None, None, None), Lang::En);
        assert_eq!(
            Lang::from_vars(None, None, None, Some("es_PE.UTF-8")),
            Lang::Es
        );
        assert_eq!(Lang::from_vars(None, None, None, Some("C.UTF-8")), Lang::En);
        assert_eq!(
            Lang::from_vars(None, Some("en_US.UTF-8"), None, Some("es_PE.UTF-8")),
            Lang::En,
            "LC_ALL wins over LANG"
        );
        assert_eq!(
            Lang::from_vars(None, None, Some("es_ES"), Some("en_GB")),
            Lang::Es,
            "LC_MESSAGES wins over LANG"
        );
        assert_eq!(
            Lang::from_vars(Some("en"), Some("es_PE.UTF-8"), None, None),
            Lang::En,
            "RESGUARDO_LANG wins"
        );
        assert_eq!(
            Lang::from_vars(Some(""), Some("es"), None, None),
            Lang::Es,
            "an empty variable does not count"
        );
    }

    #[test]
    fn the_tag_goes_there_and_back() {
        for lang in [Lang::En, Lang::Es] {
            assert_eq!(Lang::from_tag(lang.tag()), Some(lang));
        }
        assert_eq!(Lang::from_tag("qu"), None);
        assert_eq!(
            Lang::from_tag("ES"),
            None,
            "exactly as the opener writes it"
        );
    }

    #[test]
    fn every_reason_has_a_translation() {
        for (en, es) in REASONS {
            assert!(!es.is_empty() && en != es, "{en}");
            assert_eq!(known_reason(en), Some(*en));
            assert_eq!(reason(Lang::Es, en), *es);
        }
        assert_eq!(known_reason("\u{1b}[2J"), None);
    }
}
