//! The flash-sale benchmark: many buyers burst at once against one collection through the local
//! front door (real handlers on the real Redis, SQS and DynamoDB emulator), while a sampler records
//! Redis stock, DynamoDB saleable and the pending units over time. It reports Try throughput and
//! latency, the time until every accepted reservation is RESERVED, outcomes, and the final
//! identities of both stores; [`plot_latency`] and [`plot_levels`] draw the PNGs.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flashstock::domain::CollectionId;
use flashstock::ports::prelude::*;

use futures::StreamExt;
use serde_json::{Value, json};

use flashstock_local::stack::{Stack, StackOptions, StoreFigures};

#[derive(Debug, Clone)]
pub struct FlashOptions {
    pub buyers: usize,
    pub units: u64,
    /// Requests in flight at once (the burst's width).
    pub concurrency: usize,
    pub persist_batch_size: usize,
    pub batching_window: Duration,
    pub persist_consumers: usize,
    pub sample_every: Duration,
}

impl Default for FlashOptions {
    fn default() -> Self {
        Self {
            buyers: 20_000,
            units: 2_000,
            concurrency: 512,
            // The template's event source mapping: batch 1,000, 1 s window.
            persist_batch_size: 1_000,
            batching_window: Duration::from_secs(1),
            persist_consumers: 2,
            sample_every: Duration::from_millis(100),
        }
    }
}

/// One reading of both stores, `t` seconds after the burst began.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub t: f64,
    pub redis_stock: i64,
    pub saleable: i64,
    pub pending: i64,
    pub reserved: i64,
}

/// The final state of both stores.
#[derive(Debug, Clone, Default)]
pub struct FinalState {
    pub stores: StoreFigures,
    pub drift: Option<i64>,
    pub violations: usize,
}

#[derive(Debug, Clone, Default)]
pub struct FlashReport {
    pub buyers: usize,
    pub units: u64,
    pub concurrency: usize,
    pub accepted: u64,
    /// Answers by problem code (`ACCEPTED` for 202); transport failures as `TRANSPORT`.
    pub by_code: BTreeMap<String, u64>,
    pub try_seconds: f64,
    pub latencies_ms: Vec<f64>,
    /// The latencies of the accepted Tries alone (script, SQS send).
    pub accepted_ms: Vec<f64>,
    /// Burst start → every accepted reservation RESERVED in DynamoDB (to the sampling interval).
    pub all_reserved_seconds: Option<f64>,
    pub samples: Vec<Sample>,
    pub last: FinalState,
}

impl FlashReport {
    pub fn throughput(&self) -> f64 {
        self.buyers as f64 / self.try_seconds.max(1e-9)
    }

    /// The `p`-th percentile (0–100) of all Try latencies, in ms.
    pub fn percentile(&self, p: f64) -> f64 {
        percentile(&self.latencies_ms, p)
    }

    /// The `p`-th percentile (0–100) of the accepted Tries' latencies, in ms.
    pub fn accepted_percentile(&self, p: f64) -> f64 {
        percentile(&self.accepted_ms, p)
    }

    pub fn errors(&self) -> u64 {
        self.by_code
            .iter()
            .filter(|(c, _)| !matches!(c.as_str(), "ACCEPTED" | "SOLD_OUT" | "INSUFFICIENT_STOCK"))
            .map(|(_, n)| n)
            .sum()
    }

    /// The stock identities (docs/DESIGN.md#stock-identities) on both stores, and no oversell: every failure, by name.
    pub fn identity_failures(&self) -> Vec<String> {
        let s = &self.last;
        let reserved = s.stores.by_status.get("RESERVED").copied().unwrap_or(0);
        let mut out = s.stores.identity_failures(true);
        let mut check = |ok: bool, what: String| {
            if !ok {
                out.push(what);
            }
        };
        check(self.accepted as i64 == reserved, format!("accepted {} ≠ RESERVED {reserved}", self.accepted));
        check(self.accepted <= self.units, format!("oversold: accepted {} > units {}", self.accepted, self.units));
        check(s.drift == Some(0), format!("drift {:?}", s.drift));
        check(s.violations == 0, format!("{} identity violations reported", s.violations));
        out
    }
}

