//! The splash pages: tiny templates with HTML escaping, and the strings of
//! each language in one file per language.
//!
//! Templates (in `portal-pages/`, embedded; a file of the same name in
//! `portal.pages_dir` replaces one) know four forms:
//!
//! | form | meaning |
//! | --- | --- |
//! | `{{name}}` | a value, HTML-escaped |
//! | `{{t.key}}` | the string `key` of the guest's language, HTML-escaped |
//! | `{{#name}}…{{/name}}` | the part between, only if `name` is not empty |
//! | `{{^name}}…{{/name}}` | the part between, only if `name` is empty |
//!
//! plus `{{{style}}}`, the style sheet `style.css`, inserted as is.
//! Languages are `lang-XX.txt` files of `key = value` lines; a key missing
//! from one falls back to English. The guest's language comes from a
//! `lang=` parameter, else from `Accept-Language`.

use std::collections::HashMap;

/// The pages lassi serves.
pub const PAGE_NAMES: [&str; 5] = ["login", "terms", "success", "logout", "error"];

const EMBEDDED: &[(&str, &str)] = &[
    (
        "login.html",
        include_str!("../../../../portal-pages/login.html"),
    ),
    (
        "terms.html",
        include_str!("../../../../portal-pages/terms.html"),
    ),
    (
        "success.html",
        include_str!("../../../../portal-pages/success.html"),
    ),
    (
        "logout.html",
        include_str!("../../../../portal-pages/logout.html"),
    ),
    (
        "error.html",
        include_str!("../../../../portal-pages/error.html"),
    ),
    (
        "style.css",
        include_str!("../../../../portal-pages/style.css"),
    ),
];

const EMBEDDED_LANGS: &[(&str, &str)] = &[
    ("en", include_str!("../../../../portal-pages/lang-en.txt")),
    ("de", include_str!("../../../../portal-pages/lang-de.txt")),
];

/// Escapes `& < > " '` for HTML text and attribute values.
pub fn escape_html(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// The language code (lowercase) of a `lang-XX.txt` file name: 2 to 8
/// ASCII letters.
pub fn lang_file_code(name: &str) -> Option<String> {
    name.strip_prefix("lang-")
        .and_then(|n| n.strip_suffix(".txt"))
        .filter(|l| (2..=8).contains(&l.len()) && l.chars().all(|c| c.is_ascii_alphabetic()))
        .map(str::to_ascii_lowercase)
}

/// Parses a language file: `key = value` lines, `#` comments.
pub fn parse_lang(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// Picks a language: `explicit` (a `lang=` parameter) if supported, else
/// the supported language the `Accept-Language` header likes best, else
/// English.
pub fn choose_lang<'a>(
    supported: &[&'a str],
    explicit: Option<&str>,
    accept_language: Option<&str>,
) -> &'a str {
    let find = |tag: &str| {
        let primary = tag.split(['-', '_']).next().unwrap_or("").trim();
        supported
            .iter()
            .find(|s| s.eq_ignore_ascii_case(primary))
            .copied()
    };
    if let Some(l) = explicit.and_then(find) {
        return l;
    }
    let mut best: Option<(u32, &str)> = None;
    for item in accept_language.unwrap_or("").split(',').take(32) {
        let mut parts = item.split(';');
        let tag = parts.next().unwrap_or("").trim();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .next()
            .and_then(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let q = (q.clamp(0.0, 1.0) * 1000.0) as u32;
        if q == 0 {
            continue;
        }
        if let Some(l) = find(tag) {
            if best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, l));
            }
        }
    }
    best.map(|(_, l)| l).unwrap_or("en")
}

/// Renders a template with `vars` and the strings of one language.
pub fn render(tpl: &str, vars: &HashMap<&str, String>, strings: &dyn Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(tpl.len() + 256);
    render_into(tpl, vars, strings, &mut out, 0);
    out
}

