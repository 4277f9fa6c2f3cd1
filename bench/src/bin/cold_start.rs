//! `cold-start`: measures each function's release binary the way Lambda runs it. A small Lambda
//! Runtime API emulator (the `next` / `response` / `error` endpoints the runtime client polls)
//! hands the binary one event; the figure is the time from process spawn to the answered first
//! invocation — init (config, SDK, pool) plus the first event, which opens the first database
//! connection. The time of the binary's first poll of `next` splits it into init and the first
//! event. Then, for the api, it sends many requests through the same process and reads its
//! peak resident memory (VmHWM) from /proc.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use bench::api::{bench_api_key, limit_order};
use bench::process::{Output, Process};
use bench::results::{median_by, write_json};
use clap::Parser;
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc};

#[derive(Parser, Debug)]
#[command(about = "Cold start and memory of the Lambda binaries under a Runtime API emulator")]
struct Args {
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Cold starts per function (the median is reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Requests sent through one api process before its peak RSS is read.
    #[arg(long, default_value_t = 100_000)]
    api_requests: usize,
    /// Where the figures are written as JSON.
    #[arg(long, default_value = "bench/results/cold-start.json")]
    out: PathBuf,
}

/// The emulator's state: events waiting for `next`, and answers coming back.
struct Emulator {
    events: Mutex<mpsc::Receiver<(String, Value)>>,
    answers: mpsc::Sender<(String, Result<Value, String>)>,
    /// When the binary first asked for an event: the end of its init.
    first_poll: std::sync::Mutex<Option<Instant>>,
}

async fn next(State(emu): State<Arc<Emulator>>) -> impl IntoResponse {
    emu.first_poll
        .lock()
        .unwrap()
        .get_or_insert_with(Instant::now);
    let event = emu.events.lock().await.recv().await;
    match event {
        Some((id, body)) => {
            let deadline = (std::time::SystemTime::now() + Duration::from_secs(60))
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
                .to_string();
            let mut headers = HeaderMap::new();
            headers.insert("lambda-runtime-aws-request-id", id.parse().unwrap());
            headers.insert("lambda-runtime-deadline-ms", deadline.parse().unwrap());
            headers.insert(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:bench"
                    .parse()
                    .unwrap(),
            );
            headers.insert(
                "lambda-runtime-trace-id",
                "Root=1-00000000-000000000000000000000000;Sampled=0"
                    .parse()
                    .unwrap(),
            );
            (StatusCode::OK, headers, Json(body)).into_response()
        }
        None => StatusCode::GONE.into_response(),
    }
}

async fn response(
    State(emu): State<Arc<Emulator>>,
    Path(id): Path<String>,
    body: String,
) -> StatusCode {
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    let _ = emu.answers.send((id, Ok(value))).await;
    StatusCode::ACCEPTED
}

async fn error(
    State(emu): State<Arc<Emulator>>,
    Path(id): Path<String>,
    body: String,
) -> StatusCode {
    let _ = emu.answers.send((id, Err(body))).await;
    StatusCode::ACCEPTED
}

async fn init_error(State(emu): State<Arc<Emulator>>, body: String) -> StatusCode {
    let _ = emu.answers.send(("init".into(), Err(body))).await;
    StatusCode::ACCEPTED
}

/// A running emulator with the channels the benchmark drives it through.
struct Runtime {
    addr: SocketAddr,
    events: mpsc::Sender<(String, Value)>,
    answers: mpsc::Receiver<(String, Result<Value, String>)>,
    server: tokio::task::JoinHandle<()>,
    emulator: Arc<Emulator>,
}

async fn start_runtime() -> anyhow::Result<Runtime> {
    let (event_tx, event_rx) = mpsc::channel(1);
    let (answer_tx, answer_rx) = mpsc::channel(16);
    let emu = Arc::new(Emulator {
        events: Mutex::new(event_rx),
        answers: answer_tx,
        first_poll: std::sync::Mutex::new(None),
    });
    let emulator = emu.clone();
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(emu);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(Runtime {
        addr,
        events: event_tx,
        answers: answer_rx,
        server,
        emulator,
    })
}

impl Runtime {
    fn first_poll(&self) -> Option<Instant> {
        *self.emulator.first_poll.lock().unwrap()
    }

