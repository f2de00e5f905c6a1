//! The API function: Try, status, confirm and the admin routes behind API Gateway's HTTP API.
//! Wiring only: config, clients built once, the shared handler.
// The handlers' async state machines nest deeper than the default layout depth of 128.
#![recursion_limit = "256"]

use flashstock::http;
use lambda_http::{Error, Request, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let app = flashstock::lambda::boot().await?;
    let app = &app;
    lambda_http::run(service_fn(move |req: Request| async move { Ok::<_, Error>(http::handle(app, req).await) })).await
}
