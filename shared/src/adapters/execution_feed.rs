//! The exchange's execution feed on the wire: one JSON object per WebSocket text message, one
//! message per report. Defined once here, so that the simulated exchange writes exactly what the
//! ingester reads; the domain's [`ExecutionReport`] never sees serde or strings.
//!
//! ```json
//! {"sequence":42,"execution_id":"EXE-0192f0c1-…","client_order_id":"0192f0b7-…",
//!  "exchange_order_id":"EX-7d1c…","kind":"partial_fill","quantity":"3","price":"187.25",
//!  "cumulative_quantity":"3","remaining_quantity":"7","time":"2026-12-06T10:43:02.123456Z"}
//! ```
//!
//! | field | JSON | meaning |
//! |---|---|---|
//! | `sequence` | number ≥ 1 | the feed's one global sequence, without gaps; a resumed connection (`?after=N`) starts at N + 1 |
//! | `execution_id` | string, 1–64 printable ASCII | the execution's id; a report sent again keeps it |
//! | `client_order_id` | string, UUID | our order id, given at placement |
//! | `exchange_order_id` | string | the exchange's id, as the placement answered it |
//! | `kind` | `partial_fill`, `fill`, `canceled`, `expired`, `cancel_refused` | what happened |
//! | `quantity` | decimal string, whole shares | traded (fills), canceled or expired (the unfilled rest); `"0"` for `cancel_refused` |
//! | `price` | decimal string or `null` | the fill's price, at most 2 decimal places; `null` unless a fill |
//! | `cumulative_quantity` | decimal string | shares filled so far, this report included |
//! | `remaining_quantity` | decimal string | shares still open after this report (0 after `fill`, `canceled`, `expired`) |
//! | `time` | RFC 3339, UTC | when it happened at the exchange |
//!
//! Decimal strings are plain digits with an optional fraction (no sign, no exponent), as in the
//! order API; quantities have no fraction. Fields the reader does not know are ignored, so the
//! exchange can add some without breaking readers.

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use crate::domain::{
    ExecutionEvent, ExecutionId, ExecutionKind, ExecutionReport, OrderId, Price, Quantity, Shares,
};

/// The query parameter a client resumes with: `…/feed?after=N` sends every report with a
/// sequence above N that the exchange still keeps, then the live ones.
pub const RESUME_AFTER_PARAM: &str = "after";

/// WebSocket close code: the reports after the requested sequence are no longer kept (the
/// feed's memory is bounded), so no gapless stream can be given. The reason says the oldest kept.
pub const CLOSE_NOT_KEPT: u16 = 4410;

/// WebSocket close code: the requested sequence is beyond the feed's last one — the exchange's
/// feed started over (a restarted simulator) or the client's number is wrong.
pub const CLOSE_AHEAD_OF_FEED: u16 = 4409;

/// One report exactly as it travels. Build it from a domain report with `From`, read it with
/// [`parse_report`] (or [`ExecutionReportWire::into_report`] once deserialized).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionReportWire {
    pub sequence: u64,
    pub execution_id: String,
    pub client_order_id: String,
    pub exchange_order_id: String,
    pub kind: String,
    pub quantity: String,
    pub price: Option<String>,
    pub cumulative_quantity: String,
    pub remaining_quantity: String,
    pub time: String,
}

