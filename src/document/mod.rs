//! The incident document, built by replaying the journal: `incident.json`
//! (the facts, and the object every template receives), `incident.md` and
//! `incident.html` (rendered from the templates in `templates/`).

mod aws;
mod builtin;
mod leaks;
mod report;
mod rotation;
mod scorecard;
mod templates;
mod timeline;

use std::path::Path;

pub use report::*;
pub use scorecard::Scorecard;
pub use templates::{Kind, TemplateError, Templates};

use crate::journal::Record;

/// Which pages a rewrite writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pages {
    /// `incident.json` and `incident.md`: the rewrites while the incident
    /// runs, so a crash leaves a current document.
    Progress,
    /// Those and `incident.html`, which is heavier to render: when the
    /// incident ends, and whenever its journal grows after that.
    All,
}

/// Rewrites `incident.json`, `incident.md` and, with [`Pages::All`],
/// `incident.html` from the records, each atomically (a crash leaves the
/// previous version, never half a file). Returns the Markdown, for whoever
/// publishes it.
pub fn write(
    dir: &Path,
    records: &[Record],
    templates: &Templates,
    pages: Pages,
) -> std::io::Result<String> {
    let mut report = Report::from_records(records).map_err(std::io::Error::other)?;
    // A drill's last pages compare it with the earlier drills beside it.
    if pages == Pages::All
        && let Some(store) = dir.parent()
    {
        history_from(&mut report, store, records);
    }
    let documents = Documents::open(dir)?;
    let json = serde_json::to_string_pretty(&report).map_err(std::io::Error::other)?;
    documents.replace("incident.json", json.as_bytes())?;
    let markdown = templates.markdown(&report);
    documents.replace("incident.md", markdown.as_bytes())?;
    if pages == Pages::All {
        documents.replace("incident.html", templates.html(&report).as_bytes())?;
    }
    Ok(markdown)
}

/// Adds the earlier drills of its runbook, kept in `store` (a store
/// directory), to a drill's scorecard.
pub fn history_from(report: &mut Report, store: &Path, records: &[Record]) {
    let (Some(card), Some(first)) = (&mut report.scorecard, records.first()) else {
        return;
    };
    let started = match &first.event {
        crate::journal::Event::IncidentStarted { started_at, .. } => *started_at,
        _ => first.ts,
    };
    let earlier = scorecard::earlier_drills(store, &report.runbook, started);
    card.compare(&report.id, &earlier);
}

/// An incident's documents, to replace one by one.
///
/// Writers of one incident's documents (its document thread, an
/// `incident.publish` step, `quench serve` recording an answer) take turns
/// through a lock on its directory, held while one document is replaced
/// (~0.5 ms), never while one renders.
struct Documents {
    dir: std::path::PathBuf,
    lock: std::fs::File,
}

impl Documents {
    fn open(dir: &Path) -> std::io::Result<Documents> {
        Ok(Documents {
            dir: dir.to_path_buf(),
            lock: std::fs::File::open(dir)?,
        })
    }

    /// Replaces the document `name` with `bytes`, whole.
    fn replace(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        self.lock.lock()?;
        let replaced = write_atomic(&self.dir.join(name), bytes);
        self.lock.unlock()?;
        replaced
    }
}

