//! PgBouncer in transaction pooling mode between the runner and the soak's Postgres, as RDS Proxy
//! sits between the functions and the database in AWS: the soak's functions share 4 server
//! connections, so any session state would break them, and a Postgres restart is seen through
//! the pooler as it would be through the proxy. Migrations go around it (`MIGRATION_DATABASE_URL`).
//! Debian's `pgbouncer` must be installed (`scripts/soak.sh` runs `scripts/start-pgbouncer.sh`).

use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use bench::process::{Output, Process};

/// Server connections per database: fewer than the runner's pool (16), as behind the proxy.
const SERVER_CONNECTIONS: u32 = 4;

/// A running PgBouncer; dropping it stops it.
pub struct Bouncer {
    _process: Process,
    port: u16,
}

impl Bouncer {
    /// Starts PgBouncer on a free port in front of the Postgres on `postgres_port` and waits until
    /// it accepts connections.
    pub async fn start(work_dir: &Path, postgres_port: u16) -> anyhow::Result<Self> {
        let port = local_process::free_port()?;
        let dir = work_dir.join("pgbouncer");
        std::fs::create_dir_all(&dir)?;
        let users = dir.join("userlist.txt");
        std::fs::write(&users, "\"postgres\" \"\"\n")?;
        let config = dir.join("pgbouncer.ini");
        std::fs::write(
            &config,
            format!(
                "[databases]\n\
                 * = host=127.0.0.1 port={postgres_port}\n\
                 [pgbouncer]\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {port}\n\
                 unix_socket_dir =\n\
                 auth_type = trust\n\
                 auth_file = {users}\n\
                 pool_mode = transaction\n\
                 default_pool_size = {SERVER_CONNECTIONS}\n\
                 max_client_conn = 1000\n\
                 server_login_retry = 1\n\
                 log_connections = 0\n\
                 log_disconnections = 0\n",
                users = users.display(),
            ),
        )?;
        let program = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
            .into_iter()
            .map(Path::new)
            .find(|p| p.exists())
            .context("pgbouncer is not installed (scripts/start-pgbouncer.sh installs it)")?;
        // PgBouncer refuses to run as root; it reads its config first, then switches user.
        let mut args: Vec<&OsStr> = Vec::new();
        if running_as_root() {
            args.extend([OsStr::new("-u"), OsStr::new("postgres")]);
        }
        args.push(config.as_os_str());
        let process = Process::spawn_with_args(
            program,
            &args,
            std::iter::empty::<(&str, &str)>(),
            Output::AppendTo(&work_dir.join("pgbouncer.log")),
        )?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "pgbouncer did not listen on {port}; see pgbouncer.log"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(Self {
            _process: process,
            port,
        })
    }

    /// The URL of database `db` through the pooler.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}
