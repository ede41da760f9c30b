//! What `resguardo-review` says, in the reviewer's language ([`Lang`]): error messages, the
//! summary table after `open` and `unpack`, and keygen's output. The binary only prints these.
//!
//! Everything that can carry text from outside (ids are ours; reasons are ours; details, file
//! names and library messages may quote a bundle or a report) goes through
//! [`crate::terminal::clean_line`] here or in [`crate::cli::finish`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use sequoia_openpgp::Fingerprint;

use super::keygen::KeygenError;
use super::lang::{self, Lang};
use super::open::{describe_stop, OpenSummary, Outcome, Stop};
use super::passphrase::PassphraseError;
use super::sandbox::SandboxError;
use super::secret_key::KeyError;
use crate::bundle::BundleError;
use crate::cli::{Failure, EXIT_PARTIAL};
use crate::terminal::clean_line;

/// An error message in the reviewer's language (the English one is the error's `Display`).
pub trait Localized: std::fmt::Display {
    /// The Spanish message, saying what the English `Display` says.
    fn spanish(&self) -> String;

    /// The message in `lang`: `Display` for English, [`Localized::spanish`] for Spanish.
    fn message(&self, lang: Lang) -> String {
        match lang {
            Lang::En => self.to_string(),
            Lang::Es => self.spanish(),
        }
    }
}

impl Localized for PassphraseError {
    fn spanish(&self) -> String {
        match self {
            PassphraseError::File { path, source } => {
                format!("{path}: no se puede leer el archivo de la frase de contraseña: {source}")
            }
            PassphraseError::TooLarge(p) => {
                format!("{p}: el archivo de la frase de contraseña ocupa más de 4 KiB")
            }
            PassphraseError::EmptyFile(p) => {
                format!("{p}: el archivo de la frase de contraseña está vacío")
            }
            PassphraseError::NoTerminal => {
                "no hay terminal para pedir la frase de contraseña; usa --passphrase-file".into()
            }
            PassphraseError::Terminal(e) => {
                format!("no se puede leer la frase de contraseña: {e}")
            }
            PassphraseError::Mismatch => "las frases de contraseña no coinciden".into(),
            PassphraseError::TooShort(n) => {
                format!("la frase de contraseña es demasiado corta (al menos {n} caracteres)")
            }
        }
    }
}

impl Localized for KeyError {
    fn spanish(&self) -> String {
        match self {
            KeyError::Unreadable { path, reason } => {
                format!("{path}: no se puede leer la clave: {reason}")
            }
            KeyError::NotAKey { path, reason } => {
                format!("{path}: no es una clave secreta OpenPGP: {reason}")
            }
            KeyError::SeveralKeys(p) => {
                format!("{p}: el archivo contiene varias claves; indica una sola clave de revisor")
            }
            KeyError::NoSecretEncryptionKey(p) => {
                format!("{p}: no tiene subclave secreta de cifrado (¿es el certificado público?)")
            }
            KeyError::WrongPassphrase(fp) => {
                format!("frase de contraseña incorrecta para la clave {fp}")
            }
            KeyError::NotACourierKey(p) => format!(
                "{p}: no es una clave de enlace (no tiene subclave secreta de autenticación); \
                 créala con `resguardo-review keygen --courier`"
            ),
            KeyError::NoSigningKey(p) => format!(
                "{p}: no tiene subclave de firma utilizable; `resguardo-review add-signing-key` \
                 le añade una"
            ),
        }
    }
}

impl Localized for KeygenError {
    fn spanish(&self) -> String {
        match self {
            KeygenError::BadName => {
                "el nombre debe tener de 1 a 100 caracteres, sin caracteres de control".into()
            }
            KeygenError::Exists(p) => {
                format!("{} ya existe; no se sobrescribe una clave", p.display())
            }
            KeygenError::Write { path, source } => format!("{}: {source}", path.display()),
            KeygenError::Generate(e) => format!("falló la generación de la clave: {e}"),
        }
    }
}

impl Localized for BundleError {
    fn spanish(&self) -> String {
        match self {
            BundleError::Empty => "el paquete está vacío (no tiene datos)".into(),
            BundleError::NotABundle(r) => format!("no es un paquete de Resguardo: {r}"),
            BundleError::FutureFormat(f) => format!(
                "el formato del paquete {f:?} es más nuevo que el que entiende esta herramienta \
                 ({}); actualiza resguardo-review",
                crate::bundle::FORMAT
            ),
            BundleError::BadManifest(r) => format!("el manifiesto del paquete no es válido: {r}"),
            BundleError::Truncated(r) => format!("el paquete está truncado: {r}"),
            BundleError::BadEntry { id, reason } => format!("envío {id}: {reason}"),
            BundleError::UnexpectedEntry(n) => format!("entrada inesperada {n:?} en el paquete"),
            BundleError::Io(e) => e.to_string(),
        }
    }
}

