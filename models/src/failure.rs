//! A failing execution and its record file.
//!
//! A [`Failure`] says which scenario failed under which explorer, with which seed, at which
//! execution, with which panic, and how to replay it: the schedule (shuttle) or the checkpoint
//! file (loom). [`Failure::to_record`] writes it as `key: value` lines, the form
//! `EXPLORE_REPLAY` reads back; its `Display` form is what a failing test or the report prints.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::explorer::Explorer;

/// The first failing execution of an exploration, with everything needed to replay it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The scenario's name.
    pub scenario: String,
    /// The explorer that found it.
    pub explorer: Explorer,
    /// The seed of the run (`EXPLORE_SEED`).
    pub seed: u64,
    /// 1-based index of the failing execution within the run.
    pub execution: usize,
    /// The run's execution budget (re-running seed and budget finds the failure again).
    pub budget: usize,
    /// Random scheduler only: the failing execution's own seed, which replays it as the first
    /// execution of a run with that seed.
    pub execution_seed: Option<u64>,
    /// The panic message.
    pub message: String,
    /// Shuttle only: the failing execution's schedule, in shuttle's encoding.
    pub schedule: Option<String>,
    /// Loom only: the checkpoint file holding the failing iteration's path.
    pub loom_checkpoint: Option<PathBuf>,
    /// Where this record was saved.
    pub record_file: Option<PathBuf>,
    /// The command that replays this failure, if known.
    pub replay_command: Option<String>,
}

const RECORD_HEADER: &str = "# exploration failure record; replay with EXPLORE_REPLAY=<this file>";

impl Failure {
    /// The record-file form: `key: value` lines, the schedule last.
    pub fn to_record(&self) -> String {
        let mut text = format!("{RECORD_HEADER}\n");
        let mut line = |key: &str, value: &str| text.push_str(&format!("{key}: {value}\n"));
        line("scenario", &self.scenario);
        line("explorer", &self.explorer.to_string());
        line("seed", &self.seed.to_string());
        line("execution", &self.execution.to_string());
        line("budget", &self.budget.to_string());
        if let Some(seed) = self.execution_seed {
            line("execution-seed", &seed.to_string());
        }
        if let Some(path) = &self.loom_checkpoint {
            line("loom-checkpoint", &path.display().to_string());
        }
        line("message", &escape(&self.message));
        if let Some(schedule) = &self.schedule {
            line("schedule", schedule);
        }
        text
    }

    /// Parses [`Failure::to_record`]'s form.
    pub fn from_record(text: &str) -> Result<Failure, KnobError> {
        let mut fields = BTreeMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line
                .split_once(':')
                .ok_or_else(|| KnobError::Record(format!("not a `key: value` line: {line:?}")))?;
            fields.insert(key.trim().to_owned(), value.trim().to_owned());
        }
        let field = |key: &str| {
            fields
                .get(key)
                .cloned()
                .ok_or_else(|| KnobError::Record(format!("no `{key}` line")))
        };
        let number = |key: &str| -> Result<u64, KnobError> {
            let text = field(key)?;
            text.parse()
                .map_err(|_| KnobError::Record(format!("{key}: {text:?} is not a number")))
        };
        let explorer = field("explorer")?
            .parse::<Explorer>()
            .map_err(|err| KnobError::Record(err.to_string()))?;
        let execution_seed = match fields.contains_key("execution-seed") {
            true => Some(number("execution-seed")?),
            false => None,
        };
        let failure = Failure {
            scenario: field("scenario")?,
            explorer,
            seed: number("seed")?,
            execution: to_usize(number("execution")?),
            budget: to_usize(number("budget")?),
            execution_seed,
            message: unescape(&fields.get("message").cloned().unwrap_or_default()),
            schedule: fields.get("schedule").cloned(),
            loom_checkpoint: fields.get("loom-checkpoint").map(PathBuf::from),
            record_file: None,
            replay_command: None,
        };
        if failure.schedule.is_none() && failure.loom_checkpoint.is_none() {
            return Err(KnobError::Record(
                "neither a schedule nor a loom checkpoint".to_owned(),
            ));
        }
        Ok(failure)
    }

    /// The stem of the files this failure is saved under.
    pub(crate) fn file_stem(&self) -> String {
        let scenario: String = self
            .scenario
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        format!(
            "{scenario}-{}-seed{}-exec{}",
            self.explorer, self.seed, self.execution
        )
    }
}

