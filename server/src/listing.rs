//! The HTML page for a directory listing (`--dir-listing`), from the
//! entries a helper read: directories first, then files, each group
//! sorted by name; names HTML-escaped in the text (controls shown as
//! visible stand-ins) and percent-encoded in the links; sizes in bytes and modification times in UTC. The helper
//! has already left out dot-files, links and special files.

use std::fmt::Write;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use protocol::calendar::civil_from_secs;
use protocol::DirEntry;

use crate::http::head_writer::SERVER_NAME;

/// Characters left as they are in a link: the unreserved ones (RFC 3986
/// 2.3). Everything else is percent-encoded, so a name can never end the
/// attribute, start a scheme (`a:b`) or a query.
const LINK: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The page listing `entries` of the directory `key` (a cache key: no
/// leading slash, a trailing one); `truncated` when the helper stopped
/// at its limit.
pub(crate) fn page(key: &str, mut entries: Vec<DirEntry>, truncated: bool) -> Vec<u8> {
    entries.sort_by(|a, b| b.is_dir.cmp(&a.is_dir).then_with(|| a.name.cmp(&b.name)));
    let title = html_escape(&format!("/{key}"));
    let mut html = String::with_capacity(512 + entries.len() * 160);
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n\
         <body><h1>Index of {title}</h1>\n<table>\n\
         <tr><th>Name</th><th>Last modified (UTC)</th><th>Size</th></tr>\n"
    );
    if !key.is_empty() {
        html.push_str("<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
    }
    for entry in &entries {
        let slash = if entry.is_dir { "/" } else { "" };
        let size = if entry.is_dir {
            "-".to_string()
        } else {
            entry.size.to_string()
        };
        let _ = writeln!(
            html,
            "<tr><td><a href=\"{link}{slash}\">{name}{slash}</a></td><td>{date}</td><td>{size}</td></tr>",
            link = utf8_percent_encode(&entry.name, LINK),
            name = html_escape(&entry.name),
            date = date(entry.mtime_secs),
        );
    }
    html.push_str("</table>\n");
    if truncated {
        html.push_str("<p>(More entries than are listed.)</p>\n");
    }
    let _ = writeln!(html, "<hr><p>{SERVER_NAME}</p></body></html>");
    html.into_bytes()
}

/// `2026-11-29 04:50`
fn date(secs: i64) -> String {
    let t = civil_from_secs(secs);
    format!(
        "{}-{:02}-{:02} {:02}:{:02}",
        t.year, t.month, t.day, t.hour, t.minute
    )
}

/// `&`, `<`, `>`, `"` and `'` as character references, and what would
/// not show as itself as a visible stand-in: a C0 control or DEL as its
/// control picture (U+2400 to U+2421: a tab or line break in a name would
/// otherwise hide in the page), a C1 control or a bidirectional override
/// (which can show `gpj.exe` as `exe.jpg`) as U+FFFD. Links keep the exact
/// name, percent-encoded.
fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\0'..='\u{1f}' => out.push(char::from_u32(0x2400 + c as u32).unwrap_or('\u{fffd}')),
            '\u{7f}' => out.push('\u{2421}'),
            c if c.is_control() || is_bidi_control(c) => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// The characters that reorder the text around them (Unicode's
/// embeddings, overrides and isolates, and the marks).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, is_dir: bool, size: u64) -> DirEntry {
        DirEntry {
            name: name.into(),
            is_dir,
            size,
            mtime_secs: 1_795_797_894,
        }
    }

    #[test]
    fn entries_are_sorted_escaped_and_encoded() {
        let entries = vec![
            entry("b.txt", false, 12),
            entry("<img src=x onerror=alert(1)>.html", false, 3),
            entry("zdir", true, 4096),
            entry("a b&c\"d.txt", false, 0),
            entry("adir", true, 0),
            entry("x:y?#%.txt", false, 1),
        ];
        let page = String::from_utf8(page("docs/", entries, false)).expect("utf-8");
        assert!(page.contains("<title>Index of /docs/</title>"));
        assert!(page.contains("<a href=\"../\">../</a>"));
        assert!(page.contains(
            "<a href=\"a%20b%26c%22d.txt\">a b&amp;c&quot;d.txt</a></td><td>2026-11-27 16:44</td><td>0</td>"
        ));
        assert!(
            page.contains("<a href=\"adir/\">adir/</a></td><td>2026-11-27 16:44</td><td>-</td>")
        );
        assert!(page.contains("<a href=\"x%3Ay%3F%23%25.txt\">x:y?#%.txt</a>"));
        assert!(page.contains("&lt;img src=x onerror=alert(1)&gt;.html"));
        assert!(!page.contains("<img"));
        let order: Vec<usize> = ["adir/", "zdir/", "&lt;img", "a b&amp;c", "b.txt", "x:y"]
            .iter()
            .map(|name| page.find(name).expect("listed"))
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
        assert!(!page.contains("(More entries"));
    }

    #[test]
    fn controls_in_names_show_as_stand_ins_and_links_keep_the_bytes() {
        let entries = vec![
            entry("tab\there", false, 1),
            entry("line\nbreak\r", false, 1),
            entry("nul\0del\u{7f}", false, 1),
            entry("c1\u{85}", false, 1),
            entry("evil\u{202e}gpj.exe", false, 1),
        ];
        let page = String::from_utf8(page("a\u{1b}[2J/", entries, false)).expect("utf-8");
        assert!(page.contains("<a href=\"tab%09here\">tab\u{2409}here</a>"));
        assert!(page.contains("<a href=\"line%0Abreak%0D\">line\u{240a}break\u{240d}</a>"));
        assert!(page.contains("<a href=\"nul%00del%7F\">nul\u{2400}del\u{2421}</a>"));
        assert!(page.contains("<a href=\"c1%C2%85\">c1\u{fffd}</a>"));
        assert!(page.contains("<a href=\"evil%E2%80%AEgpj.exe\">evil\u{fffd}gpj.exe</a>"));
        assert!(page.contains("<title>Index of /a\u{241b}[2J/</title>"));
        let raw = page
            .chars()
            .filter(|&c| c != '\n')
            .find(|&c| c.is_control() || is_bidi_control(c));
        assert_eq!(raw, None, "a control reached the page");
    }

    #[test]
    fn the_root_has_no_parent_link_and_truncation_is_said() {
        let page = String::from_utf8(page("", vec![entry("a", false, 1)], true)).expect("utf-8");
        assert!(page.contains("<title>Index of /</title>"));
        assert!(!page.contains("../"));
        assert!(page.contains("(More entries than are listed.)"));
    }
}
