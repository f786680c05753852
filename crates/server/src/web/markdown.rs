//! READMEs rendered safely: Markdown to HTML with every raw HTML block and inline tag shown as
//! text, and only `http`, `https`, `mailto` and relative links kept.

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, html};

fn safe_url(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    match lower.split_once(':') {
        Some((scheme, _))
            if !scheme.contains('/') && !scheme.contains('?') && !scheme.contains('#') =>
        {
            matches!(scheme, "http" | "https" | "mailto")
        }
        _ => true,
    }
}

/// Renders Markdown to HTML that is safe to embed.
pub fn render(markdown: &str) -> String {
    let mut opts = Options::empty();
    opts.insert(Options::ENABLE_TABLES);
    opts.insert(Options::ENABLE_STRIKETHROUGH);
    opts.insert(Options::ENABLE_TASKLISTS);
    let events = Parser::new_ext(markdown, opts).map(|e| match e {
        Event::Html(h) | Event::InlineHtml(h) => Event::Text(h),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) if !safe_url(&dest_url) => Event::Start(Tag::Link {
            link_type,
            dest_url: CowStr::Borrowed("#"),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) if !safe_url(&dest_url) => Event::Start(Tag::Image {
            link_type,
            dest_url: CowStr::Borrowed(""),
            title,
            id,
        }),
        other => other,
    });
    let mut out = String::with_capacity(markdown.len() * 2);
    html::push_html(&mut out, events);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_becomes_html() {
        let h = render("# Title\n\nSome *text* and `code`.\n\n- a\n- b\n");
        assert!(h.contains("<h1>Title</h1>"));
        assert!(h.contains("<em>text</em>"));
        assert!(h.contains("<code>code</code>"));
    }

    #[test]
    fn raw_html_and_script_urls_are_neutralised() {
        let h = render(
            "<script>alert(1)</script>\n\nHi <img src=x onerror=alert(1)>\n\n[x](javascript:alert(1)) [y](JavaScript:alert(2)) ![i](data:text/html,boom)",
        );
        assert!(!h.contains("<script"), "{h}");
        assert!(!h.contains("<img src=x"), "{h}");
        assert!(h.contains("&lt;script&gt;"), "{h}");
        assert!(!h.to_lowercase().contains("javascript:"), "{h}");
        assert!(!h.contains("data:text/html"), "{h}");
        let ok = render("[site](https://example.com) [rel](docs/a.md) [mail](mailto:a@b.c)");
        assert!(
            ok.contains("href=\"https://example.com\"")
                && ok.contains("href=\"docs/a.md\"")
                && ok.contains("mailto:")
        );
    }
}
