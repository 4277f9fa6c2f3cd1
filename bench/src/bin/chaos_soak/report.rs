//! The soak's result: one line per figure in the order the checks made them (a check's lines
//! together, those that count violations marked), the number of violations, printed as a table
//! and written to `report.json` in the work directory.

use std::collections::BTreeMap;
use std::path::Path;

/// Figures in the order they were made, and the violations counted so far.
#[derive(Default)]
pub struct Report {
    lines: Vec<Line>,
    violations: usize,
    /// Orders a violation is about, for their audit trails.
    suspects: Vec<(String, &'static str)>,
}

struct Line {
    name: String,
    value: String,
    /// Violations this line counts (shown when non-zero).
    violations: usize,
    /// Whether this line is an invariant (counted as violations), not only a figure.
    invariant: bool,
}

impl Report {
    /// A figure: information, never a violation.
    pub fn figure(&mut self, name: impl Into<String>, value: impl ToString) {
        self.lines.push(Line {
            name: name.into(),
            value: value.to_string(),
            violations: 0,
            invariant: false,
        });
    }

    /// An invariant: `count` things that must not happen (0 passes).
    pub fn invariant(&mut self, name: impl Into<String>, count: usize) {
        self.violations += count;
        self.lines.push(Line {
            name: name.into(),
            value: count.to_string(),
            violations: count,
            invariant: true,
        });
    }

    /// A heading before a group of lines.
    pub fn section(&mut self, title: &str) {
        self.figure(format!("-- {title}"), "");
    }

    pub fn violations(&self) -> usize {
        self.violations
    }

    /// Names an order that `what` is about; the first few of each kind get their audit trail
    /// printed after the table.
    pub fn suspect(&mut self, id: &str, what: &'static str) {
        if self.suspects.iter().filter(|(_, w)| *w == what).count() < 3 {
            self.suspects.push((id.to_owned(), what));
        }
    }

    pub fn suspects(&self) -> &[(String, &'static str)] {
        &self.suspects
    }

    pub fn print(&self) {
        println!("\n{:<62} value", "check (* = invariant, must be 0)");
        for line in &self.lines {
            let mark = if line.invariant { "*" } else { " " };
            let flag = if line.violations > 0 {
                "   <-- VIOLATION"
            } else {
                ""
            };
            if line.value.is_empty() {
                println!("{}", line.name);
            } else {
                println!("{mark} {:<60} {}{flag}", line.name, line.value);
            }
        }
        println!("  {:<60} {}", "violations", self.violations);
    }

    /// Writes the figures (not the violation count, which the exit status carries) to
    /// `report.json`. Best effort: the printed table is the result.
    pub fn write(&self, work_dir: &Path) {
        let figures: BTreeMap<&str, &str> = self
            .lines
            .iter()
            .filter(|line| !line.value.is_empty())
            .map(|line| (line.name.as_str(), line.value.as_str()))
            .collect();
        let _ = bench::results::write_json(&work_dir.join("report.json"), &figures);
    }
}
