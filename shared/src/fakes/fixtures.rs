//! Small builders for test inputs: clients, orders, and the SQS records the placer and the
//! alerter receive.

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};

use crate::domain::{
    ClientId, ExecutionEvent, ExecutionId, ExecutionReport, Isin, NewOrder, Order, OrderType,
    Price, Quantity, Shares, Side,
};
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

/// The SQS record that asks the placer to cancel `order` at the exchange.
pub fn cancel_record(message_id: &str, order: &Order, receive_count: u32) -> SqsMessage {
    raw_record(
        message_id,
        Some(&PlacementMessage::cancel_for(order).to_json()),
        receive_count,
    )
}

/// The exchange's report number `sequence` on `order`: `traded` more shares at `price` (a fill
/// when none stay open) after `before` filled, as the feed sends it. Panics on numbers that do
/// not add up (a test's own mistake).
pub fn fill_report(
    order: &Order,
    sequence: u64,
    before: i64,
    traded: i64,
    price: &str,
) -> ExecutionReport {
    let quantity = Quantity::new(traded).expect("a valid fill in a test");
    let price = Price::parse(price).expect("a valid price in a test");
    let cumulative = before + traded;
    let remaining = order.details.quantity().get() - cumulative;
    let event = if remaining == 0 {
        ExecutionEvent::Fill { quantity, price }
    } else {
        ExecutionEvent::PartialFill { quantity, price }
    };
    report(order, sequence, event, cumulative, remaining)
}

/// The exchange's report that it canceled what was open of `order` after `filled` shares.
pub fn canceled_report(order: &Order, sequence: u64, filled: i64) -> ExecutionReport {
    let rest = order.details.quantity().get() - filled;
    let event = ExecutionEvent::Canceled {
        quantity: Quantity::new(rest).expect("shares left to cancel in a test"),
    };
    report(order, sequence, event, filled, 0)
}

fn report(
    order: &Order,
    sequence: u64,
    event: ExecutionEvent,
    cumulative: i64,
    remaining: i64,
) -> ExecutionReport {
    ExecutionReport::new(
        sequence,
        ExecutionId::parse(&format!("E-{sequence}")).expect("a valid execution id"),
        order.id,
        order
            .exchange_order_id
            .clone()
            .unwrap_or_else(|| "EX-1".into()),
        event,
        Shares::new(cumulative).expect("a valid cumulative quantity"),
        Shares::new(remaining).expect("a valid remaining quantity"),
        time::OffsetDateTime::now_utc(),
    )
    .expect("a report whose numbers add up in a test")
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
