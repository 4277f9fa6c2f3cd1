//! Incidents: orders that failed or expired, grouped so that admins get one alert when an
//! incident opens and one when it is over. The store records them in the same statement as the
//! orders' transitions; this port reads what still has to be told and marks it told.

use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::StoreError;

/// One incident as the alert shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    pub id: i64,
    /// `failed` or `expired`.
    pub kind: String,
    pub opened_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
    pub order_count: i64,
    pub first_order_ids: Vec<Uuid>,
    /// The first order's last exchange error: the likely cause.
    pub sample_error: Option<String>,
    /// Set once the incident is over (no new order for the alert window).
    pub closed_at: Option<OffsetDateTime>,
}

#[async_trait]
pub trait IncidentLog: Send + Sync {
    /// Open incidents whose opening alert is not published yet, claimed for a while by this
    /// caller so that a concurrent announcer does not publish them too.
    async fn unannounced(&self) -> Result<Vec<Incident>, StoreError>;

    /// Closes the incidents that saw no new order for `quiet` and returns (claimed, as above)
    /// every closed incident whose closing alert is not published yet.
    async fn close_quiet(&self, quiet: Duration) -> Result<Vec<Incident>, StoreError>;

    async fn mark_announced(&self, id: i64) -> Result<(), StoreError>;

    async fn mark_closed_announced(&self, id: i64) -> Result<(), StoreError>;

    /// Gives up the claim after a failed publish, so that the next round tries at once.
    async fn release_claim(&self, id: i64) -> Result<(), StoreError>;
}