impl Localized for SandboxError {
    fn spanish(&self) -> String {
        match self {
            SandboxError::Landlock(e) => format!("no se puede configurar Landlock: {e}"),
            SandboxError::Path { path, reason } => format!(
                "{}: no se puede añadir al aislamiento: {reason}",
                path.display()
            ),
            SandboxError::Seccomp(e) => format!("no se puede instalar el filtro seccomp: {e}"),
            SandboxError::Limits(e) => format!("no se pueden fijar los límites de recursos: {e}"),
            SandboxError::Executable(e) => format!(
                "no se encuentra lo que este programa necesita para iniciar el proceso lector: {e}"
            ),
        }
    }
}

/// A fingerprint in groups of four hex digits, with a double space at the middle (as GnuPG
/// shows it), so that two people can compare it aloud.
pub fn grouped_fingerprint(fingerprint: &Fingerprint) -> String {
    let hex = fingerprint.to_hex();
    let groups: Vec<&str> = hex
        .as_bytes()
        .chunks(4)
        .filter_map(|c| std::str::from_utf8(c).ok())
        .collect();
    let half = groups.len() / 2;
    let mut out = String::new();
    for (i, g) in groups.iter().enumerate() {
        if i > 0 {
            out.push_str(if i == half && groups.len() % 2 == 0 {
                "  "
            } else {
                " "
            });
        }
        out.push_str(g);
    }
    out
}

/// Keygen's report: the labelled fingerprint (stdout) and where the files are (stderr).
pub fn keygen_lines(
    lang: Lang,
    courier: bool,
    fingerprint: &Fingerprint,
    public: &Path,
    secret: &Path,
    revocation: &Path,
) -> (String, String) {
    let stdout = format!(
        "{}: {}\n",
        lang.pick("Fingerprint", "Huella digital"),
        grouped_fingerprint(fingerprint)
    );
    let mut stderr = String::new();
    let lines = [
        (
            lang.pick(
                "public key (give to the gateway operator)",
                "clave pública (para quien opera el servidor)",
            ),
            public,
        ),
        (
            match courier {
                false => lang.pick(
                    "secret key (keep on the offline machine)",
                    "clave secreta (se queda en la máquina sin red)",
                ),
                true => lang.pick(
                    "secret key (for the on-call device; it can never open a report)",
                    "clave secreta (para el dispositivo de guardia; nunca puede abrir un reporte)",
                ),
            },
            secret,
        ),
        (
            lang.pick(
                "revocation (keep apart, publish if the key is lost)",
                "revocación (guárdala aparte; publícala si pierdes la clave)",
            ),
            revocation,
        ),
    ];
    for (label, path) in lines {
        let _ = writeln!(
            stderr,
            "{label}: {}",
            clean_line(&path.display().to_string())
        );
    }
    (stdout, stderr)
}

/// What `open` or `unpack` prints: the summary table (stdout) and one line per failure (stderr).
pub struct Printed {
    /// The bundle line, the counts, urgent reports to read first, the receipt and index paths.
    pub stdout: String,
    /// Receipt or index write errors, then `<id>: <reason>: <detail>` per failed submission.
    pub stderr: String,
}

/// Which command the summary is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// After `open`: counts as "opened" and lists the urgent reports.
    Opened,
    /// After `unpack`: counts as "unpacked"; no urgent list.
    Unpacked,
}

