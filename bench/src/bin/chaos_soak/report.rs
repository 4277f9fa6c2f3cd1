//! The soak's result: one line per figure, the number of violations, printed as a table and
//! written to `report.json` in the work directory.

use std::collections::BTreeMap;
use std::path::Path;

/// Figures by name (a sorted map, so the table and the JSON come out in the same order each
/// run) and the violations counted so far.
#[derive(Default)]
pub struct Report {
    figures: BTreeMap<&'static str, String>,
    violations: usize,
}

impl Report {
    pub fn figure(&mut self, name: &'static str, value: impl ToString) {
        self.figures.insert(name, value.to_string());
    }

    pub fn violations_found(&mut self, count: usize) {
        self.violations += count;
    }

    pub fn violations(&self) -> usize {
        self.violations
    }

    pub fn print(&self) {
        println!("\n{:<45} value", "check");
        for (name, value) in &self.figures {
            println!("{name:<45} {value}");
        }
        println!("{:<45} {}", "violations", self.violations);
    }

    /// Writes the figures (not the violation count, which the exit status carries) to
    /// `report.json`. Best effort: the printed table is the result.
    pub fn write(&self, work_dir: &Path) {
        let _ = bench::results::write_json(&work_dir.join("report.json"), &self.figures);
    }
}
