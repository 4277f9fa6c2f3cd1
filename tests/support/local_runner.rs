//! Starts the local system exactly as a developer does — the README's run command, `make run` —
//! on free ports and fresh queue/database names, and stops the whole process group afterwards.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use order_shared::auth::ApiKey;
use uuid::Uuid;

/// Secrets every runner the tests start is given, so that a search of the logs can prove that
/// none of them is ever written out (`scripts/test.sh` searches all runner logs of the run).
/// The database password is accepted and ignored by the local server's trust authentication.
pub const CANARY_PEPPER: &str = "canary-pepper-3f9c1e7a-must-never-be-logged";
pub const CANARY_EXCHANGE_KEY: &str = "canary-exchange-key-b71d40-must-never-be-logged";
pub const CANARY_DB_PASSWORD: &str = "canary-db-password-5e2a91";

/// Where runner logs go: one file per runner, all searched for secrets at the end of the run.
pub fn log_dir() -> PathBuf {
    let dir = std::env::var_os("TEST_LOG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".local/test-logs"));
    std::fs::create_dir_all(&dir).expect("log directory");
    dir
}

/// A running `make run`; killed (with everything it started) on drop.
pub struct LocalRunner {
    child: Child,
    pub base_url: String,
    /// The live order updates' WebSocket (`ws://…/updates`).
    pub updates_url: String,
    /// The database URL without the (canary) password: direct to Postgres, for assertions and
    /// the admin tool, whichever way the runner itself connects (`TEST_DATABASE_VIA`).
    pub database_url: String,
    pub log_path: PathBuf,
    /// The key of client `local`, registered by the runner at start (`LOCAL_API_KEY`).
    pub api_key: ApiKey,
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository root")
        .to_path_buf()
}

impl LocalRunner {
    /// Runs `make run` with extra environment and waits until `/health` answers 200.
    pub async fn start(extra_env: &[(&str, String)]) -> Self {
        let suffix = Uuid::new_v4().simple().to_string();
        let port = local_process::free_port().expect("a free port");
        let updates_port = local_process::free_port().expect("a free port");
        let database_url = format!(
            "{}/e2e_{suffix}",
            crate::admin_url()
                .rsplit_once('/')
                .map(|(base, _)| base.to_owned())
                .unwrap_or_default()
        );
        let (scheme_and_user, host_and_db) = database_url
            .split_once('@')
            .expect("the admin URL names a user");
        let database_url_with_password =
            format!("{scheme_and_user}:{CANARY_DB_PASSWORD}@{host_and_db}");
        let api_key = ApiKey::generate().expect("OS randomness");
        let log_path = log_dir().join(format!("local-runner-{suffix}.log"));
        let log = std::fs::File::create(&log_path).expect("log file");
        let mut command = Command::new("make");
        command
            .arg("run")
            .current_dir(repo_root())
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("UPDATES_LISTEN_ADDR", format!("127.0.0.1:{updates_port}"))
            .env("DATABASE_URL", &database_url_with_password)
            // `make run`'s switch: through PgBouncer, it migrates over DATABASE_URL as given and
            // serves over the same URL pointed at PgBouncer.
            .env("LOCAL_DB_VIA", crate::DatabaseVia::from_env().as_str())
            .env("API_KEY_PEPPER", CANARY_PEPPER)
            .env("EXCHANGE_SIM_API_KEY", CANARY_EXCHANGE_KEY)
            .env("LOCAL_API_KEY", api_key.expose())
            .env("LOCAL_REQUESTS_PER_SECOND", "100000")
            .env("LOCAL_MAX_OPEN_ORDERS", "100000")
            // Debug level (but for the transport crates' per-packet chatter), so that the
            // search for secrets sees the most.
            .env(
                "RUST_LOG",
                "debug,hyper=info,hyper_util=info,h2=info,rustls=info,aws_smithy_runtime=info",
            )
            // Any free port for the simulated exchange (its default, 4010, is one per machine:
            // two runners of tests running side by side would race for it).
            .env("EXCHANGE_SIM_LISTEN", "127.0.0.1:0")
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
        let mut runner = Self {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            updates_url: format!("ws://127.0.0.1:{updates_port}/updates"),
            database_url,
            log_path,
            api_key,
        };
        runner.wait_healthy(Duration::from_secs(300)).await;
        runner
    }

    async fn wait_healthy(&mut self, within: Duration) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            // A runner that failed to start (a port taken, a bad setting) fails the test now,
            // not after the whole wait.
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the local runner exited ({status}) before it became healthy; its log:\n{}",
                    self.log()
                );
            }
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

    /// Runs the `orders-admin` binary (built by the test command) against the runner's
    /// database; panics unless it succeeds.
    pub fn orders_admin(&self, args: &[&str]) -> std::process::Output {
        let binary = repo_root().join("target/debug/orders-admin");
        let output = Command::new(&binary)
            .args(args)
            .env("DATABASE_URL", &self.database_url)
            .env("API_KEY_PEPPER", CANARY_PEPPER)
            .env_remove("API_KEY_PEPPER_SECRET_ARN")
            .output()
            .unwrap_or_else(|e| {
                panic!("{} (cargo build --workspace --bins): {e}", binary.display())
            });
        assert!(
            output.status.success(),
            "orders-admin {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// An HTTP client that sends the runner's API key on every request.
    pub fn client(&self) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", self.api_key.expose())
                .parse()
                .expect("header value"),
        );
        reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .expect("client")
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