/// The summary table after `open` or `unpack`.
pub fn summary(summary: &OpenSummary, verb: Verb, out: &Path, lang: Lang) -> Printed {
    let mut stdout = String::new();
    let mut stderr = String::new();
    let row = |s: &mut String, label: &str, n: usize| {
        let _ = writeln!(s, "  {label:<14}{n:>6}");
    };
    if let Some(manifest) = &summary.manifest {
        let _ = writeln!(
            stdout,
            "{} {} ({} {}): {} {}",
            lang.pick("Bundle", "Paquete"),
            manifest.batch,
            lang.pick("created", "creado el"),
            manifest.created,
            manifest.submissions.len(),
            lang.pick("submissions", "envíos")
        );
        let mut done = 0;
        let mut already = 0;
        let mut urgent = Vec::new();
        let mut failures: BTreeMap<&str, usize> = BTreeMap::new();
        for (id, outcome) in &summary.outcomes {
            match outcome {
                Outcome::Opened { .. } => done += 1,
                Outcome::AlreadyOpen { .. } => already += 1,
                Outcome::Failed { reason, .. } => *failures.entry(reason).or_default() += 1,
            }
            if outcome.is_urgent() {
                urgent.push(id);
            }
        }
        let verb_label = match verb {
            Verb::Opened => lang.pick("opened", "abiertos"),
            Verb::Unpacked => lang.pick("unpacked", "desempaquetados"),
        };
        row(&mut stdout, verb_label, done);
        row(
            &mut stdout,
            lang.pick("already there", "ya estaban"),
            already,
        );
        row(
            &mut stdout,
            lang.pick("failed", "fallidos"),
            summary.failed(),
        );
        for (reason, count) in &failures {
            let _ = writeln!(stdout, "    {count:>4}  {}", lang::reason(lang, reason));
        }
        if summary.unreached() > 0 {
            row(
                &mut stdout,
                lang.pick("not reached", "no alcanzados"),
                summary.unreached(),
            );
        }
        if verb == Verb::Opened {
            row(&mut stdout, lang.pick("urgent", "urgentes"), urgent.len());
            for id in &urgent {
                let _ = writeln!(
                    stdout,
                    "    {id}  {}: {}",
                    lang.pick("read first", "leer primero"),
                    clean_line(
                        &out.join(id.to_string())
                            .join("report.txt")
                            .display()
                            .to_string()
                    )
                );
            }
        }
    }
    match &summary.receipt {
        Some(Ok(receipt)) => {
            let _ = writeln!(
                stdout,
                "{}: {}",
                lang.pick(
                    "Receipt for the operator",
                    "Recibo para quien opera el servidor"
                ),
                clean_line(&receipt.path.display().to_string())
            );
            let _ = writeln!(
                stdout,
                "  {}",
                lang.pick(
                    "carry it to the server: purge needs it, and deletes only what it lists as opened",
                    "llévalo al servidor: purge lo necesita y borra solo lo que el recibo da por abierto"
                )
            );
            let _ = if receipt.signed {
                writeln!(
                    stdout,
                    "  {}",
                    lang.pick(
                        "signed with your key (the .sig beside it): a courier can purge it over the network",
                        "firmado con tu clave (el .sig a su lado): un enlace puede purgarlo por la red"
                    )
                )
            } else {
                writeln!(
                    stderr,
                    "  {}",
                    lang.pick(
                        "not signed: your key has no signing subkey, so only the operator's local purge takes it (`resguardo-review add-signing-key` gives the key one)",
                        "sin firma: tu clave no tiene subclave de firma, así que solo el purge local del servidor lo acepta (`resguardo-review add-signing-key` le añade una)"
                    )
                )
            };
        }
        Some(Err(e)) => {
            let _ = writeln!(
                stderr,
                "{}: {}",
                lang.pick(
                    "the receipt could not be written",
                    "no se pudo escribir el recibo"
                ),
                clean_line(&e.to_string())
            );
        }
        None => {}
    }
    match &summary.index {
        Some(Ok(count)) => {
            let _ = writeln!(
                stdout,
                "{}: {} ({count} {})",
                lang.pick("Index", "Índice"),
                clean_line(&out.join("index.txt").display().to_string()),
                lang.pick(
                    "reports, also as index.csv",
                    "reportes, también en index.csv"
                )
            );
        }
        Some(Err(e)) => {
            let _ = writeln!(
                stderr,
                "{}: {}",
                lang.pick(
                    "the index could not be written",
                    "no se pudo escribir el índice"
                ),
                clean_line(e)
            );
        }
        None => {}
    }
    match &summary.registry {
        Some(Ok(recorded)) => {
            let _ = writeln!(
                stdout,
                "{}: {} ({} {}, {} {})",
                lang.pick("Registry", "Registro"),
                clean_line(
                    &out.join(crate::registry::REGISTRY_FILE)
                        .display()
                        .to_string()
                ),
                recorded.added,
                lang.pick("new cases", "casos nuevos"),
                recorded.known,
                lang.pick("already recorded", "ya registrados")
            );
        }
        Some(Err(e)) => {
            let _ = writeln!(
                stderr,
                "{}: {}",
                lang.pick(
                    "the registry could not record these reports (they are all written; the next \
                     open records them)",
                    "el registro no pudo anotar estos reportes (están todos escritos; el próximo \
                     open los anota)"
                ),
                clean_line(e)
            );
        }
        None => {}
    }
    chain_lines(summary, &mut stdout, &mut stderr, lang);
    for (id, outcome) in &summary.outcomes {
        if let Outcome::Failed { reason, detail } = outcome {
            let _ = writeln!(
                stderr,
                "{id}: {}: {}",
                lang::reason(lang, reason),
                clean_line(detail)
            );
        }
    }
    Printed { stdout, stderr }
}

