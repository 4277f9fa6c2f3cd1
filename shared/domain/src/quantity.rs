//! Order quantities.

/// A whole number of shares, 1 ≤ q ≤ 1 000 000 000; the bound keeps any `price × quantity` far
/// inside what the store and the exchange can represent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quantity(i64);

impl Quantity {
    pub const MAX: i64 = 1_000_000_000;

    pub fn new(value: i64) -> Result<Self, String> {
        if value < 1 {
            return Err("must be at least 1".into());
        }
        if value > Self::MAX {
            return Err("must be at most 1000000000".into());
        }
        Ok(Self(value))
    }

    pub fn get(&self) -> i64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive() {
        assert_eq!(Quantity::new(1).unwrap().get(), 1);
        assert_eq!(Quantity::new(1_000_000_000).unwrap().get(), 1_000_000_000);
        assert!(Quantity::new(0).is_err());
        assert!(Quantity::new(-5).is_err());
        assert!(Quantity::new(1_000_000_001).is_err());
    }
}
