//! `ClientOrders` in memory: the fake access check, then the fake store, in two steps. (The
//! Postgres adapter does both in one round trip; what a handler sees is the same.)

use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{FakeAccess, FakeOrderStore};
use crate::auth::ApiKey;
use crate::domain::{ExecutionReport, IdempotencyKey, NewOrder, Order, OrderId};
use crate::ports::{
    AccessControl, Admission, ClientOrders, CreateOutcome, Gated, ListFilter, ListQuery,
    OrderEvent, OrderPage, OrderStore, RequestKind, StoreError,
};

/// The fake access check in front of the fake store; both stay inspectable by the test.
pub struct FakeClientOrders {
    access: Arc<FakeAccess>,
    store: Arc<FakeOrderStore>,
}

impl FakeClientOrders {
    pub fn new(access: Arc<FakeAccess>, store: Arc<FakeOrderStore>) -> Self {
        Self { access, store }
    }
}

#[async_trait]
impl ClientOrders for FakeClientOrders {
    async fn place(
        &self,
        key: &ApiKey,
        order: &NewOrder,
        expires_at: OffsetDateTime,
        idempotency_key: Option<&IdempotencyKey>,
    ) -> Result<Gated<CreateOutcome>, StoreError> {
        match self.access.admit(key, RequestKind::PlaceOrder).await? {
            Admission::Admitted(client) => {
                let outcome = self
                    .store
                    .create_order(&client, order, expires_at, idempotency_key)
                    .await?;
                Ok(Gated::Admitted(client, outcome))
            }
            refused => Ok(Gated::Refused(refused)),
        }
    }

    async fn order(&self, key: &ApiKey, id: OrderId) -> Result<Gated<Option<Order>>, StoreError> {
        match self.access.admit(key, RequestKind::Read).await? {
            Admission::Admitted(client) => {
                let order = self.store.find_client_order(&client, id).await?;
                Ok(Gated::Admitted(client, order))
            }
            refused => Ok(Gated::Refused(refused)),
        }
    }

    async fn order_events(
        &self,
        key: &ApiKey,
        id: OrderId,
    ) -> Result<Gated<Option<Vec<OrderEvent>>>, StoreError> {
        match self.access.admit(key, RequestKind::Read).await? {
            Admission::Admitted(client) => {
                let events = self.store.find_client_order(&client, id).await?.map(|_| {
                    self.store
                        .events_of(id)
                        .into_iter()
                        .map(|event| OrderEvent {
                            from: event.from,
                            to: event.to,
                            reason: event.reason,
                            attempt: event.attempt,
                            at: event.at,
                        })
                        .collect()
                });
                Ok(Gated::Admitted(client, events))
            }
            refused => Ok(Gated::Refused(refused)),
        }
    }

    async fn order_executions(
        &self,
        key: &ApiKey,
        id: OrderId,
    ) -> Result<Gated<Option<Vec<ExecutionReport>>>, StoreError> {
        match self.access.admit(key, RequestKind::Read).await? {
            Admission::Admitted(client) => {
                let executions = self
                    .store
                    .find_client_order(&client, id)
                    .await?
                    .map(|_| self.store.executions_of(id));
                Ok(Gated::Admitted(client, executions))
            }
            refused => Ok(Gated::Refused(refused)),
        }
    }

    async fn orders(
        &self,
        key: &ApiKey,
        query: &ListQuery,
    ) -> Result<Gated<OrderPage>, StoreError> {
        match self.access.admit(key, RequestKind::Read).await? {
            Admission::Admitted(client) => {
                let filter = ListFilter {
                    client: client.clone(),
                    status: query.status,
                    before: query.before,
                    limit: query.limit,
                };
                let page = self.store.list_orders(&filter).await?;
                Ok(Gated::Admitted(client, page))
            }
            refused => Ok(Gated::Refused(refused)),
        }
    }
}