/// The verification line of the gateway's chain (stdout), and each problem (stderr).
fn chain_lines(summary: &OpenSummary, stdout: &mut String, stderr: &mut String, lang: Lang) {
    use crate::registry::chain::{as_ranges, ranges};
    let report = match &summary.chain {
        Some(Ok(report)) => report,
        Some(Err(e)) => {
            let _ = writeln!(
                stderr,
                "{}: {}",
                lang.pick(
                    "the gateway's log could not be checked against this bundle (open this \
                     bundle again to check it)",
                    "no se pudo comprobar el registro del servidor con este paquete (vuelve a \
                     abrir este paquete para comprobarlo)"
                ),
                clean_line(e)
            );
            return;
        }
        None => return,
    };
    let mut line = match (report.covered, lang) {
        (None, Lang::En) => "Log: this bundle carries no part of the gateway's log (a copy, or                              made before the log existed)"
            .to_string(),
        (None, Lang::Es) => "Registro del servidor: este paquete no trae parte del registro (es                              una copia, o es anterior al registro)"
            .to_string(),
        (Some(_), Lang::En) => format!(
            "Log: numbers 1–{} checked; {} arrived once",
            report.known_through, report.arrived
        ),
        (Some(_), Lang::Es) => format!(
            "Registro del servidor: números 1–{} comprobados; {} llegaron una vez",
            report.known_through, report.arrived
        ),
    };
    if report.covered.is_some() {
        if !report.removed.is_empty() {
            let _ = write!(
                line,
                "; {} {} ({})",
                report.removed.len(),
                lang.pick(
                    "deleted unexported by retention",
                    "borrados sin exportar por la retención"
                ),
                ranges(&as_ranges(&report.removed), 8)
            );
        }
        if !report.not_opened.is_empty() {
            let _ = write!(
                line,
                "; {}: {}",
                lang.pick(
                    "carried but not opened yet (open the bundle again)",
                    "traídos pero aún sin abrir (vuelve a abrir el paquete)"
                ),
                ranges(&as_ranges(&report.not_opened), 8)
            );
        }
        if !report.gaps.is_empty() {
            let _ = write!(
                line,
                "; {}: {}",
                lang.pick(
                    "not yet in any bundle opened here (open those bundles, or ask the operator)",
                    "aún en ningún paquete abierto aquí (abre esos paquetes, o pregunta a quien                      opera el servidor)"
                ),
                ranges(&report.gaps, 8)
            );
        }
        if report.problems.is_empty() {
            line.push_str(lang.pick("; nothing missing", "; no falta nada"));
        }
    }
    let _ = writeln!(stdout, "{line}");
    for problem in &report.problems {
        let _ = writeln!(
            stderr,
            "{}: {}",
            lang.pick("LOG PROBLEM", "PROBLEMA EN EL REGISTRO"),
            clean_line(&problem.to_string())
        );
    }
}

fn numbers_text(numbers: &[u64], prefix: &str) -> String {
    let mut numbers = numbers.to_vec();
    numbers.sort_unstable();
    numbers.dedup();
    if numbers.is_empty() {
        return String::new();
    }
    let ranges = crate::registry::chain::as_ranges(&numbers);
    format!("{prefix}{}", crate::registry::chain::ranges(&ranges, 8))
}