    async fn invoke(&mut self, event: Value) -> anyhow::Result<Result<Value, String>> {
        let id = uuid::Uuid::new_v4().to_string();
        self.events.send((id.clone(), event)).await?;
        loop {
            let (answered, result) =
                tokio::time::timeout(Duration::from_secs(60), self.answers.recv())
                    .await
                    .context("no answer within 60 s")?
                    .context("emulator closed")?;
            if answered == id || answered == "init" {
                return Ok(result);
            }
        }
    }
}

struct Function {
    name: &'static str,
    env: Vec<(String, String)>,
    event: fn() -> Value,
}

fn api_event() -> Value {
    let body = limit_order("buy", "US0378331005", "120.50", 10);
    json!({
        "version": "2.0", "routeKey": "$default", "rawPath": "/orders", "rawQueryString": "",
        "headers": {
            "content-type": "application/json",
            "host": "bench.execute-api.us-east-1.amazonaws.com",
            "authorization": format!("Bearer {}", bench_api_key().unwrap_or_default()),
        },
        "requestContext": {
            "accountId": "123456789012", "apiId": "bench", "domainName": "bench.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "bench", "requestId": uuid::Uuid::new_v4().to_string(), "routeKey": "$default", "stage": "$default",
            "time": "25/Nov/2026:00:00:00 +0000", "timeEpoch": 1_795_600_000_000u64,
            "http": {"method": "POST", "path": "/orders", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "bench"}
        },
        "body": body, "isBase64Encoded": false
    })
}

fn sweeper_event() -> Value {
    json!({"version": "0", "id": "bench", "detail-type": "Scheduled Event", "source": "aws.events",
           "account": "123456789012", "time": "2026-11-25T00:00:00Z", "region": "us-east-1",
           "resources": [], "detail": {}})
}

fn sqs_event(body: &str) -> Value {
    json!({"Records": [{
        "messageId": uuid::Uuid::new_v4().to_string(), "receiptHandle": "bench-handle", "body": body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1795600000000"},
        "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:orders", "awsRegion": "us-east-1"
    }]})
}

/// A placement message for an order that does not exist: the placer claims (one query), finds
/// nothing and reports the record — a full round through config, pool and store.
fn placer_event() -> Value {
    sqs_event(&format!(
        r#"{{"version":1,"order_id":"{}","type":"market","side":"buy","instrument":"US0378331005","limit_price":null,"quantity":1}}"#,
        uuid::Uuid::now_v7()
    ))
}

fn alerter_event() -> Value {
    placer_event()
}

/// The function's binary as Lambda starts it: its configuration in the environment and the
/// Runtime API (here the emulator) to poll. Its output is discarded: only its answers count.
fn spawn_function(
    binary: &std::path::Path,
    function: &Function,
    runtime: &Runtime,
) -> anyhow::Result<Process> {
    let runtime_api = runtime.addr.to_string();
    Process::spawn(
        binary,
        function
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain([
                ("AWS_LAMBDA_FUNCTION_NAME", function.name),
                ("AWS_LAMBDA_RUNTIME_API", runtime_api.as_str()),
            ]),
        Output::Discard,
    )
}

fn peak_rss_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let env = |name: &str| {
        std::env::var(name)
            .with_context(|| format!("{name} must be set (scripts/bench.sh sets it)"))
    };
    let database_url = env("DATABASE_URL")?;
    let queue_url = env("ORDERS_QUEUE_URL")?;
    let topic_arn = env("ALERT_TOPIC_ARN")?;
    let exchange_url = env("EXCHANGE_BASE_URL")?;
    let common: Vec<(String, String)> = [
        ("DATABASE_URL", database_url.as_str()),
        ("RUST_LOG", "warn"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/bench"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let with = |extra: &[(&str, &str)]| {
        let mut all = common.clone();
        all.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        all
    };
    let functions = vec![
        Function {
            name: "api",
            env: with(&[("ORDERS_QUEUE_URL", &queue_url)]),
            event: api_event,
        },
        Function {
            name: "sweeper",
            env: with(&[("ORDERS_QUEUE_URL", &queue_url)]),
            event: sweeper_event,
        },
        Function {
            name: "placer",
            env: with(&[
                ("ORDERS_QUEUE_URL", &queue_url),
                ("EXCHANGE_BASE_URL", &exchange_url),
            ]),
            event: placer_event,
        },
        Function {
            name: "alerter",
            env: with(&[
                ("ALERT_TOPIC_ARN", &topic_arn),
                ("EXCHANGE_BASE_URL", &exchange_url),
            ]),
            event: alerter_event,
        },
    ];

    let mut report = serde_json::Map::new();
    println!(
        "{:<10} {:>12} {:>12} {:>12} {:>15} {:>15}  first answer",
        "function", "min ms", "median ms", "max ms", "init median", "event median"
    );
    for function in &functions {
        let binary = args.bin_dir.join(function.name);
        if !binary.exists() {
            bail!("{} missing (cargo build --release)", binary.display());
        }
        let mut times = Vec::new();
        let mut inits = Vec::new();
        let mut sample = String::new();
        for _ in 0..args.runs {
            let mut runtime = start_runtime().await?;
            let started = Instant::now();
            let mut child = spawn_function(&binary, function, &runtime)?;
            let answer = runtime.invoke((function.event)()).await?;
            times.push(started.elapsed());
            if let Some(polled) = runtime.first_poll() {
                inits.push(polled - started);
            }
            sample = match answer {
                Ok(value) => value.to_string().chars().take(60).collect(),
                Err(error) => format!("ERROR {}", error.chars().take(60).collect::<String>()),
            };
            let _ = child.kill().await;
            runtime.server.abort();
        }
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let med = median_by(times.clone(), Duration::as_secs_f64);
        let events: Vec<Duration> = times.iter().zip(&inits).map(|(t, i)| *t - *i).collect();
        let init_med = median_by(inits.clone(), Duration::as_secs_f64);
        let event_med = median_by(events, Duration::as_secs_f64);
        println!(
            "{:<10} {:>12.1} {:>12.1} {:>12.1} {:>15.1} {:>15.1}  {sample}",
            function.name,
            ms(*times.iter().min().unwrap()),
            ms(med),
            ms(*times.iter().max().unwrap()),
            ms(init_med),
            ms(event_med)
        );
        report.insert(
            format!("cold_start_ms_{}", function.name),
            json!({"min": ms(*times.iter().min().unwrap()), "median": ms(med), "max": ms(*times.iter().max().unwrap()),
                   "init_median": ms(init_med), "first_event_median": ms(event_med), "runs": args.runs}),
        );
    }

    // Memory: one api process, many requests.
    let mut runtime = start_runtime().await?;
    let api = &functions[0];
    let child = spawn_function(&args.bin_dir.join("api"), api, &runtime)?;
    let pid = child.pid();
    let started = Instant::now();
    let mut statuses: HashMap<String, usize> = HashMap::new();
    for _ in 0..args.api_requests {
        let answer = runtime.invoke(api_event()).await?;
        let status = match answer {
            Ok(value) => value["statusCode"].to_string(),
            Err(_) => "error".into(),
        };
        *statuses.entry(status).or_default() += 1;
    }
    let elapsed = started.elapsed();
    let (hwm, rss) = peak_rss_kib(pid).unwrap_or((0, 0));
    println!(
        "api: {} requests in {:.1} s ({:.0}/s, one at a time), statuses {:?}; peak RSS {:.1} MiB, RSS now {:.1} MiB",
        args.api_requests,
        elapsed.as_secs_f64(),
        args.api_requests as f64 / elapsed.as_secs_f64(),
        statuses,
        hwm as f64 / 1024.0,
        rss as f64 / 1024.0
    );
    report.insert(
        "api_memory".into(),
        json!({"requests": args.api_requests, "peak_rss_mib": hwm as f64 / 1024.0, "rss_mib": rss as f64 / 1024.0,
               "seconds": elapsed.as_secs_f64(), "statuses": statuses}),
    );
    drop(child);
    write_json(&args.out, &Value::Object(report))?;
    println!("written to {}", args.out.display());
    Ok(())
}
