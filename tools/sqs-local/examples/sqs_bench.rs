//! Throughput of an SQS endpoint through `aws-sdk-sqs`, the client this system uses, so that the
//! embedded endpoint and moto are measured with the same client and the same workload.
//!
//! Each run creates two fresh queues and measures four phases:
//! 1. sequential send: `--messages` SendMessage calls one after another (also p50/p99 latency);
//! 2. concurrent send: the same number spread over `--concurrency` tasks;
//! 3. sequential receive+delete: one consumer drains queue 1 (ReceiveMessage up to 10, then
//!    DeleteMessageBatch);
//! 4. concurrent receive+delete: `--concurrency` consumers drain queue 2.
//!
//! It repeats `--runs` times and prints every run and the median, with the machine and the build
//! profile. `scripts/bench-sqs.sh` runs it against the `sqs-local` binary and moto.
//!
//! ```text
//! cargo run --release -p sqs-local --example sqs_bench -- --endpoint http://127.0.0.1:9324
//! cargo run --release -p sqs-local --example sqs_bench -- --embedded --messages 5000
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::{Credentials, Region};
use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;

struct Options {
    endpoint: Option<String>,
    messages: usize,
    concurrency: usize,
    runs: usize,
    label: Option<String>,
}

fn usage() -> ! {
    eprintln!(
        "usage: sqs_bench (--endpoint URL | --embedded) [--messages N] [--concurrency C] [--runs R] [--label TEXT]"
    );
    std::process::exit(2)
}

fn options() -> Options {
    let mut options = Options {
        endpoint: None,
        messages: 300,
        concurrency: 16,
        runs: 3,
        label: None,
    };
    let mut embedded = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        let number = |text: String| text.parse::<usize>().unwrap_or_else(|_| usage());
        match arg.as_str() {
            "--endpoint" => options.endpoint = Some(value()),
            "--embedded" => embedded = true,
            "--messages" => options.messages = number(value()),
            "--concurrency" => options.concurrency = number(value()).max(1),
            "--runs" => options.runs = number(value()).max(1),
            "--label" => options.label = Some(value()),
            _ => usage(),
        }
    }
    if embedded == options.endpoint.is_some() {
        usage();
    }
    options
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|model| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

async fn client(endpoint: &str) -> Client {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "bench"))
        .load()
        .await;
    Client::new(&config)
}

async fn create_queue(client: &Client, name: &str) -> String {
    client
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("CreateQueue")
        .queue_url
        .expect("QueueUrl")
}

