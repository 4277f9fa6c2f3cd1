//! Summarising repeated runs and writing the figures as JSON, where `docs/BENCHMARKS.md` and the
//! plots take them from.

use std::path::Path;

use serde::Serialize;

/// The median of `runs` ordered by `key`: the run reported when a measurement is repeated, being
/// less moved by one disturbed run than the mean. The upper one of the two middle runs when
/// their number is even.
pub fn median_by<T: Clone>(mut runs: Vec<T>, key: impl Fn(&T) -> f64) -> T {
    runs.sort_by(|a, b| key(a).total_cmp(&key(b)));
    runs[runs.len() / 2].clone()
}

/// Writes `value` as pretty JSON to `path`, creating its directory first.
pub fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(value)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_is_the_middle_run_by_key() {
        assert_eq!(median_by(vec![3.0, 1.0, 2.0], |v| *v), 2.0);
        assert_eq!(median_by(vec![4.0, 1.0, 3.0, 2.0], |v| *v), 3.0);
        let runs = vec![("slow", 9.0), ("fast", 1.0), ("mid", 5.0)];
        assert_eq!(median_by(runs, |r| r.1).0, "mid");
    }
}
