//! The domain's state machine as SQL. Each [`Transition`] of the domain becomes one conditional
//! update whose guard (`WHERE status …`) and target status are rendered from the domain's table,
//! so the store cannot allow a move the domain lacks, nor lack one the domain has (the `match`
//! below stops the build until a new move says what it writes). What stays here by hand is only
//! what a move records besides its status.

use crate::domain::{ExpiryRule, OrderStatus, Transition};

use super::order_rows::ORDER_COLUMNS;

/// The statement of one move with its audit row, atomic: lock the row if it is in a status the
/// move starts from, update it, append the event. `$1` is the order id, `$2` the event's reason;
/// the move's own columns use `$3` onwards.
pub(super) fn transition_sql(transition: Transition) -> String {
    move_sql(transition, "id = $1 AND ", "FOR UPDATE")
}

/// The same move for up to `$1` orders at once, the first by `order_by`, skipping rows another
/// transaction holds (a concurrent sweeper takes the others). `$2` is the events' reason.
pub(super) fn batch_transition_sql(transition: Transition, order_by: &str) -> String {
    move_sql(
        transition,
        "",
        &format!("ORDER BY {order_by} LIMIT $1 FOR UPDATE SKIP LOCKED"),
    )
}

fn move_sql(transition: Transition, select: &str, lock: &str) -> String {
    let allowed = guard(transition);
    let expiry = expiry_condition(transition.expiry_rule());
    let settled = if transition.needs_settled_outcome() {
        " AND NOT outcome_unknown"
    } else {
        ""
    };
    let to = sql_literal(transition.to());
    let extra_set = records(transition);
    let incident = if transition.alerts_admins() {
        incident_sql(transition.to())
    } else {
        String::new()
    };
    format!(
        "WITH prev AS ( \
           SELECT id, status AS from_status FROM orders \
           WHERE {select}({allowed}) AND {expiry}{settled} {lock} \
         ), upd AS ( \
           UPDATE orders o SET status = {to}, updated_at = now() {extra_set} \
           FROM prev WHERE o.id = prev.id \
           RETURNING o.*, prev.from_status \
         ), event AS ( \
           INSERT INTO order_events (order_id, from_status, to_status, reason, attempt) \
           SELECT id, from_status, status, $2, attempts FROM upd \
         ){incident} \
         SELECT {ORDER_COLUMNS} FROM upd"
    )
}

/// Orders that end in a status admins must hear about join the open incident of that kind in
/// the same statement (or open one), so that no such order can go unreported.
fn incident_sql(kind: OrderStatus) -> String {
    let kind = sql_literal(kind);
    format!(
        ", incident AS ( \
           INSERT INTO alert_incidents AS i (kind, order_count, first_order_ids, sample_error) \
           SELECT {kind}, count(*), (array_agg(id ORDER BY id))[1:10], \
                  (array_agg(last_error ORDER BY id) FILTER (WHERE last_error IS NOT NULL))[1] \
           FROM upd HAVING count(*) > 0 \
           ON CONFLICT (kind) WHERE closed_at IS NULL DO UPDATE SET \
             order_count = i.order_count + EXCLUDED.order_count, \
             first_order_ids = (i.first_order_ids || EXCLUDED.first_order_ids)[1:10], \
             sample_error = COALESCE(i.sample_error, EXCLUDED.sample_error), \
             last_seen_at = now(), updated_at = now() \
         )"
    )
}

/// The domain's expiry rule as a condition on `expires_at` (NULL: never expires).
fn expiry_condition(rule: ExpiryRule) -> &'static str {
    match rule {
        ExpiryRule::Any => "TRUE",
        // `placing` here is a crashed placer's expired lease (the guard allows no other): its
        // attempt's outcome is unknown too.
        ExpiryRule::LiveOrUnconfirmed => {
            "(expires_at IS NULL OR expires_at > now() OR outcome_unknown OR status = 'placing')"
        }
        ExpiryRule::ExpiredAndConfirmed => "expires_at <= now()",
        ExpiryRule::Expired => "expires_at <= now()",
    }
}

