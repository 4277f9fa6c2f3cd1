//! A validated order request, and the parser that is the only way to build one from a body.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{FieldError, Isin, OrderRejection, Price, Quantity};

/// Market orders execute at the best available price; limit orders carry a price bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum OrderType {
    Market,
    Limit,
}

impl OrderType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Market => "market",
            Self::Limit => "limit",
        }
    }
}

impl FromStr for OrderType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "market" => Ok(Self::Market),
            "limit" => Ok(Self::Limit),
            other => Err(format!("must be `market` or `limit`, got `{other}`")),
        }
    }
}

impl fmt::Display for OrderType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the client buys or sells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Buy => "buy",
            Self::Sell => "sell",
        }
    }
}

impl FromStr for Side {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "buy" => Ok(Self::Buy),
            "sell" => Ok(Self::Sell),
            other => Err(format!("must be `buy` or `sell`, got `{other}`")),
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An order as a client asked for it, valid by construction: a limit order always has a price
/// and a market order never has one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NewOrder {
    order_type: OrderType,
    side: Side,
    instrument: Isin,
    limit_price: Option<Price>,
    quantity: Quantity,
    /// The client's own time in force, if it gave one (checked against the clock, and defaulted,
    /// by [`crate::ExpiryPolicy`] at acceptance).
    requested_expiry: Option<OffsetDateTime>,
}

const FIELDS: [&str; 6] = [
    "type",
    "side",
    "instrument",
    "limit_price",
    "quantity",
    "expires_at",
];

/// The attributes a JSON object body names more than once, each once, in the order of their
/// second appearance. A JSON parser keeps the last value (`serde_json` included), while a
/// gateway, a log or a WAF may read the first: such a body is ambiguous, and refused with one
/// error per attribute (see [`repeated_attribute_error`]). Empty for anything but an object.
pub fn repeated_attributes(body: &[u8]) -> Vec<String> {
    struct Keys(Vec<String>);
    impl<'de> Deserialize<'de> for Keys {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct Visitor;
            impl<'de> serde::de::Visitor<'de> for Visitor {
                type Value = Keys;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Keys, A::Error> {
                    let mut keys = Vec::new();
                    while let Some(key) = map.next_key::<String>()? {
                        map.next_value::<serde::de::IgnoredAny>()?;
                        keys.push(key);
                    }
                    Ok(Keys(keys))
                }
            }
            deserializer.deserialize_map(Visitor)
        }
    }
    let Ok(Keys(keys)) = serde_json::from_slice::<Keys>(body) else {
        return Vec::new();
    };
    let mut seen = std::collections::HashSet::new();
    let mut repeated: Vec<String> = Vec::new();
    for key in keys {
        if !seen.insert(key.clone()) && !repeated.contains(&key) {
            repeated.push(key);
        }
    }
    repeated
}

/// The error for an attribute a body names more than once.
pub fn repeated_attribute_error(field: &str) -> FieldError {
    attribute_error(
        field,
        "is given more than once; name each attribute once".into(),
    )
}

impl NewOrder {
    /// Combines already-valid parts, enforcing the rule that ties the price to the type.
    pub fn new(
        order_type: OrderType,
        side: Side,
        instrument: Isin,
        limit_price: Option<Price>,
        quantity: Quantity,
    ) -> Result<Self, FieldError> {
        match (order_type, &limit_price) {
            (OrderType::Limit, None) => Err(limit_price_required()),
            (OrderType::Market, Some(_)) => Err(limit_price_prohibited()),
            _ => Ok(Self {
                order_type,
                side,
                instrument,
                limit_price,
                quantity,
                requested_expiry: None,
            }),
        }
    }

    /// The same order with the client's requested expiry.
    pub fn with_requested_expiry(self, requested_expiry: Option<OffsetDateTime>) -> Self {
        Self {
            requested_expiry,
            ..self
        }
    }

