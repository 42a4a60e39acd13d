//! Git repositories: where in a repository's history a leaked value was
//! committed. Read in process with gitoxide; quench starts no `git`.
//!
//! The scan reads each commit once, diffs its tree against its parents'
//! (unchanged subtrees are skipped by id), and searches each blob that a
//! commit added or changed once, however many commits share it: the same
//! work `git log --all -S` does, without counting both sides of every diff.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use aho_corasick::{AhoCorasick, MatchKind};
use chrono::{DateTime, SecondsFormat, Utc};
use gix::ObjectId;
use gix::bstr::ByteSlice;
use gix::prelude::FindExt;
use serde_json::{Value, json};

use super::action::{Call, Perform};
use super::http::is_plain_http;
use super::{ActionError, error_chain};
use crate::action;
use crate::secret::{MIN_SECRET_LEN, Redactor, dotenv_value, encoded_forms, marker};

pub const ACTIONS: &[super::ActionSpec] = &[ScanHistory::SPEC];

/// The most hits a scan lists, earliest first; `count` counts them all.
pub const MAX_HITS: usize = 1000;

action! {
    /// Search every commit of every ref of a repository for a leaked value, raw and
    /// encoded (URL-encoded, base64, JSON-escaped, hex): where and when it was committed
    "git.scan_history" in Git => ScanHistory [idempotent] {
        /// a local clone (its path, or a `file://` URL: every ref is searched), or an
        /// `https://` URL, cloned for the scan (branches, tags, pull and merge request
        /// refs) and deleted after it. SSH is not supported: clone it yourself (`git
        /// clone --mirror`) and give the path
        repository: String,
        /// the leaked value; a value of several lines (tokens one a line, a leaked
        /// `.env`) is searched token by token
        value: String [secret],
        /// a token to clone an `https://` URL with (sent as its password)
        token: Option<String> [secret],
        /// `false` searches for the raw value only (default `true`: every encoding too)
        encodings: Option<bool>,
    } -> ScanHistoryOutputs {
        /// each commit that added the value to a file, earliest first (at most 1,000):
        /// `commit`, `author`, `date` (committer date, RFC 3339), `path`, `line`,
        /// `refs` (the refs whose history holds the commit), `secret` (the value's
        /// redaction marker, never the value) and `encoding` (`raw`, `base64`, …)
        hits: Vec<Value>,
        /// how many hits there are
        count: i64,
        /// the committer date of the earliest hit (RFC 3339), or null
        leaked_at: Value,
    }
}

/// The git provider's client. It needs no configuration: each step names
/// its repository.
#[derive(Debug, Clone, Copy, Default)]
pub struct Git;

impl Perform for ScanHistory {
    async fn perform(self, _: &Git, _: Call<'_>) -> Result<ScanHistoryOutputs, ActionError> {
        let needles = Needles::new(&self.value, self.encodings.unwrap_or(true))?;
        let source = Source::parse(&self.repository)?;
        let token = self.token.filter(|t| !t.is_empty());
        if let (Source::Remote(url), Some(_)) = (&source, &token)
            && is_plain_http(url)
        {
            // gix refuses to send a credential in clear text anyway.
            return Err(ActionError::permanent(format!(
                "a token is sent over `https://` only, never in clear text to `{url}`"
            )));
        }
        // Dropped with this future when the attempt times out: the scan
        // sees it and stops, and a clone is deleted.
        let stop = Stop::default();
        let flag = stop.0.clone();
        let found = tokio::task::spawn_blocking(move || {
            let mut opened = source.open(token.as_deref(), &flag)?;
            // Git's own default for its cache of delta bases (96 MB): a
            // delta is resolved from a cached base instead of its chain.
            opened.repo.objects.set_pack_cache(|| {
                Box::new(gix::odb::pack::cache::lru::MemoryCappedHashmap::new(
                    96 << 20,
                ))
            });
            Scan::new(&opened.repo, &needles, &flag).run()
        })
        .await
        .map_err(|e| ActionError::permanent(format!("the scan stopped: {e}")))??;
        drop(stop);
        Ok(found)
    }
}

