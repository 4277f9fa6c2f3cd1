//! Bad input: the right status and message, and nothing stored, nothing sent.

use axum::body::Body;
use http::StatusCode;
use serde_json::Value;
use system_tests::LIMIT_ORDER;

use crate::helpers::{Harness, MAX_BODY, error_fields, error_message, limit_with, request};

const LIMIT_REQUIRED: &str = "Attribute `limit_price` is required for type `limit`";
const MARKET_PROHIBITED: &str = "Providing a `limit_price` is prohibited for type `market`";
const INVALID_ORDER: &str = "The order is invalid";

enum Expected {
    /// `message` equals this.
    Message(&'static str),
    /// `message` starts with this.
    MessagePrefix(&'static str),
    /// 422 with this `message` and exactly these error fields, each with the given message
    /// where one is given.
    Invalid(&'static str, Vec<(&'static str, Option<&'static str>)>),
}

struct BadInput {
    name: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    /// Also send a `Content-Length` header.
    declare_length: bool,
    key: Option<String>,
    status: StatusCode,
    expected: Expected,
}

fn json_case(name: &'static str, body: &str, status: StatusCode, expected: Expected) -> BadInput {
    BadInput {
        name,
        content_type: Some("application/json"),
        body: body.as_bytes().to_vec(),
        declare_length: false,
        key: None,
        status,
        expected,
    }
}

fn invalid(
    name: &'static str,
    body: &str,
    errors: Vec<(&'static str, Option<&'static str>)>,
) -> BadInput {
    json_case(
        name,
        body,
        StatusCode::UNPROCESSABLE_ENTITY,
        Expected::Invalid(INVALID_ORDER, errors),
    )
}

fn bad_inputs() -> Vec<BadInput> {
    use StatusCode as S;
    const NOT_JSON: &str = "Request body is not valid JSON";
    const NOT_OBJECT: &str = "Request body must be a JSON object";
    const WRONG_TYPE: &str = "Content-Type must be application/json";
    const TOO_LARGE: &str = "Request body is larger than 16384 bytes";
    let oversized = {
        let mut body = LIMIT_ORDER.to_owned();
        body.push_str(&" ".repeat(MAX_BODY + 1 - body.len()));
        body
    };
    let long_key = "k".repeat(101);
    let beyond_30_days = (time::OffsetDateTime::now_utc() + time::Duration::days(31))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    vec![
        json_case(
            "not JSON",
            r#"{"type": "limit","#,
            S::BAD_REQUEST,
            Expected::MessagePrefix(NOT_JSON),
        ),
        json_case(
            "empty body",
            "",
            S::BAD_REQUEST,
            Expected::MessagePrefix(NOT_JSON),
        ),
        json_case(
            "JSON with trailing garbage",
            &format!("{LIMIT_ORDER} x"),
            S::BAD_REQUEST,
            Expected::MessagePrefix(NOT_JSON),
        ),
        BadInput {
            body: vec![b'"', 0xff, 0xfe, b'"'],
            ..json_case(
                "invalid UTF-8",
                "",
                S::BAD_REQUEST,
                Expected::MessagePrefix(NOT_JSON),
            )
        },
        json_case(
            "JSON array",
            &format!("[{LIMIT_ORDER}]"),
            S::BAD_REQUEST,
            Expected::Message(NOT_OBJECT),
        ),
        json_case(
            "JSON string",
            r#""limit""#,
            S::BAD_REQUEST,
            Expected::Message(NOT_OBJECT),
        ),
        json_case(
            "JSON number",
            "42",
            S::BAD_REQUEST,
            Expected::Message(NOT_OBJECT),
        ),
        json_case(
            "JSON null",
            "null",
            S::BAD_REQUEST,
            Expected::Message(NOT_OBJECT),
        ),
        BadInput {
            content_type: None,
            ..json_case(
                "missing content type",
                LIMIT_ORDER,
                S::UNSUPPORTED_MEDIA_TYPE,
                Expected::Message(WRONG_TYPE),
            )
        },
        BadInput {
            content_type: Some("text/plain"),
            ..json_case(
                "text/plain",
                LIMIT_ORDER,
                S::UNSUPPORTED_MEDIA_TYPE,
                Expected::Message(WRONG_TYPE),
            )
        },
        BadInput {
            content_type: Some("application/x-www-form-urlencoded"),
            ..json_case(
                "form content type",
                "type=limit",
                S::UNSUPPORTED_MEDIA_TYPE,
                Expected::Message(WRONG_TYPE),
            )
        },
        json_case(
            "body over 16 KiB",
            &oversized,
            S::PAYLOAD_TOO_LARGE,
            Expected::Message(TOO_LARGE),
        ),
        BadInput {
            declare_length: true,
            ..json_case(
                "body over 16 KiB with Content-Length",
                &oversized,
                S::PAYLOAD_TOO_LARGE,
                Expected::Message(TOO_LARGE),
            )
        },
        invalid(
            "unknown field",
            &limit_with("account", r#""x""#),
            vec![("account", Some("Unknown attribute `account`"))],
        ),
        invalid(
            "all fields missing",
            "{}",
            vec![
                ("instrument", Some("Attribute `instrument` is required")),
                ("quantity", Some("Attribute `quantity` is required")),
                ("side", Some("Attribute `side` is required")),
                ("type", Some("Attribute `type` is required")),
            ],
        ),
        invalid(
            "quantity missing",
            r#"{"type":"market","side":"buy","instrument":"US0378331005"}"#,
            vec![("quantity", Some("Attribute `quantity` is required"))],
        ),
        invalid(
            "bad ISIN check digit",
            &limit_with("instrument", r#""US0378331006""#),
            vec![(
                "instrument",
                Some("Attribute `instrument` has an invalid check digit"),
            )],
        ),
        invalid(
            "ISIN too short",
            &limit_with("instrument", r#""US037833100""#),
            vec![("instrument", None)],
        ),
        invalid(
            "ISIN with non-ASCII",
            &limit_with("instrument", r#""ÜS037833100""#),
            vec![("instrument", None)],
        ),
        invalid(
            "instrument is a number",
            &limit_with("instrument", "378331005"),
            vec![("instrument", None)],
        ),
        invalid(
            "price with 3 decimals (string)",
            &limit_with("limit_price", r#""120.505""#),
            vec![(
                "limit_price",
                Some("Attribute `limit_price` must have at most 2 decimal places"),
            )],
        ),
        invalid(
            "price with 3 decimals (number)",
            &limit_with("limit_price", "120.505"),
            vec![(
                "limit_price",
                Some("Attribute `limit_price` must have at most 2 decimal places"),
            )],
        ),
        invalid(
            "price 0",
            &limit_with("limit_price", "0"),
            vec![("limit_price", None)],
        ),
        invalid(
            "negative price",
            &limit_with("limit_price", r#""-1.00""#),
            vec![("limit_price", None)],
        ),
        invalid(
            "price above 1 000 000 000.00",
            &limit_with("limit_price", "1000000000.01"),
            vec![("limit_price", None)],
        ),
        invalid(
            "price far beyond f64",
            &limit_with("limit_price", "1e400"),
            vec![("limit_price", None)],
        ),
        // Ambiguous: a parser keeps the last value, a gateway or a log may read the first.
        invalid(
            "quantity given twice",
            r#"{"type":"market","side":"buy","instrument":"US0378331005","quantity":1,"quantity":1000000}"#,
            vec![(
                "quantity",
                Some("Attribute `quantity` is given more than once; name each attribute once"),
            )],
        ),
        invalid(
            "type and limit price given twice, alongside another problem",
            r#"{"type":"limit","side":"buy","instrument":"US0378331005","limit_price":"1.00","type":"market","limit_price":null,"quantity":0}"#,
            vec![("type", None), ("limit_price", None), ("quantity", None)],
        ),
        // One notation for decimal strings: digits and an optional fraction.
        invalid(
            "price string with an exponent",
            &limit_with("limit_price", r#""1e2""#),
            vec![(
                "limit_price",
                Some(
                    "Attribute `limit_price` must be a decimal string in plain notation such as \
                     `120.50` (digits, optionally a `.` and more digits), without an exponent",
                ),
            )],
        ),
        invalid(
            "price string with a sign",
            &limit_with("limit_price", r#""+1.00""#),
            vec![("limit_price", None)],
        ),
        invalid(
            "price string with a leading point",
            &limit_with("limit_price", r#"".5""#),
            vec![("limit_price", None)],
        ),
        invalid(
            "price string with a trailing point",
            &limit_with("limit_price", r#""1.""#),
            vec![("limit_price", None)],
        ),
        invalid(
            "price is not a number",
            &limit_with("limit_price", r#""twelve""#),
            vec![("limit_price", None)],
        ),
        invalid(
            "price is a boolean",
            &limit_with("limit_price", "true"),
            vec![("limit_price", None)],
        ),
        invalid(
            "quantity 0",
            &limit_with("quantity", "0"),
            vec![("quantity", Some("Attribute `quantity` must be at least 1"))],
        ),
        invalid(
            "quantity above 1 000 000 000",
            &limit_with("quantity", "1000000001"),
            vec![("quantity", None)],
        ),
        invalid(
            "quantity beyond i64",
            &limit_with("quantity", "99999999999999999999999"),
            vec![("quantity", None)],
        ),
        invalid(
            "quantity as a string",
            &limit_with("quantity", r#""10""#),
            vec![("quantity", None)],
        ),
        invalid(
            "fractional quantity",
            &limit_with("quantity", "10.5"),
            vec![("quantity", None)],
        ),
        invalid(
            "quantity with an exponent",
            &limit_with("quantity", "1e3"),
            vec![("quantity", None)],
        ),
        invalid(
            "unknown type",
            &limit_with("type", r#""stop""#),
            vec![("type", None)],
        ),
        invalid(
            "unknown side",
            &limit_with("side", r#""hold""#),
            vec![("side", None)],
        ),
        invalid(
            "limit with null price",
            &limit_with("limit_price", "null"),
            vec![("limit_price", Some(LIMIT_REQUIRED))],
        ),
        invalid(
            "limit without price",
            r#"{"type":"limit","side":"buy","instrument":"US0378331005","quantity":10}"#,
            vec![("limit_price", Some(LIMIT_REQUIRED))],
        ),
        invalid(
            "market with price",
            r#"{"type":"market","side":"sell","instrument":"DE000BAY0017","limit_price":"1.00","quantity":5}"#,
            vec![("limit_price", Some(MARKET_PROHIBITED))],
        ),
        invalid(
            "every problem is reported",
            r#"{"type":"market","side":"short","instrument":"XX","limit_price":1,"quantity":0,"x":1}"#,
            vec![
                ("instrument", None),
                ("limit_price", Some(MARKET_PROHIBITED)),
                ("quantity", None),
                ("side", None),
                ("x", None),
            ],
        ),
        invalid(
            "expires_at in the past",
            &limit_with("expires_at", r#""2020-01-01T00:00:00Z""#),
            vec![(
                "expires_at",
                Some("Attribute `expires_at` must be in the future"),
            )],
        ),
        invalid(
            "expires_at more than 30 days ahead",
            &limit_with("expires_at", &format!("\"{beyond_30_days}\"")),
            vec![(
                "expires_at",
                Some("Attribute `expires_at` must be at most 30 days ahead"),
            )],
        ),
        invalid(
            "expires_at not a time",
            &limit_with("expires_at", r#""tomorrow""#),
            vec![("expires_at", None)],
        ),
        invalid(
            "expires_at without an offset",
            &limit_with("expires_at", r#""2030-01-01T00:00:00""#),
            vec![("expires_at", None)],
        ),
        invalid(
            "expires_at as a number",
            &limit_with("expires_at", "1893456000"),
            vec![("expires_at", None)],
        ),
        invalid(
            "expires_at and another problem",
            &limit_with("quantity", "0").replace('}', r#","expires_at":"soon"}"#),
            vec![("expires_at", None), ("quantity", None)],
        ),
        BadInput {
            key: Some(long_key.clone()),
            ..invalid(
                "Idempotency-Key of 101 characters",
                LIMIT_ORDER,
                vec![("Idempotency-Key", Some("must be at most 100 characters"))],
            )
        },
        BadInput {
            key: Some(long_key),
            ..invalid(
                "Idempotency-Key of 101 characters and a bad order",
                &limit_with("quantity", "0"),
                vec![("Idempotency-Key", None), ("quantity", None)],
            )
        },
        BadInput {
            key: Some("tab\there".into()),
            ..invalid(
                "Idempotency-Key with a control character",
                LIMIT_ORDER,
                vec![("Idempotency-Key", None)],
            )
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_is_refused_with_its_status_and_nothing_is_stored_or_sent() {
    let h = Harness::start().await;
    for case in bad_inputs() {
        let name = case.name;
        let mut builder = request(case.content_type);
        if case.declare_length {
            builder = builder.header("content-length", case.body.len());
        }
        if let Some(key) = &case.key {
            builder = builder.header("idempotency-key", key.as_str());
        }
        let response = h
            .api
            .send(builder.body(Body::from(case.body)).unwrap())
            .await;
        let json = &response.json;

        assert_eq!(response.status, case.status, "{name}: {json}");
        let message = json["message"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: a message in {json}"));
        match &case.expected {
            Expected::Message(expected) => {
                assert_eq!(message, *expected, "{name}");
                assert!(json.get("errors").is_none(), "{name}: {json}");
            }
            Expected::MessagePrefix(prefix) => {
                assert!(message.starts_with(prefix), "{name}: {message}");
            }
            Expected::Invalid(expected, errors) => {
                assert_eq!(message, *expected, "{name}");
                let mut fields: Vec<String> = errors.iter().map(|(f, _)| (*f).into()).collect();
                fields.sort();
                assert_eq!(error_fields(json), fields, "{name}: {json}");
                for (field, expected) in errors {
                    if let Some(expected) = expected {
                        assert_eq!(error_message(json, field), *expected, "{name}: {json}");
                    }
                }
            }
        }
        assert_eq!(h.orders().await, 0, "{name}: nothing stored");
        assert_eq!(h.events().await, 0, "{name}: no event");
        assert_eq!(
            h.queue.drain().await,
            Vec::<Value>::new(),
            "{name}: nothing sent"
        );
    }
}
