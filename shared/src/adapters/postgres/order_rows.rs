//! Orders as rows: the columns every order query returns and the one way back from a row to the
//! domain's `Order`. Shared by the order queries (`orders`) and the lifecycle transitions
//! (`lifecycle`), which return the same orders.

use deadpool_postgres::tokio_postgres::Row;
use uuid::Uuid;

use crate::domain::{
    ClientId, Isin, NewOrder, Order, OrderId, OrderType, Price, Quantity, Shares, Side,
};
use crate::ports::StoreError;

/// The columns `order_from_row` reads, in the order every `SELECT`/`RETURNING` lists them.
pub(super) const ORDER_COLUMNS: &str = "id, client_id, created_at, order_type, side, instrument, limit_price, quantity, \
     status, attempts, last_error, exchange_order_id, placed_at, alerted_at, expires_at, \
     next_attempt_at, outcome_unknown, filled_quantity, average_fill_price";

/// Rebuilds the domain order from a row; a row the domain would refuse is reported, not hidden.
pub(super) fn order_from_row(row: &Row) -> Result<Order, StoreError> {
    let id: Uuid = row.get("id");
    let corrupt = |problem: String| StoreError::Corrupt {
        id: id.to_string(),
        problem,
    };
    let order_type: OrderType = row.get::<_, &str>("order_type").parse().map_err(corrupt)?;
    let side: Side = row.get::<_, &str>("side").parse().map_err(corrupt)?;
    let instrument = Isin::parse(row.get("instrument")).map_err(corrupt)?;
    let limit_price = row
        .get::<_, Option<rust_decimal::Decimal>>("limit_price")
        .map(Price::try_from)
        .transpose()
        .map_err(corrupt)?;
    let quantity = Quantity::new(row.get("quantity")).map_err(corrupt)?;
    let details = NewOrder::new(order_type, side, instrument, limit_price, quantity)
        .map_err(|e| corrupt(e.message))?;
    let client_id = ClientId::parse(row.get("client_id")).map_err(corrupt)?;
    Ok(Order {
        id: OrderId::from(id),
        client_id,
        created_at: row.get("created_at"),
        details,
        status: row.get::<_, &str>("status").parse().map_err(corrupt)?,
        attempts: row.get("attempts"),
        last_error: row.get("last_error"),
        exchange_order_id: row.get("exchange_order_id"),
        placed_at: row.get("placed_at"),
        alerted_at: row.get("alerted_at"),
        expires_at: row.get("expires_at"),
        next_attempt_at: row.get("next_attempt_at"),
        outcome_unknown: row.get("outcome_unknown"),
        filled_quantity: Shares::new(row.get("filled_quantity")).map_err(corrupt)?,
        average_fill_price: row.get("average_fill_price"),
    })
}
