//! `flashstock-local`: run the local stack, or mint dev tokens (the demo is `flashstock-demo`).
//! Services (redis-server, moto) come from `infra/services.sh`; see docs/LOCAL-STACK.md.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand};
use flashstock_local::jwt;
use flashstock_local::stack::{Stack, StackOptions};

#[derive(Parser)]
#[command(version, about = "flashstock's local stack")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Provision a deployment and serve it until interrupted.
    Serve {
        /// Deployment name: Redis key prefix, table and queue names.
        #[arg(long, default_value = "flashstock")]
        name: String,
        #[arg(long, env = "FLASHSTOCK_HTTP_PORT", default_value_t = 3000)]
        port: u16,
        /// Seconds between scheduled runs (expiry sweep, reconciliation).
        #[arg(long, default_value_t = 60)]
        schedule_seconds: u64,
    },
    /// Print a dev bearer token.
    Token {
        #[arg(long)]
        sub: String,
        /// Space- or comma-separated OAuth scopes: `flashstock/admin` (collections),
        /// `flashstock/confirm` (the payment service); none for a buyer.
        #[arg(long, default_value = "")]
        scopes: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Token { sub, scopes } => {
            if let Err(e) = flashstock::domain::UserId::parse(&sub) {
                anyhow::bail!("--sub: {e}");
            }
            let scopes: Vec<&str> = scopes.split([',', ' ']).filter(|s| !s.is_empty()).collect();
            println!("{}", jwt::mint(&jwt::secret_from_env(), &sub, &scopes));
        }
        Cmd::Serve { name, port, schedule_seconds } => {
            flashstock::telemetry::init();
            let opts = StackOptions {
                http_addr: SocketAddr::from(([127, 0, 0, 1], port)),
                schedule_interval: Some(Duration::from_secs(schedule_seconds.max(1))),
                ..StackOptions::default()
            };
            let stack = Stack::launch(&name, &flashstock_local::redis_url()?, opts, |_| {}).await?;
            eprintln!("flashstock serving on {} (table {}, Ctrl-C to stop)", stack.url, stack.config.table);
            eprintln!("admin token:  {}", stack.token("operator", &[flashstock::http::auth::ADMIN_SCOPE]));
            eprintln!("buyer token:  {}", stack.token("buyer-1", &[]));
            tokio::signal::ctrl_c().await?;
        }
    }
    Ok(())
}
