//! A throwaway Postgres cluster: its own data directory and port, so that restarting it (one of
//! the chaos soak's faults) or loading a library at start (`load-bench statements` preloads
//! `pg_stat_statements`) never disturbs the machine's shared server; removed at the end.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use tokio::process::Command;

/// A running throwaway cluster. Cloning it gives a second handle on the same cluster, which the
/// restart fault takes onto its own task.
#[derive(Clone)]
pub struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    /// Where the server log is copied at the end (the postgres user may not reach work_dir).
    work_dir: PathBuf,
    port: u16,
    as_postgres_user: bool,
    /// Extra `-c name=value` options of the server, kept for every start.
    settings: String,
}

impl Postgres {
    /// Creates the cluster, starts it and creates the `orders` database.
    pub async fn start(work_dir: &Path) -> anyhow::Result<Self> {
        Self::start_with(work_dir, &[]).await
    }

    /// [`Postgres::start`] with server settings of its own (`-c name=value` at every start),
    /// e.g. `shared_preload_libraries`, which only a server start can change.
    pub async fn start_with(work_dir: &Path, settings: &[(&str, &str)]) -> anyhow::Result<Self> {
        let bin = postgres_bin_dir()?;
        let port = local_process::free_port()?;
        // Data directory and log under the temp dir: when this runs as root the server runs as
        // the postgres user, who cannot enter a checkout in a private (0700) directory.
        let id = uuid::Uuid::new_v4().simple().to_string();
        let data = std::env::temp_dir().join(format!("bench-pg-{id}"));
        std::fs::create_dir_all(&data)?;
        let as_postgres_user = is_root().await;
        if as_postgres_user {
            // initdb refuses to run as root.
            run(
                "chown",
                &["-R", "postgres:postgres", data.to_str().unwrap()],
            )
            .await?;
        }
        let cluster = Self {
            bin,
            data,
            log: std::env::temp_dir().join(format!("bench-pg-{id}.log")),
            work_dir: work_dir.to_path_buf(),
            port,
            as_postgres_user,
            settings: settings
                .iter()
                .map(|(name, value)| format!(" -c {name}={value}"))
                .collect(),
        };
        cluster.init().await?;
        cluster.start_server().await?;
        let client = crate::db::connect(&cluster.url("postgres")).await?;
        client.batch_execute("CREATE DATABASE orders").await?;
        Ok(cluster)
    }

    /// The connection URL of database `db` in this cluster.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A fast restart, waiting until the server accepts connections again (with the options of
    /// its start: pg_ctl keeps them in postmaster.opts).
    ///
    /// `-l` again: pg_ctl does not remember it, and without it the new server would keep our
    /// output pipe open (and `output()` would wait for it forever).
    pub async fn restart(&self) -> anyhow::Result<()> {
        let log = self.log.to_str().unwrap().to_owned();
        let data = self.data.to_str().unwrap().to_owned();
        self.pg(
            "pg_ctl",
            &["-D", &data, "-m", "fast", "-l", &log, "-w", "restart"],
        )
        .await
    }

    /// Stops the server without a checkpoint (its data is thrown away anyway), removes the data
    /// directory and keeps the server log beside the other logs. Best effort: this is cleanup.
    pub async fn stop(&self) {
        let _ = self
            .pg(
                "pg_ctl",
                &[
                    "-D",
                    self.data.to_str().unwrap(),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
            )
            .await;
        let _ = std::fs::remove_dir_all(&self.data);
        let _ = std::fs::copy(&self.log, self.work_dir.join("postgres.log"));
        let _ = std::fs::remove_file(&self.log);
    }

    /// `initdb` with trust authentication: the cluster only listens on 127.0.0.1 and lives for
    /// one run.
    async fn init(&self) -> anyhow::Result<()> {
        self.pg(
            "initdb",
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        )
        .await
    }

    /// Starts the server (see [`Postgres::options`]).
    async fn start_server(&self) -> anyhow::Result<()> {
        if self.as_postgres_user {
            // The server, running as postgres, appends to the log file.
            std::fs::File::create(&self.log)?;
            run("chown", &["postgres:postgres", self.log.to_str().unwrap()]).await?;
        }
        let options = self.options();
        self.pg(
            "pg_ctl",
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-o",
                &options,
                "-l",
                self.log.to_str().unwrap(),
                "-w",
                "start",
            ],
        )
        .await
    }

    /// The server's command-line options: its port and socket directory, connections enough for
    /// the runner's pools across its restarts, and the settings it was started with.
    fn options(&self) -> String {
        format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c max_connections=200{}",
            self.port,
            std::env::temp_dir().display(),
            self.settings
        )
    }

    /// Runs a Postgres tool, as the postgres user when we are root.
    async fn pg(&self, tool: &str, args: &[&str]) -> anyhow::Result<()> {
        let program = self.bin.join(tool);
        let output = if self.as_postgres_user {
            let mut all = vec!["-u", "postgres", "--", program.to_str().unwrap()];
            all.extend_from_slice(args);
            Command::new("runuser")
                .args(&all)
                .current_dir(std::env::temp_dir())
                .output()
                .await?
        } else {
            Command::new(&program).args(args).output().await?
        };
        crate::process::stdout_of(tool, &output)?;
        Ok(())
    }
}

/// `PG_BINDIR`, else the last version (in name order) under /usr/lib/postgresql, Debian's layout.
fn postgres_bin_dir() -> anyhow::Result<PathBuf> {
    if let Ok(dir) = std::env::var("PG_BINDIR") {
        return Ok(PathBuf::from(dir));
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("no /usr/lib/postgresql; set PG_BINDIR")?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    candidates.sort();
    candidates.pop().context("no initdb found; set PG_BINDIR")
}

async fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .await
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

async fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new(program).args(args).status().await?;
    if !status.success() {
        bail!("{program} {args:?} failed");
    }
    Ok(())
}
