//! The request bodies as typed structs, parsed by serde; an error names its field
//! (`serde_path_to_error`). Unknown fields are ignored; `null` counts as absent.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};

use super::ApiError;

/// An integer field: any JSON integer (one beyond `i64` reads as `i64::MAX`, out of every
/// field's range), never a string, a fraction or a boolean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Int(pub i64);

/// A string field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(pub String);

/// The answer a field of the wrong type gets (serde's own names the JSON type, not the rule).
const NOT_AN_INTEGER: &str = "must be an integer";
const NOT_A_STRING: &str = "must be a string";

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Int;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(NOT_AN_INTEGER)
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

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(NOT_A_STRING)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_owned()))
            }
        }
        d.deserialize_any(V)
    }
}

/// `PUT /v1/collections/{id}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CollectionBody {
    #[serde(default)]
    pub quantity: Option<Int>,
    #[serde(default)]
    pub per_user_limit: Option<Int>,
    #[serde(default)]
    pub payment_window_seconds: Option<Int>,
    #[serde(default)]
    pub buckets: Option<Int>,
}

/// `POST /v1/collections/{id}/reservations` (a Try).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TryBody {
    #[serde(default)]
    pub order_id: Option<Text>,
    #[serde(default)]
    pub quantity: Option<Int>,
}

/// `POST …/confirm`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfirmBody {
    #[serde(default)]
    pub buyer_id: Option<Text>,
}

/// The fields the bodies have, as the errors name them.
const FIELDS: [&str; 6] = ["quantity", "perUserLimit", "paymentWindowSeconds", "buckets", "orderId", "buyerId"];

/// A body: a JSON object, each field of its type.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Err(ApiError::MalformedBody("a JSON object is required".into())),
        Some(b'{') => {}
        Some(_) => return Err(ApiError::MalformedBody("the body must be a JSON object".into())),
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match FIELDS.iter().find(|f| **f == path) {
            Some(field) if inner.is_data() => {
                let detail = if inner.to_string().contains(NOT_A_STRING) { NOT_A_STRING } else { NOT_AN_INTEGER };
                ApiError::field(field, detail)
            }
            _ => ApiError::MalformedBody(inner.to_string()),
        }
    })?;
    de.end().map_err(|e| ApiError::MalformedBody(e.to_string()))?;
    Ok(value)
}

/// A required field.
pub fn required<T>(v: Option<T>, field: &'static str) -> Result<T, ApiError> {
    v.ok_or_else(|| ApiError::field(field, "is required"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::AppError;

    fn field_of(e: ApiError) -> Option<(&'static str, String)> {
        match e {
            ApiError::App(AppError::InvalidField { field, detail }) => Some((field, detail)),
            _ => None,
        }
    }

    #[test]
    fn integer_fields_reject_other_types() {
        let b: CollectionBody = parse(br#"{"quantity": 3, "perUserLimit": null, "other": "x"}"#).unwrap();
        assert_eq!((b.quantity, b.per_user_limit, b.buckets), (Some(Int(3)), None, None));
        for bad in [r#"{"quantity": "3"}"#, r#"{"quantity": 1.5}"#, r#"{"quantity": 1e30}"#, r#"{"quantity": true}"#] {
            let e = parse::<CollectionBody>(bad.as_bytes()).unwrap_err();
            assert_eq!(field_of(e), Some(("quantity", NOT_AN_INTEGER.to_owned())), "{bad}");
        }
        let b: CollectionBody = parse(br#"{"quantity": 18446744073709551615}"#).unwrap();
        assert_eq!(b.quantity, Some(Int(i64::MAX)), "beyond i64: out of every range");
    }

    #[test]
    fn string_fields_reject_other_types() {
        let b: TryBody = parse(br#"{"orderId": "o-1", "quantity": 2}"#).unwrap();
        assert_eq!((b.order_id, b.quantity), (Some(Text("o-1".into())), Some(Int(2))));
        let e = parse::<TryBody>(br#"{"orderId": 7}"#).unwrap_err();
        assert_eq!(field_of(e), Some(("orderId", NOT_A_STRING.to_owned())));
        assert_eq!(field_of(required(None::<Text>, "buyerId").unwrap_err()), Some(("buyerId", "is required".into())));
    }

    #[test]
    fn a_body_that_is_not_an_object_is_malformed() {
        for bad in ["", "  ", "[1, 2]", "\"x\"", "{", "{\"quantity\": 1} trailing", "{\"quantity\": }"] {
            assert!(matches!(parse::<CollectionBody>(bad.as_bytes()), Err(ApiError::MalformedBody(_))), "{bad:?}");
        }
    }
}
