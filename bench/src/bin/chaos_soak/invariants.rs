//! The checks: what the design promises after any mix of these faults, each compared against
//! the evidence, with its figures and violations added to the report.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use crate::evidence::Evidence;
use crate::load::Posted;
use crate::plan::Plan;
use crate::report::Report;
use crate::timeline::Timeline;

const FINAL: [&str; 3] = ["placed", "rejected", "failed"];

/// Runs every check against the evidence; the report holds their figures and violations.
pub fn check(plan: &Plan, posted: &[Posted], evidence: &Evidence, timeline: &Timeline) -> Report {
    let mut report = Report::default();
    let accepted: Vec<&String> = posted.iter().filter_map(|p| p.id.as_ref()).collect();
    every_valid_order_accepted(&mut report, plan, posted, accepted.len());
    accepted_orders_stored_and_final(&mut report, &accepted, &evidence.stored);
    placed_once_and_known_to_exchange(&mut report, evidence);
    failed_orders_alerted(&mut report, evidence);
    no_server_errors_outside_postgres_restart(&mut report, posted, timeline.postgres_restart());
    report
}

/// Every valid order got its 201 in the end (its client retries with the same key for up to
/// 3 minutes): no outage turns a valid order away for good.
fn every_valid_order_accepted(
    report: &mut Report,
    plan: &Plan,
    posted: &[Posted],
    accepted: usize,
) {
    let not_accepted = posted.iter().filter(|p| p.id.is_none()).count();
    report.figure("orders posted", plan.orders);
    report.figure("orders accepted (201)", accepted);
    if not_accepted > 0 {
        report.violations_found(not_accepted);
        println!("VIOLATION: {not_accepted} valid order(s) never got a 201");
    }
}

/// An accepted order is never lost, and every one reaches a final status.
fn accepted_orders_stored_and_final(
    report: &mut Report,
    accepted: &[&String],
    stored: &HashMap<String, String>,
) {
    let lost = accepted
        .iter()
        .filter(|id| !stored.contains_key(**id))
        .count();
    report.figure("accepted but missing (lost)", lost);
    report.violations_found(lost);
    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    for id in accepted {
        if let Some(status) = stored.get(*id) {
            *by_status.entry(status).or_default() += 1;
        }
    }
    for (status, count) in &by_status {
        report.figure(
            match *status {
                "placed" => "placed",
                "rejected" => "rejected",
                "failed" => "failed",
                "pending" => "pending (NOT FINAL)",
                _ => "placing (NOT FINAL)",
            },
            count,
        );
    }
    let not_final = by_status
        .iter()
        .filter(|(status, _)| !FINAL.contains(status))
        .map(|(_, count)| count)
        .sum::<usize>();
    report.violations_found(not_final);
}

/// Placement is exactly once: no order placed twice at the exchange, every `placed` order known
/// to it, and no `failed` or `rejected` order placed there after all.
fn placed_once_and_known_to_exchange(report: &mut Report, evidence: &Evidence) {
    let stats = &evidence.exchange;
    let max_per_order = stats["max_placements_per_order"].as_u64().unwrap_or(0);
    report.figure("exchange: max placements of one order", max_per_order);
    report.figure(
        "exchange: duplicate calls absorbed",
        &stats["duplicates_absorbed"],
    );
    if max_per_order > 1 {
        report.violations_found(1);
        println!("VIOLATION: an order was placed more than once");
    }
    let placed_at_exchange: HashSet<&String> = stats["placements"]
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    let mut placed_unknown_to_exchange = 0;
    let mut final_but_at_exchange = 0;
    for (id, status) in &evidence.stored {
        match status.as_str() {
            "placed" if !placed_at_exchange.contains(id) => placed_unknown_to_exchange += 1,
            "failed" | "rejected" if placed_at_exchange.contains(id) => final_but_at_exchange += 1,
            _ => {}
        }
    }
    report.figure(
        "placed but unknown to the exchange",
        placed_unknown_to_exchange,
    );
    report.figure(
        "failed/rejected but placed at the exchange",
        final_but_at_exchange,
    );
    report.violations_found(placed_unknown_to_exchange + final_but_at_exchange);
}

/// Every `failed` order raised at least one admin alert. The promise is at least one, so
/// duplicates are counted and reported but are no violation.
fn failed_orders_alerted(report: &mut Report, evidence: &Evidence) {
    let alerts = &evidence.alerts;
    let unalerted = evidence
        .stored
        .iter()
        .filter(|(id, status)| *status == "failed" && !alerts.contains_key(*id))
        .count();
    let duplicate_alerts: usize = alerts.values().map(|n| n.saturating_sub(1)).sum();
    report.figure("alerts observed", alerts.values().sum::<usize>());
    report.figure("failed orders without an alert", unalerted);
    report.figure("duplicate alerts", duplicate_alerts);
    report.violations_found(unalerted);
}

/// A valid request gets no 5xx, except around the Postgres restart, when the database is
/// unreachable: from 1 s before the restart began to 5 s after it ended.
fn no_server_errors_outside_postgres_restart(
    report: &mut Report,
    posted: &[Posted],
    window: Option<(Duration, Duration)>,
) {
    let (mut in_window, mut outside) = (0, 0);
    for at in posted.iter().flat_map(|p| &p.server_errors) {
        let inside = window
            .map(|(began, ended)| {
                *at + Duration::from_secs(1) >= began && *at <= ended + Duration::from_secs(5)
            })
            .unwrap_or(false);
        if inside { in_window += 1 } else { outside += 1 }
    }
    report.figure("5xx during the Postgres restart window", in_window);
    report.figure("5xx outside it", outside);
    report.violations_found(outside);
}
