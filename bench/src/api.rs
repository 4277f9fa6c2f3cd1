//! The order API as the benchmarks call it: the benchmark client's key and the request bodies.
//! The bodies are written out by hand, not serialised from the api's types, so that a benchmark
//! sends exactly what an outside client would.

use reqwest::header::{AUTHORIZATION, HeaderMap};

/// The API key of the benchmark client: `scripts/bench.sh` generates it, has the runner register
/// it and exports it here. Unset when the system was started some other way.
pub fn bench_api_key() -> Option<String> {
    std::env::var("BENCH_API_KEY").ok()
}

/// Default headers that authenticate every request of a client with `key`.
pub fn bearer(key: &str) -> anyhow::Result<HeaderMap> {
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, format!("Bearer {key}").parse()?);
    Ok(headers)
}

/// The body of `POST /orders` for a market order.
pub fn market_order(side: &str, instrument: &str, quantity: usize) -> String {
    format!(
        r#"{{"type":"market","side":"{side}","instrument":"{instrument}","quantity":{quantity}}}"#
    )
}

/// The body of `POST /orders` for a limit order; `limit_price` is a decimal string.
pub fn limit_order(side: &str, instrument: &str, limit_price: &str, quantity: usize) -> String {
    format!(
        r#"{{"type":"limit","side":"{side}","instrument":"{instrument}","limit_price":"{limit_price}","quantity":{quantity}}}"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bodies are the ones the benchmarks sent before they were written here, byte for byte.
    #[test]
    fn bodies_are_the_api_json() {
        assert_eq!(
            market_order("buy", "US0378331005", 7),
            r#"{"type":"market","side":"buy","instrument":"US0378331005","quantity":7}"#
        );
        assert_eq!(
            limit_order("buy", "US0378331005", "120.50", 10),
            r#"{"type":"limit","side":"buy","instrument":"US0378331005","limit_price":"120.50","quantity":10}"#
        );
    }
}