    /// Parses a request body that is already known to be JSON. Every problem is reported, not
    /// just the first, so a client can fix its request in one go.
    pub fn parse_json(body: &Value) -> Result<Self, OrderRejection> {
        let object = body.as_object().ok_or(OrderRejection::NotAnObject)?;
        Self::parse_object(object).map_err(OrderRejection::Invalid)
    }

    fn parse_object(object: &Map<String, Value>) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut unknown: Vec<&String> = object
            .keys()
            .filter(|key| !FIELDS.contains(&key.as_str()))
            .collect();
        unknown.sort();
        for key in unknown {
            errors.push(FieldError::new(
                key.as_str(),
                format!("Unknown attribute `{key}`"),
            ));
        }

        let order_type = required_string(object, "type", &mut errors)
            .and_then(|s| record(s.parse::<OrderType>(), "type", &mut errors));
        let side = required_string(object, "side", &mut errors)
            .and_then(|s| record(s.parse::<Side>(), "side", &mut errors));
        let instrument = required_string(object, "instrument", &mut errors)
            .and_then(|s| record(Isin::parse(s), "instrument", &mut errors));
        let quantity = match object.get("quantity") {
            None | Some(Value::Null) => {
                errors.push(required("quantity"));
                None
            }
            Some(value) => record(parse_quantity(value), "quantity", &mut errors),
        };
        let requested_expiry = match object.get("expires_at") {
            None | Some(Value::Null) => None,
            Some(value) => record(parse_time(value), "expires_at", &mut errors),
        };
        let limit_price = match object.get("limit_price") {
            None | Some(Value::Null) => Ok(None),
            Some(value) => parse_price(value).map(Some),
        };

        let limit_price = match (order_type, limit_price) {
            (_, Err(message)) => {
                errors.push(attribute_error("limit_price", message));
                None
            }
            (Some(OrderType::Limit), Ok(None)) => {
                errors.push(limit_price_required());
                None
            }
            (Some(OrderType::Market), Ok(Some(_))) => {
                errors.push(limit_price_prohibited());
                None
            }
            (_, Ok(price)) => price,
        };

        match (order_type, side, instrument, quantity) {
            (Some(order_type), Some(side), Some(instrument), Some(quantity))
                if errors.is_empty() =>
            {
                Self::new(order_type, side, instrument, limit_price, quantity)
                    .map(|order| order.with_requested_expiry(requested_expiry))
                    .map_err(|e| vec![e])
            }
            _ => Err(errors),
        }
    }

    pub fn order_type(&self) -> OrderType {
        self.order_type
    }

    pub fn side(&self) -> Side {
        self.side
    }

    pub fn instrument(&self) -> &Isin {
        &self.instrument
    }

    pub fn limit_price(&self) -> Option<Price> {
        self.limit_price
    }

    pub fn quantity(&self) -> Quantity {
        self.quantity
    }

    pub fn requested_expiry(&self) -> Option<OffsetDateTime> {
        self.requested_expiry
    }

    /// The normalised form two requests are compared by for idempotency: equal exactly when the
    /// orders are the same after parsing (`"10.5"` and `10.50`, `us…` and `US…` are equal).
    /// A requested expiry is appended only when given, so the fingerprints of orders stored
    /// before time in force existed still match their replays.
    pub fn fingerprint(&self) -> String {
        let mut fingerprint = format!(
            "v1|{}|{}|{}|{}|{}",
            self.order_type,
            self.side,
            self.instrument,
            self.limit_price
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into()),
            self.quantity.get()
        );
        if let Some(expiry) = self.requested_expiry {
            let utc = expiry.to_offset(time::UtcOffset::UTC);
            fingerprint.push_str(&format!("|exp={}", utc.unix_timestamp_nanos()));
        }
        fingerprint
    }
}

fn limit_price_required() -> FieldError {
    FieldError::new(
        "limit_price",
        "Attribute `limit_price` is required for type `limit`",
    )
}

fn limit_price_prohibited() -> FieldError {
    FieldError::new(
        "limit_price",
        "Providing a `limit_price` is prohibited for type `market`",
    )
}

