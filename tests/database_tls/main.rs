//! The database connection as it is in AWS, against a real PostgreSQL that demands it: a
//! throwaway cluster (initdb) that accepts only TLS connections with SCRAM passwords, its server
//! certificate issued by a certificate authority made here (openssl CLI).
//!
//! - `DATABASE_TLS=verify-full` connects when the server's CA is trusted (`DATABASE_CA_FILE`; the
//!   built-in RDS CA bundle plays that part for RDS instances, unit-tested in connect.rs) and
//!   refuses the server otherwise: a direct connection needs its CA, the web roots are not enough.
//! - A rotated password (issue #13, item 9): after `ALTER ROLE … PASSWORD` the pool's next new
//!   connection is refused once, the secret (Secrets Manager on moto) is read again and the
//!   connection made with the new password.
//!
//! Needs `initdb`/`pg_ctl` (PG_BINDIR or /usr/lib/postgresql/*/bin), `openssl`, and moto
//! (scripts/test.sh starts it).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use deadpool_postgres::Pool;
use order_shared::adapters::postgres::{DatabaseConfig, DatabaseCredentials, TlsMode, build_pool};
use order_shared::adapters::secrets::SecretReader;
use system_tests::sdk_config;
use uuid::Uuid;

/// A throwaway cluster that takes TLS connections with passwords only. Stopped and removed on
/// drop.
struct TlsCluster {
    bin: PathBuf,
    dir: PathBuf,
    data: PathBuf,
    port: u16,
    as_postgres_user: bool,
    /// The CA that issued the server's certificate (PEM), for DATABASE_CA_FILE.
    ca_file: PathBuf,
}

fn postgres_bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("PG_BINDIR") {
        return PathBuf::from(dir);
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("no /usr/lib/postgresql; set PG_BINDIR")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    candidates.sort();
    candidates.pop().expect("no initdb found; set PG_BINDIR")
}