/// Replaces a document whole, through a new file `.NAME.tmp` renamed over
/// it: a crash leaves the previous version or the new one, and a reader
/// that opened the previous one (a browser, `less`) goes on reading it
/// whole. Writers take turns ([`Documents`]), so a `.NAME.tmp` already
/// there was left by a crash before its rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("document");
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    crate::private::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::journal::{Actor, Event, Mode, Outcome, StepInfo};

    /// The names of the files in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    /// A reader that opened a version of a document reads that
    /// version whole, however often the document is replaced meanwhile,
    /// and replacing it leaves no other file behind.
    #[test]
    fn a_reader_keeps_the_version_it_opened() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let doc = dir.path().join("incident.md");
        write_atomic(&doc, b"first, and longer than the rest").unwrap();
        let mut reader = std::fs::File::open(&doc).unwrap();
        for text in ["second", "third", "fourth!"] {
            write_atomic(&doc, text.as_bytes()).unwrap();
            assert_eq!(std::fs::read_to_string(&doc).unwrap(), text);
        }
        let mut read = String::new();
        reader.read_to_string(&mut read).unwrap();
        assert_eq!(read, "first, and longer than the rest");
        assert_eq!(names(dir.path()), ["incident.md"]);
    }

    /// Two writers of one document, and a reader: the reader only ever
    /// finds one writer's whole text, and the document ends whole.
    #[test]
    fn writers_take_turns_and_readers_find_whole_documents() {
        let dir = tempfile::tempdir().unwrap();
        let texts = ["a".repeat(300_000), "b".repeat(200_000)];
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                let doc = dir.path().join("incident.md");
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Ok(read) = std::fs::read_to_string(&doc) {
                        assert!(texts.contains(&read), "a reader found {} bytes", read.len());
                    }
                }
            });
            let writers: Vec<_> = texts
                .iter()
                .map(|text| {
                    let dir = dir.path();
                    s.spawn(move || {
                        let documents = Documents::open(dir).unwrap();
                        for _ in 0..200 {
                            documents.replace("incident.md", text.as_bytes()).unwrap();
                        }
                    })
                })
                .collect();
            for writer in writers {
                writer.join().unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        let read = std::fs::read_to_string(dir.path().join("incident.md")).unwrap();
        assert!(texts.contains(&read));
    }

    /// A writer waits while another holds the documents' lock.
    #[test]
    fn a_writer_waits_for_the_documents_lock() {
        let dir = tempfile::tempdir().unwrap();
        let held = Documents::open(dir.path()).unwrap();
        held.lock.lock().unwrap();
        let wrote = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                let documents = Documents::open(dir.path()).unwrap();
                documents.replace("incident.md", b"waited").unwrap();
                wrote.store(true, std::sync::atomic::Ordering::SeqCst);
            });
            // Replacing a document takes ~0.1 ms: had it not waited, it
            // would be done long before.
            std::thread::sleep(std::time::Duration::from_millis(100));
            assert!(!wrote.load(std::sync::atomic::Ordering::SeqCst));
            held.lock.unlock().unwrap();
        });
        assert!(wrote.load(std::sync::atomic::Ordering::SeqCst));
        let read = std::fs::read_to_string(dir.path().join("incident.md")).unwrap();
        assert_eq!(read, "waited");
    }

    /// An `incident_started` of two steps, `revoke` and `notify`, in `mode`.
    pub(super) fn started(
        mode: crate::journal::Mode,
        detected_at: DateTime<Utc>,
        started_at: DateTime<Utc>,
    ) -> Event {
        let step = |id: &str, phase| StepInfo {
            id: id.into(),
            title: format!("Step {id}"),
            phase,
            action: "http.request".into(),
            needs: vec![],
            deferred: false,
            after_ms: None,
            section: None,
            proves_dead: false,
        };
        Event::IncidentStarted {
            incident: "INC-20261122-231001-7f3a".into(),
            runbook: "rb".into(),
            title: "A leaked key".into(),
            runbook_path: "rb.yaml".into(),
            runbook_sha256: "ab".into(),
            mode,
            detected_at,
            leaked_at: None,
            started_at,
            slo_ms: 300_000,
            inputs: Default::default(),
            secrets: vec![],
            by: Actor {
                user: "ana".into(),
                host: "laptop".into(),
            },
            steps: vec![
                step("revoke", crate::runbook::Phase::Revoke),
                step("notify", crate::runbook::Phase::Notify),
            ],
            trigger: None,
            description: None,
            kind: None,
        }
    }

    /// The records of an incident of two steps, `revoke` and `notify`,
    /// both succeeded.
    pub(super) fn two_step_records() -> Vec<Record> {
        let (_, at) = clock();
        let mut events = vec![started(Mode::Live, at(-1000), at(0))];
        for id in ["revoke", "notify"] {
            events.push(Event::StepStarted {
                step: id.into(),
                attempt: 1,
                params: None,
            });
            events.push(Event::StepSucceeded {
                step: id.into(),
                attempt: 1,
                outputs: Default::default(),
            });
        }
        events.push(Event::IncidentFinished(crate::journal::Finished {
            outcome: Outcome::Succeeded,
            revoked_at: Some(at(20)),
            time_to_revoke_ms: Some(1020),
            slo_met: true,
            credential_dead_at: None,
            time_to_dead_ms: None,
        }));
        events
            .into_iter()
            .enumerate()
            .map(|(i, event)| Record {
                v: crate::journal::FORMAT_VERSION,
                seq: i as u64 + 1,
                ts: at(i as i64 * 10),
                event,
            })
            .collect()
    }

    /// A rewrite while the incident runs writes the JSON and the
    /// Markdown; the final one the HTML page too; neither leaves any
    /// other file behind.
    #[test]
    fn rewrites_write_their_pages_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let records = two_step_records();
        let templates = Templates::builtin();
        let running = &records[..records.len() - 1];
        write(dir.path(), running, &templates, Pages::Progress).unwrap();
        assert_eq!(names(dir.path()), ["incident.json", "incident.md"]);
        let markdown = write(dir.path(), &records, &templates, Pages::All).unwrap();
        assert_eq!(
            names(dir.path()),
            ["incident.html", "incident.json", "incident.md"]
        );
        let md = std::fs::read_to_string(dir.path().join("incident.md")).unwrap();
        assert_eq!(md, markdown);
        assert!(md.contains("INC-20261122-231001-7f3a"));
        let html = std::fs::read_to_string(dir.path().join("incident.html")).unwrap();
        assert!(html.contains("INC-20261122-231001-7f3a") && html.contains("</html>"));
    }

    /// A test's T+0, and the time `ms` after it.
    fn clock() -> (DateTime<Utc>, impl Fn(i64) -> DateTime<Utc>) {
        let t0 = DateTime::parse_from_rfc3339("2026-11-22T23:10:01.000Z")
            .unwrap()
            .with_timezone(&Utc);
        (t0, move |ms| t0 + chrono::Duration::milliseconds(ms))
    }

    #[test]
    fn offsets_read_like_a_stopwatch() {
        let (t0, at) = clock();
        assert_eq!(offset(t0, at(1234)), "T+1.234s");
        assert_eq!(offset(t0, at(125_123)), "T+2m05.123s");
        assert_eq!(offset(t0, at(3_725_000)), "T+1h02m05.000s");
        assert_eq!(offset(t0, at(-500)), "T-0.500s");
    }
}
