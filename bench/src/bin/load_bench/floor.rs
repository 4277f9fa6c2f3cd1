//! `load-bench floor`: `pgbench` running `scripts/bench/insert_order.sql` — one insert of the
//! order row and its audit event per transaction, synchronous commit — at the same client counts
//! against the same Postgres (directly, or through a pooler): the ceiling the api cannot beat.

use std::path::Path;
use std::process::Command;

use anyhow::Context;
use bench::process::stdout_of;
use bench::results::{median_by, write_json};
use serde_json::json;

use crate::machine;

/// The number after `prefix` on the line of pgbench's report that starts with it.
fn figure(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
}

/// Runs the floor and writes `<name>.json` into `out`.
pub fn floor(
    database_url: &str,
    clients: &[u32],
    seconds: u32,
    runs: usize,
    name: &str,
    out: &Path,
) -> anyhow::Result<()> {
    let script = "scripts/bench/insert_order.sql";
    println!(
        "floor: pgbench, one INSERT of an order row per transaction ({seconds} s per run, median of {runs})"
    );
    println!(
        "{:>7} {:>12} {:>14} {:>8}",
        "clients", "tps", "transactions", "failed"
    );
    let mut rows = Vec::new();
    let mut transactions = 0;
    for &c in clients {
        let mut all = Vec::new();
        for _ in 0..runs {
            let output = Command::new("pgbench")
                .args([
                    "-n",
                    "-c",
                    &c.to_string(),
                    "-j",
                    "2",
                    "-T",
                    &seconds.to_string(),
                    "-f",
                    script,
                    database_url,
                ])
                .output()
                .context("running pgbench")?;
            let text = stdout_of("pgbench", &output)?;
            let tps = figure(&text, "tps = ").context("no tps line in pgbench output")?;
            let done = figure(&text, "number of transactions actually processed: ").unwrap_or(0.0);
            let failed = figure(&text, "number of failed transactions: ").unwrap_or(0.0);
            transactions += done as u64;
            all.push(json!({"tps": tps, "transactions": done as u64, "failed": failed as u64}));
        }
        let m = median_by(all.clone(), |r| r["tps"].as_f64().unwrap_or(0.0));
        println!(
            "{c:>7} {:>12.0} {:>14} {:>8}",
            m["tps"].as_f64().unwrap_or(0.0),
            m["transactions"],
            m["failed"]
        );
        let tps: Vec<f64> = all.iter().filter_map(|r| r["tps"].as_f64()).collect();
        rows.push(json!({"clients": c, "tps": m["tps"], "median": m, "runs": tps, "all": all}));
    }
    write_json(
        &out.join(format!("{name}.json")),
        &json!({"machine": machine(), "seconds": seconds, "transactions": transactions,
               "rows": rows}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pgbench_15_figures() {
        let text = "number of transactions actually processed: 44566\n\
                    number of failed transactions: 0 (0.000%)\n\
                    tps = 4456.612345 (without initial connection time)\n";
        assert_eq!(figure(text, "tps = "), Some(4456.612345));
        assert_eq!(
            figure(text, "number of transactions actually processed: "),
            Some(44566.0)
        );
        assert_eq!(figure(text, "number of failed transactions: "), Some(0.0));
    }
}