fn body(i: usize) -> String {
    // About the size of a placement message.
    format!(r#"{{"order_id":"0190d3c2-7a4e-7b1c-9f00-{i:012}","attempt":1}}"#)
}

/// Messages per second, and the sorted per-call latencies when measured.
struct Phase {
    rate: f64,
    latencies: Vec<Duration>,
}

async fn send_sequential(client: &Client, url: &str, n: usize) -> Phase {
    let mut latencies = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        let call = Instant::now();
        client
            .send_message()
            .queue_url(url)
            .message_body(body(i))
            .send()
            .await
            .expect("SendMessage");
        latencies.push(call.elapsed());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Phase {
        rate: n as f64 / elapsed.as_secs_f64(),
        latencies,
    }
}

async fn send_concurrent(client: &Client, url: &str, n: usize, tasks: usize) -> Phase {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..tasks)
        .map(|_| {
            let (client, url, next) = (client.clone(), url.to_owned(), Arc::clone(&next));
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    client
                        .send_message()
                        .queue_url(&url)
                        .message_body(body(i))
                        .send()
                        .await
                        .expect("SendMessage");
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("sender");
    }
    Phase {
        rate: n as f64 / started.elapsed().as_secs_f64(),
        latencies: Vec::new(),
    }
}

/// `consumers` tasks receive (up to 10) and batch-delete until `n` messages are gone.
async fn drain(client: &Client, url: &str, n: usize, consumers: usize) -> Phase {
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..consumers)
        .map(|_| {
            let (client, url, done) = (client.clone(), url.to_owned(), Arc::clone(&done));
            tokio::spawn(async move {
                while done.load(Ordering::Relaxed) < n {
                    let output = client
                        .receive_message()
                        .queue_url(&url)
                        .max_number_of_messages(10)
                        .wait_time_seconds(0)
                        .send()
                        .await
                        .expect("ReceiveMessage");
                    let entries: Vec<DeleteMessageBatchRequestEntry> = output
                        .messages()
                        .iter()
                        .enumerate()
                        .map(|(i, m)| {
                            DeleteMessageBatchRequestEntry::builder()
                                .id(i.to_string())
                                .set_receipt_handle(m.receipt_handle.clone())
                                .build()
                                .expect("entry")
                        })
                        .collect();
                    if entries.is_empty() {
                        continue;
                    }
                    let count = entries.len();
                    let deleted = client
                        .delete_message_batch()
                        .queue_url(&url)
                        .set_entries(Some(entries))
                        .send()
                        .await
                        .expect("DeleteMessageBatch");
                    assert!(deleted.failed().is_empty(), "delete failures");
                    done.fetch_add(count, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("consumer");
    }
    Phase {
        rate: n as f64 / started.elapsed().as_secs_f64(),
        latencies: Vec::new(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() {
    let options = options();
    let _embedded;
    let endpoint = match &options.endpoint {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let handle = sqs_local::spawn("127.0.0.1:0".parse().unwrap())
                .await
                .expect("embedded endpoint");
            let url = handle.endpoint_url.clone();
            _embedded = handle;
            url
        }
    };
    let label = options.label.clone().unwrap_or_else(|| {
        if options.endpoint.is_some() {
            endpoint.clone()
        } else {
            "embedded (in-process)".into()
        }
    });
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!("endpoint     {label}");
    println!(
        "machine      {} CPUs, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model()
    );
    println!("client       aws-sdk-sqs, {profile} build");
    println!(
        "workload     {} messages per phase, {} concurrent tasks, {} runs",
        options.messages, options.concurrency, options.runs
    );

    let client = client(&endpoint).await;
    let n = options.messages;
    let mut rates: [Vec<f64>; 4] = Default::default();
    let mut p50s = Vec::new();
    let mut p99s = Vec::new();
    let names = [
        "send, sequential",
        "send, concurrent",
        "receive+delete, sequential",
        "receive+delete, concurrent",
    ];
    for run in 1..=options.runs {
        let tag = format!("{:08x}", fastrand::u32(..));
        let one = create_queue(&client, &format!("bench-{tag}-seq")).await;
        let two = create_queue(&client, &format!("bench-{tag}-con")).await;
        let phases = [
            send_sequential(&client, &one, n).await,
            send_concurrent(&client, &two, n, options.concurrency).await,
            drain(&client, &one, n, 1).await,
            drain(&client, &two, n, options.concurrency).await,
        ];
        for queue in [&one, &two] {
            let _ = client.delete_queue().queue_url(queue).send().await;
        }
        let p50 = percentile(&phases[0].latencies, 0.50);
        let p99 = percentile(&phases[0].latencies, 0.99);
        println!(
            "run {run}        {}  (sequential send p50 {:.2} ms, p99 {:.2} ms)",
            phases
                .iter()
                .map(|p| format!("{:>8.0}", p.rate))
                .collect::<Vec<_>>()
                .join(" "),
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
        );
        for (slot, phase) in rates.iter_mut().zip(&phases) {
            slot.push(phase.rate);
        }
        p50s.push(p50.as_secs_f64() * 1e3);
        p99s.push(p99.as_secs_f64() * 1e3);
    }
    println!("median of {} runs (messages/s):", options.runs);
    for (name, values) in names.iter().zip(rates.iter_mut()) {
        println!("  {name:<28} {:>8.0}", median(values));
    }
    println!(
        "  sequential send latency      p50 {:.2} ms, p99 {:.2} ms",
        median(&mut p50s),
        median(&mut p99s)
    );
}
