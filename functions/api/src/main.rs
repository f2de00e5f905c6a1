//! The API function: Try, status, confirm and the admin routes behind API Gateway's HTTP API.
//! Wiring only: config, clients built once, the shared handler.

use flashstock::{app::LiveApp, config::Config, http, telemetry};
use lambda_http::{Error, Request, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let app = LiveApp::from_config(&config).await?;
    let app = &app;
    lambda_http::run(service_fn(move |req: Request| async move { Ok::<_, Error>(http::handle(app, req).await) })).await
}