/// The `p`-th percentile (0–100) of `v`, nearest rank.
pub fn percentile(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Runs one flash sale on a fresh deployment named `name`.
pub async fn run(redis_url: &str, name: &str, opts: &FlashOptions) -> anyhow::Result<FlashReport> {
    let sopts = StackOptions {
        persist_batch_size: opts.persist_batch_size,
        batching_window: opts.batching_window,
        persist_consumers: opts.persist_consumers,
        run_timers: false,
        schedule_interval: None,
        ..StackOptions::default()
    };
    let stack = Stack::launch(name, redis_url, sopts, |c| c.emit_emf = false).await?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(opts.concurrency).build()?;
    let base = stack.url.clone();
    let admin = stack.token("operator", &[flashstock::http::auth::ADMIN_SCOPE]);
    let collection = format!("sale-{}", ulid::Ulid::new().to_string().to_lowercase());
    let put = http
        .put(format!("{base}/v1/admin/collections/{collection}"))
        .bearer_auth(&admin)
        .json(&json!({ "quantity": opts.units }))
        .send()
        .await?;
    anyhow::ensure!(put.status().as_u16() == 201, "create collection: {}", put.status());
    let warm = http.post(format!("{base}/v1/admin/collections/{collection}/warmup")).bearer_auth(&admin).send().await?;
    anyhow::ensure!(warm.status().is_success(), "warm-up: {}", warm.status());
    let id = CollectionId::parse(&collection)?;

    // Every buyer's token is minted before the clock starts.
    let buyers: Vec<(String, String)> =
        (0..opts.buyers).map(|i| (format!("{collection}-o{i}"), stack.token(&format!("buyer-{i}"), &[]))).collect();

    // The sampler: both stores every `sample_every` until stopped.
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let start = Instant::now();
    let sampler = {
        let (app, id, samples, every) = (stack.app.clone(), id.clone(), samples.clone(), opts.sample_every);
        tokio::spawn(async move {
            loop {
                if let (Ok((stock, pending)), Ok(Some(rec))) =
                    tokio::join!(redis_levels(&app, &id), app.ledger.collection(&id))
                {
                    let s = Sample {
                        t: start.elapsed().as_secs_f64(),
                        redis_stock: stock,
                        saleable: rec.levels.saleable,
                        pending,
                        reserved: rec.levels.reserved,
                    };
                    if let Ok(mut v) = samples.lock() {
                        v.push(s);
                    }
                }
                tokio::time::sleep(every).await;
            }
        })
    };

    let url = format!("{base}/v1/collections/{collection}/reservations");
    let results: Vec<(String, f64)> = futures::stream::iter(buyers)
        .map(|(order, token)| {
            let (http, url) = (&http, &url);
            async move {
                let t = Instant::now();
                let r =
                    http.post(url).bearer_auth(token).json(&json!({ "orderId": order, "quantity": 1 })).send().await;
                let code = match r {
                    Ok(resp) if resp.status().as_u16() == 202 => "ACCEPTED".to_owned(),
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        let v = resp.json::<Value>().await.unwrap_or(Value::Null);
                        v.get("code").and_then(Value::as_str).map_or_else(|| format!("HTTP_{status}"), str::to_owned)
                    }
                    Err(_) => "TRANSPORT".to_owned(),
                };
                (code, t.elapsed().as_secs_f64() * 1e3)
            }
        })
        .buffer_unordered(opts.concurrency)
        .collect()
        .await;
    let try_seconds = start.elapsed().as_secs_f64();
    let mut report = FlashReport {
        buyers: opts.buyers,
        units: opts.units,
        concurrency: opts.concurrency,
        try_seconds,
        ..Default::default()
    };
    for (code, ms) in results {
        if code == "ACCEPTED" {
            report.accepted_ms.push(ms);
        }
        *report.by_code.entry(code).or_default() += 1;
        report.latencies_ms.push(ms);
    }
    report.accepted = report.by_code.get("ACCEPTED").copied().unwrap_or(0);

    // Until every accepted reservation is durable (RESERVED), from the sampler's readings (one
    // more reader would only slow the single-threaded DynamoDB emulator that persist writes to).
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        let done =
            samples.lock().ok().and_then(|v| v.iter().find(|s| s.reserved >= report.accepted as i64).map(|s| s.t));
        if let Some(t) = done {
            report.all_reserved_seconds = Some(t);
            break;
        }
        tokio::time::sleep(opts.sample_every).await;
    }
    // A little more of the quiet tail, then stop sampling.
    tokio::time::sleep(opts.sample_every * 4).await;
    sampler.abort();
    report.samples = samples.lock().map(|v| v.clone()).unwrap_or_default();

    // Wait for Redis to hear back from persist (pending 0), then read both stores and reconcile.
    let deadline = Instant::now() + Duration::from_secs(60);
    while redis_levels(&stack.app, &id).await?.1 > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let run = stack.app.reconcile(flashstock::now_ms()).await?;
    let rec = stack.app.ledger.collection(&id).await?.ok_or_else(|| anyhow::anyhow!("collection vanished"))?;
    let mine = run.collections.get(id.as_str());
    report.last = FinalState {
        stores: stack.store_figures(&collection).await?,
        drift: mine.and_then(|c| c.drift),
        violations: mine.map_or(0, |c| c.identity_violations.len()) + rec.violations().len(),
    };
    Ok(report)
}