fn to_usize(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (c, c == '\\') {
            (_, true) => match chars.next() {
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            },
            (c, false) => out.push(c),
        }
    }
    out
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "scenario {} failed under {}",
            self.scenario, self.explorer
        )?;
        writeln!(
            f,
            "  panic:      {}",
            self.message.replace('\n', "\n              ")
        )?;
        writeln!(f, "  scheduler:  {}", self.explorer)?;
        writeln!(
            f,
            "  SEED={}     (failing execution {} of a budget of {})",
            self.seed, self.execution, self.budget
        )?;
        // Seeds mean something to the report, which explores every catalogued scenario with
        // the seed as given (tests may derive seeds, e.g. one per sweep part).
        let catalogued = crate::scenarios::is_catalogued(&self.scenario);
        if catalogued && self.explorer.is_shuttle() {
            writeln!(
                f,
                "  re-run:     EXPLORE_SCHEDULER={} EXPLORE_SEED={} EXPLORE_BUDGET={} \
                 cargo run --release --bin report",
                self.explorer, self.seed, self.execution
            )?;
        }
        if let Some(seed) = self.execution_seed {
            write!(
                f,
                "  execution seed {seed}: a random run with this seed fails at its first execution"
            )?;
            if catalogued {
                write!(
                    f,
                    " (EXPLORE_SCHEDULER=random EXPLORE_SEED={seed} EXPLORE_BUDGET=1 \
                     cargo run --release --bin report)"
                )?;
            }
            writeln!(f)?;
        }
        if let Some(schedule) = &self.schedule {
            writeln!(f, "  schedule:   {schedule}")?;
        }
        if let Some(path) = &self.loom_checkpoint {
            writeln!(f, "  loom path:  {}", path.display())?;
        }
        if let Some(path) = &self.record_file {
            writeln!(f, "  record:     {}", path.display())?;
        }
        let replay = self
            .record_file
            .as_ref()
            .map(|path| path.display().to_string())
            .or_else(|| self.schedule.clone());
        match (replay, &self.replay_command) {
            (Some(replay), Some(command)) => {
                writeln!(f, "  replay:     EXPLORE_REPLAY={replay} {command}")
            }
            (Some(replay), None) => writeln!(
                f,
                "  replay:     EXPLORE_REPLAY={replay} <the command that ran this>"
            ),
            (None, _) => Ok(()),
        }
    }
}

/// Silences the panic hook, for reports where failing executions are expected and summarised
/// as values. Call it before every exploration: shuttle wraps the hook it finds on its first
/// run with one that prints the failing task, and replacing the hook again removes that wrapper.
pub fn quiet_panics() {
    if std::env::var_os("EXPLORE_SHOW_PANICS").is_some() {
        return;
    }
    std::panic::set_hook(Box::new(|_| {}));
}

/// A knob with a value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KnobError {
    /// The variable's value is not valid.
    #[error("{name}={value:?}: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A failure record could not be read or parsed.
    #[error("failure record: {0}")]
    Record(String),
}

/// What to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// A failure record written by an exploration (it names its scenario).
    Record(Box<Failure>),
    /// A bare shuttle schedule (applies to whichever scenario is explored).
    Schedule(String),
    /// A bare loom checkpoint file (applies to whichever scenario is explored).
    LoomCheckpoint(PathBuf),
}

impl Replay {
    /// Reads `EXPLORE_REPLAY`'s value: a path to a failure record or to a loom checkpoint
    /// (`.json`), or a schedule string.
    pub fn parse(value: &str) -> Result<Replay, KnobError> {
        let invalid = |reason: String| KnobError::Invalid {
            name: "EXPLORE_REPLAY",
            value: value.to_owned(),
            reason,
        };
        let path = Path::new(value.trim());
        if path.is_file() {
            if path.extension().is_some_and(|ext| ext == "json") {
                return Ok(Replay::LoomCheckpoint(path.to_owned()));
            }
            let text = std::fs::read_to_string(path).map_err(|err| invalid(err.to_string()))?;
            if text.trim_start().starts_with('#') || text.contains("scenario:") {
                let mut record = Failure::from_record(&text)?;
                record.record_file = Some(path.to_owned());
                return Ok(Replay::Record(Box::new(record)));
            }
            return Ok(Replay::Schedule(text.trim().to_owned()));
        }
        let schedule: String = value.chars().filter(|c| !c.is_whitespace()).collect();
        if !schedule.is_empty() && schedule.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(Replay::Schedule(schedule));
        }
        Err(invalid("neither a file nor a schedule string".to_owned()))
    }

    /// The scenario the replay belongs to, if it says.
    pub fn scenario(&self) -> Option<&str> {
        match self {
            Replay::Record(record) => Some(&record.scenario),
            _ => None,
        }
    }

    /// The shuttle schedule, if this is one.
    pub fn schedule(&self) -> Option<&str> {
        match self {
            Replay::Record(record) => record.schedule.as_deref(),
            Replay::Schedule(schedule) => Some(schedule),
            Replay::LoomCheckpoint(_) => None,
        }
    }

    /// The loom checkpoint, if this is one.
    pub fn loom_checkpoint(&self) -> Option<&Path> {
        match self {
            Replay::Record(record) => record.loom_checkpoint.as_deref(),
            Replay::LoomCheckpoint(path) => Some(path),
            Replay::Schedule(_) => None,
        }
    }

    /// The failure record, if this is one.
    pub fn record(&self) -> Option<&Failure> {
        match self {
            Replay::Record(record) => Some(record),
            _ => None,
        }
    }
}