/// Sets its flag when dropped.
#[derive(Default)]
struct Stop(Arc<AtomicBool>);

impl Drop for Stop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn stopped() -> ActionError {
    ActionError::permanent("the scan was stopped")
}

/// Where the repository is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Local(PathBuf),
    /// An `https://` (or `http://`) URL, without credentials.
    Remote(String),
}

/// A repository opened for the scan, and the clone it lives in, deleted
/// when this is dropped.
struct Opened {
    repo: gix::Repository,
    _clone: Option<tempfile::TempDir>,
}

impl Source {
    fn parse(repository: &str) -> Result<Source, ActionError> {
        let given = repository.trim();
        let refuse = |why: &str| Err(ActionError::permanent(why.to_string()));
        if given.is_empty() {
            return refuse("`repository` is empty: give the path of a clone, or an `https://` URL");
        }
        if let Some(path) = given.strip_prefix("file://") {
            let path = path.strip_prefix("localhost").unwrap_or(path);
            return Ok(Source::Local(PathBuf::from(path)));
        }
        let lower = given.to_ascii_lowercase();
        if lower.starts_with("https://") || lower.starts_with("http://") {
            let rest = &given[given.find("://").map_or(0, |i| i + 3)..];
            let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
            if authority.contains('@') {
                // Not repeated: what precedes the `@` is a credential.
                return refuse(
                    "`repository` holds credentials: give the URL without them, and the token in `token`",
                );
            }
            return Ok(Source::Remote(given.to_string()));
        }
        if lower.starts_with("ssh://") || is_scp_like(given) {
            return Err(ActionError::permanent(format!(
                "`{given}` is an SSH URL, which quench does not clone: clone it yourself \
                 (`git clone --mirror {given}`) and give the clone's path"
            )));
        }
        if let Some((scheme, _)) = given.split_once("://") {
            return Err(ActionError::permanent(format!(
                "`{scheme}://` repositories are not supported: give the path of a clone, or an `https://` URL"
            )));
        }
        Ok(Source::Local(PathBuf::from(given)))
    }

    fn open(&self, token: Option<&str>, stop: &AtomicBool) -> Result<Opened, ActionError> {
        match self {
            Source::Local(path) => {
                if !path.exists() {
                    return Err(ActionError::permanent(format!(
                        "the repository `{}` does not exist",
                        path.display()
                    )));
                }
                // Isolated: the repository's own configuration only, none
                // from the system, the user or the environment, and no
                // `git` started to find where those are.
                let repo = gix::open_opts(path, gix::open::Options::isolated()).map_err(|e| {
                    ActionError::permanent(format!(
                        "failed to open the repository `{}`: {}",
                        path.display(),
                        error_chain(&e)
                    ))
                })?;
                Ok(Opened { repo, _clone: None })
            }
            Source::Remote(url) => clone(url, token, stop),
        }
    }
}

/// `git@host:owner/repo`: scp's syntax for SSH.
fn is_scp_like(given: &str) -> bool {
    let Some((before, _)) = given.split_once(':') else {
        return false;
    };
    before.contains('@') && !before.contains('/')
}

/// The refs a clone fetches: every branch and tag, and the refs GitHub and
/// GitLab keep for pull and merge requests, where a leak on a deleted
/// branch lives on. (Not `+refs/*:refs/*`: gix asks the server for the
/// prefix `refs/*`, which no ref has.)
const MIRRORED: [&str; 4] = [
    "+refs/heads/*:refs/heads/*",
    "+refs/tags/*:refs/tags/*",
    "+refs/pull/*:refs/pull/*",
    "+refs/merge-requests/*:refs/merge-requests/*",
];

