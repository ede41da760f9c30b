//! Text from outside, made safe to show: the one place that decides which characters may reach a
//! terminal, an editor or a spreadsheet.
//!
//! Reporter text, bundle manifests and the error messages that quote them are attacker-controlled.
//! Printed raw, they can drive the reviewer's terminal (escape sequences that retitle the window,
//! clear the screen or fake lines such as "All 12 submissions opened OK"), or hide and reorder text
//! (bidirectional overrides, zero-width characters, tag characters). Every binary prints such text
//! only through [`clean_line`] (one-line messages: ids, reasons, details, errors), and files meant
//! for people (`report.txt`, the index) use [`clean_text`] or [`clean_line`].
//!
//! What happens to each character:
//! - C0 and C1 control characters and DEL: replaced by U+FFFD, so their presence stays visible;
//! - bidirectional controls (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069): U+FFFD;
//! - invisible characters (zero-width U+200B–U+200D, U+2060–U+2064, U+FEFF, U+180E, deprecated
//!   format U+206A–U+206F, interlinear annotation U+FFF9–U+FFFB, tags U+E0000–U+E007F): removed;
//! - line breaks (LF, CR, CR LF, U+2028, U+2029) and TAB: kept as `\n` / `\t` by [`clean_text`],
//!   a space in [`clean_line`]. A lone CR becomes a line break rather than a return to the start
//!   of the line, where it could overwrite what was printed before.

/// Cleans multi-line text: keeps line breaks (normalised to `\n`) and tabs.
pub fn clean_text(text: &str) -> String {
    clean(text, false)
}

/// Cleans text for one line of output: line breaks and tabs become spaces.
pub fn clean_line(text: &str) -> String {
    clean(text, true)
}

fn clean(text: &str, one_line: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push(if one_line { ' ' } else { '\n' });
            }
            '\n' | '\u{2028}' | '\u{2029}' => out.push(if one_line { ' ' } else { '\n' }),
            '\t' => out.push(if one_line { ' ' } else { '\t' }),
            c if is_invisible(c) => {}
            c if c.is_control() || is_bidi_control(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Characters that change the direction in which the text around them is shown.
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// Characters that show nothing but can hide, join or smuggle text.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{180E}'
            | '\u{200B}'..='\u{200D}'
            | '\u{2060}'..='\u{2064}'
            | '\u{206A}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E007F}'
    )
}

/// True if `text` holds nothing [`clean_line`] would change, apart from spaces: for tests and
/// for checks on our own output.
pub fn is_clean_line(text: &str) -> bool {
    clean_line(text) == text && !text.contains(['\n', '\t'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_bells_are_defused() {
        let hostile = "\u{1b}]0;owned\u{7}\u{1b}[2J\u{9b}31mred\u{7f}";
        let line = clean_line(hostile);
        assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
        assert_eq!(
            line,
            "\u{FFFD}]0;owned\u{FFFD}\u{FFFD}[2J\u{FFFD}31mred\u{FFFD}"
        );
    }

    #[test]
    fn newlines_cannot_fake_lines_in_one_line_messages() {
        let fake = "bad field\nAll 12 submissions opened OK\r\nok\u{2028}x\u{2029}y\tz";
        assert_eq!(
            clean_line(fake),
            "bad field All 12 submissions opened OK ok x y z"
        );
        assert_eq!(
            clean_text(fake),
            "bad field\nAll 12 submissions opened OK\nok\nx\ny\tz"
        );
        // A lone CR cannot return to the start of the line and overwrite it.
        assert_eq!(clean_text("Sí\rNo"), "Sí\nNo");
    }

    #[test]
    fn bidi_zero_width_and_tag_characters_are_removed() {
        let text = "a\u{202E}b\u{2066}c\u{061C}d\u{200F}e\u{200B}f\u{200D}g\u{2060}h\u{FEFF}i\u{E0041}\u{E007F}j";
        let cleaned = clean_text(text);
        assert_eq!(cleaned, "a\u{FFFD}b\u{FFFD}c\u{FFFD}d\u{FFFD}efghij");
        for c in cleaned.chars() {
            assert!(!is_bidi_control(c) && !is_invisible(c), "{c:?}");
        }
    }

    #[test]
    fn ordinary_text_in_any_script_is_kept() {
        for text in [
            "Nos amenazaron en la asamblea de Ñuñoa — «urgente»",
            "Riqsichiy: imaynataq kachkanki?",
            "مرحبا بالعالم",
            "שלום",
            "写真.jpg",
        ] {
            assert_eq!(clean_line(text), text);
            assert!(is_clean_line(text));
        }
        assert!(!is_clean_line("a\nb"));
    }
}
