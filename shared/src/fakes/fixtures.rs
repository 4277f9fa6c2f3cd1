//! Small builders for test inputs: clients, orders, and the SQS records the placer and the
//! alerter receive.

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};

use crate::domain::{ClientId, Isin, NewOrder, Order, OrderType, Price, Quantity, Side};
use crate::ports::PlacementMessage;

/// The instrument of the fixtures' orders (Apple's ISIN).
const INSTRUMENT: &str = "US0378331005";

/// A client id; panics on an invalid one (a test's own typo).
pub fn client(id: &str) -> ClientId {
    ClientId::parse(id).expect("a valid client id in a test")
}

/// A market order to buy `quantity` shares.
pub fn market_order(quantity: i64) -> NewOrder {
    NewOrder::new(
        OrderType::Market,
        Side::Buy,
        Isin::parse(INSTRUMENT).expect("a valid ISIN"),
        None,
        Quantity::new(quantity).expect("a valid quantity in a test"),
    )
    .expect("a market order without a price is valid")
}

/// A limit order to sell `quantity` shares at `price` (a decimal string such as `"120.50"`).
pub fn limit_order(price: &str, quantity: i64) -> NewOrder {
    NewOrder::new(
        OrderType::Limit,
        Side::Sell,
        Isin::parse(INSTRUMENT).expect("a valid ISIN"),
        Some(Price::parse(price).expect("a valid price in a test")),
        Quantity::new(quantity).expect("a valid quantity in a test"),
    )
    .expect("a limit order with a price is valid")
}

/// The SQS record that carries `order` to the placer (or, dead-lettered, to the alerter), as
/// delivered for the `receive_count`-th time. Its receipt handle is `receipt-<message_id>`.
pub fn placement_record(message_id: &str, order: &Order, receive_count: u32) -> SqsMessage {
    raw_record(
        message_id,
        Some(&PlacementMessage::for_order(order).to_json()),
        receive_count,
    )
}

/// An SQS record with any body (or none), for poison messages.
pub fn raw_record(message_id: &str, body: Option<&str>, receive_count: u32) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = Some(message_id.to_owned());
    record.receipt_handle = Some(format!("receipt-{message_id}"));
    record.body = body.map(str::to_owned);
    record
        .attributes
        .insert("ApproximateReceiveCount".into(), receive_count.to_string());
    record
}

/// A batch of records, as Lambda hands it to a handler.
pub fn sqs_event(records: Vec<SqsMessage>) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = records;
    event
}
