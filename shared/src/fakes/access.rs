//! `AccessControl` in memory.

use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use super::outage;
use crate::auth::{ApiKey, KeyId};
use crate::domain::ClientId;
use crate::ports::{AccessControl, Admission, RequestKind, StoreError};

#[derive(Default)]
struct AccessState {
    /// Keys that are valid, and whose client they name.
    keys: Vec<(ApiKey, ClientId)>,
    /// When set, the answer to every request whatever its key.
    answer: Option<Admission>,
    down: bool,
    requests: Vec<(KeyId, RequestKind)>,
}

/// API keys and limits in memory: admits the keys it was given (each for its client), answers
/// `Unauthenticated` for any other key, or gives one chosen answer to every request.
#[derive(Default)]
pub struct FakeAccess {
    state: Mutex<AccessState>,
}

impl FakeAccess {
    /// Admits no key at all.
    pub fn new() -> Self {
        Self::default()
    }

    /// Admits `key` for `client` (and no other key).
    pub fn admitting(key: &ApiKey, client: &ClientId) -> Self {
        let access = Self::default();
        access.add_key(key, client);
        access
    }

    /// Answers every request with `admission`, whatever key it presents.
    pub fn answering(admission: Admission) -> Self {
        let access = Self::default();
        access.answer(Some(admission));
        access
    }

    fn lock(&self) -> MutexGuard<'_, AccessState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits one more key, for `client`.
    pub fn add_key(&self, key: &ApiKey, client: &ClientId) {
        self.lock().keys.push((key.clone(), client.clone()));
    }

    /// Gives this answer to every request from now on (`None`: check the keys again).
    pub fn answer(&self, admission: Option<Admission>) {
        self.lock().answer = admission;
    }

    /// The database behind the check is down (`true`) or back (`false`).
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    /// Every request checked: its key's id and what it asked for.
    pub fn requests(&self) -> Vec<(KeyId, RequestKind)> {
        self.lock().requests.clone()
    }
}

#[async_trait]
impl AccessControl for FakeAccess {
    async fn admit(&self, key: &ApiKey, kind: RequestKind) -> Result<Admission, StoreError> {
        let mut state = self.lock();
        state.requests.push((key.id().clone(), kind));
        if state.down {
            return Err(StoreError::Unavailable(outage("the access store")));
        }
        if let Some(answer) = &state.answer {
            return Ok(answer.clone());
        }
        Ok(state
            .keys
            .iter()
            .find(|(known, _)| known == key)
            .map_or(Admission::Unauthenticated, |(_, client)| {
                Admission::Admitted(client.clone())
            }))
    }
}