/// A bare clone of the [`MIRRORED`] refs of `url` in a private temporary
/// directory.
/// The token, if any, is given only to the transport, as the password of a
/// basic authentication: no credential helper or prompt is asked.
fn clone(url: &str, token: Option<&str>, stop: &AtomicBool) -> Result<Opened, ActionError> {
    let dir = tempfile::Builder::new()
        .prefix("quench-clone-")
        .tempdir()
        .map_err(|e| {
            ActionError::permanent(format!("failed to make a directory to clone into: {e}"))
        })?;
    let failed = |e: &dyn std::error::Error| {
        ActionError::transient(format!("failed to clone `{url}`: {}", error_chain(e)))
    };
    let token = token.map(str::to_string);
    let mut prepare = gix::clone::PrepareFetch::new(
        url,
        dir.path(),
        gix::create::Kind::Bare,
        gix::create::Options::default(),
        gix::open::Options::isolated(),
    )
    .map_err(|e| ActionError::permanent(format!("`{url}` cannot be cloned: {}", error_chain(&e))))?
    .configure_remote(|remote| remote.with_refspecs(MIRRORED, gix::remote::Direction::Fetch))
    .configure_connection(move |connection| {
        let token = token.clone();
        connection.set_credentials(move |action| match (action, &token) {
            (gix::credentials::helper::Action::Get(context), Some(token)) => {
                Ok(Some(gix::credentials::protocol::Outcome {
                    identity: gix::sec::identity::Account {
                        username: "x-access-token".into(),
                        password: token.clone(),
                        oauth_refresh_token: None,
                    },
                    next: context.into(),
                }))
            }
            _ => Ok(None),
        });
        Ok(())
    });
    let (repo, _) = prepare
        .fetch_only(gix::progress::Discard, stop)
        .map_err(|e| {
            if stop.load(Ordering::Relaxed) {
                stopped()
            } else {
                failed(&e)
            }
        })?;
    Ok(Opened {
        repo,
        _clone: Some(dir),
    })
}

/// The values to search for, one token at a time, and every form of each.
struct Needles {
    finder: AhoCorasick,
    /// Each pattern's token and encoding.
    forms: Vec<(usize, &'static str)>,
    /// Each token's marker.
    markers: Vec<String>,
}

impl Needles {
    fn new(value: &str, encodings: bool) -> Result<Needles, ActionError> {
        let tokens = tokens(value);
        if tokens.is_empty() {
            return Err(ActionError::permanent(format!(
                "`value` holds nothing of {MIN_SECRET_LEN} characters or more to search for"
            )));
        }
        let mut patterns: Vec<String> = Vec::new();
        let mut forms = Vec::new();
        let mut seen = HashSet::new();
        for (i, token) in tokens.iter().enumerate() {
            let all = if encodings {
                encoded_forms(token)
            } else {
                vec![("raw", token.clone())]
            };
            for (encoding, form) in all {
                if form.len() >= MIN_SECRET_LEN && seen.insert(form.clone()) {
                    patterns.push(form);
                    forms.push((i, encoding));
                }
            }
        }
        // Standard semantics, so that every form is found where forms
        // overlap (a value and the base64 of a longer text holding it).
        let finder = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(&patterns)
            .map_err(|e| ActionError::permanent(format!("failed to prepare the search: {e}")))?;
        // Named as the redactor names them everywhere else, when `value`
        // came from a secret.
        let markers = tokens
            .iter()
            .map(|t| {
                Redactor::process()
                    .marker_of(t)
                    .unwrap_or_else(|| marker("value", t))
            })
            .collect();
        Ok(Needles {
            finder,
            forms,
            markers,
        })
    }
}

/// The tokens of `value`: itself, or, when it has several lines (a list of
/// tokens, a leaked `.env`), each line's value, as the redactor sweeps them.
/// Blank lines, comments and values too short to tell apart are left out.
fn tokens(value: &str) -> Vec<String> {
    if !value.contains('\n') {
        return if value.len() >= MIN_SECRET_LEN {
            vec![value.to_string()]
        } else {
            Vec::new()
        };
    }
    let mut out: Vec<String> = Vec::new();
    for line in value.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let token = dotenv_value(line).unwrap_or(line);
        if token.len() >= MIN_SECRET_LEN && !out.iter().any(|t| t == token) {
            out.push(token.to_string());
        }
    }
    out
}

/// A form of a token on a line of a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Found {
    line: u32,
    /// The pattern: its token and encoding are in [`Needles::forms`].
    form: usize,
    /// The line's text, hashed: a line an older version of the file
    /// already had is not where the value was added.
    text: u64,
}