/// The exit status after `open` or `unpack`, with its message.
pub fn outcome(summary: &OpenSummary, lang: Lang) -> Result<(), Failure> {
    // A chain problem outranks how the run ended: it is about the gateway, not the bundle.
    if let Some(Ok(report)) = &summary.chain {
        if !report.problems.is_empty() {
            let numbers: Vec<u64> = report
                .problems
                .iter()
                .filter_map(|p| p.sequence())
                .collect();
            return Err(Failure::new(
                crate::cli::EXIT_UNTRUSTED,
                match lang {
                    Lang::En => format!(
                        "every report is open, but the gateway's log shows {} problem(s){}:                          the gateway may have dropped, altered or held back reports; tell the                          organisation and the operator (see LOG PROBLEM above)",
                        report.problems.len(),
                        numbers_text(&numbers, " at numbers ")
                    ),
                    Lang::Es => format!(
                        "todos los reportes están abiertos, pero el registro del servidor muestra                          {} problema(s){}: el servidor pudo haber perdido, alterado o retenido                          reportes; avisa a la organización y a quien opera el servidor (ver                          PROBLEMA EN EL REGISTRO arriba)",
                        report.problems.len(),
                        numbers_text(&numbers, " en los números ")
                    ),
                },
            ));
        }
    }
    if let Some(stop) = &summary.stopped {
        let message = match (stop, lang) {
            (Stop::DiskLow { .. }, Lang::En) => format!(
                "stopped before the disk filled: {}; free some space and run open again \
                 (what is open stays open)",
                describe_stop(stop)
            ),
            (Stop::DiskLow { available, reserve }, Lang::Es) => format!(
                "se detuvo antes de llenar el disco: solo quedan {} MiB libres en --out y open \
                 deja siempre {} MiB libres; libera espacio y vuelve a ejecutar open (lo ya \
                 abierto se conserva)",
                available / (1024 * 1024),
                reserve / (1024 * 1024)
            ),
            (Stop::Parser(detail), Lang::En) => {
                format!("stopped: the process that reads submissions could not start: {detail}")
            }
            (Stop::Parser(detail), Lang::Es) => {
                format!("se detuvo: no se pudo iniciar el proceso que lee los envíos: {detail}")
            }
        };
        return Err(Failure::environment(message));
    }
    if let Some(e) = &summary.bundle_error {
        let message = format!("{}: {}", lang.pick("bundle", "paquete"), e.message(lang));
        return Err(match e {
            BundleError::Truncated(_) => Failure::new(EXIT_PARTIAL, message),
            BundleError::Io(_) => Failure::environment(message),
            _ => Failure::bad_input(message),
        });
    }
    if summary.failed() > 0 {
        let mut message = match lang {
            Lang::En => format!(
                "{} of {} submissions failed",
                summary.failed(),
                summary.outcomes.len()
            ),
            Lang::Es => format!(
                "fallaron {} de {} envíos",
                summary.failed(),
                summary.outcomes.len()
            ),
        };
        if summary.hit_bundle_bound() {
            message.push('\n');
            message.push_str(&match lang {
                Lang::En => format!(
                    "some were not opened because this run reached its bound on the bundle's \
                     plaintext ({} bytes); if they are genuine, run open again with a larger \
                     --max-bundle-plaintext",
                    summary.max_bundle_plaintext
                ),
                Lang::Es => format!(
                    "algunos no se abrieron porque esta ejecución llegó a su límite de contenido \
                     descifrado del paquete ({} bytes); si son legítimos, vuelve a ejecutar open \
                     con un --max-bundle-plaintext mayor",
                    summary.max_bundle_plaintext
                ),
            });
        }
        return Err(Failure::new(EXIT_PARTIAL, message));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_grouped_by_four() {
        let fp: Fingerprint = "C95C29B449920DED0872A622F1F1AA6FAE2F54AD"
            .parse()
            .expect("fingerprint");
        assert_eq!(
            grouped_fingerprint(&fp),
            "C95C 29B4 4992 0DED 0872  A622 F1F1 AA6F AE2F 54AD"
        );
        let (out, err) = keygen_lines(
            Lang::Es,
            false,
            &fp,
            Path::new("k.pub.asc"),
            Path::new("k.sec.asc"),
            Path::new("k.rev.asc"),
        );
        assert_eq!(
            out,
            "Huella digital: C95C 29B4 4992 0DED 0872  A622 F1F1 AA6F AE2F 54AD\n"
        );
        assert!(err.contains("clave secreta"), "{err}");
    }

    #[test]
    fn every_error_reads_in_spanish_too() {
        let e = KeyError::WrongPassphrase(
            "C95C29B449920DED0872A622F1F1AA6FAE2F54AD"
                .parse()
                .expect("fingerprint"),
        );
        assert!(e.message(Lang::En).starts_with("wrong passphrase"));
        assert!(e
            .message(Lang::Es)
            .starts_with("frase de contraseña incorrecta"));
        assert!(BundleError::Empty
            .message(Lang::Es)
            .contains("el paquete está vacío"));
        assert!(PassphraseError::NoTerminal
            .message(Lang::Es)
            .contains("--passphrase-file"));
    }
}
