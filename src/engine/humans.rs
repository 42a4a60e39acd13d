//! Where approvals and manual tasks are answered: a person at the terminal,
//! the rehearsal scenario, people elsewhere (Slack buttons), or nobody (the
//! task stays open, approval is refused until someone can give it). In a
//! drill, the scenario answers the steps it scripts and people the rest.

use std::future::Future;
use std::io::{BufRead, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::journal::Actor;
use crate::scenario::Scenario;

#[derive(Debug, Clone)]
pub enum Humans {
    /// Ask at the terminal. `paused` tells the live display to stand still
    /// while a question is on screen.
    Terminal {
        lock: Arc<tokio::sync::Mutex<()>>,
        paused: Arc<AtomicBool>,
    },
    /// The scenario says who answers what, and after how long.
    Simulated(Arc<Scenario>),
    /// People answer somewhere else, such as buttons in Slack.
    Remote(Arc<dyn Remote>),
    /// Nobody to ask (CI, a pipe): manual tasks stay open.
    Nobody,
    /// A drill: the scenario answers the steps it names (`manual:`), the
    /// people the others.
    Drill {
        scenario: Arc<Scenario>,
        people: Box<Humans>,
    },
}

pub type Asked<'a> = Pin<Box<dyn Future<Output = Answer> + Send + 'a>>;

/// Asks people who are not at this terminal. The engine knows no more of
/// them than this, so it does not depend on where they are.
pub trait Remote: Send + Sync + std::fmt::Debug {
    fn approve<'a>(&'a self, step: &'a str, what: &'a str) -> Asked<'a>;
    fn task<'a>(&'a self, step: &'a str, prompt: &'a str) -> Asked<'a>;
    /// Whether [`Remote::task`] waits for an answer to the task journaled
    /// open (a drill's), rather than leaving it open at once.
    fn answers_open_tasks(&self) -> bool {
        false
    }
}

/// What a person said.
#[derive(Debug, Clone)]
pub enum Answer {
    Given {
        text: String,
        by: String,
    },
    /// The person declined (empty answer to a task, `n` to an approval).
    Declined {
        by: String,
    },
    /// Nobody could be asked.
    NoOne,
}

impl Humans {
    pub fn terminal(paused: Arc<AtomicBool>) -> Self {
        Humans::Terminal {
            lock: Arc::new(tokio::sync::Mutex::new(())),
            paused,
        }
    }

    /// Asks for approval of `step`.
    pub async fn approve(&self, step: &str, what: &str) -> Answer {
        match self {
            Humans::Terminal { .. } => {
                let q = format!("approve step `{step}` ({what})? [y/N] ");
                let yes = |a: &str| matches!(a, "y" | "Y" | "yes").then(|| "approved".into());
                self.ask(q, yes).await
            }
            Humans::Simulated(scenario) => scripted_approval(scenario, step).await,
            Humans::Remote(remote) => remote.approve(step, what).await,
            Humans::Nobody => Answer::NoOne,
            Humans::Drill { scenario, .. } if scenario.manual.contains_key(step) => {
                scripted_approval(scenario, step).await
            }
            Humans::Drill { people, .. } => Box::pin(people.approve(step, what)).await,
        }
    }

    /// Asks a manual task's question.
    pub async fn task(&self, step: &str, prompt: &str) -> Answer {
        match self {
            Humans::Terminal { .. } => {
                let q = format!("[{step}] {prompt}\n  answer (empty leaves it open): ");
                self.ask(q, |a| (!a.is_empty()).then(|| a.to_string()))
                    .await
            }
            Humans::Simulated(scenario) => scripted_task(scenario, step).await,
            Humans::Remote(remote) => remote.task(step, prompt).await,
            Humans::Nobody => Answer::NoOne,
            Humans::Drill { scenario, .. } if scenario.manual.contains_key(step) => {
                scripted_task(scenario, step).await
            }
            Humans::Drill { people, .. } => Box::pin(people.task(step, prompt)).await,
        }
    }

    /// Whether a manual task is shown open while it waits for its answer:
    /// people elsewhere answer it with `/quench done`, which takes only an
    /// open task.
    pub fn answers_open_tasks(&self) -> bool {
        match self {
            Humans::Remote(remote) => remote.answers_open_tasks(),
            Humans::Drill { people, .. } => people.answers_open_tasks(),
            _ => false,
        }
    }

    /// Asks at the terminal, one question at a time, while the display
    /// holds still: `given` reads an answer (trimmed) as given, or declined.
    async fn ask(&self, question: String, given: impl FnOnce(&str) -> Option<String>) -> Answer {
        let Humans::Terminal { lock, paused } = self else {
            return Answer::NoOne;
        };
        let _turn = lock.lock().await;
        paused.store(true, Ordering::SeqCst);
        let answer = tokio::task::spawn_blocking(move || {
            let mut err = std::io::stderr();
            let _ = write!(err, "\n{question}");
            let _ = err.flush();
            let mut line = String::new();
            match std::io::stdin().lock().read_line(&mut line) {
                Ok(0) | Err(_) => None,
                Ok(_) => Some(line),
            }
        })
        .await
        .ok()
        .flatten();
        paused.store(false, Ordering::SeqCst);
        let Some(answer) = answer else {
            return Answer::NoOne;
        };
        let by = Actor::current().to_string();
        match given(answer.trim()) {
            Some(text) => Answer::Given { text, by },
            None => Answer::Declined { by },
        }
    }
}

/// An approval as the scenario scripts it: after its time (the default
/// approval's when the step is not named), by whom it says.
async fn scripted_approval(scenario: &Scenario, step: &str) -> Answer {
    let m = scenario.manual.get(step);
    let after = m.map(|m| m.after).unwrap_or(scenario.default_approval);
    scenario.wait(after).await;
    let by = m
        .map(|m| m.by.clone())
        .unwrap_or_else(|| "rehearsal".into());
    if m.is_none_or(|m| m.approve) {
        Answer::Given {
            text: "approved".into(),
            by,
        }
    } else {
        Answer::Declined { by }
    }
}

/// A manual task's answer as the scenario scripts it; nobody answers a
/// task it does not name.
async fn scripted_task(scenario: &Scenario, step: &str) -> Answer {
    let Some(m) = scenario.manual.get(step) else {
        return Answer::NoOne;
    };
    scenario.wait(m.after).await;
    match &m.answer {
        Some(text) => Answer::Given {
            text: text.clone(),
            by: m.by.clone(),
        },
        None => Answer::Declined { by: m.by.clone() },
    }
}
