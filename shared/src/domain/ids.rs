//! Identifiers and order quantities, parsed once at the boundary into newtypes.

use std::fmt;

/// Why an identifier or quantity was rejected; names the rule so the API can explain it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must match ^[A-Za-z0-9_-]{{1,64}}$")]
    BadId,
    #[error("must be 1 to 255 printable ASCII characters (an OpenID Connect subject)")]
    BadUser,
    #[error("must be an integer from 1 to {max}")]
    BadQuantity { max: u32 },
}

fn valid_id(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

macro_rules! id_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses `^[A-Za-z0-9_-]{1,64}$`.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                if valid_id(s) { Ok(Self(s.to_owned())) } else { Err(IdError::BadId) }
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(&s)
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A collection (the thing on sale).
    CollectionId
);
id_type!(
    /// The storefront's order id: the idempotency key of a reservation.
    OrderId
);

/// The buyer, from the authorizer's `sub` claim (never from a request body).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserId(String);

impl UserId {
    /// Any identity provider's subject: OpenID Connect caps `sub` at 255 ASCII characters, and
    /// every printable one may appear (`auth0|5f…`, `google-oauth2|10…`, `user@host`, `a:b#c`).
    /// No store uses a buyer as a separator-delimited part it cannot split back: DynamoDB keys end
    /// with it, Redis stores it behind a one-byte length, messages carry it as a JSON string.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let ok = (1..=255).contains(&s.len()) && s.bytes().all(|b| (b' '..=b'~').contains(&b));
        if ok { Ok(Self(s.to_owned())) } else { Err(IdError::BadUser) }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl TryFrom<String> for UserId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}
impl From<UserId> for String {
    fn from(v: UserId) -> String {
        v.0
    }
}
impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A reservation's identity: the storefront's order id is scoped to its buyer and to the
/// collection it was placed on. Two buyers may use the same order id, even on one collection,
/// and never see or change each other's orders; every store keys a reservation on all three.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrderKey {
    pub collection: CollectionId,
    pub user: UserId,
    pub order: OrderId,
}

impl OrderKey {
    pub fn new(collection: CollectionId, user: UserId, order: OrderId) -> Self {
        Self { collection, user, order }
    }

    /// The order and buyer as one string, unique within a collection: `<orderId>:<userId>`.
    /// Order ids never contain `:`, so the first `:` splits it back.
    pub fn scoped(&self) -> String {
        format!("{}:{}", self.order, self.user)
    }

    /// Parses [`OrderKey::scoped`] back, within `collection`.
    pub fn from_scoped(collection: &CollectionId, s: &str) -> Option<Self> {
        let (order, user) = s.split_once(':')?;
        Some(Self::new(collection.clone(), UserId::parse(user).ok()?, OrderId::parse(order).ok()?))
    }
}

impl fmt::Display for OrderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.collection, self.user, self.order)
    }
}

/// Units in one order: 1 ..= the collection's `maxPerOrder`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Quantity(u32);

impl Quantity {
    pub fn parse(n: i64, max_per_order: u32) -> Result<Self, IdError> {
        if n >= 1 && n <= i64::from(max_per_order) {
            Ok(Self(n as u32))
        } else {
            Err(IdError::BadQuantity { max: max_per_order })
        }
    }
    /// A quantity read back from our own stores, already validated when it was written.
    pub fn from_stored(n: u32) -> Self {
        Self(n)
    }
    pub fn get(self) -> u32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_contract_pattern() {
        assert!(CollectionId::parse("drop-2026_A").is_ok());
        assert!(OrderId::parse(&"a".repeat(64)).is_ok());
        for bad in ["", "has space", "slash/x", "ü", "{tag}", &"a".repeat(65)] {
            assert_eq!(OrderId::parse(bad), Err(IdError::BadId), "{bad:?}");
            assert_eq!(CollectionId::parse(bad), Err(IdError::BadId), "{bad:?}");
        }
    }

    #[test]
    fn ids_deserialize_only_when_valid() {
        assert!(serde_json::from_str::<OrderId>("\"ok-1\"").is_ok());
        assert!(serde_json::from_str::<OrderId>("\"no good\"").is_err());
    }

    #[test]
    fn users_are_any_openid_subject() {
        for sub in
            ["auth0|5f3c8e2b9a1d4c0012345678", "google-oauth2|123456789012345678901", "user-42@example", "a:b#c d"]
        {
            assert!(UserId::parse(sub).is_ok(), "{sub}");
        }
        assert!(UserId::parse(&"u".repeat(255)).is_ok(), "OpenID Connect's longest subject");
        assert!(UserId::parse(&"u".repeat(256)).is_err());
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("a\nb").is_err());
        assert!(UserId::parse("é").is_err(), "not ASCII");
    }

    #[test]
    fn order_keys_scope_an_order_id_to_its_buyer() {
        let c = CollectionId::parse("drop").unwrap();
        let a = OrderKey::new(c.clone(), UserId::parse("auth0:42").unwrap(), OrderId::parse("o-1").unwrap());
        let b = OrderKey::new(c.clone(), UserId::parse("bob").unwrap(), OrderId::parse("o-1").unwrap());
        assert_ne!(a.scoped(), b.scoped(), "one order id, two buyers: two reservations");
        assert_eq!(a.scoped(), "o-1:auth0:42");
        assert_eq!(OrderKey::from_scoped(&c, &a.scoped()), Some(a));
        assert_eq!(OrderKey::from_scoped(&c, "no-separator"), None);
    }

    #[test]
    fn quantity_bounds() {
        assert!(Quantity::parse(0, 10).is_err());
        assert!(Quantity::parse(-1, 10).is_err());
        assert!(Quantity::parse(11, 10).is_err());
        assert_eq!(Quantity::parse(1, 10).map(Quantity::get), Ok(1));
        assert_eq!(Quantity::parse(10, 10).map(Quantity::get), Ok(10));
    }
}