/// Registers DejaVu Sans (Debian's fonts-dejavu-core, which `infra/setup.sh` installs) as the
/// plots' font: plotters draws text with ab_glyph, without system font libraries.
/// Redis's stock and pending units over the collection's cache shards (stock 0 where a shard's
/// key is missing).
async fn redis_levels(app: &flashstock::app::LiveApp, id: &CollectionId) -> anyhow::Result<(i64, i64)> {
    let shards = app.spec(id).await.map_err(|e| anyhow::anyhow!("{e}"))?.cache_shards;
    let (mut stock, mut pending) = (0, 0);
    for shard in 0..shards {
        let snap = app.cache.snapshot(id, flashstock::domain::CacheShard::new(shard, shards)).await?;
        stock += snap.stock.unwrap_or(0);
        pending += snap.pending;
    }
    Ok((stock, pending))
}

fn register_font() -> anyhow::Result<()> {
    static DONE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if DONE.get().is_some() {
        return Ok(());
    }
    let path = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("{path}: {e} (install fonts-dejavu-core)"))?;
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, bytes)
        .map_err(|_| anyhow::anyhow!("{path} is not a usable font"))?;
    let _ = DONE.set(true);
    Ok(())
}

/// A 960×540 white PNG canvas and a chart builder with the plots' common layout.
fn canvas(
    out: &Path,
) -> anyhow::Result<plotters::prelude::DrawingArea<plotters::prelude::BitMapBackend<'_>, plotters::coord::Shift>> {
    use plotters::prelude::*;
    register_font()?;
    let root = BitMapBackend::new(out, (960, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    Ok(root)
}

fn layout<'a, 'b, DB: plotters::prelude::DrawingBackend>(
    root: &'a plotters::prelude::DrawingArea<DB, plotters::coord::Shift>,
    title: String,
) -> plotters::prelude::ChartBuilder<'a, 'b, DB> {
    let mut b = plotters::prelude::ChartBuilder::on(root);
    b.caption(title, ("sans-serif", 16)).margin(12).x_label_area_size(40).y_label_area_size(60);
    b
}

/// A histogram of Try latencies on a log scale (60 log-spaced bins), accepted and refused apart:
/// the two have different paths (an accepted Try also sends to SQS).
pub fn plot_latency(report: &FlashReport, out: &Path) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let lo = report.latencies_ms.iter().copied().fold(f64::INFINITY, f64::min).max(0.01);
    let hi = report.latencies_ms.iter().copied().fold(0.0, f64::max).max(lo * 10.0);
    let bins = 60usize;
    let step = (hi / lo).ln() / bins as f64;
    let edge = |i: usize| lo * (step * i as f64).exp();
    let bin = |ms: f64| (((ms.max(lo) / lo).ln() / step) as usize).min(bins - 1);
    let (mut accepted, mut all) = (vec![0u32; bins], vec![0u32; bins]);
    for &ms in &report.accepted_ms {
        accepted[bin(ms)] += 1;
    }
    for &ms in &report.latencies_ms {
        all[bin(ms)] += 1;
    }
    let refused: Vec<u32> = all.iter().zip(&accepted).map(|(a, b)| a.saturating_sub(*b)).collect();
    let ymax = all.iter().copied().max().unwrap_or(1).max(1);
    let root = canvas(out)?;
    let title = format!(
        "Try latency, {} buyers / {} units, {} in flight: all p50 {:.1} ms, p99 {:.1}; accepted p50 {:.1}, p99 {:.1}",
        report.buyers,
        report.units,
        report.concurrency,
        report.percentile(50.0),
        report.percentile(99.0),
        report.accepted_percentile(50.0),
        report.accepted_percentile(99.0)
    );
    let mut chart =
        layout(&root, title).build_cartesian_2d((lo..hi * 1.05).log_scale(), 0u32..(ymax + ymax / 10 + 1))?;
    chart
        .configure_mesh()
        .x_desc("latency (ms, log scale; client-side, through the local front door)")
        .y_desc("requests")
        .draw()?;
    let bars = |counts: &[u32], base: &[u32], color: RGBColor| -> Vec<Rectangle<(f64, u32)>> {
        (0..bins)
            .filter(|&i| counts[i] > 0)
            .map(|i| {
                Rectangle::new([(edge(i), base[i]), (edge(i + 1) * 0.97, base[i] + counts[i])], color.mix(0.7).filled())
            })
            .collect()
    };
    chart
        .draw_series(bars(&refused, &vec![0; bins], BLUE))?
        .label("refused (409 SOLD_OUT / INSUFFICIENT_STOCK)")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], BLUE.mix(0.7).filled()));
    chart
        .draw_series(bars(&accepted, &refused, RED))?
        .label("accepted (202: script, SQS send)")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], RED.mix(0.7).filled()));
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

