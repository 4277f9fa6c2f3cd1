//! The checks: what the design promises after any mix of these faults, each compared against
//! the evidence, with its figures and violations added to the report.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use crate::drain::Unfinished;
use crate::evidence::{Evidence, Stored};
use crate::faults::Poison;
use crate::load::{Cancel, Posted};
use crate::plan::Plan;
use crate::report::Report;
use crate::timeline::Timeline;

/// The statuses an order ends in.
pub const FINAL: [&str; 5] = ["placed", "rejected", "failed", "expired", "canceled"];

/// How long after its expiry a placement call may still be seen arriving at the simulator: the
/// claim (conditional on the expiry) comes just before the call, and the simulator counts a call
/// only after its 500 ms latency.
const SENT_AFTER_EXPIRY_SLACK: f64 = 3.0;

/// How long the breaker may take to open once the exchange is down (calls already in flight, and
/// the failures that open it), left out of the outage's steady call rate.
const BREAKER_OPENING: Duration = Duration::from_secs(10);

/// Everything the checks look at.
pub struct Inputs<'a> {
    pub plan: &'a Plan,
    pub posted: &'a [Posted],
    pub evidence: &'a Evidence,
    pub timeline: &'a Timeline,
    pub poison: &'a [Poison],
    pub unfinished: &'a Unfinished,
}

/// Runs every check against the evidence; the report holds their figures and violations.
pub fn check(inputs: &Inputs) -> Report {
    let mut report = Report::default();
    let Inputs {
        plan,
        posted,
        evidence,
        timeline,
        poison,
        unfinished,
    } = inputs;
    let accepted: Vec<&String> = posted.iter().filter_map(|p| p.id.as_ref()).collect();
    report.section("orders");
    every_valid_order_accepted(&mut report, plan, posted, accepted.len());
    accepted_orders_stored_and_final(&mut report, &accepted, &evidence.stored);
    report.section("the exchange");
    placed_once_and_known_to_exchange(&mut report, evidence);
    never_sent_after_expiry(&mut report, evidence);
    report.section("time in force and cancel");
    not_failed_while_live(&mut report, &evidence.stored);
    cancels_answered_truthfully(&mut report, posted, &evidence.stored);
    report.section("alerts");
    one_alert_per_incident(&mut report, evidence, unfinished);
    poison_reported_one_by_one(&mut report, poison, evidence, unfinished);
    report.section("the api");
    no_server_errors_outside_postgres_restart(&mut report, posted, timeline.postgres_restart());
    report.section("the long exchange outage");
    outage_calls_are_a_trickle(&mut report, plan, evidence);
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
    report.figure(
        "  of them with an explicit expires_at",
        posted.iter().filter(|p| p.explicit_expiry).count(),
    );
    report.figure("orders accepted (201)", accepted);
    report.invariant("valid orders never accepted", not_accepted);
}

/// An accepted order is never lost: it is stored, and reaches a final status.
fn accepted_orders_stored_and_final(
    report: &mut Report,
    accepted: &[&String],
    stored: &HashMap<String, Stored>,
) {
    let missing = accepted
        .iter()
        .filter(|id| !stored.contains_key(**id))
        .count();
    let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
    for id in accepted {
        if let Some(order) = stored.get(*id) {
            *by_status.entry(order.status.as_str()).or_default() += 1;
            if !FINAL.contains(&order.status.as_str()) {
                report.suspect(id, "not final at the end");
            }
        }
    }
    for status in FINAL {
        report.figure(
            format!("  ended {status}"),
            by_status.get(status).copied().unwrap_or(0),
        );
    }
    let not_final: usize = by_status
        .iter()
        .filter(|(status, _)| !FINAL.contains(status))
        .map(|(_, count)| count)
        .sum();
    report.invariant("lost: accepted but not stored", missing);
    report.invariant("lost: accepted but not final at the end", not_final);
    for (status, count) in by_status.iter().filter(|(s, _)| !FINAL.contains(s)) {
        println!("VIOLATION: {count} order(s) still `{status}` at the end");
    }
}