/// A commit, as the scan needs it.
struct Node {
    tree: ObjectId,
    parents: Vec<ObjectId>,
}

/// Where a commit added a value to a file.
struct Hit {
    commit: ObjectId,
    path: String,
    found: Found,
}

struct Scan<'a> {
    repo: &'a gix::Repository,
    needles: &'a Needles,
    stop: &'a AtomicBool,
    /// Each blob searched so far, and what was found in it.
    blobs: HashMap<ObjectId, Option<Arc<[Found]>>>,
    buf: Vec<u8>,
}

impl<'a> Scan<'a> {
    fn new(repo: &'a gix::Repository, needles: &'a Needles, stop: &'a AtomicBool) -> Self {
        Scan {
            repo,
            needles,
            stop,
            blobs: HashMap::new(),
            buf: Vec::new(),
        }
    }

    fn run(mut self) -> Result<ScanHistoryOutputs, ActionError> {
        let tips = self.tips()?;
        let (graph, order) = self.walk(&tips)?;
        let mut hits = Vec::new();
        let mut state = gix::diff::tree::State::default();
        for id in &order {
            if self.stop.load(Ordering::Relaxed) {
                return Err(stopped());
            }
            self.added_in(*id, &graph, &mut state, &mut hits)?;
        }
        self.show(hits, &graph, &tips)
    }

    /// Every ref's commit (annotated tags peeled), and HEAD when detached.
    /// A symbolic ref names another ref, so only that one is listed.
    fn tips(&self) -> Result<Vec<(String, ObjectId)>, ActionError> {
        let failed = |e: &dyn std::fmt::Display| {
            ActionError::permanent(format!("failed to read the repository's refs: {e}"))
        };
        let mut tips = Vec::new();
        let platform = self.repo.references().map_err(|e| failed(&e))?;
        for reference in platform.all().map_err(|e| failed(&e))? {
            let mut reference = reference.map_err(|e| failed(&e))?;
            if matches!(reference.target(), gix::refs::TargetRef::Symbolic(_)) {
                continue;
            }
            let name = reference.name().as_bstr().to_str_lossy().into_owned();
            if let Some(commit) = peel_to_commit(reference.peel_to_id().ok()) {
                tips.push((name, commit));
            }
        }
        if let Ok(head) = self.repo.head()
            && head.is_detached()
            && let Some(commit) = peel_to_commit(head.id())
        {
            tips.push(("HEAD".to_string(), commit));
        }
        Ok(tips)
    }

    /// Every commit the tips reach, and an order to visit them in.
    fn walk(
        &mut self,
        tips: &[(String, ObjectId)],
    ) -> Result<(HashMap<ObjectId, Node>, Vec<ObjectId>), ActionError> {
        // A shallow clone's boundary commits name parents it does not have.
        let shallow: HashSet<ObjectId> = self
            .repo
            .shallow_commits()
            .map_err(|e| {
                ActionError::permanent(format!("failed to read the shallow boundary: {e}"))
            })?
            .map(|commits| commits.iter().copied().collect())
            .unwrap_or_default();
        let mut graph: HashMap<ObjectId, Node> = HashMap::new();
        let mut order = Vec::new();
        let mut stack: Vec<ObjectId> = tips.iter().map(|(_, id)| *id).collect();
        while let Some(id) = stack.pop() {
            if graph.contains_key(&id) {
                continue;
            }
            if order.len() % 1024 == 0 && self.stop.load(Ordering::Relaxed) {
                return Err(stopped());
            }
            let commit = self
                .repo
                .objects
                .find_commit(&id, &mut self.buf)
                .map_err(|e| ActionError::permanent(format!("failed to read commit {id}: {e}")))?;
            let node = Node {
                tree: commit.tree(),
                parents: if shallow.contains(&id) {
                    Vec::new()
                } else {
                    commit.parents().collect()
                },
            };
            stack.extend(&node.parents);
            graph.insert(id, node);
            order.push(id);
        }
        Ok((graph, order))
    }

