//! The API's error: what only the HTTP edge can get wrong (routing, identity, the body as bytes),
//! or a use case's [`AppError`]. Mapped to its problem code and answer in [`super::problem`].

use crate::app::AppError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("request body is not valid JSON: {0}")]
    MalformedBody(String),
    #[error("authentication required")]
    Unauthenticated,
    #[error("this route needs the {0} scope")]
    Forbidden(&'static str),
    #[error("request bodies are limited to {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("no route for {0}")]
    NoRoute(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error(transparent)]
    App(#[from] AppError),
}

impl ApiError {
    /// A field of the request that breaks its rules.
    pub fn field(field: &'static str, detail: impl Into<String>) -> Self {
        ApiError::App(AppError::InvalidField { field, detail: detail.into() })
    }
}