fn run(program: &str, args: &[&str], dir: &Path) {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl TlsCluster {
    fn start() -> Self {
        let bin = postgres_bin_dir();
        let port = local_process::free_port().expect("a free port");
        // Under the temp dir: when this runs as root the server runs as postgres, who cannot
        // enter a checkout in a private directory.
        let dir = std::env::temp_dir().join(format!("tls-pg-{}", Uuid::new_v4().simple()));
        let data = dir.join("data");
        std::fs::create_dir_all(&dir).unwrap();

        // A CA and a server certificate for localhost / 127.0.0.1, issued by it.
        run(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-subj",
                "/CN=order-placement test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
            &dir,
        );
        run(
            "openssl",
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
            &dir,
        );
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n\
             basicConstraints=CA:FALSE\n",
        )
        .unwrap();
        run(
            "openssl",
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                "server.pem",
                "-extfile",
                "server.ext",
            ],
            &dir,
        );

        let as_postgres_user = is_root();
        let cluster = Self {
            bin,
            ca_file: dir.join("ca.pem"),
            dir: dir.clone(),
            data,
            port,
            as_postgres_user,
        };
        if as_postgres_user {
            run(
                "chown",
                &["-R", "postgres:postgres", dir.to_str().unwrap()],
                &dir,
            );
        }
        // Local (socket) connections trusted, for the test's own admin statements; TCP only
        // with TLS and a SCRAM password, like RDS with rds.force_ssl.
        cluster.pg(
            "initdb",
            &[
                "-D",
                cluster.data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
            ],
        );
        std::fs::write(
            cluster.data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n",
        )
        .unwrap();
        for file in ["server.key", "server.pem"] {
            std::fs::copy(dir.join(file), cluster.data.join(file)).unwrap();
        }
        std::fs::set_permissions(
            cluster.data.join("server.key"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
        if as_postgres_user {
            run(
                "chown",
                &["-R", "postgres:postgres", dir.to_str().unwrap()],
                &dir,
            );
        }
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c ssl=on \
             -c ssl_cert_file=server.pem -c ssl_key_file=server.key",
            dir.display()
        );
        cluster.pg(
            "pg_ctl",
            &[
                "-D",
                cluster.data.to_str().unwrap(),
                "-o",
                &options,
                "-l",
                dir.join("server.log").to_str().unwrap(),
                "-w",
                "start",
            ],
        );
        cluster
    }

    fn pg(&self, tool: &str, args: &[&str]) {
        let program = self.bin.join(tool);
        if self.as_postgres_user {
            let mut all = vec!["-u", "postgres", "--", program.to_str().unwrap()];
            all.extend_from_slice(args);
            run("runuser", &all, &std::env::temp_dir());
        } else {
            run(program.to_str().unwrap(), args, &self.dir);
        }
    }

    /// Runs SQL as the superuser over the trusted local socket.
    async fn admin(&self, sql: &str) {
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(&self.dir)
            .port(self.port)
            .user("postgres")
            .dbname("postgres");
        let (client, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .expect("admin connection over the socket");
        tokio::spawn(connection);
        client.batch_execute(sql).await.expect(sql);
    }

    /// A login role with a password.
    async fn create_role(&self, name: &str, password: &str) {
        self.admin(&format!("CREATE ROLE {name} LOGIN PASSWORD '{password}'"))
            .await;
    }

    fn config(&self, credentials: DatabaseCredentials, ca_file: Option<PathBuf>) -> DatabaseConfig {
        DatabaseConfig {
            credentials,
            tls: TlsMode::VerifyFull,
            ca_file,
            pool_size: 1,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        let data = self.data.to_str().unwrap().to_owned();
        let program = self.bin.join("pg_ctl");
        let args = ["-D", &data, "-m", "immediate", "-w", "stop"];
        let _ = if self.as_postgres_user {
            let mut all = vec!["-u", "postgres", "--", program.to_str().unwrap()];
            all.extend_from_slice(&args);
            Command::new("runuser").args(&all).output()
        } else {
            Command::new(&program).args(args).output()
        };
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether the pool's connection is encrypted, and as whom.
async fn ssl_and_user(pool: &Pool) -> Result<(bool, String), String> {
    let client = pool.get().await.map_err(|e| format!("{e:?}"))?;
    let row = client
        .query_one(
            "SELECT ssl, current_user::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok((row.get(0), row.get(1)))
}

#[tokio::test]
async fn verify_full_connects_when_the_servers_ca_is_trusted_and_refuses_it_otherwise() {
    let cluster = TlsCluster::start();
    cluster.create_role("app", "first-password").await;
    let url = format!(
        "postgres://app:first-password@localhost:{}/postgres",
        cluster.port
    );

    // The server's CA given (as DATABASE_CA_FILE, or the RDS bundle for an RDS instance).
    let trusted = build_pool(
        &cluster.config(
            DatabaseCredentials::Url(url.clone()),
            Some(cluster.ca_file.clone()),
        ),
        None,
    )
    .await
    .expect("pool");
    assert_eq!(
        ssl_and_user(&trusted)
            .await
            .expect("verified TLS connection"),
        (true, "app".to_owned())
    );

    // Only the web PKI roots (and the RDS CAs): the server's certificate chains to neither, so
    // the connection is refused - what every direct connection to an RDS instance did before the
    // RDS CA bundle was built in.
    let untrusted = build_pool(&cluster.config(DatabaseCredentials::Url(url), None), None)
        .await
        .expect("pool");
    let error = ssl_and_user(&untrusted)
        .await
        .expect_err("a server certificate from an unknown CA is refused");
    assert!(
        error.contains("UnknownIssuer") || error.contains("certificate"),
        "{error}"
    );
}

#[tokio::test]
async fn a_rotated_password_is_read_again_from_the_secret_on_the_next_connection() {
    let cluster = TlsCluster::start();
    cluster.create_role("orders_app", "before-rotation").await;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk_config().await);
    let secret_value = |password: &str| {
        serde_json::json!({
            "username": "orders_app",
            "password": password,
            "host": "localhost",
            "port": cluster.port,
            "dbname": "postgres",
        })
        .to_string()
    };
    let arn = secrets
        .create_secret()
        .name(format!("test-database-{}", Uuid::new_v4().simple()))
        .secret_string(secret_value("before-rotation"))
        .send()
        .await
        .expect("secret on moto (scripts/start-services.sh)")
        .arn
        .unwrap();
    let pool = build_pool(
        &cluster.config(
            DatabaseCredentials::Secret {
                arn: arn.clone(),
                host_override: None,
                dbname_override: None,
            },
            Some(cluster.ca_file.clone()),
        ),
        Some(SecretReader::new(&sdk_config().await)),
    )
    .await
    .expect("pool");
    assert_eq!(
        ssl_and_user(&pool).await.unwrap(),
        (true, "orders_app".into())
    );

    // The rotation function changes the password in the database first ...
    cluster
        .admin("ALTER ROLE orders_app PASSWORD 'after-rotation'")
        .await;
    // (a new connection is needed: take the pooled one out of the pool)
    drop(deadpool_postgres::Object::take(pool.get().await.unwrap()));
    let refused = ssl_and_user(&pool).await;
    assert!(
        refused.is_err(),
        "the old password is refused, and the unchanged secret gives no other: {refused:?}"
    );

    // ... then makes the new value current in the secret. The next connection is refused with
    // the cached password, re-reads the secret, and gets through.
    secrets
        .put_secret_value()
        .secret_id(&arn)
        .secret_string(secret_value("after-rotation"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        ssl_and_user(&pool)
            .await
            .expect("connects with the rotated password"),
        (true, "orders_app".into())
    );
}