    /// The lines commit `id` added that hold a form of a token: in a file
    /// it added or changed (changed from every parent, for a merge), a
    /// line no parent's version of that file had.
    fn added_in(
        &mut self,
        id: ObjectId,
        graph: &HashMap<ObjectId, Node>,
        state: &mut gix::diff::tree::State,
        hits: &mut Vec<Hit>,
    ) -> Result<(), ActionError> {
        let node = &graph[&id];
        let parents: Vec<ObjectId> = node
            .parents
            .iter()
            .filter_map(|p| graph.get(p).map(|n| n.tree))
            .collect();
        // path → (its new blob, its blobs in the parents that had it)
        let mut changed: HashMap<gix::bstr::BString, (ObjectId, Vec<ObjectId>)> = HashMap::new();
        if parents.is_empty() {
            for (path, new, _) in self.diff(None, node.tree, state)? {
                changed.insert(path, (new, Vec::new()));
            }
        } else {
            for (i, parent) in parents.iter().enumerate() {
                let mut this: HashMap<_, _> = HashMap::new();
                for (path, new, old) in self.diff(Some(*parent), node.tree, state)? {
                    this.insert(path, (new, old));
                }
                if i == 0 {
                    changed = this
                        .into_iter()
                        .map(|(path, (new, old))| (path, (new, old.into_iter().collect())))
                        .collect();
                } else {
                    changed.retain(|path, (new, olds)| match this.get(path) {
                        Some((n, old)) if n == new => {
                            olds.extend(old);
                            true
                        }
                        _ => false,
                    });
                }
            }
        }
        for (path, (new, olds)) in changed {
            let Some(found) = self.search(new)? else {
                continue;
            };
            let mut before = HashSet::new();
            for old in olds {
                if let Some(old_found) = self.search(old)? {
                    before.extend(
                        old_found
                            .iter()
                            .map(|f| (self.needles.forms[f.form].0, f.text)),
                    );
                }
            }
            let path = path.to_str_lossy().into_owned();
            for f in found.iter() {
                if !before.contains(&(self.needles.forms[f.form].0, f.text)) {
                    hits.push(Hit {
                        commit: id,
                        path: path.clone(),
                        found: *f,
                    });
                }
            }
        }
        Ok(())
    }

    /// The files (and symlinks) that differ from `old` in `new`: each path,
    /// its blob in `new`, and its blob in `old` if it had one.
    fn diff(
        &mut self,
        old: Option<ObjectId>,
        new: ObjectId,
        state: &mut gix::diff::tree::State,
    ) -> Result<Vec<(gix::bstr::BString, ObjectId, Option<ObjectId>)>, ActionError> {
        let failed = |e: &dyn std::fmt::Display| {
            ActionError::permanent(format!("failed to compare the trees of {new}: {e}"))
        };
        let kind = new.kind();
        let mut old_buf = Vec::new();
        let lhs = match old {
            Some(old) => self
                .repo
                .objects
                .find_tree_iter(&old, &mut old_buf)
                .map_err(|e| failed(&e))?,
            None => gix::objs::TreeRefIter::from_bytes(&[], kind),
        };
        let rhs = self
            .repo
            .objects
            .find_tree_iter(&new, &mut self.buf)
            .map_err(|e| failed(&e))?;
        let mut recorder = gix::diff::tree::Recorder::default();
        gix::diff::tree(lhs, rhs, &mut *state, &self.repo.objects, &mut recorder)
            .map_err(|e| failed(&e))?;
        use gix::diff::tree::recorder::Change;
        Ok(recorder
            .records
            .into_iter()
            .filter_map(|change| match change {
                Change::Addition {
                    entry_mode,
                    oid,
                    path,
                    ..
                } if entry_mode.is_blob_or_symlink() => Some((path, oid, None)),
                Change::Modification {
                    previous_entry_mode,
                    previous_oid,
                    entry_mode,
                    oid,
                    path,
                } if entry_mode.is_blob_or_symlink() => {
                    let old = previous_entry_mode
                        .is_blob_or_symlink()
                        .then_some(previous_oid);
                    Some((path, oid, old))
                }
                _ => None,
            })
            .collect())
    }

