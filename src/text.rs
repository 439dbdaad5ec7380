//! Text podium shows that someone else wrote: team names, a program's stderr lines, problem
//! messages that quote a team's CSV values, file names. It reaches a terminal, CSV files opened
//! in spreadsheets, Markdown, JSON and HTML, so this module is the one place for its rules
//! (docs/contract.md, "Text podium shows"):
//!
//! - [`shown`]: every control character (C0, DEL, C1) and every bidirectional control
//!   (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069), and the line and paragraph
//!   separators U+2028 and U+2029, become a visible escape such as `\u{1b}`, `\u{202e}` or `\n`.
//!   A terminal would obey an escape sequence (clear the screen, set the window title), and a
//!   right-to-left override makes a name read as another one everywhere.
//! - [`shown_lines`]: the same, keeping line breaks and tabs, for multi-line text such as a log
//!   excerpt in an HTML `<pre>`.
//! - [`csv_text`]: a CSV text cell: [`shown`], then a cell whose first non-blank character
//!   is `=`, `+`, `-`, `@`, a tab or a carriage return is prefixed with `'` so that a spreadsheet
//!   takes it as text, not a formula (OWASP, CSV injection). A cell that is a plain decimal
//!   number is left alone: a spreadsheet reads it as a number, never a formula. A cell that
//!   already starts with `'` gets one more, so that reading it back is unambiguous.
//! - [`from_csv_text`]: undoes exactly that prefix, where podium reads its own CSV back.
//!
//! Numeric cells are never passed through [`csv_text`]: `-0.5` stays a number.
//! Files meant to be read back as data (run.json, report-data.json) keep the text as it was;
//! the renderers that show it apply these rules.

/// Characters that must not reach a reader as themselves.
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                | '\u{2028}'
                | '\u{2029}'
        )
}

/// One line of text as it may be shown: [`is_hidden`] characters become visible escapes.
pub fn shown(text: &str) -> String {
    escape_except(text, |_| false)
}

/// Like [`shown`], but line breaks and tabs stay: for text that has lines.
pub fn shown_lines(text: &str) -> String {
    escape_except(text, |c| c == '\n' || c == '\t')
}

fn escape_except(text: &str, keep: impl Fn(char) -> bool) -> String {
    if !text.chars().any(|c| is_hidden(c) && !keep(c)) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_hidden(c) && !keep(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A CSV text cell: [`shown`], then neutralized for spreadsheets (see the module's rules).
pub fn csv_text(text: &str) -> String {
    let text = shown(text);
    let first = text.trim_start().chars().next();
    let formula = matches!(first, Some('=' | '+' | '-' | '@' | '\t' | '\r'));
    if first == Some('\'') || (formula && !is_plain_number(text.trim())) {
        format!("'{text}")
    } else {
        text
    }
}

/// A text cell podium wrote with [`csv_text`], as it was before the `'` prefix.
pub fn from_csv_text(cell: &str) -> &str {
    cell.strip_prefix('\'').unwrap_or(cell)
}

/// `-1`, `+0.5`, `-2.5e-3`: what every spreadsheet reads as a number.
fn is_plain_number(text: &str) -> bool {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e.strip_prefix(['-', '+']).unwrap_or(e))),
        None => (unsigned, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => {
            (digits(int) || int.is_empty())
                && (digits(frac) || frac.is_empty())
                && !(int.is_empty() && frac.is_empty())
        }
        None => digits(mantissa),
    };
    mantissa_ok && exponent.is_none_or(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_text_makes_control_and_bidi_characters_visible() {
        assert_eq!(shown("team\x1b[2Jname\n"), "team\\u{1b}[2Jname\\n");
        assert_eq!(
            shown("\u{1b}]0;pwned\u{7}\u{1b}[2J"),
            "\\u{1b}]0;pwned\\u{7}\\u{1b}[2J"
        );
        assert_eq!(shown("abc\u{202e}gpj.exe"), "abc\\u{202e}gpj.exe");
        for c in [
            '\u{0}', '\u{7f}', '\u{85}', '\u{9b}', '\u{61c}', '\u{200e}', '\u{200f}', '\u{202a}',
            '\u{202d}', '\u{2066}', '\u{2069}', '\u{2028}',
        ] {
            let text = shown(&format!("a{c}b"));
            assert!(
                !text.contains(c) && text.starts_with("a\\"),
                "{c:?} -> {text}"
            );
        }
        assert_eq!(shown("Équipe <b> 東京 مرحبا"), "Équipe <b> 東京 مرحبا");
        assert_eq!(shown(&shown("a\u{1b}b")), shown("a\u{1b}b"), "idempotent");
        assert_eq!(shown_lines("a\n\tb\u{1b}\r"), "a\n\tb\\u{1b}\\r");
    }

    #[test]
    fn csv_text_cells_cannot_become_formulas() {
        assert_eq!(
            csv_text("=HYPERLINK(\"http://x\",\"click\")"),
            "'=HYPERLINK(\"http://x\",\"click\")"
        );
        for formula in [
            "+1+cmd|' /C calc'!A0",
            "-2+3",
            "@SUM(A1)",
            "  =1+1",
            "-",
            "-inf",
        ] {
            assert_eq!(csv_text(formula), format!("'{formula}"));
        }
        assert_eq!(csv_text("\t=1"), "\\t=1", "a tab is shown, so never first");
        assert_eq!(csv_text("\u{1b}[2J"), "\\u{1b}[2J");
        for number in ["-1", "-0.5", "+2", "-2.5e-3", "-.5", "-3."] {
            assert_eq!(csv_text(number), number);
        }
        for text in ["Radiology AI Lab", "a=b", "team-1", ""] {
            assert_eq!(csv_text(text), text);
        }
    }

    #[test]
    fn csv_text_reads_back_as_it_was_shown() {
        for text in [
            "=HYPERLINK(\"http://x\",\"click\")",
            "'quoted",
            "''twice",
            "'=x",
            "-1",
            "@x",
            "plain",
            "",
            "a\u{1b}b",
        ] {
            assert_eq!(from_csv_text(&csv_text(text)), shown(text), "{text:?}");
        }
    }
}
