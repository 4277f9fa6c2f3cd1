//! `load-bench post`: `wrk` POSTs orders (`scripts/bench/post_order.lua`: every request a new
//! valid limit order) at several connection counts against one or more targets — e.g. the code
//! before and after a change, each its own runner — several runs each. The targets take turns
//! within every repetition, in an order that alternates from one repetition to the next, so that
//! a drift of the machine (another process, a checkpoint, a growing table) falls on all of them
//! alike. Per target and connection count the median run by requests/s is reported, with its
//! p50/p90/p99/max, its non-2xx count and wrk's socket errors.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use bench::process::stdout_of;
use bench::results::{median_by, write_json};
use serde_json::{Value, json};

use crate::machine;

/// A system to load: `label=url`, or only the api's base URL (labelled `api`).
#[derive(Debug, Clone)]
pub struct Target {
    pub label: String,
    pub url: String,
}

impl FromStr for Target {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once('=') {
            Some((label, url)) if !label.is_empty() && !url.is_empty() => Ok(Self {
                label: label.into(),
                url: url.trim_end_matches('/').into(),
            }),
            Some(_) => Err(format!("{text:?}: expected label=url")),
            None => Ok(Self {
                label: "api".into(),
                url: text.trim_end_matches('/').into(),
            }),
        }
    }
}

/// Converts wrk's "1.23ms" / "456.00us" / "1.20s" into milliseconds.
fn wrk_ms(text: &str) -> f64 {
    let text = text.trim();
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60_000.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (text, 1.0)
    };
    number.parse::<f64>().unwrap_or(f64::NAN) * factor
}

/// The sum of the counts in wrk's "Socket errors: connect 0, read 0, write 0, timeout 12".
fn socket_error_count(words: &[&str]) -> u64 {
    words
        .iter()
        .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
        .sum()
}

/// One wrk run; its figures as JSON (`requests_per_s`, `requests`, `p50_ms` …, `non_2xx`,
/// `socket_errors`, and `accepted`: requests answered 2xx).
pub fn run_wrk(url: &str, connections: u32, seconds: u32, script: &Path) -> anyhow::Result<Value> {
    let threads = connections.clamp(1, 2);
    let output = Command::new("wrk")
        .args([
            "-t",
            &threads.to_string(),
            "-c",
            &connections.to_string(),
            "-d",
            &format!("{seconds}s"),
            "--latency",
            "-s",
            script.to_str().unwrap(),
            url,
        ])
        .output()
        .context("running wrk (apt-get install wrk)")?;
    let text = stdout_of("wrk", &output)?;
    let mut result = json!({"connections": connections, "non_2xx": 0, "socket_errors": 0});
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", rate] => result["requests_per_s"] = json!(rate.parse::<f64>()?),
            ["Latency", _avg, _stdev, max, ..] => result["max_ms"] = json!(wrk_ms(max)),
            ["50%", v] => result["p50_ms"] = json!(wrk_ms(v)),
            ["90%", v] => result["p90_ms"] = json!(wrk_ms(v)),
            ["99%", v] => result["p99_ms"] = json!(wrk_ms(v)),
            ["Non-2xx", "or", "3xx", "responses:", n] => {
                result["non_2xx"] = json!(n.parse::<u64>()?)
            }
            [requests, "requests", "in", ..] => {
                result["requests"] = json!(requests.parse::<u64>()?)
            }
            ["Socket", "errors:", rest @ ..] => {
                result["socket_errors"] = json!(socket_error_count(rest));
                result["socket_errors_detail"] = json!(rest.join(" "));
            }
            _ => {}
        }
    }
    let requests = result["requests"].as_u64().unwrap_or(0);
    let failed = result["non_2xx"].as_u64().unwrap_or(0);
    let accepted = requests.saturating_sub(failed);
    result["accepted"] = json!(accepted);
    // requests/s counts the failed requests too (fast 500s, say); this only the answered ones.
    let rate = result["requests_per_s"].as_f64().unwrap_or(0.0);
    result["accepted_per_s"] = json!(if requests > 0 {
        rate * accepted as f64 / requests as f64
    } else {
        0.0
    });
    Ok(result)
}

