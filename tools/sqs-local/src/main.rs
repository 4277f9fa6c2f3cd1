//! `sqs-local`: the in-memory SQS endpoint as a process, for tools that cannot embed it. Listens
//! on `SQS_LOCAL_LISTEN` (default `127.0.0.1:9324`), prints the endpoint URL to give the SDK
//! (`AWS_ENDPOINT_URL` or `endpoint_url`), and serves until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let listen =
        std::env::var("SQS_LOCAL_LISTEN").unwrap_or_else(|_| sqs_local::DEFAULT_LISTEN.to_owned());
    let listen: SocketAddr = match listen.parse() {
        Ok(addr) => addr,
        Err(error) => {
            eprintln!("SQS_LOCAL_LISTEN={listen:?} is not host:port: {error}");
            return ExitCode::from(2);
        }
    };
    let handle = match sqs_local::spawn(listen).await {
        Ok(handle) => handle,
        Err(error) => {
            eprintln!("cannot listen on {listen}: {error}");
            return ExitCode::from(1);
        }
    };
    println!("{}", handle.endpoint_url);
    tracing::info!(endpoint = %handle.endpoint_url, "sqs-local serving");
    local_process::shutdown_signal().await;
    handle.shutdown().await;
    ExitCode::SUCCESS
}