    /// Every form of every token in blob `id`, searched once per blob.
    fn search(&mut self, id: ObjectId) -> Result<Option<Arc<[Found]>>, ActionError> {
        if let Some(found) = self.blobs.get(&id) {
            return Ok(found.clone());
        }
        let blob = self
            .repo
            .objects
            .find_blob(&id, &mut self.buf)
            .map_err(|e| ActionError::permanent(format!("failed to read blob {id}: {e}")))?;
        let found = find_in(self.needles, blob.data);
        let found: Option<Arc<[Found]>> = (!found.is_empty()).then(|| found.into());
        self.blobs.insert(id, found.clone());
        Ok(found)
    }

    /// The hits as outputs, earliest first: each commit's author and
    /// committer date, and the refs whose history holds it.
    fn show(
        &mut self,
        hits: Vec<Hit>,
        graph: &HashMap<ObjectId, Node>,
        tips: &[(String, ObjectId)],
    ) -> Result<ScanHistoryOutputs, ActionError> {
        let mut children: HashMap<ObjectId, Vec<ObjectId>> = HashMap::new();
        if !hits.is_empty() {
            for (id, node) in graph {
                for p in &node.parents {
                    children.entry(*p).or_default().push(*id);
                }
            }
        }
        let mut commits: HashMap<ObjectId, (String, i64, Vec<String>)> = HashMap::new();
        let mut shown = Vec::with_capacity(hits.len());
        for hit in hits {
            if let Entry::Vacant(entry) = commits.entry(hit.commit) {
                let (author, seconds) = self.signature(hit.commit)?;
                let refs = refs_holding(hit.commit, &children, tips);
                entry.insert((author, seconds, refs));
            }
            let (author, seconds, refs) = &commits[&hit.commit];
            let (token, encoding) = self.needles.forms[hit.found.form];
            shown.push((
                *seconds,
                json!({
                    "commit": hit.commit.to_string(),
                    "author": author,
                    "date": rfc3339(*seconds),
                    "path": hit.path,
                    "line": hit.found.line,
                    "refs": refs,
                    "secret": self.needles.markers[token],
                    "encoding": encoding,
                }),
            ));
        }
        shown.sort_by(|(a, x), (b, y)| {
            let key = |v: &Value| {
                (
                    v["commit"].as_str().unwrap_or_default().to_string(),
                    v["path"].as_str().unwrap_or_default().to_string(),
                    v["line"].as_u64(),
                    v["encoding"].as_str().unwrap_or_default().to_string(),
                )
            };
            a.cmp(b).then_with(|| key(x).cmp(&key(y)))
        });
        let leaked_at = shown
            .first()
            .map_or(Value::Null, |(_, v)| v["date"].clone());
        Ok(ScanHistoryOutputs {
            count: shown.len() as i64,
            hits: shown.into_iter().take(MAX_HITS).map(|(_, v)| v).collect(),
            leaked_at,
        })
    }

    /// A commit's author (`name <email>`) and committer date.
    fn signature(&mut self, id: ObjectId) -> Result<(String, i64), ActionError> {
        let failed = |e: &dyn std::fmt::Display| {
            ActionError::permanent(format!("failed to read commit {id}: {e}"))
        };
        let commit = self
            .repo
            .objects
            .find_commit(&id, &mut self.buf)
            .map_err(|e| failed(&e))?;
        let author = commit.author().map_err(|e| failed(&e))?.trim();
        let committer = commit.committer().map_err(|e| failed(&e))?;
        Ok((
            format!("{} <{}>", author.name, author.email),
            committer.seconds(),
        ))
    }
}

/// The commit a ref's object peels to, if it is one (a tag may name a tree
/// or a blob).
fn peel_to_commit(id: Option<gix::Id<'_>>) -> Option<ObjectId> {
    let object = id?.object().ok()?;
    object.peel_to_commit().ok().map(|c| c.id)
}

