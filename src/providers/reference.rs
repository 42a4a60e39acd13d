//! The actions' reference, as Markdown, made from their declarations: the
//! part of `docs/runbooks.md` that lists every action, its parameters and
//! its outputs, so the documentation cannot drift from the code.

use super::Provider;

/// Every provider's actions, their parameters and outputs, as Markdown.
pub fn markdown() -> String {
    let mut out = String::new();
    for p in Provider::ALL {
        out.push_str(&format!("### `{p}`\n\n"));
        for a in p.actions() {
            let idempotent = if a.idempotent {
                " Idempotent: a step in flight when quench stopped runs again on `resume`."
            } else {
                ""
            };
            let proves_dead = if a.proves_dead {
                " Proves the leaked credential dead when it succeeds: a verify step, in phase `update` or later."
            } else {
                ""
            };
            out.push_str(&format!(
                "#### `{}`\n\n{}.{idempotent}{proves_dead}\n\n",
                a.name, a.doc
            ));
            if !a.params.is_empty() {
                out.push_str("| parameter | type | use | what |\n|---|---|---|---|\n");
                for param in a.params {
                    let mut marks = Vec::new();
                    marks.push(if param.required {
                        "required"
                    } else {
                        "optional"
                    });
                    if param.secret {
                        marks.push("secret-capable");
                    }
                    if param.mrkdwn {
                        marks.push("Slack mrkdwn, values escaped");
                    }
                    out.push_str(&format!(
                        "| `{}` | {} | {} | {} |\n",
                        param.name,
                        param.ty.describe(),
                        marks.join(", "),
                        param.doc.replace('|', "\\|")
                    ));
                }
                out.push('\n');
            }
            if !a.outputs.is_empty() || a.dynamic_outputs {
                out.push_str("Outputs:\n\n");
                for o in a.outputs {
                    let secret = if o.secret { " (secret)" } else { "" };
                    out.push_str(&format!("- `{}`{secret}: {}\n", o.name, o.doc));
                }
                if a.dynamic_outputs {
                    out.push_str("- and the outputs the step names in `outputs`\n");
                }
                out.push('\n');
            }
        }
    }
    out
}