fn required(field: &str) -> FieldError {
    FieldError::new(field, format!("Attribute `{field}` is required"))
}

fn attribute_error(field: &str, message: String) -> FieldError {
    FieldError::new(field, format!("Attribute `{field}` {message}"))
}

fn record<T>(result: Result<T, String>, field: &str, errors: &mut Vec<FieldError>) -> Option<T> {
    result
        .map_err(|message| errors.push(attribute_error(field, message)))
        .ok()
}

fn required_string<'a>(
    object: &'a Map<String, Value>,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<&'a str> {
    match object.get(field) {
        None | Some(Value::Null) => {
            errors.push(required(field));
            None
        }
        Some(Value::String(s)) => Some(s.as_str()),
        Some(other) => {
            errors.push(attribute_error(
                field,
                format!("must be a string, got {}", json_kind(other)),
            ));
            None
        }
    }
}

/// Accepts a JSON number or a decimal string. The number's exact text is used (serde_json keeps
/// it with `arbitrary_precision`), so no value ever passes through a float. A string has one
/// notation: digits with an optional fraction (`"120.50"`, `"7"`); an exponent (`"1e2"`), a
/// sign (`"+1.00"`) or a bare point (`".5"`, `"1."`) is refused. (A JSON number may carry an
/// exponent: that is JSON's own notation.)
fn parse_price(value: &Value) -> Result<Price, String> {
    match value {
        Value::Number(n) => Price::parse(&n.to_string()),
        Value::String(s) if s.contains(['e', 'E']) => Err(
            "must be a decimal string in plain notation such as `120.50` (digits, optionally a \
             `.` and more digits), without an exponent"
                .into(),
        ),
        Value::String(s) => Price::parse(s),
        other => Err(format!(
            "must be a decimal number or a decimal string, got {}",
            json_kind(other)
        )),
    }
}

/// An RFC 3339 time with its offset (`2026-12-06T15:00:00Z`); whether it is in range is the
/// expiry policy's business, which knows the clock.
fn parse_time(value: &Value) -> Result<OffsetDateTime, String> {
    let Value::String(text) = value else {
        return Err(format!(
            "must be an RFC 3339 time string, got {}",
            json_kind(value)
        ));
    };
    OffsetDateTime::parse(text, &Rfc3339)
        .map_err(|_| "must be an RFC 3339 time such as `2026-12-06T15:00:00Z`".to_string())
}

/// Accepts only a JSON integer: `"10"`, `10.0` and `1e3` are refused rather than guessed at.
fn parse_quantity(value: &Value) -> Result<Quantity, String> {
    let Value::Number(n) = value else {
        return Err(format!("must be an integer, got {}", json_kind(value)));
    };
    if let Some(i) = n.as_i64() {
        return Quantity::new(i);
    }
    let text = n.to_string();
    let digits = text.strip_prefix('-').unwrap_or(&text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        // An integer too large for i64: out of range on one side or the other.
        return Quantity::new(if text.starts_with('-') {
            i64::MIN
        } else {
            i64::MAX
        });
    }
    Err("must be an integer".into())
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attribute_given_twice_is_found_once_and_a_single_one_is_not() {
        let body = br#"{"type":"market","side":"buy","instrument":"US0378331005","quantity":1,"quantity":1000000,"quantity":2,"side":"sell"}"#;
        assert_eq!(repeated_attributes(body), ["quantity", "side"]);
        let nested = br#"{"quantity":1,"meta":{"a":1,"a":2}}"#;
        assert!(
            repeated_attributes(nested).is_empty(),
            "only the order's own attributes"
        );
        for other in [&br#"[1,1]"#[..], b"42", b"not json", br#"{"a":1}"#] {
            assert!(repeated_attributes(other).is_empty());
        }
        assert_eq!(
            repeated_attribute_error("quantity").message,
            "Attribute `quantity` is given more than once; name each attribute once"
        );
    }
}