fn render_into(
    tpl: &str,
    vars: &HashMap<&str, String>,
    strings: &dyn Fn(&str) -> String,
    out: &mut String,
    depth: u32,
) {
    let get = |name: &str| vars.get(name).map(String::as_str).unwrap_or("");
    let mut rest = tpl;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(inner) = after.strip_prefix("{{{") {
            if let Some(j) = inner.find("}}}") {
                out.push_str(get(inner[..j].trim()));
                rest = &inner[j + 3..];
                continue;
            }
        }
        let Some(j) = after[2..].find("}}") else {
            out.push_str(after);
            return;
        };
        let tag = after[2..2 + j].trim();
        let next = &after[2 + j + 2..];
        if let Some((neg, name)) = tag
            .strip_prefix('#')
            .map(|n| (false, n))
            .or_else(|| tag.strip_prefix('^').map(|n| (true, n)))
        {
            let close = format!("{{{{/{name}}}}}");
            if let Some(k) = next.find(&close) {
                let show = get(name).is_empty() == neg;
                if show && depth < 8 {
                    render_into(&next[..k], vars, strings, out, depth + 1);
                }
                rest = &next[k + close.len()..];
                continue;
            }
            rest = next;
            continue;
        }
        if let Some(key) = tag.strip_prefix("t.") {
            escape_html(&strings(key), out);
        } else {
            escape_html(get(tag), out);
        }
        rest = next;
    }
    out.push_str(rest);
}

/// The page templates and languages, embedded or from `pages_dir`.
#[derive(Debug, Clone)]
pub struct Pages {
    files: HashMap<String, String>,
    langs: Vec<(String, HashMap<String, String>)>,
}

impl Pages {
    /// The embedded pages.
    pub fn embedded() -> Pages {
        Pages {
            files: EMBEDDED
                .iter()
                .map(|(n, t)| (n.to_string(), t.to_string()))
                .collect(),
            langs: EMBEDDED_LANGS
                .iter()
                .map(|(l, t)| (l.to_string(), parse_lang(t)))
                .collect(),
        }
    }

    /// True if `name` (such as `login.html`) is one of the page files, so
    /// a file of that name may replace it.
    pub fn has_file(&self, name: &str) -> bool {
        self.files.contains_key(name)
    }

    /// Replaces the page file `name` (read from `pages_dir` by the shell).
    pub fn set_file(&mut self, name: String, text: String) {
        self.files.insert(name, text);
    }

    /// Adds the strings of language `code` from a language file's `text`;
    /// a language the pages already speak keeps the keys the file lacks.
    pub fn add_language(&mut self, code: &str, text: &str) {
        let strings = parse_lang(text);
        match self.langs.iter_mut().find(|(c, _)| c == code) {
            Some((_, s)) => s.extend(strings),
            None => self.langs.push((code.to_string(), strings)),
        }
    }

    /// Codes of the languages the pages speak.
    pub fn languages(&self) -> Vec<&str> {
        self.langs.iter().map(|(l, _)| l.as_str()).collect()
    }

    /// The string `key` in `lang`, falling back to English, then to the key.
    pub fn string(&self, lang: &str, key: &str) -> String {
        let find = |l: &str| {
            self.langs
                .iter()
                .find(|(code, _)| code == l)
                .and_then(|(_, s)| s.get(key))
        };
        find(lang)
            .or_else(|| find("en"))
            .cloned()
            .unwrap_or_else(|| key.to_string())
    }