/// Placement is exactly once: no order placed twice at the exchange, every `placed` order known
/// to it, and no order that ended any other way placed there after all.
fn placed_once_and_known_to_exchange(report: &mut Report, evidence: &Evidence) {
    let stats = &evidence.exchange;
    let placements: HashMap<&String, u64> = stats["placements"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(id, n)| (id, n.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    let placed_twice = placements.values().filter(|n| **n > 1).count();
    for (id, _) in placements.iter().filter(|(_, n)| **n > 1) {
        report.suspect(id, "placed twice");
    }
    report.figure("placements at the exchange", placements.len());
    report.figure(
        "duplicate calls absorbed by the exchange",
        &stats["duplicates_absorbed"],
    );
    report.invariant("placed twice (placements of one id > 1)", placed_twice);
    let mut placed_unknown = 0;
    let mut failed_or_rejected_placed = 0;
    let mut expired_or_canceled_placed = Vec::new();
    for (id, order) in &evidence.stored {
        let at_exchange = placements.contains_key(id);
        match order.status.as_str() {
            "placed" if !at_exchange => placed_unknown += 1,
            "failed" | "rejected" if at_exchange => failed_or_rejected_placed += 1,
            "expired" | "canceled" if at_exchange => expired_or_canceled_placed.push(id),
            _ => {}
        }
    }
    report.invariant("placed but unknown to the exchange", placed_unknown);
    report.invariant(
        "failed/rejected yet placed at the exchange",
        failed_or_rejected_placed,
    );
    report.invariant(
        "expired/canceled yet placed at the exchange",
        expired_or_canceled_placed.len(),
    );
    for id in &expired_or_canceled_placed {
        report.suspect(id, "expired/canceled yet placed");
    }
    for id in expired_or_canceled_placed.iter().take(5) {
        println!(
            "VIOLATION: order {id} ended `{}` but the exchange has it",
            evidence.stored[*id].status
        );
    }
}

/// An order whose expiry has passed is never sent to the exchange afterwards: the simulator
/// refused no placement as arriving after the order's `expires_at` (it checks the placements it
/// would accept), and no placement call for it arrived at all — as the soak's once-a-second
/// samples bound it, down or not — later than its expiry plus the slack of one call in flight.
fn never_sent_after_expiry(report: &mut Report, evidence: &Evidence) {
    let mut late: Vec<(&String, f64)> = Vec::new();
    let refused: HashSet<&String> = evidence.exchange["expired_refusals"]
        .as_object()
        .map(|m| m.keys().collect())
        .unwrap_or_default();
    for (id, (_, arrived_after)) in &evidence.watched.last_call {
        let Some(order) = evidence.stored.get(id) else {
            continue;
        };
        if let Some(expires_at) = order.expires_at {
            if *arrived_after > expires_at + SENT_AFTER_EXPIRY_SLACK {
                late.push((id, arrived_after - expires_at));
            }
        }
    }
    for id in &refused {
        if !late.iter().any(|(late_id, _)| late_id == id) {
            late.push((id, 0.0));
        }
    }
    report.figure(
        "placements the exchange refused as past their expiry",
        refused.len(),
    );
    report.figure(
        "exchange samples taken (missed)",
        format!(
            "{} ({})",
            evidence.watched.series.len(),
            evidence.watched.missed
        ),
    );
    report.invariant("sent to the exchange after its expiry", late.len());
    for (id, _) in &late {
        report.suspect(id, "sent after its expiry");
    }
    for (id, by) in late.iter().take(5) {
        println!(
            "VIOLATION: order {id} was sent to the exchange at least {by:.1} s after its expiry"
        );
    }
}

/// `failed` is for orders the exchange does not have and that retrying cannot help; an outage
/// is never that. So no order fails while its time in force is still running: it is retried
/// until it expires. (A poison message names no order and fails none.)
fn not_failed_while_live(report: &mut Report, stored: &HashMap<String, Stored>) {
    let mut live_failures: BTreeMap<&str, usize> = BTreeMap::new();
    for (id, order) in stored.iter().filter(|(_, o)| o.status == "failed") {
        let live = match (order.failed_at, order.expires_at) {
            (Some(failed_at), Some(expires_at)) => expires_at > failed_at,
            // No expiry: never expires, so always live.
            (_, None) => true,
            // A failed order without its audit row: treat as live (and so reported).
            (None, Some(_)) => true,
        };
        if live {
            report.suspect(id, "failed while within expiry");
            *live_failures
                .entry(order.failed_reason.as_deref().unwrap_or("(no audit row)"))
                .or_default() += 1;
        }
    }
    report.invariant(
        "failed while still within expiry",
        live_failures.values().sum(),
    );
    for (reason, count) in &live_failures {
        println!("VIOLATION: {count} order(s) failed before their expiry: {reason}");
    }
}

/// A cancel's answer is the truth: 200 means the order ends `canceled` (and, above, is never at
/// the exchange); a 409 naming a final status means it ended in that status.
fn cancels_answered_truthfully(
    report: &mut Report,
    posted: &[Posted],
    stored: &HashMap<String, Stored>,
) {
    let (mut canceled, mut refused, mut unsupported, mut wrong) = (0, 0, 0, Vec::new());
    for p in posted {
        let (Some(id), Some(cancel)) = (&p.id, &p.cancel) else {
            continue;
        };
        let ended = stored.get(id).map(|o| o.status.as_str()).unwrap_or("?");
        match cancel {
            Cancel::Canceled { status } => {
                canceled += 1;
                if status != "canceled" || ended != "canceled" {
                    wrong.push((id, format!("{id}: 200 showing `{status}`, ended `{ended}`")));
                }
            }
            Cancel::Refused { named_status } => {
                refused += 1;
                if named_status != ended {
                    wrong.push((
                        id,
                        format!("{id}: 409 naming `{named_status}`, ended `{ended}`"),
                    ));
                }
            }
            Cancel::Unsupported => unsupported += 1,
            Cancel::NotFound => {
                wrong.push((id, format!("{id}: 404 for the client's own order")));
            }
            Cancel::GaveUp { last } => {
                wrong.push((
                    id,
                    format!("{id}: no answer in time ({last}), ended `{ended}`"),
                ));
            }
        }
    }
    let sent = posted.iter().filter(|p| p.cancel.is_some()).count();
    let longest = posted
        .iter()
        .filter(|p| p.cancel.is_some())
        .map(|p| p.cancel_took)
        .max()
        .unwrap_or_default();
    report.figure("cancels sent", sent);
    report.figure(
        "  longest until answered (409 `placing` meanwhile)",
        format!("{:.1} s", longest.as_secs_f64()),
    );
    report.figure("  answered 200 (canceled)", canceled);
    report.figure("  answered 409 (already final)", refused);
    if unsupported > 0 {
        report.figure("  answered 405 (no cancel in this build)", unsupported);
    }
    report.invariant(
        "cancels answered against the order's fate (or unanswered)",
        wrong.len(),
    );
    for (id, line) in wrong.iter().take(5) {
        println!("VIOLATION: cancel {line}");
        report.suspect(id, "cancel answered against its fate");
    }
}

/// Failed and expired orders reach the admins as incidents: every one of them is counted in an
/// incident, every incident has exactly one opening alert and, once over, exactly one closing
/// alert; no alert of any other kind (the one-per-order alerts this replaced).
fn one_alert_per_incident(report: &mut Report, evidence: &Evidence, unfinished: &Unfinished) {
    let alerts = &evidence.alerts;
    let incidents = &evidence.incidents;
    let known: HashSet<i64> = incidents.iter().map(|i| i.id).collect();
    let (mut missing_open, mut extra_open, mut missing_over, mut extra_over, mut not_over) =
        (0, 0, 0, 0, 0);
    for incident in incidents {
        let opened = alerts.opened.get(&incident.id).copied().unwrap_or(0);
        let over = alerts.over.get(&incident.id).copied().unwrap_or(0);
        if opened == 0 {
            missing_open += 1;
        }
        extra_open += opened.saturating_sub(1);
        extra_over += over.saturating_sub(1);
        if incident.closed_alerted && over == 0 {
            missing_over += 1;
        }
        if !(incident.opened_alerted && incident.closed && incident.closed_alerted) {
            not_over += 1;
        }
    }
    let unknown = alerts
        .opened
        .keys()
        .chain(alerts.over.keys())
        .filter(|id| !known.contains(id))
        .count();
    let ended: usize = evidence
        .stored
        .values()
        .filter(|o| o.status == "failed" || o.status == "expired")
        .count();
    let counted: i64 = incidents.iter().map(|i| i.order_count).sum();
    let by_kind = |kind: &str| {
        let of_kind: Vec<_> = incidents.iter().filter(|i| i.kind == kind).collect();
        format!(
            "{} ({} orders)",
            of_kind.len(),
            of_kind.iter().map(|i| i.order_count).sum::<i64>()
        )
    };
    report.figure("alerts received", alerts.total());
    report.figure("incidents: expired", by_kind("expired"));
    report.figure("incidents: failed", by_kind("failed"));
    report.figure(
        "incident alerts: opened / over",
        format!(
            "{} / {}",
            alerts.opened.values().sum::<usize>(),
            alerts.over.values().sum::<usize>()
        ),
    );
    report.invariant(
        "failed/expired orders not counted in an incident",
        ended.abs_diff(usize::try_from(counted).unwrap_or(0)),
    );
    report.invariant("incidents without an opening alert", missing_open);
    report.invariant("opening alerts beyond one per incident", extra_open);
    report.invariant("incidents not over (with its alert) at the end", not_over);
    report.invariant("closing alerts missing", missing_over);
    report.invariant("closing alerts beyond one per incident", extra_over);
    report.invariant("incident alerts naming no incident", unknown);
    report.invariant(
        "alerts of another kind (e.g. one per order)",
        alerts.other.len(),
    );
    for other in alerts.other.iter().take(3) {
        println!("VIOLATION: unexpected alert {other}");
    }
    if unfinished.incidents > 0 {
        println!(
            "VIOLATION: {} incident(s) still unannounced or open at the end",
            unfinished.incidents
        );
    }
}

/// Each poison message reaches the DLQ and is reported on its own, once; nothing else is
/// reported as poison, and the DLQ ends empty.
fn poison_reported_one_by_one(
    report: &mut Report,
    poison: &[Poison],
    evidence: &Evidence,
    unfinished: &Unfinished,
) {
    let reported = &evidence.alerts.poison;
    let per_message: Vec<usize> = poison
        .iter()
        .map(|p| reported.iter().filter(|b| b.contains(&p.marker)).count())
        .collect();
    let ours = |body: &String| poison.iter().any(|p| body.contains(&p.marker));
    report.figure("poison messages sent", poison.len());
    report.figure("poison alerts", reported.len());
    report.invariant(
        "poison messages not reported",
        per_message.iter().filter(|n| **n == 0).count(),
    );
    report.invariant(
        "poison alerts beyond one per message",
        per_message.iter().map(|n| n.saturating_sub(1)).sum(),
    );
    report.invariant(
        "poison alerts for messages the soak did not send",
        reported.iter().filter(|b| !ours(b)).count(),
    );
    // An unreadable DLQ counts as one: nothing shows it drained.
    let left = unfinished
        .dead_letters
        .map_or(1, |n| usize::try_from(n).unwrap_or(usize::MAX));
    report.invariant("dead letters left in the DLQ (or unreadable)", left);
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
    report.invariant("5xx outside it", outside);
}

/// While the exchange keeps failing, the breaker lets through a probe per probe interval: the
/// placements per minute in the outage (once the breaker had time to open) stay within twice
/// that, against hundreds of calls a minute before it. Printed minute by minute.
fn outage_calls_are_a_trickle(report: &mut Report, plan: &Plan, evidence: &Evidence) {
    let seen = &evidence.watched;
    let (at, end) = (plan.long_outage_at, plan.long_outage_end());
    let what = if seen.counts_lookups() {
        "placements and lookups"
    } else {
        "placements"
    };
    report.figure("exchange calls counted", what);
    let rate = |from: Duration, to: Duration| {
        seen.rate_per_minute(from, to)
            .map(|r| format!("{r:.0}"))
            .unwrap_or_else(|| "?".into())
    };
    let before_from = at.saturating_sub(Duration::from_secs(15));
    report.figure(
        "exchange calls/min in the 15 s before the outage",
        rate(before_from, at),
    );
    report.figure("exchange calls/min during the outage", rate(at, end));
    if let Some((placements, lookups)) = seen.split_per_minute(at, end) {
        report.figure(
            "  of them placements / lookups",
            format!("{placements:.0} / {lookups:.0}"),
        );
    }
    let mut minutes = Vec::new();
    let mut from = at;
    while from < end {
        let to = (from + Duration::from_secs(60)).min(end);
        minutes.push(rate(from, to));
        from = to;
    }
    report.figure(
        "exchange calls/min, minute by minute of the outage",
        minutes.join(", "),
    );
    report.figure(
        "exchange calls/min in the first minute after it",
        rate(end, end + Duration::from_secs(60)),
    );
    let probes_per_minute = 60.0 / plan.runner.breaker_probe.as_secs_f64().max(1.0);
    let budget = 2.0 * probes_per_minute;
    // Placements are what the breaker gates; lookups (the alerter asking about dead letters,
    // the placer confirming an unknown outcome) are shown beside them.
    let steady = seen.split_per_minute(at + BREAKER_OPENING, end);
    report.figure(
        "exchange placements / lookups per min, breaker open",
        steady
            .map(|(placements, lookups)| format!("{placements:.1} / {lookups:.1}"))
            .unwrap_or_else(|| "?".into()),
    );
    report.figure(
        "  placement budget per min (two per probe interval)",
        format!("{budget:.0}"),
    );
    report.invariant(
        "exchange hammered while down (placements/min above budget)",
        usize::from(steady.is_none_or(|(placements, _)| placements > budget)),
    );
}
