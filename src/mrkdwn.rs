//! Slack's mrkdwn: what makes a value safe to put into a message. Slack
//! reads `<!channel>`, `<@U123>` and `<https://…|text>` as mentions and
//! links, so a value from outside (an input, a provider's answer) has its
//! `&`, `<` and `>` escaped as Slack documents, and a code block cannot be
//! closed by the text inside it.

/// `text` with `&`, `<` and `>` escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// `text` as a code block: escaped, with every run of three backticks
/// broken by a zero-width space so that none closes the block.
pub fn code_block(text: &str) -> String {
    let body = escape(text).replace("```", "`\u{200b}`\u{200b}`");
    format!("```\n{body}\n```")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_and_links_are_escaped_and_fences_cannot_close() {
        assert_eq!(
            escape("<!channel> <@U999> <https://evil.example|click> & co"),
            "&lt;!channel&gt; &lt;@U999&gt; &lt;https://evil.example|click&gt; &amp; co"
        );
        let block = code_block("a\n```\n<!here>\n```");
        assert_eq!(block.matches("```").count(), 2, "{block}");
        assert!(!block.contains("<!here>"));
    }
}