    /// Renders page `name` (one of [`PAGE_NAMES`]) in `lang`. `vars` gets
    /// `lang` and `style` added.
    pub fn render(&self, name: &str, lang: &str, vars: &mut HashMap<&str, String>) -> String {
        let tpl = self
            .files
            .get(&format!("{name}.html"))
            .map(String::as_str)
            .unwrap_or("");
        vars.insert("lang", lang.to_string());
        vars.insert(
            "style",
            self.files.get("style.css").cloned().unwrap_or_default(),
        );
        render(tpl, vars, &|k| self.string(lang, k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&'static str, &str)]) -> HashMap<&'static str, String> {
        pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
    }

    #[test]
    fn templates_escape_and_sections() {
        let t = "<p title=\"{{a}}\">{{t.hi}} {{b}}</p>{{#err}}<b>{{err}}</b>{{/err}}{{^err}}ok{{/err}}{{{raw}}}{{missing}}";
        let s = |k: &str| format!("[{k}]");
        assert_eq!(
            render(
                t,
                &vars(&[("a", "\"><script>"), ("b", "x&y"), ("raw", "a>b")]),
                &s
            ),
            "<p title=\"&quot;&gt;&lt;script&gt;\">[hi] x&amp;y</p>oka>b"
        );
        assert_eq!(
            render(t, &vars(&[("err", "<bad>")]), &s),
            "<p title=\"\">[hi] </p><b>&lt;bad&gt;</b>"
        );
        // Broken templates render what they can, never panic.
        for t in [
            "{{",
            "{{#x}}never closed",
            "{{{",
            "}}{{a",
            "{{#a}}{{#a}}{{/a}}",
        ] {
            let _ = render(t, &vars(&[("a", "1")]), &s);
        }
    }

    #[test]
    fn language_choice() {
        let langs = ["en", "de"];
        assert_eq!(
            choose_lang(&langs, None, Some("de-DE,de;q=0.9,en;q=0.8")),
            "de"
        );
        assert_eq!(
            choose_lang(&langs, None, Some("fr-FR, en;q=0.5, de;q=0.4")),
            "en"
        );
        assert_eq!(choose_lang(&langs, None, Some("fr, de;q=0")), "en");
        assert_eq!(choose_lang(&langs, None, None), "en");
        assert_eq!(choose_lang(&langs, Some("DE"), Some("en")), "de");
        assert_eq!(choose_lang(&langs, Some("xx"), Some("de")), "de");
        assert_eq!(choose_lang(&langs, None, Some(";;;,q=,de;q=abc")), "de");
    }

    #[test]
    fn embedded_pages_are_complete() {
        let p = Pages::embedded();
        let en = parse_lang(EMBEDDED_LANGS[0].1);
        let de = parse_lang(EMBEDDED_LANGS[1].1);
        // Every string a page uses exists in both languages.
        for name in PAGE_NAMES {
            let tpl = &p.files[&format!("{name}.html")];
            for part in tpl.split("{{t.").skip(1) {
                let key = part.split("}}").next().unwrap();
                assert!(en.contains_key(key), "{name}: en lacks {key}");
                assert!(de.contains_key(key), "{name}: de lacks {key}");
            }
            // No external resources.
            assert!(!tpl.contains("src=\"http"), "{name}");
            assert!(!tpl.contains("href=\"http"), "{name}");
            let html = p.render(name, "de", &mut HashMap::new());
            assert!(html.contains("<html lang=\"de\""), "{name}");
        }
        assert_eq!(p.languages(), ["en", "de"]);
        assert_eq!(p.string("de", "no-such-key"), "no-such-key");
    }

    #[test]
    fn overrides_replace_pages_and_add_languages() {
        let mut p = Pages::embedded();
        assert!(p.has_file("error.html") && !p.has_file("unrelated.txt"));
        p.set_file("error.html".into(), "custom {{message}}".into());
        p.add_language("fr", "title = Bienvenue\n");
        p.add_language("de", "title = Hallo\n");
        let mut v = HashMap::new();
        v.insert("message", "<m>".to_string());
        assert_eq!(p.render("error", "en", &mut v), "custom &lt;m&gt;");
        assert_eq!(p.languages(), ["en", "de", "fr"]);
        assert_eq!(p.string("fr", "title"), "Bienvenue");
        assert_eq!(p.string("de", "title"), "Hallo");
        // A language file keeps the keys it does not name.
        assert_eq!(
            p.string("de", "logout"),
            Pages::embedded().string("de", "logout")
        );
        assert_eq!(lang_file_code("lang-FR.txt").as_deref(), Some("fr"));
        for n in ["lang-f.txt", "lang-fr1.txt", "lang-fr.html", "fr.txt"] {
            assert_eq!(lang_file_code(n), None, "{n}");
        }
    }
}