/// The targets in the order of repetition `run`: as given, then reversed, and so on.
fn turn_order(targets: &[Target], run: usize) -> Vec<&Target> {
    let mut order: Vec<&Target> = targets.iter().collect();
    if run % 2 == 1 {
        order.reverse();
    }
    order
}

fn print_row(label: &str, m: &Value) {
    let f = |key: &str| m[key].as_f64().unwrap_or(f64::NAN);
    println!(
        "{:<22} {:>6} {:>11.0} {:>9.0} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>8} {:>8}",
        label,
        m["connections"],
        f("requests_per_s"),
        f("accepted_per_s"),
        f("p50_ms"),
        f("p90_ms"),
        f("p99_ms"),
        f("max_ms"),
        m["non_2xx"],
        m["socket_errors"]
    );
}

fn print_header() {
    println!(
        "{:<22} {:>6} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8}",
        "target",
        "conns",
        "requests/s",
        "2xx/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "non-2xx",
        "sock err"
    );
}

/// Runs the benchmark and writes `<name>.json` into `out`.
pub fn post(
    targets: &[Target],
    connections: &[u32],
    seconds: u32,
    runs: usize,
    name: &str,
    out: &Path,
) -> anyhow::Result<()> {
    anyhow::ensure!(!targets.is_empty(), "no target: give --url or --target");
    let script = PathBuf::from("scripts/bench/post_order.lua");
    println!(
        "POST /orders  (wrk, {seconds} s per run, {runs} runs per target and connection count, \
         targets alternating; the median run by requests/s)"
    );
    print_header();
    // rows[target][connection count] = every run of it.
    let mut all: Vec<Vec<Vec<Value>>> = vec![Vec::new(); targets.len()];
    for &c in connections {
        for runs_of in all.iter_mut() {
            runs_of.push(Vec::new());
        }
        for run in 0..runs {
            for target in turn_order(targets, run) {
                let result = run_wrk(&format!("{}/orders", target.url), c, seconds, &script)
                    .with_context(|| format!("{} at {c} connections", target.label))?;
                print_row(&format!("{} (run {})", target.label, run + 1), &result);
                let t = targets
                    .iter()
                    .position(|t| t.label == target.label)
                    .unwrap();
                all[t].last_mut().unwrap().push(result);
                // Whatever the api does after the load (its background marks) ends before the
                // next run begins.
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
    println!("-- medians");
    print_header();
    let mut target_rows = Vec::new();
    let mut accepted = 0;
    for (target, runs_by_connections) in targets.iter().zip(&all) {
        let mut rows = Vec::new();
        for runs in runs_by_connections {
            accepted += runs
                .iter()
                .map(|r| r["accepted"].as_u64().unwrap_or(0))
                .sum::<u64>();
            let m = median_by(runs.clone(), |r| {
                r["requests_per_s"].as_f64().unwrap_or(0.0)
            });
            print_row(&target.label, &m);
            rows.push(json!({"median": m, "runs": runs}));
        }
        target_rows.push(json!({"label": target.label, "url": target.url, "rows": rows}));
    }
    write_json(
        &out.join(format!("{name}.json")),
        &json!({"machine": machine(), "seconds": seconds, "runs": runs,
               "accepted": accepted, "targets": target_rows}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_units_are_milliseconds() {
        assert_eq!(wrk_ms("456.00us"), 0.456);
        assert_eq!(wrk_ms("1.50ms"), 1.5);
        assert_eq!(wrk_ms("1.20s"), 1200.0);
    }

    #[test]
    fn socket_errors_are_summed() {
        let words = [
            "connect", "0,", "read", "3,", "write", "0,", "timeout", "12",
        ];
        assert_eq!(socket_error_count(&words), 15);
    }

    #[test]
    fn targets_alternate_their_order() {
        let targets: Vec<Target> = ["old=http://a", "new=http://b/"]
            .iter()
            .map(|t| t.parse().unwrap())
            .collect();
        assert_eq!(targets[1].url, "http://b");
        let labels = |run| {
            turn_order(&targets, run)
                .iter()
                .map(|t| t.label.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(labels(0), ["old", "new"]);
        assert_eq!(labels(1), ["new", "old"]);
        assert_eq!("http://c".parse::<Target>().unwrap().label, "api");
    }
}
