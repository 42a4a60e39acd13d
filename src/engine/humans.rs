//! Where approvals and manual tasks are answered: a person at the terminal,
//! the rehearsal scenario, people elsewhere (Slack buttons), or nobody (the
//! task stays open, approval is refused until someone can give it).

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
}

pub type Asked<'a> = Pin<Box<dyn Future<Output = Answer> + Send + 'a>>;

/// Asks people who are not at this terminal. The engine knows no more of
/// them than this, so it does not depend on where they are.
pub trait Remote: Send + Sync + std::fmt::Debug {
    fn approve<'a>(&'a self, step: &'a str, what: &'a str) -> Asked<'a>;
    fn task<'a>(&'a self, step: &'a str, prompt: &'a str) -> Asked<'a>;
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
                match self.ask(q).await {
                    Some(a) if matches!(a.trim(), "y" | "Y" | "yes") => Answer::Given {
                        text: "approved".into(),
                        by: Actor::current().to_string(),
                    },
                    Some(_) => Answer::Declined {
                        by: Actor::current().to_string(),
                    },
                    None => Answer::NoOne,
                }
            }
            Humans::Simulated(scenario) => {
                let m = scenario.manual.get(step);
                let after = m.map(|m| m.after).unwrap_or(scenario.default_approval);
                tokio::time::sleep(after).await;
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
            Humans::Remote(remote) => remote.approve(step, what).await,
            Humans::Nobody => Answer::NoOne,
        }
    }

    /// Asks a manual task's question.
    pub async fn task(&self, step: &str, prompt: &str) -> Answer {
        match self {
            Humans::Terminal { .. } => {
                let q = format!("[{step}] {prompt}\n  answer (empty leaves it open): ");
                match self.ask(q).await {
                    Some(a) if !a.trim().is_empty() => Answer::Given {
                        text: a.trim().to_string(),
                        by: Actor::current().to_string(),
                    },
                    Some(_) => Answer::Declined {
                        by: Actor::current().to_string(),
                    },
                    None => Answer::NoOne,
                }
            }
            Humans::Simulated(scenario) => match scenario.manual.get(step) {
                Some(m) => {
                    tokio::time::sleep(m.after).await;
                    match &m.answer {
                        Some(text) => Answer::Given {
                            text: text.clone(),
                            by: m.by.clone(),
                        },
                        None => Answer::Declined { by: m.by.clone() },
                    }
                }
                None => Answer::NoOne,
            },
            Humans::Remote(remote) => remote.task(step, prompt).await,
            Humans::Nobody => Answer::NoOne,
        }
    }

    /// One question at a time; the display holds still while it is asked.
    async fn ask(&self, question: String) -> Option<String> {
        let Humans::Terminal { lock, paused } = self else {
            return None;
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
        answer
    }
}