/// What a move writes besides the status (`$3` is its one parameter, if any).
fn records(transition: Transition) -> &'static str {
    match transition {
        // $3: the lease in seconds.
        // Taking over a crashed placer's lease: its attempt may have reached the exchange.
        Transition::Claim => {
            ", attempts = o.attempts + 1, lease_expires_at = now() + make_interval(secs => $3), \
               outcome_unknown = (o.outcome_unknown OR prev.from_status = 'placing')"
        }
        // $3: the exchange's order id.
        Transition::Place | Transition::PlaceByLookup => {
            ", exchange_order_id = $3, placed_at = now(), lease_expires_at = NULL, \
               outcome_unknown = false"
        }
        // $3: the exchange's refusal.
        Transition::Reject => ", last_error = $3, lease_expires_at = NULL",
        // $3: the transient error; $4: parked until (NULL: its message comes back soon); $5:
        // whether the attempt's outcome is unknown. A parked order's message is dropped, so it
        // is no longer marked enqueued and the sweeper sends it again when due.
        Transition::Release => {
            ", last_error = $3, lease_expires_at = NULL, next_attempt_at = $4, \
               outcome_unknown = $5, \
               enqueued_at = CASE WHEN $4::timestamptz IS NULL THEN o.enqueued_at END, \
               sweep_claimed_until = CASE WHEN $4::timestamptz IS NULL \
                                          THEN o.sweep_claimed_until END"
        }
        Transition::Cancel => "",
        Transition::Expire | Transition::ExpireAfterLookup => {
            ", lease_expires_at = NULL, outcome_unknown = false"
        }
        // $3: the reason, kept only when no exchange error came before it.
        Transition::Fail => ", lease_expires_at = NULL, last_error = COALESCE(o.last_error, $3)",
        // An admin retry starts over, with the alerter's resends after a dead letter too.
        Transition::Requeue => {
            ", enqueued_at = NULL, alerted_at = NULL, sweep_claimed_until = NULL, \
               lease_expires_at = NULL, dead_letter_resends = 0"
        }
        Transition::RequestCancel => "",
        // The ingester makes these moves in batches, with the fill state, through
        // `apply_executions_sql`; one at a time they record nothing else.
        Transition::PartiallyFill
        | Transition::Fill
        | Transition::CancelAtExchange
        | Transition::ExpireAtExchange => "",
    }
}

/// The status changes execution reports make, as `(from, to)` rows of an SQL `VALUES` list,
/// rendered from the domain's table ([`Transition::BY_EXECUTION`]); plus "no change" for each
/// status from `placed` on (a later partial fill; a refused cancel, even of a finished order).
fn execution_moves() -> Vec<(OrderStatus, OrderStatus)> {
    let mut moves = Vec::new();
    for transition in Transition::BY_EXECUTION {
        for from in transition.from() {
            moves.push((*from, transition.to()));
        }
    }
    // A fill state change without a status change (a later partial fill), and a refused
    // cancel, which applies whatever the order's state once it has been placed: it arrives after
    // the fill or the expiry that won the race, and must be applied, not kept waiting forever.
    for status in OrderStatus::ALL.into_iter().filter(|s| s.is_final()) {
        moves.push((status, status));
    }
    moves
}

