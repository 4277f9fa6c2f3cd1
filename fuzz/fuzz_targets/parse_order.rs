//! The request parser, from bytes: what the api does with a POST body (JSON, then the domain
//! order). Beyond "never panics", every accepted order must be one the rules allow, and must
//! come out the same when written back as JSON and parsed again (the normal form is a fixpoint).
//! Like the api, a body that names an attribute twice is refused before the order is read, and
//! an accepted decimal string is in plain notation.

#![no_main]

use libfuzzer_sys::fuzz_target;
use order_domain::{NewOrder, OrderRejection, OrderType};
use serde_json::{Value, json};

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let repeated = order_domain::repeated_attributes(data);
    if !repeated.is_empty() {
        // Refused by the api: each one really is an attribute of the object, named once each.
        let object = body.as_object().expect("only an object has attributes");
        for (i, name) in repeated.iter().enumerate() {
            assert!(object.contains_key(name), "{name} in {body}");
            assert!(!repeated[..i].contains(name), "{name} reported twice");
        }
        return;
    }
    match NewOrder::parse_json(&body) {
        Ok(order) => {
            let quantity = order.quantity().get();
            assert!((1..=1_000_000_000).contains(&quantity), "{quantity}");
            assert_eq!(
                order.limit_price().is_some(),
                order.order_type() == OrderType::Limit
            );
            if let Some(Value::String(text)) = body.get("limit_price") {
                assert!(
                    text.bytes().all(|b| b.is_ascii_digit() || b == b'.'),
                    "a decimal string in plain notation: {text}"
                );
            }
            if let Some(price) = order.limit_price() {
                let decimal = price.as_decimal();
                assert!(decimal > 0.into() && decimal.scale() <= 2, "{decimal}");
                assert!(decimal <= rust_decimal_bound(), "{decimal}");
            }
            let written = json!({
                "type": order.order_type().as_str(),
                "side": order.side().as_str(),
                "instrument": order.instrument().as_str(),
                "limit_price": order.limit_price().map(|p| p.to_string()),
                "quantity": quantity,
            });
            let again = NewOrder::parse_json(&written).expect("a normalised order parses");
            assert_eq!(again, order);
            assert_eq!(again.fingerprint(), order.fingerprint());
        }
        Err(OrderRejection::NotAnObject) => assert!(!body.is_object()),
        Err(OrderRejection::Invalid(errors)) => {
            assert!(body.is_object());
            assert!(!errors.is_empty());
            assert!(errors.iter().all(|e| !e.message.is_empty()));
        }
    }
});

/// 1 000 000 000.00, the largest price the rules allow.
fn rust_decimal_bound() -> order_domain::Decimal {
    order_domain::Decimal::new(100_000_000_000, 2)
}
