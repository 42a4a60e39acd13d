//! The review for people: a plain table for the terminal, Markdown for a
//! ticket or a wiki page.

use std::fmt::Write as _;

use super::{Audit, Credential};

fn last_used(c: &Credential) -> String {
    match (&c.last_used, &c.last_used_by) {
        (Some(at), Some(by)) => format!("{at} ({by})"),
        (Some(at), None) => at.clone(),
        (None, _) if c.source == "vault" => "—".into(),
        (None, _) => "never".into(),
    }
}

fn age(c: &Credential) -> String {
    c.age_days.map_or("—".into(), |d| format!("{d}d"))
}

fn flags(c: &Credential) -> String {
    if c.flags.is_empty() {
        "ok".into()
    } else {
        c.flags.join("; ")
    }
}

fn sources_line(a: &Audit) -> String {
    a.sources
        .iter()
        .map(|s| match &s.detail {
            Some(d) => format!("{}: {} ({d})", s.source, s.state),
            None => format!("{}: {} ({} credentials)", s.source, s.state, s.credentials),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn table(a: &Audit) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<7} {:<28} {:<20} {:<9} {:<6} {:<40} flags",
        "source", "credential", "owner", "status", "age", "last used"
    );
    for c in &a.credentials {
        let _ = writeln!(
            out,
            "{:<7} {:<28} {:<20} {:<9} {:<6} {:<40} {}",
            c.source,
            c.id,
            c.owner,
            c.status,
            age(c),
            last_used(c),
            flags(c)
        );
    }
    let _ = writeln!(out, "\n{}", sources_line(a));
    let _ = writeln!(
        out,
        "{} of {} credentials flagged (as of {}; max age {}d, unused after {}d)",
        a.flagged,
        a.credentials.len(),
        a.now,
        a.max_age_days,
        a.unused_after_days
    );
    out
}

/// A table cell: no pipes or line breaks.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

pub fn markdown(a: &Audit) -> String {
    let mut out = format!("# Key review, {}\n\n", a.now);
    let _ = writeln!(
        out,
        "{} of {} credentials flagged (max age {}d, unused after {}d).\n",
        a.flagged,
        a.credentials.len(),
        a.max_age_days,
        a.unused_after_days
    );
    out.push_str("| source | state | detail |\n|---|---|---|\n");
    for s in &a.sources {
        let detail = s
            .detail
            .clone()
            .unwrap_or_else(|| format!("{} credentials", s.credentials));
        let _ = writeln!(out, "| {} | {} | {} |", s.source, s.state, cell(&detail));
    }
    out.push_str("\n| source | credential | owner | status | age | last used | scope | flags |\n|---|---|---|---|---|---|---|---|\n");
    for c in &a.credentials {
        let _ = writeln!(
            out,
            "| {} | `{}` | {} | {} | {} | {} | {} | {} |",
            c.source,
            cell(&c.id),
            cell(&c.owner),
            c.status,
            age(c),
            cell(&last_used(c)),
            cell(&c.scope.join("; ")),
            cell(&flags(c))
        );
    }
    out
}