/// A feed message that is not a report this side can apply. The ingester must not skip it
/// silently: the sequence would have a hole.
#[derive(Debug, thiserror::Error)]
pub enum ReportFormatError {
    /// Not JSON, or not an object with the fields and JSON types of the table above.
    #[error("execution report is not well-formed: {0}")]
    Json(#[from] serde_json::Error),
    /// Well-formed, but a field's value is wrong, or the numbers do not add up.
    #[error("execution report field {field}: {problem}")]
    Field { field: String, problem: String },
}

fn field(name: &str, problem: impl Into<String>) -> ReportFormatError {
    ReportFormatError::Field {
        field: name.to_owned(),
        problem: problem.into(),
    }
}

/// Reads one feed message (a WebSocket text frame) into a domain report.
pub fn parse_report(text: &str) -> Result<ExecutionReport, ReportFormatError> {
    serde_json::from_str::<ExecutionReportWire>(text)?.into_report()
}

/// Writes a domain report as one feed message.
pub fn to_message(report: &ExecutionReport) -> String {
    // A struct of strings and one integer always serializes.
    serde_json::to_string(&ExecutionReportWire::from(report))
        .expect("an execution report serializes")
}

impl ExecutionReportWire {
    /// Checks every field and the report's arithmetic (see [`ExecutionReport`]).
    pub fn into_report(self) -> Result<ExecutionReport, ReportFormatError> {
        let execution_id = ExecutionId::parse(&self.execution_id)
            .map_err(|problem| field("execution_id", problem))?;
        let client_order_id: OrderId = self
            .client_order_id
            .parse()
            .map_err(|problem: String| field("client_order_id", problem))?;
        let kind = ExecutionKind::parse(&self.kind).map_err(|problem| field("kind", problem))?;
        let quantity = whole_shares("quantity", &self.quantity)?;
        let cumulative = whole_shares("cumulative_quantity", &self.cumulative_quantity)?;
        let remaining = whole_shares("remaining_quantity", &self.remaining_quantity)?;
        let price = match (&self.price, kind) {
            (Some(text), ExecutionKind::PartialFill | ExecutionKind::Fill) => {
                Some(plain_price(text)?)
            }
            (None, ExecutionKind::PartialFill | ExecutionKind::Fill) => {
                return Err(field("price", format!("a `{kind}` report has a price")));
            }
            (Some(_), _) => {
                return Err(field("price", format!("a `{kind}` report has no price")));
            }
            (None, _) => None,
        };
        let positive = |shares: Shares| {
            Quantity::new(shares.get())
                .map_err(|problem| field("quantity", format!("for `{kind}` {problem}")))
        };
        let event = match (kind, price) {
            (ExecutionKind::PartialFill, Some(price)) => ExecutionEvent::PartialFill {
                quantity: positive(quantity)?,
                price,
            },
            (ExecutionKind::Fill, Some(price)) => ExecutionEvent::Fill {
                quantity: positive(quantity)?,
                price,
            },
            (ExecutionKind::Canceled, _) => ExecutionEvent::Canceled {
                quantity: positive(quantity)?,
            },
            (ExecutionKind::Expired, _) => ExecutionEvent::Expired {
                quantity: positive(quantity)?,
            },
            (ExecutionKind::CancelRefused, _) if quantity == Shares::ZERO => {
                ExecutionEvent::CancelRefused
            }
            (ExecutionKind::CancelRefused, _) => {
                return Err(field("quantity", "is \"0\" for `cancel_refused`"));
            }
            // Fills without a price were refused above.
            (ExecutionKind::PartialFill | ExecutionKind::Fill, None) => {
                return Err(field("price", format!("a `{kind}` report has a price")));
            }
        };
        let time = OffsetDateTime::parse(&self.time, &Rfc3339)
            .map_err(|_| field("time", format!("must be RFC 3339, got `{}`", self.time)))?
            .to_offset(UtcOffset::UTC);
        ExecutionReport::new(
            self.sequence,
            execution_id,
            client_order_id,
            self.exchange_order_id,
            event,
            cumulative,
            remaining,
            time,
        )
        .map_err(|problem| match problem.split_once(": ") {
            Some((name, problem)) => field(name, problem),
            None => field("report", problem),
        })
    }
}

impl From<&ExecutionReport> for ExecutionReportWire {
    fn from(report: &ExecutionReport) -> Self {
        let event = report.event();
        Self {
            sequence: report.sequence(),
            execution_id: report.execution_id().as_str().to_owned(),
            client_order_id: report.client_order_id().to_string(),
            exchange_order_id: report.exchange_order_id().to_owned(),
            kind: report.kind().as_str().to_owned(),
            quantity: event
                .quantity()
                .map_or_else(|| "0".to_owned(), |q| q.get().to_string()),
            price: event.traded().map(|(_, price)| price.to_string()),
            cumulative_quantity: report.cumulative_quantity().to_string(),
            remaining_quantity: report.remaining_quantity().to_string(),
            time: rfc3339(report.time()),
        }
    }
}

/// RFC 3339 in UTC with the exchange's sub-second digits (`…Z`).
fn rfc3339(at: OffsetDateTime) -> String {
    at.to_offset(UtcOffset::UTC)
        .format(&Rfc3339)
        // Every date the simulator or the parser above produces has a four-digit year.
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// Plain digits, at most ten of them (the largest order is 1 000 000 000 shares).
fn whole_shares(name: &str, text: &str) -> Result<Shares, ReportFormatError> {
    if text.is_empty() || text.len() > 10 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(field(
            name,
            format!("must be a whole number of shares as a decimal string, got `{text}`"),
        ));
    }
    let value: i64 = text
        .parse()
        .map_err(|_| field(name, format!("is not a number: `{text}`")))?;
    Shares::new(value).map_err(|problem| field(name, problem))
}

/// A decimal string in plain notation (digits, an optional fraction), then the domain's checks.
fn plain_price(text: &str) -> Result<Price, ReportFormatError> {
    let (int_part, frac_part) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int_part.is_empty()
        || !digits(int_part)
        || !digits(frac_part)
        || (text.contains('.') && frac_part.is_empty())
    {
        return Err(field(
            "price",
            format!("must be a decimal string like \"187.25\", got `{text}`"),
        ));
    }
    Price::parse(text).map_err(|problem| field("price", problem))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use time::macros::datetime;
    use uuid::Uuid;

    use super::*;

    const ORDER: &str = "0192f0b7-5c1e-7a4b-9d3e-1f2a3b4c5d6e";

    fn message(overrides: Value) -> String {
        let mut base = json!({
            "sequence": 42,
            "execution_id": "EXE-1",
            "client_order_id": ORDER,
            "exchange_order_id": "EX-1",
            "kind": "partial_fill",
            "quantity": "3",
            "price": "187.25",
            "cumulative_quantity": "3",
            "remaining_quantity": "7",
            "time": "2026-12-06T10:43:02.123456Z",
        });
        for (key, value) in overrides.as_object().unwrap() {
            base[key] = value.clone();
        }
        base.to_string()
    }

    #[test]
    fn a_partial_fill_is_read_exactly() {
        let report = parse_report(&message(json!({}))).unwrap();
        assert_eq!(report.sequence(), 42);
        assert_eq!(report.execution_id().as_str(), "EXE-1");
        assert_eq!(report.client_order_id().to_string(), ORDER);
        assert_eq!(report.exchange_order_id(), "EX-1");
        assert_eq!(
            report.event(),
            ExecutionEvent::PartialFill {
                quantity: Quantity::new(3).unwrap(),
                price: Price::parse("187.25").unwrap(),
            }
        );
        assert_eq!(report.cumulative_quantity().get(), 3);
        assert_eq!(report.remaining_quantity().get(), 7);
        assert_eq!(report.time(), datetime!(2026-12-06 10:43:02.123456 UTC));
    }

    #[test]
    fn every_kind_survives_the_round_trip() {
        let price = Price::parse("0.07").unwrap();
        let q = |n| Quantity::new(n).unwrap();
        let s = |n| Shares::new(n).unwrap();
        for (event, cumulative, remaining) in [
            (
                ExecutionEvent::PartialFill {
                    quantity: q(1),
                    price,
                },
                1,
                999_999_999,
            ),
            (
                ExecutionEvent::Fill {
                    quantity: q(9),
                    price,
                },
                10,
                0,
            ),
            (ExecutionEvent::Canceled { quantity: q(4) }, 6, 0),
            (ExecutionEvent::Expired { quantity: q(10) }, 0, 0),
            (ExecutionEvent::CancelRefused, 10, 0),
        ] {
            let report = ExecutionReport::new(
                u64::MAX,
                ExecutionId::parse("EXE-x").unwrap(),
                OrderId::from(Uuid::now_v7()),
                "EX-2".into(),
                event,
                s(cumulative),
                s(remaining),
                datetime!(2026-12-06 10:43:02.5 +01:00),
            )
            .unwrap();
            let text = to_message(&report);
            let wire: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(wire["kind"], report.kind().as_str());
            assert_eq!(wire["time"], "2026-12-06T09:43:02.5Z");
            assert!(wire["quantity"].is_string() && wire["cumulative_quantity"].is_string());
            assert_eq!(
                wire["price"].is_string(),
                event.traded().is_some(),
                "{text}"
            );
            let back = parse_report(&text).unwrap();
            assert_eq!(back.time(), report.time());
            assert_eq!(back, report);
        }
    }

    #[test]
    fn bad_fields_are_named() {
        for (overrides, name) in [
            (json!({"sequence": 0}), "sequence"),
            (json!({"execution_id": ""}), "execution_id"),
            (json!({"client_order_id": "nope"}), "client_order_id"),
            (json!({"exchange_order_id": " "}), "exchange_order_id"),
            (json!({"kind": "trade"}), "kind"),
            (json!({"quantity": "3.0"}), "quantity"),
            (json!({"quantity": "-3"}), "quantity"),
            (json!({"quantity": "0"}), "quantity"),
            (json!({"price": null}), "price"),
            (json!({"price": "1e2"}), "price"),
            (json!({"price": "1.005"}), "price"),
            (json!({"price": "0"}), "price"),
            (
                json!({"kind": "canceled", "remaining_quantity": "0"}),
                "price",
            ),
            (json!({"kind": "cancel_refused", "price": null}), "quantity"),
            (json!({"cumulative_quantity": "2"}), "cumulative_quantity"),
            (json!({"remaining_quantity": "0"}), "remaining_quantity"),
            (
                json!({"remaining_quantity": "12345678901"}),
                "remaining_quantity",
            ),
            (json!({"time": "yesterday"}), "time"),
        ] {
            match parse_report(&message(overrides.clone())) {
                Err(ReportFormatError::Field { field, .. }) => {
                    assert_eq!(field, name, "{overrides}")
                }
                other => panic!("{overrides}: expected a field error, got {other:?}"),
            }
        }
    }

    #[test]
    fn malformed_messages_and_json_numbers_are_refused_but_new_fields_are_ignored() {
        for text in [
            "not json".to_string(),
            "[]".to_string(),
            message(json!({"quantity": 3})),
            message(json!({"price": 187.25})),
            message(json!({"sequence": "42"})),
            message(json!({"sequence": -1})),
        ] {
            assert!(
                matches!(parse_report(&text), Err(ReportFormatError::Json(_))),
                "{text}"
            );
        }
        let mut with_more: Value = serde_json::from_str(&message(json!({}))).unwrap();
        with_more["venue"] = json!("XETR");
        assert!(parse_report(&with_more.to_string()).is_ok());
    }
}