/// The ingester's batch in one statement, atomic: renew the lease (`$1` name, `$2` holder, `$3`
/// seconds) — and write nothing at all if it is no longer held —, move each order to its new fill
/// state if it is still in the status and fill state the plan started from (and the domain allows
/// the move), append the audit events of the orders that moved, store the new reports (applied
/// with their order's update, or waiting), mark kept reports applied, refresh the reasons of
/// those still waiting, and advance the feed cursor to `$4`.
///
/// Parameters from `$5` are arrays, one element per row:
/// - orders: `$5` id, `$6` expected status, `$7` expected filled, `$8` new status, `$9` new
///   filled, `$10` new notional, `$11` new average price;
/// - events: `$12` order id, `$13` from, `$14` to, `$15` reason;
/// - new reports: `$16` execution id, `$17` order id, `$18` sequence, `$19` kind, `$20` exchange
///   order id, `$21` quantity, `$22` price, `$23` cumulative, `$24` remaining, `$25` time, `$26`
///   applies (with its order's update), `$27` waiting reason;
/// - kept reports now applied: `$28` execution id, `$29` order id;
/// - kept reports still waiting: `$30` execution id, `$31` reason.
///
/// A report planned as applied whose order did not move (it changed in between) is stored (or
/// left) waiting and tried again later. The row says what happened.
pub(super) fn apply_executions_sql() -> String {
    let moves = execution_moves()
        .into_iter()
        .map(|(from, to)| format!("({}, {})", sql_literal(from), sql_literal(to)))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "WITH lease AS ( \
           UPDATE ingester_leases SET expires_at = now() + make_interval(secs => $3), \
                  updated_at = now() \
           WHERE name = $1 AND holder = $2 AND expires_at > now() RETURNING 1 \
         ), fills AS ( \
           SELECT * FROM unnest($5::uuid[], $6::text[], $7::int8[], $8::text[], $9::int8[], \
                                $10::numeric[], $11::numeric[]) \
             AS f(id, expected_status, expected_filled, new_status, new_filled, new_notional, \
                  new_average) \
         ), prev AS ( \
           SELECT o.id, o.status AS from_status FROM orders o JOIN fills f ON f.id = o.id \
           WHERE EXISTS (SELECT 1 FROM lease) \
             AND o.status = f.expected_status AND o.filled_quantity = f.expected_filled \
             AND (f.expected_status, f.new_status) IN (VALUES {moves}) \
           FOR UPDATE OF o \
         ), upd AS ( \
           UPDATE orders o SET status = f.new_status, filled_quantity = f.new_filled, \
                  filled_notional = f.new_notional, average_fill_price = f.new_average, \
                  updated_at = now() \
           FROM prev JOIN fills f ON f.id = prev.id WHERE o.id = prev.id \
           RETURNING o.id, o.attempts \
         ), event AS ( \
           INSERT INTO order_events (order_id, from_status, to_status, reason, attempt) \
           SELECT e.order_id, e.from_status, e.to_status, e.reason, upd.attempts \
           FROM unnest($12::uuid[], $13::text[], $14::text[], $15::text[]) WITH ORDINALITY \
                  AS e(order_id, from_status, to_status, reason, n) \
           JOIN upd ON upd.id = e.order_id ORDER BY e.n \
         ), ins AS ( \
           INSERT INTO executions (execution_id, order_id, sequence, kind, exchange_order_id, \
                  quantity, price, cumulative_quantity, remaining_quantity, executed_at, \
                  applied_at, waiting_reason) \
           SELECT x.execution_id, x.order_id, x.sequence, x.kind, x.exchange_order_id, \
                  x.quantity, x.price, x.cumulative, x.remaining, x.executed_at, \
                  CASE WHEN x.applies AND x.order_id IN (SELECT id FROM upd) THEN now() END, \
                  CASE WHEN x.applies AND x.order_id IN (SELECT id FROM upd) THEN NULL \
                       ELSE COALESCE(x.reason, 'the order changed while its batch was written') \
                  END \
           FROM unnest($16::text[], $17::uuid[], $18::int8[], $19::text[], $20::text[], \
                       $21::int8[], $22::numeric[], $23::int8[], $24::int8[], \
                       $25::timestamptz[], $26::bool[], $27::text[]) \
             AS x(execution_id, order_id, sequence, kind, exchange_order_id, quantity, price, \
                  cumulative, remaining, executed_at, applies, reason) \
           WHERE EXISTS (SELECT 1 FROM lease) \
           ON CONFLICT (execution_id) DO NOTHING \
           RETURNING applied_at IS NOT NULL AS applied \
         ), kept AS ( \
           UPDATE executions x SET applied_at = now(), waiting_reason = NULL, updated_at = now() \
           FROM unnest($28::text[], $29::uuid[]) AS k(execution_id, order_id) \
           WHERE x.execution_id = k.execution_id AND x.applied_at IS NULL \
             AND k.order_id IN (SELECT id FROM upd) \
           RETURNING 1 \
         ), still AS ( \
           UPDATE executions x SET waiting_reason = w.reason, updated_at = now() \
           FROM unnest($30::text[], $31::text[]) AS w(execution_id, reason) \
           WHERE x.execution_id = w.execution_id AND x.applied_at IS NULL \
             AND x.waiting_reason IS DISTINCT FROM w.reason AND EXISTS (SELECT 1 FROM lease) \
         ), cursor AS ( \
           UPDATE execution_feed_cursor SET last_sequence = greatest(last_sequence, $4), \
                  updated_at = now() \
           WHERE id = 1 AND EXISTS (SELECT 1 FROM lease) RETURNING last_sequence \
         ) \
         SELECT (SELECT count(*) FROM lease) AS leased, \
                (SELECT count(*) FROM upd) AS orders_moved, \
                (SELECT count(*) FROM ins) AS stored, \
                (SELECT count(*) FROM ins WHERE applied) AS applied_new, \
                (SELECT count(*) FROM kept) AS applied_kept, \
                (SELECT last_sequence FROM cursor) AS last_sequence"
    )
}