/// The refs whose history holds `commit`: those whose tip is the commit or
/// one of its descendants.
fn refs_holding(
    commit: ObjectId,
    children: &HashMap<ObjectId, Vec<ObjectId>>,
    tips: &[(String, ObjectId)],
) -> Vec<String> {
    let mut reached = HashSet::from([commit]);
    let mut queue = VecDeque::from([commit]);
    while let Some(id) = queue.pop_front() {
        for child in children.get(&id).into_iter().flatten() {
            if reached.insert(*child) {
                queue.push_back(*child);
            }
        }
    }
    let mut refs: Vec<String> = tips
        .iter()
        .filter(|(_, tip)| reached.contains(tip))
        .map(|(name, _)| name.clone())
        .collect();
    refs.sort();
    refs.dedup();
    refs
}

/// Every form of every token in `data`, once per line and form.
fn find_in(needles: &Needles, data: &[u8]) -> Vec<Found> {
    let mut found: Vec<Found> = Vec::new();
    let (mut line, mut counted) = (1u32, 0usize);
    for m in needles.finder.find_overlapping_iter(data) {
        let start = m.start();
        if start >= counted {
            line += data[counted..start].iter().filter(|&&b| b == b'\n').count() as u32;
            counted = start;
        }
        let line_start = data[..start]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let line_end = data[m.end()..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(data.len(), |i| m.end() + i);
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        data[line_start..line_end].hash(&mut hasher);
        let f = Found {
            line,
            form: m.pattern().as_usize(),
            text: hasher.finish(),
        };
        if !found.contains(&f) {
            found.push(f);
        }
    }
    found
}

fn rfc3339(seconds: i64) -> String {
    DateTime::<Utc>::from_timestamp(seconds, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leaked_env_is_searched_value_by_value() {
        let env = "# prod\nexport AWS_KEY=AKIAIOSFODNN7EXAMPLE\nPORT=80\n\nDB_PASSWORD='hunter2hunter2'\nghp_plainlinetoken000\n";
        assert_eq!(
            tokens(env),
            [
                "AKIAIOSFODNN7EXAMPLE",
                "hunter2hunter2",
                "ghp_plainlinetoken000"
            ]
        );
        assert_eq!(tokens("short"), Vec::<String>::new());
        assert_eq!(tokens("KEY=not-split-alone"), ["KEY=not-split-alone"]);
    }

    #[test]
    fn repositories_are_local_paths_or_https_urls() {
        let local = |p: &str| Ok(Source::Local(PathBuf::from(p)));
        assert_eq!(
            Source::parse("/srv/repo").map_err(|e| e.message),
            local("/srv/repo")
        );
        assert_eq!(
            Source::parse("file:///srv/repo").map_err(|e| e.message),
            local("/srv/repo")
        );
        assert_eq!(
            Source::parse("https://github.com/acme/app.git").map_err(|e| e.message),
            Ok(Source::Remote("https://github.com/acme/app.git".into()))
        );
        let ssh = Source::parse("git@github.com:acme/app.git")
            .unwrap_err()
            .message;
        assert!(
            ssh.contains("SSH") && ssh.contains("git clone --mirror"),
            "{ssh}"
        );
        assert!(Source::parse("ssh://git@github.com/acme/app").is_err());
        let creds = Source::parse("https://user:ghp_inline0000@github.com/acme/app")
            .unwrap_err()
            .message;
        assert!(!creds.contains("ghp_inline0000"), "{creds}");
        assert!(Source::parse("  ").is_err());
        assert!(!is_plain_http("https://github.com/acme/app"));
        assert!(is_plain_http("HTTP://127.0.0.1:8080/app.git"));
    }

    #[test]
    fn each_form_is_found_on_its_line_once() {
        let needles = Needles::new("s3cr3t-value-0123", true).unwrap();
        let b64 = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            "user:s3cr3t-value-0123",
        );
        let text =
            format!("a\nkey=s3cr3t-value-0123 s3cr3t-value-0123\nauth {b64}\nx=s3cr3t%2Dvalue\n");
        let found = find_in(&needles, text.as_bytes());
        let shown: Vec<(u32, &str)> = found
            .iter()
            .map(|f| (f.line, needles.forms[f.form].1))
            .collect();
        assert_eq!(shown, [(2, "raw"), (3, "base64")]);
    }
}
