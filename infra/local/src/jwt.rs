//! Dev tokens: HS256 JWTs signed with `FLASHSTOCK_DEV_JWT_SECRET` (default [`DEFAULT_SECRET`]),
//! verified by the front door as API Gateway's JWT authorizer verifies real ones.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};

pub const SECRET_ENV: &str = "FLASHSTOCK_DEV_JWT_SECRET";
pub const DEFAULT_SECRET: &str = "flashstock-local-dev-secret";

pub fn secret_from_env() -> String {
    std::env::var(SECRET_ENV).ok().filter(|s| !s.is_empty()).unwrap_or_else(|| DEFAULT_SECRET.to_owned())
}

/// A token for `sub` with `roles`, valid for an hour.
pub fn mint(secret: &str, sub: &str, roles: &[&str]) -> String {
    let exp = flashstock::now_ms() / 1000 + 3600;
    let claims = json!({ "sub": sub, "roles": roles, "exp": exp, "iss": "flashstock-local" });
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret.as_bytes()))
        .unwrap_or_default()
}

/// Verifies a token and returns its claims flattened as API Gateway passes them to Lambda
/// (strings as they are, arrays as `[a b]`, other values as JSON text).
pub fn verify(secret: &str, token: &str) -> Option<HashMap<String, String>> {
    let mut v = Validation::new(Algorithm::HS256);
    v.set_required_spec_claims(&["exp", "sub"]);
    let data =
        jsonwebtoken::decode::<HashMap<String, Value>>(token, &DecodingKey::from_secret(secret.as_bytes()), &v).ok()?;
    Some(
        data.claims
            .into_iter()
            .map(|(k, v)| {
                let s = match v {
                    Value::String(s) => s,
                    Value::Array(a) => {
                        let items: Vec<String> =
                            a.iter().map(|x| x.as_str().map(str::to_owned).unwrap_or_else(|| x.to_string())).collect();
                        format!("[{}]", items.join(" "))
                    }
                    other => other.to_string(),
                };
                (k, s)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let t = mint("s", "buyer-1", &["service", "admin"]);
        let c = verify("s", &t).unwrap();
        assert_eq!(c["sub"], "buyer-1");
        assert_eq!(c["roles"], "[service admin]");
        assert!(verify("other", &t).is_none());
        assert!(verify("s", "not-a-token").is_none());
    }
}