/// One line of the levels plot: label, colour, and the figure it draws from a sample.
type Line = (&'static str, plotters::style::RGBColor, fn(&Sample) -> i64);

/// Redis stock, DynamoDB saleable and Redis's pending units over time.
pub fn plot_levels(report: &FlashReport, out: &Path) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let s = &report.samples;
    let tmax = s.last().map_or(1.0, |x| x.t).max(0.1);
    let ymax = report.units as i64 + report.units as i64 / 10 + 1;
    let root = canvas(out)?;
    let title = format!(
        "{} buyers / {} units: Try burst {:.2} s, all RESERVED at {}",
        report.buyers,
        report.units,
        report.try_seconds,
        report.all_reserved_seconds.map_or("—".to_owned(), |t| format!("{t:.2} s"))
    );
    let mut chart = layout(&root, title).build_cartesian_2d(0f64..tmax, 0i64..ymax)?;
    chart.configure_mesh().x_desc("seconds since the burst began").y_desc("units").draw()?;
    let series: [Line; 3] = [
        ("Redis stock", BLUE, |x| x.redis_stock),
        ("DynamoDB saleable", RED, |x| x.saleable),
        ("PENDING (taken in Redis, not yet durable)", GREEN, |x| x.pending),
    ];
    for (label, color, f) in series {
        chart
            .draw_series(LineSeries::new(s.iter().map(|x| (x.t, f(x))), color.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}
