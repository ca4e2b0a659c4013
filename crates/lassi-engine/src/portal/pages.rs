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
//! plus `{{{style}}}`, the style sheet `style.css`, inserted as is, and
//! `{{>head}}`, `{{>top}}`, `{{>foot}}`: the parts every page shares
//! (`head.html`, `top.html`, `foot.html`: the document head, the brand bar,
//! the footer), so one file restyles every page. A replaced page need not
//! use them; a part cannot include another.
//! Languages are `lang-XX.txt` files of `key = value` lines; a key missing
//! from one falls back to English. The guest's language comes from a
//! `lang=` parameter, else from `Accept-Language`.

use std::collections::HashMap;

/// The pages lassi serves.
pub const PAGE_NAMES: [&str; 5] = ["login", "terms", "success", "logout", "error"];

/// The parts pages include with `{{>name}}`.
pub const PART_NAMES: [&str; 3] = ["head", "top", "foot"];

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
    (
        "head.html",
        include_str!("../../../../portal-pages/head.html"),
    ),
    (
        "top.html",
        include_str!("../../../../portal-pages/top.html"),
    ),
    (
        "foot.html",
        include_str!("../../../../portal-pages/foot.html"),
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

/// Renders a template with `vars` and the strings of one language (parts
/// left out).
pub fn render(tpl: &str, vars: &HashMap<&str, String>, strings: &dyn Fn(&str) -> String) -> String {
    render_with_parts(tpl, vars, strings, &|_| None)
}

/// Renders a template with `vars`, the strings of one language, and the
/// parts `{{>name}}` refers to (`parts(name)`; an unknown part renders as
/// nothing).
pub fn render_with_parts<'a>(
    tpl: &str,
    vars: &'a HashMap<&'a str, String>,
    strings: &'a dyn Fn(&str) -> String,
    parts: &'a dyn Fn(&str) -> Option<&'a str>,
) -> String {
    let mut out = String::with_capacity(tpl.len() + 256);
    let ctx = Ctx {
        vars,
        strings,
        parts,
    };
    render_into(tpl, &ctx, &mut out, 0, true);
    out
}

/// What a template is rendered with.
struct Ctx<'a> {
    vars: &'a HashMap<&'a str, String>,
    strings: &'a dyn Fn(&str) -> String,
    parts: &'a dyn Fn(&str) -> Option<&'a str>,
}

impl Ctx<'_> {
    fn get(&self, name: &str) -> &str {
        self.vars.get(name).map(String::as_str).unwrap_or("")
    }
}

fn render_into(tpl: &str, ctx: &Ctx, out: &mut String, depth: u32, parts_allowed: bool) {
    let mut rest = tpl;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(inner) = after.strip_prefix("{{{") {
            if let Some(j) = inner.find("}}}") {
                out.push_str(ctx.get(inner[..j].trim()));
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
            rest = render_section(next, name, neg, ctx, out, depth, parts_allowed);
            continue;
        }
        if let Some(name) = tag.strip_prefix('>') {
            if let Some(part) = (ctx.parts)(name.trim()).filter(|_| parts_allowed) {
                // The part's own last line break would double the page's.
                render_into(
                    part.strip_suffix('\n').unwrap_or(part),
                    ctx,
                    out,
                    depth,
                    false,
                );
            }
        } else if let Some(key) = tag.strip_prefix("t.") {
            escape_html(&(ctx.strings)(key), out);
        } else {
            escape_html(ctx.get(tag), out);
        }
        rest = next;
    }
    out.push_str(rest);
}

/// Renders the section `{{#name}}…{{/name}}` (`{{^name}}` when `neg`) that
/// starts at `next`; returns what follows it.
fn render_section<'t>(
    next: &'t str,
    name: &str,
    neg: bool,
    ctx: &Ctx,
    out: &mut String,
    depth: u32,
    parts_allowed: bool,
) -> &'t str {
    let close = format!("{{{{/{name}}}}}");
    let Some(k) = next.find(&close) else {
        return next;
    };
    let show = ctx.get(name).is_empty() == neg;
    if show && depth < 8 {
        render_into(&next[..k], ctx, out, depth + 1, parts_allowed);
    }
    &next[k + close.len()..]
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
        let parts = |name: &str| {
            PART_NAMES
                .contains(&name)
                .then(|| self.files.get(&format!("{name}.html")))
                .flatten()
                .map(String::as_str)
        };
        render_with_parts(tpl, vars, &|k| self.string(lang, k), &parts)
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
    fn pages_share_their_parts_and_a_replaced_part_changes_every_page() {
        let mut p = Pages::embedded();
        let vars_of = |nasid: &str| vars(&[("nasid", nasid), ("message", "m")]);
        let error = p.render("error", "en", &mut vars_of("cafe-1"));
        assert!(
            error.starts_with("<!doctype html>\n<html lang=\"en\">"),
            "{error:.80}"
        );
        assert!(error.contains("<title>") && error.contains("class=\"brand\""));
        assert!(error.trim_end().ends_with("</html>") && error.contains("cafe-1</footer>"));
        p.set_file("top.html".into(), "<body>MY-BRAND {{t.brand}}".into());
        for name in PAGE_NAMES {
            let html = p.render(name, "en", &mut vars_of("x"));
            assert!(html.contains("MY-BRAND"), "{name}");
            assert!(!html.contains("class=\"brand\""), "{name}");
        }
        // A part cannot pull in another part (no loops), and only the
        // named parts are parts.
        p.set_file("top.html".into(), "[{{>top}}{{>foot}}]".into());
        p.set_file("login.html".into(), "{{>top}}{{>login}}{{>style}}".into());
        assert_eq!(p.render("login", "en", &mut vars_of("x")), "[]");
        // Without parts, a reference to one renders as nothing.
        assert_eq!(render("a{{>head}}b", &HashMap::new(), &|k| k.into()), "ab");
    }

    #[test]
    fn embedded_pages_are_complete() {
        let p = Pages::embedded();
        let en = parse_lang(EMBEDDED_LANGS[0].1);
        let de = parse_lang(EMBEDDED_LANGS[1].1);
        // Every string a page or a part uses exists in both languages.
        for name in PAGE_NAMES.into_iter().chain(PART_NAMES) {
            let tpl = &p.files[&format!("{name}.html")];
            for part in tpl.split("{{t.").skip(1) {
                let key = part.split("}}").next().unwrap();
                assert!(en.contains_key(key), "{name}: en lacks {key}");
                assert!(de.contains_key(key), "{name}: de lacks {key}");
            }
            // No external resources.
            assert!(!tpl.contains("src=\"http"), "{name}");
            assert!(!tpl.contains("href=\"http"), "{name}");
            if PAGE_NAMES.contains(&name) {
                let html = p.render(name, "de", &mut HashMap::new());
                assert!(html.contains("<html lang=\"de\""), "{name}");
                assert!(html.contains("</footer>") && !html.contains("{{"), "{name}");
            }
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
