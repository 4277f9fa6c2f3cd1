//! After the load and the faults: waiting until the system has finished with every order, so
//! that the checks look at final states, not at work still in progress.

use std::time::{Duration, Instant};

use crate::timeline::Timeline;

/// Waits (up to `timeout`) until no order is left outside `placed`, `rejected` and `failed`;
/// the checks count what is still open. Then a moment more for the alerter's last dead letters.
pub async fn wait_until_final(
    db: &tokio_postgres::Client,
    timeout: Duration,
    timeline: &Timeline,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let open: i64 = db
            .query_one(
                "SELECT count(*) FROM orders WHERE status NOT IN ('placed','rejected','failed')",
                &[],
            )
            .await?
            .get(0);
        if open == 0 || Instant::now() > deadline {
            timeline.note(format!("drain finished with {open} order(s) not final"));
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok(())
}
