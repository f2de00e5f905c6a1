//! The request bodies as typed structs, parsed by serde. A field's type is checked when the
//! handler takes it ([`Field::optional`], [`Field::required`]), so fields are judged in the
//! order each route lists them, and the error names its field; unknown fields are ignored.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde_json::Value;

use super::ApiError;

/// A field's type: what a wrong one is told, and whether `null` counts as absent.
pub trait Kind: DeserializeOwned {
    const WRONG_TYPE: &'static str;
    const NULL_IS_ABSENT: bool;
}

/// An integer field: any JSON integer (one beyond `i64` reads as `i64::MAX`, out of every
/// field's range), never a string, a fraction or a boolean; `null` counts as absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Int(pub i64);

impl Kind for Int {
    const WRONG_TYPE: &'static str = "must be an integer";
    const NULL_IS_ABSENT: bool = true;
}

/// A string field; `null` is a wrong type.
impl Kind for String {
    const WRONG_TYPE: &'static str = "must be a string";
    const NULL_IS_ABSENT: bool = false;
}

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Int;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(Int::WRONG_TYPE)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Int, E> {
                Ok(Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int, E> {
                Ok(Int(i64::try_from(v).unwrap_or(i64::MAX)))
            }
        }
        d.deserialize_any(V)
    }
}

/// A field as sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Field<T> {
    #[default]
    Absent,
    Null,
    Given(T),
    WrongType,
}

impl<'de, T: Kind> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        if v.is_null() {
            return Ok(Field::Null);
        }
        Ok(T::deserialize(v).map_or(Field::WrongType, Field::Given))
    }
}

impl<T: Kind> Field<T> {
    /// The value if given; a wrong type is an error naming `field`.
    pub fn optional(self, field: &'static str) -> Result<Option<T>, ApiError> {
        match self {
            Field::Given(v) => Ok(Some(v)),
            Field::Absent => Ok(None),
            Field::Null if T::NULL_IS_ABSENT => Ok(None),
            Field::Null | Field::WrongType => Err(ApiError::field(field, T::WRONG_TYPE)),
        }
    }

    /// The value; absent (or of a wrong type) is an error naming `field`.
    pub fn required(self, field: &'static str) -> Result<T, ApiError> {
        self.optional(field)?.ok_or_else(|| ApiError::field(field, "is required"))
    }
}

/// `PUT /v1/admin/collections/{id}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectionBody {
    #[serde(default)]
    pub quantity: Field<Int>,
    #[serde(default)]
    pub per_user_limit: Field<Int>,
    #[serde(default)]
    pub payment_window_seconds: Field<Int>,
    #[serde(default)]
    pub buckets: Field<Int>,
    #[serde(default)]
    pub cache_shards: Field<Int>,
}

/// `POST /v1/admin/collections/{id}/cache-shards` (a raise of its cache shards).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RaiseBody {
    #[serde(default)]
    pub cache_shards: Field<Int>,
}

/// `POST /v1/collections/{id}/reservations` (a Try).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TryBody {
    #[serde(default)]
    pub order_id: Field<String>,
    #[serde(default)]
    pub quantity: Field<Int>,
}

/// `POST …/confirm`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfirmBody {
    #[serde(default)]
    pub buyer_id: Field<String>,
}

/// A body: a JSON object (read whole first, so broken JSON is malformed whatever its fields; a
/// key given twice counts once, its last value).
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::MalformedBody("a JSON object is required".into()));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => {
            serde_json::from_value(Value::Object(m)).map_err(|e| ApiError::MalformedBody(e.to_string()))
        }
        Ok(_) => Err(ApiError::MalformedBody("the body must be a JSON object".into())),
        Err(e) => Err(ApiError::MalformedBody(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::AppError;

    fn field_of<T: std::fmt::Debug>(r: Result<T, ApiError>) -> Option<(&'static str, String)> {
        match r {
            Err(ApiError::App(AppError::InvalidField { field, detail })) => Some((field, detail)),
            _ => None,
        }
    }

    #[test]
    fn integer_fields_reject_other_types() {
        let b: CollectionBody = parse(br#"{"quantity": 3, "perUserLimit": null, "other": "x"}"#).unwrap();
        assert_eq!(b.quantity.optional("quantity").unwrap(), Some(Int(3)));
        assert_eq!(b.per_user_limit.optional("perUserLimit").unwrap(), None, "null is absent");
        assert_eq!(b.buckets.optional("buckets").unwrap(), None);
        for bad in [r#"{"quantity": "3"}"#, r#"{"quantity": 1.5}"#, r#"{"quantity": 1e30}"#, r#"{"quantity": true}"#] {
            let b: CollectionBody = parse(bad.as_bytes()).unwrap();
            assert_eq!(field_of(b.quantity.optional("quantity")), Some(("quantity", Int::WRONG_TYPE.into())), "{bad}");
        }
        let b: CollectionBody = parse(br#"{"quantity": 18446744073709551615}"#).unwrap();
        assert_eq!(b.quantity.optional("quantity").unwrap(), Some(Int(i64::MAX)), "beyond i64: out of range");
        let e = serde_json::from_str::<Int>("\"3\"").unwrap_err().to_string();
        assert!(e.contains(Int::WRONG_TYPE), "{e}");
        let b: CollectionBody = parse(br#"{"quantity": 1, "quantity": 2}"#).unwrap();
        assert_eq!(b.quantity.optional("quantity").unwrap(), Some(Int(2)), "the last of a repeated key");
    }

    #[test]
    fn string_fields_reject_other_types_and_null() {
        let b: TryBody = parse(br#"{"orderId": "o-1", "quantity": 2}"#).unwrap();
        assert_eq!(b.order_id.required("orderId").unwrap(), "o-1");
        for (bad, detail) in [(r#"{"orderId": 7}"#, String::WRONG_TYPE), (r#"{"orderId": null}"#, String::WRONG_TYPE)] {
            let b: TryBody = parse(bad.as_bytes()).unwrap();
            assert_eq!(field_of(b.order_id.required("orderId")), Some(("orderId", detail.into())), "{bad}");
        }
        let b: ConfirmBody = parse(b"{}").unwrap();
        assert_eq!(field_of(b.buyer_id.required("buyerId")), Some(("buyerId", "is required".into())));
        let b: TryBody = parse(br#"{"quantity": null}"#).unwrap();
        assert_eq!(field_of(b.quantity.required("quantity")), Some(("quantity", "is required".into())));
    }

    #[test]
    fn a_body_that_is_not_an_object_is_malformed() {
        for bad in ["", "  ", "[1, 2]", "\"x\"", "{", "{\"quantity\": \"x\"", "{\"quantity\": 1} trailing"] {
            assert!(matches!(parse::<CollectionBody>(bad.as_bytes()), Err(ApiError::MalformedBody(_))), "{bad:?}");
        }
    }
}
