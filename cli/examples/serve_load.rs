//! The `xsearch serve` benchmark of BENCHMARKS.md: search latency (p50, p99) and throughput at
//! 1, 16 and 64 concurrent clients over a 100k-vector index, thumbnails per second (made, then
//! cached), and the server's resident memory.
//!
//!     cargo build -p xsearch-cli --release --bin xsearch --example serve_load
//!     target/release/examples/serve_load /tmp/serve-bench
//!
//! The folder (created when it does not exist; an index an earlier run left there is reused,
//! so release and debug builds can be compared on one index) gets 16 shapes photos and 16 copies of
//! `fixtures/parity/images/large.jpg` (4000x3000) indexed by `xsearch index` with the shapes
//! model, then 100,000 made-up unit vectors written with `xsearch-index` directly under
//! made-up paths (searches never read them). The server is the `xsearch` beside this example's
//! binary; each client is a thread with its own keep-alive connection.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xsearch_index::{Entry, Index, IndexSpec};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fixtures/models/shapes-tiny"
);
const LARGE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fixtures/parity/images/large.jpg"
);
const VECTORS: usize = 100_000;
const QUERIES: &[&str] = &[
    "a red circle",
    "a blue square",
    "a green triangle",
    "a yellow star",
    "a photo of a cat",
    "sunset over sea",
    "a red square on a blue background",
    "a drawing of a green circle",
    "2:red + blue",
    "a purple star - green",
];

fn main() -> Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: serve_load <folder>")?,
    );
    let dir = std::path::absolute(dir)?;
    let bin = std::env::current_exe()?
        .parent()
        .and_then(Path::parent)
        .ok_or("no target folder")?
        .join("xsearch");
    let index = dir.join("index");
    if !index.exists() {
        std::fs::create_dir(&dir)?;
        let started = Instant::now();
        build(&bin, &dir, &index)?;
        println!(
            "index of {} vectors built in {:.1?}",
            VECTORS + 32,
            started.elapsed()
        );
    }
    // Thumbnails are measured as made, not as cached by an earlier run.
    let _ = std::fs::remove_dir_all(index.join("thumbnails"));

    let mut server = Command::new(&bin)
        .args(["serve", "--addr", "127.0.0.1:0", "--index"])
        .arg(&index)
        .env("XSEARCH_MODEL", MODEL)
        .stderr(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(server.stderr.take().ok_or("no stderr")?).read_line(&mut line)?;
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .ok_or_else(|| format!("unexpected: {line}"))?
        .trim_end_matches('/')
        .to_owned();
    let base = Arc::new(base);

    println!("clients  requests  p50 ms  p99 ms  searches/s");
    for clients in [1, 16, 64] {
        let requests = 2000;
        let (mut latencies, wall) = hammer(&base, clients, requests, |i| {
            format!("/api/search?q={}&k=20", escape(QUERIES[i % QUERIES.len()]))
        })?;
        latencies.sort();
        let at =
            |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        println!(
            "{clients:>7}  {:>8}  {:>6.2}  {:>6.2}  {:>10.0}",
            latencies.len(),
            at(0.50).as_secs_f64() * 1e3,
            at(0.99).as_secs_f64() * 1e3,
            latencies.len() as f64 / wall.as_secs_f64(),
        );
    }

    let found: serde_json::Value = serde_json::from_reader(
        ureq::get(&format!(
            "{base}/api/search?q=a+photo&k=16&in={}",
            escape(dir.join("large").to_str().ok_or("path")?)
        ))
        .call()?
        .into_reader(),
    )?;
    let ids: Arc<Vec<String>> = Arc::new(
        found["results"]
            .as_array()
            .ok_or("no results")?
            .iter()
            .map(|r| r["id"].as_str().unwrap_or_default().to_owned())
            .collect(),
    );
    let count = ids.len();
    for pass in ["made (4000x3000 JPEG decoded at 1/4 scale)", "cached"] {
        let ids = Arc::clone(&ids);
        let (_, wall) = hammer(&base, 4, count, move |i| {
            format!("/api/thumbnail/{}", ids[i])
        })?;
        println!(
            "thumbnails {pass}: {:.1}/s (4 clients)",
            count as f64 / wall.as_secs_f64()
        );
    }

    let status = std::fs::read_to_string(format!("/proc/{}/status", server.id()))?;
    for line in status
        .lines()
        .filter(|l| l.starts_with("VmRSS") || l.starts_with("VmHWM"))
    {
        println!("server {line}");
    }
    server.kill()?;
    server.wait()?;
    Ok(())
}

/// The index: real photos through `xsearch index`, then `VECTORS` made-up ones.
fn build(bin: &Path, dir: &Path, index: &Path) -> Result<()> {
    xsearch_shapes::write_dataset(dir.join("photos"), 16, 3)?;
    std::fs::create_dir(dir.join("large"))?;
    for i in 0..16 {
        std::fs::copy(LARGE, dir.join(format!("large/{i:02}.jpg")))?;
    }
    let status = Command::new(bin)
        .args(["index", "--quiet", "--index"])
        .arg(index)
        .arg(dir.join("photos"))
        .arg(dir.join("large"))
        .env("XSEARCH_MODEL", MODEL)
        .status()?;
    if !status.success() {
        return Err("xsearch index failed".into());
    }
    let info = xsearch_index::inspect(index)?;
    let spec = IndexSpec {
        model: info.model_fingerprint,
        dim: info.dim,
    };
    let writer = Index::open(index, &spec)?;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        // xorshift64*: a fixed sequence, the same index every run.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    for start in (0..VECTORS).step_by(1000) {
        let entries = (start..start + 1000)
            .map(|i| {
                let mut vector: Vec<f32> = (0..spec.dim).map(|_| next()).collect();
                let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
                vector.iter_mut().for_each(|v| *v /= norm);
                Entry {
                    key: format!("/bench/photos/{i:06}.jpg").into_bytes(),
                    file: None,
                    vector,
                    meta: None,
                }
            })
            .collect();
        writer.images().upsert_batch(entries)?;
    }
    writer.checkpoint()?;
    writer.close()?;
    Ok(())
}

/// `requests` GETs of `target(i)` shared by `clients` threads, each on its own keep-alive
/// connection; every answer must be a 200. The latencies and the wall time.
fn hammer(
    base: &Arc<String>,
    clients: usize,
    requests: usize,
    target: impl Fn(usize) -> String + Send + Sync + 'static,
) -> Result<(Vec<Duration>, Duration)> {
    let target = Arc::new(target);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (base, target, next) = (Arc::clone(base), Arc::clone(&target), Arc::clone(&next));
            std::thread::spawn(move || -> std::result::Result<Vec<Duration>, String> {
                let agent = ureq::AgentBuilder::new().max_idle_connections(1).build();
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= requests {
                        return Ok(latencies);
                    }
                    let url = format!("{base}{}", target(i));
                    let sent = Instant::now();
                    let response = agent.get(&url).call().map_err(|e| format!("{url}: {e}"))?;
                    let mut body = Vec::new();
                    std::io::Read::read_to_end(&mut response.into_reader(), &mut body)
                        .map_err(|e| e.to_string())?;
                    latencies.push(sent.elapsed());
                }
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for thread in threads {
        latencies.extend(thread.join().map_err(|_| "a client panicked")??);
    }
    Ok((latencies, started.elapsed()))
}

fn escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
