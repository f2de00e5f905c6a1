//! `flashstock-demo`: start a fresh local deployment in-process (or use a serving one) and run
//! the demo flash sale against it. Services (redis-server, moto) come from `infra/services.sh`.

use std::time::Duration;

use clap::Parser;
use flashstock_demo::demo::{self, DemoOptions};
use flashstock_local::jwt;
use flashstock_local::stack::{Stack, StackOptions};

#[derive(Parser)]
#[command(version, about = "flashstock's demo flash sale on the local stack")]
struct Cli {
    #[arg(long, default_value_t = 2_000)]
    buyers: usize,
    #[arg(long, default_value_t = 200)]
    units: u64,
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Percent of reserved orders the buyers cancel.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u8).range(0..=100))]
    cancel_percent: u8,
    /// Percent of reserved orders never paid (they time out).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u8).range(0..=100))]
    abandon_percent: u8,
    /// The collection's payment window in seconds.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=86_400))]
    payment_window: u32,
    /// Percent of accepted Tries whose message is lost after the Redis deduction (fault
    /// injection, fresh stack only); reconciliation heals them.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    lose_percent: u8,
    /// Run against an already serving stack (e.g. `serve`) instead of a fresh one.
    #[arg(long)]
    url: Option<String>,
    #[arg(long)]
    no_progress: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Cli {
        buyers,
        units,
        concurrency,
        cancel_percent,
        abandon_percent,
        payment_window,
        lose_percent,
        url,
        no_progress,
    } = Cli::parse();

    let opts = DemoOptions {
        buyers,
        units,
        concurrency: concurrency.max(1),
        cancel_percent,
        abandon_percent,
        payment_window_seconds: payment_window,
        progress: !no_progress,
    };
    let (base, secret, stack) = match url {
        Some(u) => {
            anyhow::ensure!(lose_percent == 0, "--lose-percent needs a fresh stack (drop --url)");
            (u, jwt::secret_from_env(), None)
        }
        None => {
            let name = format!("demo-{}", ulid::Ulid::new().to_string().to_lowercase());
            let sopts = StackOptions { schedule_interval: Some(Duration::from_secs(2)), ..StackOptions::default() };
            let stack = Stack::launch(&name, &flashstock_local::redis_url()?, sopts, |c| {
                c.fault_drop_message_percent = lose_percent;
                // Local queues drain in well under a second; heal lost messages quickly.
                c.reconcile_threshold_ms = 5_000;
            })
            .await?;
            (stack.url.clone(), stack.secret.clone(), Some(stack))
        }
    };
    let mut report = demo::run(&base, &secret, &opts).await?;
    report.resent = stack.as_ref().map(|s| s.resent.load(std::sync::atomic::Ordering::Relaxed));
    println!("{}", report.verdict());
    anyhow::ensure!(report.drift == 0, "drift is {}, expected 0", report.drift);
    anyhow::ensure!(report.errors == 0, "{} requests failed", report.errors);
    Ok(())
}
