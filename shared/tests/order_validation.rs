//! Table-driven tests of the order request rules, exercised only through the public entry point
//! `NewOrder::parse_json`, with bodies built from raw JSON text so that number texts (`10.005`,
//! `1e2`, `10.50`) reach the parser exactly as a client would send them.

use order_shared::domain::{FieldError, NewOrder, OrderRejection, OrderType, Side};
use serde_json::Value;

const LIMIT_REQUIRED: &str = "Attribute `limit_price` is required for type `limit`";
const MARKET_PROHIBITED: &str = "Providing a `limit_price` is prohibited for type `market`";

/// A valid limit order, as `(attribute, raw JSON value)` pairs.
const LIMIT: &[(&str, &str)] = &[
    ("type", r#""limit""#),
    ("side", r#""buy""#),
    ("instrument", r#""US0378331005""#),
    ("limit_price", r#""10.50""#),
    ("quantity", "10"),
];

/// A valid market order, as `(attribute, raw JSON value)` pairs.
const MARKET: &[(&str, &str)] = &[
    ("type", r#""market""#),
    ("side", r#""sell""#),
    ("instrument", r#""US0378331005""#),
    ("quantity", "10"),
];

/// The JSON text of `base` with `field` set to the raw JSON `value` (appended if absent), or
/// removed when `value` is `None`.
fn body_text(base: &[(&str, &str)], field: &str, value: Option<&str>) -> String {
    let mut pairs: Vec<(&str, &str)> = base.to_vec();
    match (pairs.iter().position(|(name, _)| *name == field), value) {
        (Some(i), Some(v)) => pairs[i].1 = v,
        (Some(i), None) => {
            pairs.remove(i);
        }
        (None, Some(v)) => pairs.push((field, v)),
        (None, None) => {}
    }
    object_text(&pairs)
}

/// The JSON text of an object with the given `(attribute, raw JSON value)` members, in order.
fn object_text(pairs: &[(&str, &str)]) -> String {
    let members: Vec<String> = pairs
        .iter()
        .map(|(name, raw)| format!("{name:?}: {raw}"))
        .collect();
    format!("{{{}}}", members.join(", "))
}

fn limit_with(field: &str, raw: &str) -> String {
    body_text(LIMIT, field, Some(raw))
}

fn limit_without(field: &str) -> String {
    body_text(LIMIT, field, None)
}

fn market_with(field: &str, raw: &str) -> String {
    body_text(MARKET, field, Some(raw))
}

fn market_without(field: &str) -> String {
    body_text(MARKET, field, None)
}

fn parse(text: &str) -> Result<NewOrder, OrderRejection> {
    let body: Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("test body {text} is not JSON: {e}"));
    NewOrder::parse_json(&body)
}

fn accepted(text: &str) -> NewOrder {
    parse(text).unwrap_or_else(|rejection| panic!("{text} was refused: {rejection:?}"))
}

fn field_errors(text: &str) -> Vec<FieldError> {
    match parse(text) {
        Err(OrderRejection::Invalid(errors)) => errors,
        other => panic!("{text}: expected OrderRejection::Invalid, got {other:?}"),
    }
}

/// Asserts that `text` is refused with exactly one error, on `field`, whose message contains
/// `message_part`.
fn assert_single_error(text: &str, field: &str, message_part: &str) {
    let errors = field_errors(text);
    assert_eq!(
        errors.len(),
        1,
        "{text}: expected one error, got {errors:?}"
    );
    assert_eq!(errors[0].field, field, "{text}: wrong field in {errors:?}");
    assert!(
        errors[0].message.contains(message_part),
        "{text}: message {:?} does not contain {message_part:?}",
        errors[0].message
    );
}

// --- whole orders -------------------------------------------------------------------------------

#[test]
fn a_valid_limit_order_is_parsed_into_its_parts() {
    let order = accepted(&object_text(LIMIT));
    assert_eq!(order.order_type(), OrderType::Limit);
    assert_eq!(order.order_type().as_str(), "limit");
    assert_eq!(order.side(), Side::Buy);
    assert_eq!(order.instrument().as_str(), "US0378331005");
    assert_eq!(
        order.limit_price().map(|p| p.to_string()).as_deref(),
        Some("10.50")
    );
    assert_eq!(order.quantity().get(), 10);
}

#[test]
fn a_valid_market_order_is_parsed_without_a_price() {
    let order = accepted(&object_text(MARKET));
    assert_eq!(order.order_type(), OrderType::Market);
    assert_eq!(order.order_type().as_str(), "market");
    assert_eq!(order.side(), Side::Sell);
    assert_eq!(order.instrument().as_str(), "US0378331005");
    assert_eq!(order.limit_price(), None);
    assert_eq!(order.quantity().get(), 10);
}

#[test]
fn both_sides_are_accepted() {
    for (raw, expected) in [(r#""buy""#, Side::Buy), (r#""sell""#, Side::Sell)] {
        assert_eq!(accepted(&limit_with("side", raw)).side(), expected, "{raw}");
        assert_eq!(
            accepted(&market_with("side", raw)).side(),
            expected,
            "{raw}"
        );
    }
}

// --- instrument (ISIN) --------------------------------------------------------------------------

#[test]
fn valid_isins_are_accepted_and_stored_upper_case() {
    for (input, expected) in [
        ("US0378331005", "US0378331005"), // Apple
        ("us0378331005", "US0378331005"), // lower-case input
        ("Us0378331005", "US0378331005"), // mixed case
        ("DE000BAY0017", "DE000BAY0017"), // Bayer, letters inside
        ("de000bay0017", "DE000BAY0017"), // lower-case letters inside
        ("AU0000XVGZA3", "AU0000XVGZA3"),
        ("au0000xvgza3", "AU0000XVGZA3"),
        ("GB0002634946", "GB0002634946"),
        ("US5949181045", "US5949181045"),
        ("IE00B4L5Y983", "IE00B4L5Y983"),
        ("US88160R1014", "US88160R1014"),
        ("CH0012032048", "CH0012032048"),
        ("JP3435000009", "JP3435000009"),
        ("XS2314659447", "XS2314659447"),
    ] {
        let order = accepted(&limit_with("instrument", &format!("{input:?}")));
        assert_eq!(order.instrument().as_str(), expected, "input {input}");
    }
}

#[test]
fn invalid_isins_are_refused_with_the_reason() {
    for (input, message_part) in [
        (
            "US0378331006",
            "Attribute `instrument` has an invalid check digit",
        ),
        ("us0378331006", "has an invalid check digit"),
        ("DE000BAY0018", "has an invalid check digit"),
        ("US037833100", "must be 12 characters (an ISIN), got 11"),
        ("US03783310055", "must be 12 characters (an ISIN), got 13"),
        ("", "must be 12 characters (an ISIN), got 0"),
        (" US0378331005", "must be 12 characters (an ISIN), got 13"),
        ("1S0378331005", "must start with a two-letter country code"),
        ("ÜS0378331005", "must start with a two-letter country code"),
        (
            "US03783310-5",
            "characters 3 to 11 must be letters or digits",
        ),
        (
            "US03783310é5",
            "characters 3 to 11 must be letters or digits",
        ),
        ("US037833100X", "must end with a check digit"),
    ] {
        assert_single_error(
            &limit_with("instrument", &format!("{input:?}")),
            "instrument",
            message_part,
        );
    }
}

// --- limit_price: values ------------------------------------------------------------------------

#[test]
fn limit_prices_are_accepted_as_numbers_or_decimal_strings_and_normalised_to_two_places() {
    for (raw, expected) in [
        (r#""120.5""#, "120.50"),
        ("120.5", "120.50"),
        (r#""10.5""#, "10.50"),
        ("10.50", "10.50"),
        ("10", "10.00"),
        (r#""10""#, "10.00"),
        ("10.500", "10.50"),
        (r#""10.500""#, "10.50"),
        ("0.01", "0.01"),
        ("1e2", "100.00"),
        ("1E2", "100.00"),
        ("1.5e1", "15.00"),
        ("12345e-2", "123.45"),
        ("999999999.99", "999999999.99"),
        ("1000000000", "1000000000.00"),
        ("1000000000.00", "1000000000.00"),
        (r#""1000000000.00""#, "1000000000.00"),
    ] {
        let order = accepted(&limit_with("limit_price", raw));
        assert_eq!(
            order.limit_price().map(|p| p.to_string()).as_deref(),
            Some(expected),
            "limit_price {raw}"
        );
    }
}

#[test]
fn invalid_limit_prices_are_refused_with_the_reason() {
    for (raw, message_part) in [
        (
            "10.005",
            "Attribute `limit_price` must have at most 2 decimal places",
        ),
        (r#""10.005""#, "must have at most 2 decimal places"),
        ("1e-3", "must have at most 2 decimal places"),
        ("0", "Attribute `limit_price` must be greater than 0"),
        ("0.00", "must be greater than 0"),
        (r#""0""#, "must be greater than 0"),
        ("-0", "must be greater than 0"),
        ("-1", "must be greater than 0"),
        ("-0.01", "must be greater than 0"),
        (r#""-5""#, "must be greater than 0"),
        (
            "1000000000.01",
            "Attribute `limit_price` must be at most 1000000000.00",
        ),
        (r#""1000000000.01""#, "must be at most 1000000000.00"),
        ("1e10", "must be at most 1000000000.00"),
        ("1e28", "must be at most 1000000000.00"),
        // Beyond what a Decimal can hold at all: still reported as out of range.
        (
            "1e30",
            "Attribute `limit_price` must be at most 1000000000.00",
        ),
        ("1e99999999999", "must be at most 1000000000.00"),
        (
            "99999999999999999999999999999999",
            "must be at most 1000000000.00",
        ),
        (
            r#""abc""#,
            "Attribute `limit_price` must be a decimal number",
        ),
        (r#""""#, "must be a decimal number"),
        (r#""1,5""#, "must be a decimal number"),
        (r#""NaN""#, "must be a decimal number"),
        (
            "true",
            "Attribute `limit_price` must be a decimal number or a decimal string, got a boolean",
        ),
        (
            "[10]",
            "must be a decimal number or a decimal string, got an array",
        ),
        (
            r#"{"amount": 10}"#,
            "must be a decimal number or a decimal string, got an object",
        ),
    ] {
        assert_single_error(&limit_with("limit_price", raw), "limit_price", message_part);
    }
}

// --- limit_price: presence depends on the type --------------------------------------------------

#[test]
fn limit_price_presence_rules_use_the_exact_messages() {
    for (text, expected_message) in [
        (limit_without("limit_price"), LIMIT_REQUIRED),
        (limit_with("limit_price", "null"), LIMIT_REQUIRED),
        (market_with("limit_price", r#""10.50""#), MARKET_PROHIBITED),
        (market_with("limit_price", "10.5"), MARKET_PROHIBITED),
    ] {
        let errors = field_errors(&text);
        assert_eq!(
            errors,
            vec![FieldError::new("limit_price", expected_message)],
            "{text}"
        );
    }
}

#[test]
fn a_market_order_with_a_null_or_absent_limit_price_is_accepted() {
    for text in [
        market_with("limit_price", "null"),
        market_without("limit_price"),
    ] {
        assert_eq!(accepted(&text).limit_price(), None, "{text}");
    }
}

#[test]
fn a_malformed_price_on_a_market_order_reports_the_malformation() {
    assert_single_error(
        &market_with("limit_price", r#""abc""#),
        "limit_price",
        "Attribute `limit_price` must be a decimal number",
    );
}

// --- quantity -----------------------------------------------------------------------------------

#[test]
fn quantities_from_one_to_the_bound_are_accepted() {
    for (raw, expected) in [("1", 1), ("42", 42), ("1000000000", 1_000_000_000)] {
        assert_eq!(
            accepted(&limit_with("quantity", raw)).quantity().get(),
            expected,
            "quantity {raw}"
        );
    }
}

#[test]
fn invalid_quantities_are_refused_with_the_reason() {
    for (raw, message_part) in [
        ("0", "Attribute `quantity` must be at least 1"),
        ("-0", "must be at least 1"),
        ("-1", "must be at least 1"),
        ("-99999999999999999999", "must be at least 1"),
        (
            "1000000001",
            "Attribute `quantity` must be at most 1000000000",
        ),
        ("99999999999999999999", "must be at most 1000000000"),
        ("1.5", "Attribute `quantity` must be an integer"),
        ("10.0", "must be an integer"),
        ("1e3", "must be an integer"),
        ("1E9", "must be an integer"),
        (
            r#""10""#,
            "Attribute `quantity` must be an integer, got a string",
        ),
        ("true", "must be an integer, got a boolean"),
        ("[1]", "must be an integer, got an array"),
        (r#"{"n": 1}"#, "must be an integer, got an object"),
    ] {
        assert_single_error(&limit_with("quantity", raw), "quantity", message_part);
    }
}

// --- type and side ------------------------------------------------------------------------------

#[test]
fn unknown_type_and_side_values_are_refused() {
    for (field, raw, message_part) in [
        (
            "type",
            r#""stop""#,
            "Attribute `type` must be `market` or `limit`, got `stop`",
        ),
        (
            "type",
            r#""LIMIT""#,
            "must be `market` or `limit`, got `LIMIT`",
        ),
        ("type", r#""""#, "must be `market` or `limit`, got ``"),
        (
            "side",
            r#""hold""#,
            "Attribute `side` must be `buy` or `sell`, got `hold`",
        ),
        ("side", r#""BUY""#, "must be `buy` or `sell`, got `BUY`"),
    ] {
        assert_single_error(&market_with(field, raw), field, message_part);
    }
}

#[test]
fn string_attributes_of_the_wrong_json_type_are_refused() {
    for (field, raw, message_part) in [
        (
            "type",
            "1",
            "Attribute `type` must be a string, got a number",
        ),
        ("type", r#"["market"]"#, "must be a string, got an array"),
        (
            "side",
            "1",
            "Attribute `side` must be a string, got a number",
        ),
        ("side", "true", "must be a string, got a boolean"),
        (
            "instrument",
            "378331005",
            "Attribute `instrument` must be a string, got a number",
        ),
        (
            "instrument",
            r#"{"isin": "US0378331005"}"#,
            "must be a string, got an object",
        ),
    ] {
        assert_single_error(&market_with(field, raw), field, message_part);
    }
}

// --- missing and unknown attributes -------------------------------------------------------------

#[test]
fn each_missing_attribute_is_reported_as_required() {
    for (field, message) in [
        ("type", "Attribute `type` is required"),
        ("side", "Attribute `side` is required"),
        ("instrument", "Attribute `instrument` is required"),
        ("quantity", "Attribute `quantity` is required"),
        ("limit_price", LIMIT_REQUIRED),
    ] {
        assert_single_error(&limit_without(field), field, message);
    }
}

#[test]
fn a_null_attribute_counts_as_missing() {
    for field in ["type", "side", "instrument", "quantity"] {
        assert_single_error(
            &market_with(field, "null"),
            field,
            &format!("Attribute `{field}` is required"),
        );
    }
}

#[test]
fn unknown_attributes_are_refused_one_error_each() {
    for (extra, expected_fields) in [
        (vec![("note", r#""hi""#)], vec!["note"]),
        (vec![("price", "10")], vec!["price"]),
        (vec![("Type", r#""limit""#)], vec!["Type"]),
        (vec![("comment", "null")], vec!["comment"]),
        (
            vec![("zeta", "1"), ("alpha", "2")],
            vec!["alpha", "zeta"], // reported in name order
        ),
    ] {
        let mut pairs = LIMIT.to_vec();
        pairs.extend(extra);
        let text = object_text(&pairs);
        let errors = field_errors(&text);
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, expected_fields, "{text}");
        for error in &errors {
            assert_eq!(
                error.message,
                format!("Unknown attribute `{}`", error.field),
                "{text}"
            );
        }
    }
}

// --- body shape and error collection ------------------------------------------------------------

#[test]
fn bodies_that_are_not_json_objects_are_refused_as_not_an_object() {
    for text in [
        "[]",
        r#"[{"type": "market", "side": "buy", "instrument": "US0378331005", "quantity": 1}]"#,
        r#""order""#,
        "42",
        "10.5",
        "null",
        "true",
    ] {
        assert_eq!(parse(text), Err(OrderRejection::NotAnObject), "{text}");
    }
}

#[test]
fn every_error_is_reported_together_not_just_the_first() {
    for (text, expected) in [
        (
            "{}".to_string(),
            vec![
                ("type", "Attribute `type` is required"),
                ("side", "Attribute `side` is required"),
                ("instrument", "Attribute `instrument` is required"),
                ("quantity", "Attribute `quantity` is required"),
            ],
        ),
        (
            r#"{"type": "limit", "instrument": "US0378331006", "quantity": 0}"#.to_string(),
            vec![
                ("side", "Attribute `side` is required"),
                ("instrument", "has an invalid check digit"),
                ("quantity", "must be at least 1"),
                ("limit_price", LIMIT_REQUIRED),
            ],
        ),
        (
            r#"{"type": "market", "side": "buy", "instrument": "US037833100",
                "limit_price": 10, "quantity": "5"}"#
                .to_string(),
            vec![
                ("instrument", "must be 12 characters"),
                ("quantity", "must be an integer, got a string"),
                ("limit_price", MARKET_PROHIBITED),
            ],
        ),
        (
            r#"{"type": "stop", "side": 1, "instrument": "US0378331006",
                "limit_price": "10.005", "quantity": 1.5, "extra": true}"#
                .to_string(),
            vec![
                ("extra", "Unknown attribute `extra`"),
                ("type", "must be `market` or `limit`, got `stop`"),
                ("side", "must be a string, got a number"),
                ("instrument", "has an invalid check digit"),
                ("quantity", "must be an integer"),
                ("limit_price", "must have at most 2 decimal places"),
            ],
        ),
    ] {
        let errors = field_errors(&text);
        assert_eq!(
            errors.len(),
            expected.len(),
            "{text}: expected {expected:?}, got {errors:?}"
        );
        for (field, message_part) in expected {
            assert!(
                errors
                    .iter()
                    .any(|e| e.field == field && e.message.contains(message_part)),
                "{text}: no error on {field} containing {message_part:?} in {errors:?}"
            );
        }
    }
}

// --- idempotency fingerprint --------------------------------------------------------------------

#[test]
fn fingerprints_are_equal_for_requests_that_parse_to_the_same_order() {
    for (a, b) in [
        (
            r#"{"type": "limit", "side": "buy", "instrument": "us0378331005",
                "limit_price": "10.5", "quantity": 3}"#,
            r#"{"type": "limit", "side": "buy", "instrument": "US0378331005",
                "limit_price": 10.50, "quantity": 3}"#,
        ),
        (
            r#"{"type": "limit", "side": "sell", "instrument": "DE000BAY0017",
                "limit_price": 1e2, "quantity": 1}"#,
            r#"{"quantity": 1, "limit_price": "100.00", "instrument": "de000bay0017",
                "side": "sell", "type": "limit"}"#,
        ),
        (
            r#"{"type": "market", "side": "buy", "instrument": "US0378331005", "quantity": 7}"#,
            r#"{"type": "market", "side": "buy", "instrument": "US0378331005",
                "limit_price": null, "quantity": 7}"#,
        ),
    ] {
        assert_eq!(
            accepted(a).fingerprint(),
            accepted(b).fingerprint(),
            "{a} vs {b}"
        );
    }
}

#[test]
fn fingerprints_differ_when_the_orders_differ() {
    let base = r#"{"type": "limit", "side": "buy", "instrument": "US0378331005",
                   "limit_price": "10.5", "quantity": 3}"#;
    for (what, other) in [
        (
            "quantity",
            r#"{"type": "limit", "side": "buy", "instrument": "US0378331005",
                "limit_price": "10.5", "quantity": 4}"#,
        ),
        (
            "side",
            r#"{"type": "limit", "side": "sell", "instrument": "US0378331005",
                "limit_price": "10.5", "quantity": 3}"#,
        ),
        (
            "instrument",
            r#"{"type": "limit", "side": "buy", "instrument": "US5949181045",
                "limit_price": "10.5", "quantity": 3}"#,
        ),
        (
            "limit_price",
            r#"{"type": "limit", "side": "buy", "instrument": "US0378331005",
                "limit_price": "10.51", "quantity": 3}"#,
        ),
        (
            "type",
            r#"{"type": "market", "side": "buy", "instrument": "US0378331005", "quantity": 3}"#,
        ),
    ] {
        assert_ne!(
            accepted(base).fingerprint(),
            accepted(other).fingerprint(),
            "fingerprint should change with {what}"
        );
    }
}

// --- regressions: inputs a decimal library would round or accept -------------------------------------

/// A mantissa with more than 28 significant digits must be refused, not rounded to 28 digits
/// (which is what `Decimal::from_scientific` would do).
#[test]
fn scientific_prices_are_never_rounded_into_validity() {
    // 10.0000000000000000000000000000001 — more than two decimal places.
    let text = limit_with("limit_price", "1.000000000000000000000000000001e1");
    let errors = field_errors(&text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].field, "limit_price");
}

/// `Decimal::from_str_exact` alone would accept `_` as a digit separator.
#[test]
fn price_strings_with_digit_separators_are_refused() {
    assert_single_error(
        &limit_with("limit_price", r#""1_000""#),
        "limit_price",
        "must be a decimal number",
    );
}
