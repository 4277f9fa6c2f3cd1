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

/// The statuses an order ends in: final for the placement pipeline. From `placed` on only the
/// exchange's execution reports (through the ingester) move an order, and it may still be working
/// at the exchange at the end (`placed`, `partially_filled`, `pending_cancel`).
pub const FINAL: [&str; 8] = [
    "placed",
    "partially_filled",
    "pending_cancel",
    "filled",
    "rejected",
    "failed",
    "expired",
    "canceled",
];

/// Working at the exchange: the statuses the exchange's reports move on from.
const WORKING: [&str; 3] = ["placed", "partially_filled", "pending_cancel"];

/// Whether the ingester moved the order to its status: `canceled` or `expired` from a working
/// status (the exchange canceled or expired it), not by the pipeline before placement.
fn ended_at_exchange(order: &Stored) -> bool {
    matches!(order.status.as_str(), "canceled" | "expired")
        && order
            .ended_from
            .as_deref()
            .is_some_and(|from| WORKING.contains(&from))
}

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
    report.section("the ingester (the exchange's execution feed)");
    feed_faults_happened(&mut report, plan, evidence, timeline);
    ingested_exactly_once(&mut report, evidence, unfinished);
    fills_match_the_exchange(&mut report, evidence);
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

/// Placement is exactly once: no order placed twice at the exchange, every order the exchange
/// placed known to it whatever status the ingester moved it to since (`placed`,
/// `partially_filled`, `pending_cancel`, `filled`, or `canceled`/`expired` at the exchange), and
/// no order that ended any other way (`failed`, `rejected`, or `canceled`/`expired` before
/// placement) placed there after all.
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
    let (mut canceled_there, mut expired_there) = (0, 0);
    for (id, order) in &evidence.stored {
        let at_exchange = placements.contains_key(id);
        let by_exchange = ended_at_exchange(order);
        match order.status.as_str() {
            "placed" | "partially_filled" | "pending_cancel" | "filled" if !at_exchange => {
                report.suspect(id, "placed but unknown to the exchange");
                placed_unknown += 1;
            }
            "expired" | "canceled" if by_exchange && !at_exchange => {
                report.suspect(id, "placed but unknown to the exchange");
                placed_unknown += 1;
            }
            "failed" | "rejected" if at_exchange => failed_or_rejected_placed += 1,
            "expired" | "canceled" if at_exchange && !by_exchange => {
                expired_or_canceled_placed.push(id)
            }
            "canceled" if by_exchange => canceled_there += 1,
            "expired" if by_exchange => expired_there += 1,
            _ => {}
        }
    }
    report.figure(
        "  canceled / expired at the exchange (after placement)",
        format!("{canceled_there} / {expired_there}"),
    );
    report.invariant(
        "placed (or filled, canceled, expired there) but unknown to the exchange",
        placed_unknown,
    );
    report.invariant(
        "failed/rejected yet placed at the exchange",
        failed_or_rejected_placed,
    );
    report.invariant(
        "expired/canceled before placement yet placed at the exchange",
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

/// A cancel's answer is the truth: 200 means the order ends `canceled` (before placement, or at
/// the exchange); 202 (`pending_cancel`) that the cancel went to the exchange, whose report ended
/// it (`canceled` or `expired` there, or `filled` if the fill won; still `pending_cancel` at the
/// end is a cancel never answered); a 409 naming a final status means it ended in that status —
/// or, for a status still working at the exchange (`placed`, `partially_filled`), in one the
/// exchange's reports moved it to since.
fn cancels_answered_truthfully(
    report: &mut Report,
    posted: &[Posted],
    stored: &HashMap<String, Stored>,
) {
    let (mut canceled, mut requested, mut refused, mut unsupported, mut wrong) =
        (0, 0, 0, 0, Vec::new());
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
            Cancel::Requested { status } => {
                requested += 1;
                let answered = stored.get(id).is_some_and(|o| {
                    o.status != "pending_cancel" && moved_on_by_exchange("pending_cancel", o)
                });
                if status != "pending_cancel" || !answered {
                    wrong.push((id, format!("{id}: 202 showing `{status}`, ended `{ended}`")));
                }
            }
            Cancel::Refused { named_status } => {
                refused += 1;
                let moved_on = stored
                    .get(id)
                    .is_some_and(|o| moved_on_by_exchange(named_status, o));
                if named_status != ended && !moved_on {
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
    report.figure("  answered 202 (sent to the exchange)", requested);
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

/// Whether `order` is where the exchange's reports may have taken it from the working status
/// `from`: filled in part (only from `placed`), filled, or canceled or expired at the exchange;
/// a cancel request (`pending_cancel`) only from `placed` or `partially_filled`.
fn moved_on_by_exchange(from: &str, order: &Stored) -> bool {
    if !WORKING.contains(&from) {
        return false;
    }
    match order.status.as_str() {
        status if status == from => true,
        "partially_filled" => from == "placed",
        "pending_cancel" => from != "pending_cancel",
        "filled" => true,
        "canceled" | "expired" => ended_at_exchange(order),
        _ => false,
    }
}

/// Failed and expired orders reach the admins as incidents: every one of them is counted in an
/// incident (except an expiry at the exchange, after placement, which joins none), every
/// incident has exactly one opening alert and, once over, exactly one closing alert; no alert of
/// any other kind (the one-per-order alerts this replaced).
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
        .filter(|o| (o.status == "failed" || o.status == "expired") && !ended_at_exchange(o))
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

/// The ingester's faults happened as planned: each SIGKILL (with how much of its backlog it had
/// not written when killed: more than 0 is mid-batch), the feed connections the exchange dropped
/// (all at once on the plan's schedule, and at random), the duplicates it published and the
/// messages it sent twice; and how soon the ingester was past the Postgres restart on its own.
fn feed_faults_happened(
    report: &mut Report,
    plan: &Plan,
    evidence: &Evidence,
    timeline: &Timeline,
) {
    let stats = &evidence.feed.stats;
    let kills = timeline.ingester_kills();
    let mid_batch = kills.iter().filter(|k| k.unwritten_at_kill > 0).count();
    report.figure("ingester kills (SIGKILL, then a new process)", kills.len());
    report.figure(
        "  reports behind when resumed / unwritten when killed",
        kills
            .iter()
            .map(|k| format!("{}/{}", k.behind_at_resume, k.unwritten_at_kill))
            .collect::<Vec<_>>()
            .join(", "),
    );
    report.figure("  of them mid-batch (reports unwritten)", mid_batch);
    report.invariant(
        "planned ingester kills that did not happen",
        plan.ingester_kills.len().saturating_sub(kills.len()),
    );
    report.figure(
        "feed connections opened / dropped by the exchange",
        format!(
            "{} / {}",
            stats.connections_opened, stats.connections_dropped
        ),
    );
    report.figure(
        "  drops of every connection at once (POST /feed/drop)",
        timeline.feed_drops(),
    );
    report.figure(
        "reports re-sent by the exchange (same execution, new sequence)",
        stats.duplicates_published,
    );
    report.figure(
        "messages sent twice by a connection (same sequence)",
        stats.messages_redelivered,
    );
    report.figure(
        "ingester past the Postgres restart after",
        timeline
            .ingester_recovery()
            .map(|took| format!("{:.1} s", took.as_secs_f64()))
            .unwrap_or_else(|| "? (not within 60 s)".into()),
    );
}

/// Exactly once, nothing lost: the ingester has written everything the feed published (its
/// stored cursor at the feed's last sequence, in the same snapshot as the exchange's counts);
/// every execution the exchange sent — the whole feed read back — is stored once (the execution
/// id is the key) with the exchange's content and applied, none left waiting; nothing is stored
/// that the exchange did not send; and as many executions are applied as the exchange sent
/// distinct ones.
fn ingested_exactly_once(report: &mut Report, evidence: &Evidence, unfinished: &Unfinished) {
    let feed = &evidence.feed;
    let stats = &feed.stats;
    let by_kind = &stats.reports_by_kind;
    let stored = feed.executions.len();
    let applied = feed.executions.values().filter(|e| e.applied).count();
    report.figure("reports published (feed sequences)", stats.last_sequence);
    report.figure(
        "  executions by kind: partial fill / fill / canceled / expired / cancel refused",
        format!(
            "{} / {} / {} / {} / {}",
            by_kind.partial_fill,
            by_kind.fill,
            by_kind.canceled,
            by_kind.expired,
            by_kind.cancel_refused
        ),
    );
    // Read before the soak's own read-back: every message went to an ingester.
    report.figure(
        "feed messages received by the ingester (re-reads after kills and drops included)",
        stats.messages_sent,
    );
    report.figure("reports stored by the ingester (executions)", stored);
    report.figure("  applied to their order", applied);
    report.figure(
        "  duplicates ignored (sequences published less executions stored)",
        stats.last_sequence.saturating_sub(stored as u64),
    );
    report.figure(
        "ingester cursor / feed's last sequence at the end",
        format!("{} / {}", feed.cursor, stats.last_sequence),
    );
    report.invariant(
        "ingester behind the feed at the end (reports not written)",
        usize::try_from(stats.last_sequence.saturating_sub(feed.cursor)).unwrap_or(usize::MAX),
    );
    report.invariant(
        "database and exchange not read at one feed sequence",
        usize::from(!feed.consistent),
    );
    if let Some(behind) = unfinished.feed_behind.filter(|b| *b > 0) {
        println!("VIOLATION: the ingester drain ended {behind} report(s) behind the feed");
    }
    let sent = match &feed.sent {
        Ok(sent) => sent,
        Err(error) => {
            println!("VIOLATION: the feed could not be read back: {error}");
            report.invariant("feed not read back (lost and extra reports unchecked)", 1);
            return;
        }
    };
    let lost: Vec<&String> = sent
        .executions
        .keys()
        .filter(|id| !feed.executions.contains_key(*id))
        .collect();
    let unknown_or_different = feed
        .executions
        .iter()
        .filter(|(id, row)| {
            sent.executions.get(*id).is_none_or(|s| {
                s.order_id != row.order_id || s.kind != row.kind || s.quantity != row.quantity
            })
        })
        .count();
    let waiting: Vec<&String> = feed
        .executions
        .iter()
        .filter(|(_, row)| !row.applied)
        .map(|(_, row)| &row.order_id)
        .collect();
    report.figure(
        "feed read back: sequences / distinct executions / duplicates",
        format!(
            "{} / {} / {}",
            sent.sequences,
            sent.executions.len(),
            sent.duplicates
        ),
    );
    if sent.contradicting > 0 {
        report.figure(
            "  duplicates whose content differed (the exchange's fault)",
            sent.contradicting,
        );
    }
    report.invariant("reports lost: sent by the exchange, not stored", lost.len());
    report.invariant(
        "reports stored that the exchange did not send (or with other content)",
        unknown_or_different,
    );
    report.invariant(
        "reports stored but not applied at the end (waiting)",
        waiting.len(),
    );
    for id in waiting.iter().take(3) {
        report.suspect(id, "a report still waiting at the end");
    }
    let mut why: BTreeMap<(&str, &str, &str), usize> = BTreeMap::new();
    for row in feed.executions.values().filter(|row| !row.applied) {
        let status = evidence
            .stored
            .get(&row.order_id)
            .map_or("not stored", |o| o.status.as_str());
        let reason = row.waiting_reason.as_deref().unwrap_or("no reason");
        *why.entry((row.kind.as_str(), status, reason)).or_default() += 1;
    }
    for ((kind, status, reason), count) in &why {
        println!(
            "VIOLATION: {count} `{kind}` report(s) still waiting for an order now `{status}`: \
             {reason}"
        );
    }
    for id in lost.iter().take(3) {
        if let Some(s) = sent.executions.get(*id) {
            report.suspect(&s.order_id, "a report lost");
        }
    }
    report.invariant(
        "executions applied differ from distinct executions sent",
        applied.abs_diff(sent.executions.len()),
    );
}

/// Every order's fill state is the exchange's: its `filled_quantity` equals the shares the
/// exchange filled for it (more: a report applied twice; less: one lost) and the sum of its
/// applied fills, it has as many fills as the exchange reported, its status agrees with where the
/// exchange has it, and each fill move is in its audit trail once.
fn fills_match_the_exchange(report: &mut Report, evidence: &Evidence) {
    let feed = &evidence.feed;
    let exchange = &feed.stats.orders;
    let mut fills_stored: HashMap<&str, (i64, u64)> = HashMap::new();
    for row in feed.executions.values() {
        if row.applied && (row.kind == "partial_fill" || row.kind == "fill") {
            let entry = fills_stored.entry(row.order_id.as_str()).or_default();
            entry.0 += row.quantity;
            entry.1 += 1;
        }
    }
    let (mut beyond, mut short, mut not_sum, mut fill_count, mut status_wrong) = (0, 0, 0, 0, 0);
    let (mut with_fills, mut part_filled, mut worked) = (0, 0, 0);
    let ids: HashSet<&String> = evidence
        .stored
        .keys()
        .chain(
            exchange
                .iter()
                .filter(|(_, o)| !o.synthetic)
                .map(|(id, _)| id),
        )
        .collect();
    for id in ids {
        let at_exchange = exchange.get(id);
        let theirs = at_exchange.map_or(0, |o| o.filled_quantity);
        let order = evidence.stored.get(id);
        let ours = order.map_or(0, |o| o.filled_quantity);
        if ours > theirs {
            beyond += 1;
            report.suspect(id, "filled beyond the exchange's count");
        } else if ours < theirs {
            short += 1;
            report.suspect(id, "filled short of the exchange's count");
        }
        let (sum, count) = fills_stored.get(id.as_str()).copied().unwrap_or_default();
        if order.is_some() && sum != ours {
            not_sum += 1;
            report.suspect(id, "filled quantity not the sum of its fills");
        }
        if count != at_exchange.map_or(0, |o| o.fills) {
            fill_count += 1;
        }
        if theirs > 0 {
            with_fills += 1;
        }
        let (Some(order), Some(at_exchange)) = (order, at_exchange) else {
            continue;
        };
        worked += 1;
        let status = order.status.as_str();
        // Orders the pipeline ended otherwise are counted in the exchange section.
        if !(["placed", "partially_filled", "pending_cancel", "filled"].contains(&status)
            || ended_at_exchange(order))
        {
            continue;
        }
        if status == "partially_filled" {
            part_filled += 1;
        }
        let agrees = match at_exchange.state {
            exchange_sim::WorkState::Working => match status {
                "placed" => ours == 0,
                "partially_filled" => ours > 0 && ours < order.quantity,
                "pending_cancel" => true,
                _ => false,
            },
            exchange_sim::WorkState::Filled => status == "filled",
            exchange_sim::WorkState::Canceled => status == "canceled",
            exchange_sim::WorkState::Expired => status == "expired",
        };
        if !agrees {
            status_wrong += 1;
            report.suspect(id, "status disagrees with the exchange");
        }
    }
    let mut states: BTreeMap<String, u64> = BTreeMap::new();
    for (state, count) in &feed.stats.orders_by_state {
        let name = serde_json::to_value(state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| format!("{state:?}"));
        states.insert(name, *count);
    }
    report.figure(
        "orders at the exchange by state",
        states
            .iter()
            .map(|(state, count)| format!("{state} {count}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    report.figure(
        "orders placed and worked (stored and at the exchange)",
        worked,
    );
    report.figure("  with fills", with_fills);
    report.figure("  partially filled at the end", part_filled);
    report.figure(
        "shares filled at the exchange",
        feed.stats.total_filled_quantity,
    );
    report.figure(
        "shares filled in the orders table",
        evidence
            .stored
            .values()
            .map(|o| o.filled_quantity)
            .sum::<i64>(),
    );
    report.invariant(
        "orders filled beyond the exchange's count (a report applied twice)",
        beyond,
    );
    report.invariant(
        "orders filled short of the exchange's count (a report lost)",
        short,
    );
    report.invariant(
        "orders whose filled quantity is not the sum of their applied fills",
        not_sum,
    );
    report.invariant(
        "orders with another number of applied fills than the exchange's",
        fill_count,
    );
    report.invariant(
        "orders whose status disagrees with the exchange's",
        status_wrong,
    );
    report.invariant(
        "orders with a fill move audited twice",
        usize::try_from(feed.moves_audited_twice).unwrap_or(usize::MAX),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(status: &str, ended_from: Option<&str>) -> Stored {
        Stored {
            status: status.into(),
            expires_at: None,
            failed_at: None,
            failed_reason: None,
            quantity: 10,
            filled_quantity: 0,
            ended_from: ended_from.map(str::to_owned),
        }
    }

    #[test]
    fn canceled_or_expired_at_the_exchange_only_from_a_working_status() {
        assert!(ended_at_exchange(&order(
            "expired",
            Some("partially_filled")
        )));
        assert!(ended_at_exchange(&order(
            "canceled",
            Some("pending_cancel")
        )));
        assert!(!ended_at_exchange(&order("expired", Some("pending"))));
        assert!(!ended_at_exchange(&order("canceled", Some("pending"))));
        assert!(!ended_at_exchange(&order("filled", Some("placed"))));
        assert!(!ended_at_exchange(&order("expired", None)));
    }

    #[test]
    fn a_refusal_naming_a_working_status_allows_only_what_the_exchange_does_after_it() {
        for (named, ended, from, truthful) in [
            ("placed", "placed", None, true),
            ("placed", "partially_filled", Some("placed"), true),
            ("placed", "filled", Some("partially_filled"), true),
            ("placed", "expired", Some("placed"), true),
            ("placed", "expired", Some("pending"), false),
            ("placed", "failed", Some("placing"), false),
            ("partially_filled", "placed", None, false),
            ("partially_filled", "canceled", Some("pending_cancel"), true),
            ("pending_cancel", "filled", Some("pending_cancel"), true),
            ("pending_cancel", "partially_filled", None, false),
            ("filled", "expired", Some("placed"), false),
        ] {
            assert_eq!(
                moved_on_by_exchange(named, &order(ended, from)),
                truthful,
                "409 naming {named}, ended {ended} from {from:?}"
            );
        }
    }
}