/// The statuses a move starts from as a condition: `status = 'a'` or `status IN ('a', 'b')`, and
/// a leased status only with its lease expired when the move waits for that.
fn guard(transition: Transition) -> String {
    let (after_lease, any_time): (Vec<OrderStatus>, Vec<OrderStatus>) = transition
        .from()
        .iter()
        .partition(|status| status.is_leased() && transition.waits_for_expired_lease());
    let mut conditions = Vec::new();
    match any_time.as_slice() {
        [] => {}
        [status] => conditions.push(format!("status = {}", sql_literal(*status))),
        statuses => conditions.push(format!("status IN ({})", sql_list(statuses))),
    }
    for status in after_lease {
        conditions.push(format!(
            "(status = {} AND lease_expires_at < now())",
            sql_literal(status)
        ));
    }
    conditions.join(" OR ")
}

/// A status as an SQL string literal; status names are lower-case words joined by `_` (a test
/// checks), so quoting needs no escaping.
fn sql_literal(status: OrderStatus) -> String {
    format!("'{}'", status.as_str())
}

/// Statuses as the list of an SQL `IN (…)`.
fn sql_list(statuses: &[OrderStatus]) -> String {
    statuses
        .iter()
        .map(|status| sql_literal(*status))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    use super::*;

    /// Text as the tests compare SQL: lower case, every run of white space one blank.
    fn normalized(text: &str) -> String {
        text.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    }

    /// The quoted words of `text`, in order.
    fn quoted(text: &str) -> Vec<&str> {
        text.split('\'').skip(1).step_by(2).collect()
    }

    /// The status names a guard mentions, and those it mentions only with an expired lease.
    fn parse_guard(guard: &str) -> (BTreeSet<String>, BTreeSet<String>) {
        let mut all = BTreeSet::new();
        let mut after_lease = BTreeSet::new();
        for condition in guard.split(" OR ") {
            let names = quoted(condition);
            if condition.contains("lease_expires_at < now()") {
                assert_eq!(names.len(), 1, "{condition}");
                after_lease.insert(names[0].to_owned());
            }
            all.extend(names.into_iter().map(str::to_owned));
        }
        (all, after_lease)
    }

    fn names(statuses: impl IntoIterator<Item = OrderStatus>) -> BTreeSet<String> {
        statuses
            .into_iter()
            .map(|s| s.as_str().to_owned())
            .collect()
    }

    fn shared_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    /// Every `.rs` file under `dir`, with its text.
    fn rust_sources(dir: &Path) -> Vec<(PathBuf, String)> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).expect("read source dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                files.extend(rust_sources(&path));
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read source");
                files.push((path, text));
            }
        }
        files
    }

    /// The migrations' SQL in version order (`V<n>__name.sql`).
    fn migrations() -> Vec<(String, String)> {
        let dir = shared_dir().join("../migrations");
        let mut files: Vec<(u32, String, String)> = std::fs::read_dir(&dir)
            .expect("read migrations")
            .map(|entry| entry.expect("dir entry").path())
            .filter(|path| path.extension().is_some_and(|e| e == "sql"))
            .map(|path| {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                let version = name[1..name.find("__").expect("V<n>__name.sql")]
                    .parse()
                    .expect("migration version");
                (
                    version,
                    name,
                    std::fs::read_to_string(&path).expect("read migration"),
                )
            })
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no migrations in {}", dir.display());
        files
            .into_iter()
            .map(|(_, name, sql)| (name, sql))
            .collect()
    }

    #[test]
    fn every_guard_and_target_is_the_domains_table() {
        let mut store_pairs = BTreeSet::new();
        for transition in Transition::ALL {
            assert!(
                !transition.from().is_empty(),
                "{transition:?} starts nowhere"
            );
            let (from, after_lease) = parse_guard(&guard(transition));
            assert_eq!(
                from,
                names(transition.from().iter().copied()),
                "{transition:?}"
            );
            let waiting = transition
                .from()
                .iter()
                .copied()
                .filter(|s| s.is_leased() && transition.waits_for_expired_lease());
            assert_eq!(after_lease, names(waiting), "{transition:?}");

            let sql = transition_sql(transition);
            let target = format!("SET status = '{}',", transition.to());
            assert_eq!(sql.matches("SET status").count(), 1, "{sql}");
            assert!(sql.contains(&target), "{transition:?}: {sql}");
            let settled = if transition.needs_settled_outcome() {
                " AND NOT outcome_unknown"
            } else {
                ""
            };
            assert!(sql.contains(&format!(
                "AND ({}) AND {}{settled} FOR UPDATE",
                guard(transition),
                expiry_condition(transition.expiry_rule())
            )));
            assert!(
                !records(transition)
                    .to_lowercase()
                    .replace("from_status", "")
                    .contains("status"),
                "{transition:?} writes a status beside its target"
            );

            for from in from {
                let from: OrderStatus = from.parse().expect("a domain status");
                if from != transition.to() {
                    store_pairs.insert((from.as_str(), transition.to().as_str()));
                }
            }
        }
        // Both ways: every status change the statements make is one the domain allows, and
        // every one the domain allows has a statement.
        let mut domain_pairs = BTreeSet::new();
        for from in OrderStatus::ALL {
            for to in OrderStatus::ALL {
                if from.can_become(to) {
                    domain_pairs.insert((from.as_str(), to.as_str()));
                }
            }
        }
        assert_eq!(store_pairs, domain_pairs);
    }

    #[test]
    fn the_ingesters_batch_allows_exactly_the_moves_of_execution_reports() {
        let moves: BTreeSet<(&str, &str)> = execution_moves()
            .into_iter()
            .map(|(from, to)| (from.as_str(), to.as_str()))
            .collect();
        for from in OrderStatus::ALL {
            for to in OrderStatus::ALL {
                let by_report = Transition::BY_EXECUTION
                    .iter()
                    .any(|t| t.to() == to && t.from().contains(&from));
                // "No change" for every status from `placed` on: a later partial fill, or a
                // refused cancel that arrives after the order ended.
                let expected = by_report || (from == to && from.is_final());
                assert_eq!(
                    moves.contains(&(from.as_str(), to.as_str())),
                    expected,
                    "{from} -> {to}"
                );
            }
        }
        let sql = apply_executions_sql();
        assert_eq!(sql.matches("SET status").count(), 1, "{sql}");
        for (from, to) in &moves {
            assert!(
                sql.contains(&format!("('{from}', '{to}')")),
                "{from} -> {to}"
            );
        }
        // Nothing is written without the lease.
        for table in ["orders o", "executions", "execution_feed_cursor"] {
            assert!(sql.contains(table), "{table}");
        }
        assert_eq!(
            sql.matches("EXISTS (SELECT 1 FROM lease)").count(),
            4,
            "prev, ins, still and cursor wait for the lease: {sql}"
        );
    }

    #[test]
    fn status_names_need_no_sql_escaping() {
        for status in OrderStatus::ALL {
            assert!(
                status
                    .as_str()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_'),
                "{status}"
            );
        }
    }

    /// A status set anywhere but in `transition_sql` would be a move the domain does not know.
    #[test]
    fn only_the_transition_statement_sets_a_status() {
        for (path, text) in rust_sources(&shared_dir().join("src")) {
            if path.ends_with("adapters/postgres/transitions.rs") {
                continue;
            }
            let text = normalized(&text);
            assert!(
                !text.contains("set status")
                    && !text.contains(", status = '")
                    && !text.contains(", status = $"),
                "{} writes orders.status outside transition_sql",
                path.display()
            );
        }
    }

    #[test]
    fn the_schema_allows_exactly_the_domains_statuses() {
        // The last CHECK on the status column in version order is the one in force.
        let mut check = None;
        let mut default = None;
        for (name, sql) in migrations() {
            let sql = normalized(&sql);
            for (i, _) in sql.match_indices("check (status in (") {
                let list = &sql[i..];
                let list = &list[..list.find("))").expect("closed CHECK list")];
                check = Some((name.clone(), quoted(list).join(", ")));
            }
            if let Some(i) = sql.find("status text not null default '") {
                default = quoted(&sql[i..]).first().map(|s| s.to_string());
            }
        }
        let (name, check) = check.expect("a CHECK (status IN (…)) on orders.status");
        let domain: Vec<&str> = OrderStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(check, domain.join(", "), "CHECK of {name}");
        assert_eq!(default.as_deref(), Some(OrderStatus::INITIAL.as_str()));
    }

    /// The hand-written SQL: the other Postgres adapter modules and the migrations (this
    /// module's statements are generated, and its tests quote patterns).
    fn hand_written_sql() -> Vec<(String, String)> {
        let mut texts: Vec<(String, String)> =
            rust_sources(&shared_dir().join("src/adapters/postgres"))
                .into_iter()
                .filter(|(path, _)| !path.ends_with("transitions.rs"))
                .map(|(path, text)| (path.display().to_string(), normalized(&text)))
                .collect();
        texts.extend(
            migrations()
                .into_iter()
                .map(|(name, sql)| (name, normalized(&sql))),
        );
        texts
    }

    /// The quoted words compared with a status column (`status = 'x'`, `status in ('x', …)`).
    fn status_literals(text: &str) -> Vec<&str> {
        let mut words = Vec::new();
        for (i, _) in text.match_indices("status = '") {
            let rest = &text[i + "status = ".len()..];
            words.extend(quoted(rest).first());
        }
        for (i, _) in text.match_indices("status in (") {
            let rest = &text[i + "status in (".len()..];
            words.extend(quoted(&rest[..rest.find(')').expect("closed IN list")]));
        }
        words
    }

    #[test]
    fn every_status_written_in_sql_is_a_domain_status() {
        let mut seen = 0;
        for (name, text) in hand_written_sql() {
            for word in status_literals(&text) {
                assert!(
                    word.parse::<OrderStatus>().is_ok(),
                    "{name}: `{word}` is no order status"
                );
                seen += 1;
            }
        }
        assert!(seen > 0, "the scan found no status in any SQL");
    }

    /// The access control counts a client's open orders with a partial index of V3; both must
    /// mean "not final" as the domain does.
    #[test]
    fn open_orders_are_the_statuses_that_are_not_final() {
        let open: Vec<OrderStatus> = OrderStatus::ALL
            .into_iter()
            .filter(|s| !s.is_final())
            .collect();
        let open = format!("status in ({})", sql_list(&open));
        let texts = hand_written_sql();
        for (name, text) in &texts {
            // A comment may name the index (V11 does) without defining it.
            let code: String = text
                .lines()
                .filter(|line| !line.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n");
            if code.contains("orders_open_by_client_idx") {
                assert!(text.contains(&open), "{name}: open orders are not `{open}`");
            }
        }
        // The admission counts open orders; only its latest definition is in force (a new state
        // means a new migration that replaces the function).
        let (name, admission) = texts
            .iter()
            .rfind(|(_, text)| text.contains("function api_admission("))
            .expect("a migration defines api_admission");
        assert!(
            admission.contains(&open),
            "{name}: the admission's open orders are not `{open}`"
        );
    }
}
