//! Starts the local system exactly as a developer does — the README's run command, `make run` —
//! on free ports and fresh queue/database names, and stops the whole process group afterwards.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use uuid::Uuid;

/// A running `make run`; killed (with everything it started) on drop.
pub struct LocalRunner {
    child: Child,
    pub base_url: String,
    pub database_url: String,
    pub log_path: PathBuf,
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository root")
        .to_path_buf()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl LocalRunner {
    /// Runs `make run` with extra environment and waits until `/health` answers 200.
    pub async fn start(extra_env: &[(&str, String)]) -> Self {
        let suffix = Uuid::new_v4().simple().to_string();
        let port = free_port();
        let database_url = format!(
            "{}/e2e_{suffix}",
            crate::admin_url()
                .rsplit_once('/')
                .map(|(base, _)| base.to_owned())
                .unwrap_or_default()
        );
        let log_path = std::env::temp_dir().join(format!("local-runner-{suffix}.log"));
        let log = std::fs::File::create(&log_path).expect("log file");
        let mut command = Command::new("make");
        command
            .arg("run")
            .current_dir(repo_root())
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("DATABASE_URL", &database_url)
            .env("ORDERS_QUEUE_NAME", format!("orders-{suffix}"))
            .env("ORDERS_DLQ_NAME", format!("orders-dlq-{suffix}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .process_group(0);
        for (name, value) in extra_env {
            command.env(name, value);
        }
        let child = command.spawn().expect("make run starts");
        let runner = Self {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            database_url,
            log_path,
        };
        runner.wait_healthy(Duration::from_secs(300)).await;
        runner
    }

    async fn wait_healthy(&self, within: Duration) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(response) = client.get(format!("{}/health", self.base_url)).send().await {
                if response.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!(
            "the local runner did not become healthy; its log:\n{}",
            self.log()
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for LocalRunner {
    fn drop(&mut self) {
        // The whole process group (make, the script, cargo, the runner): `--` so that the
        // negative pid is not read as a signal number.
        let group = format!("-{}", self.child.id());
        for signal in ["TERM", "KILL"] {
            let _ = Command::new("kill")
                .args(["-s", signal, "--", &group])
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}
