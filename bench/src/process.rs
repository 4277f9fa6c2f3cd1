//! Child processes of a benchmark: the services it drives and the tools it runs. A run must
//! leave nothing behind, so every spawned child is killed when its handle is dropped.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

/// Where a child's stdout and stderr go.
pub enum Output<'a> {
    /// Nowhere: only the child's answers over the network are measured.
    Discard,
    /// Appended to this file, so that a restarted service continues the log of its predecessor.
    AppendTo(&'a Path),
}

/// A spawned child process, killed (SIGKILL) when dropped.
pub struct Process {
    child: Child,
}

impl Process {
    /// Starts `program` with `env` added to this process's environment and no stdin.
    pub fn spawn<K, V>(
        program: &Path,
        env: impl IntoIterator<Item = (K, V)>,
        output: Output,
    ) -> anyhow::Result<Self>
    where
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        Self::spawn_with_args(program, &[], env, output)
    }

    /// `spawn` with command-line arguments.
    pub fn spawn_with_args<K, V>(
        program: &Path,
        args: &[&OsStr],
        env: impl IntoIterator<Item = (K, V)>,
        output: Output,
    ) -> anyhow::Result<Self>
    where
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        let mut command = Command::new(program);
        command
            .args(args)
            .envs(env)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        match output {
            Output::Discard => {
                command.stdout(Stdio::null()).stderr(Stdio::null());
            }
            Output::AppendTo(log) => {
                let log = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)?;
                command.stdout(log.try_clone()?).stderr(log);
            }
        }
        let child = command.spawn().with_context(|| {
            format!(
                "starting {} (build it with cargo build --release)",
                program.display()
            )
        })?;
        Ok(Self { child })
    }

    /// The process id; 0 once the child has been reaped.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// Kills the child and reaps it.
    pub async fn kill(&mut self) -> std::io::Result<()> {
        self.child.kill().await
    }

    /// Waits for the child to exit (after a signal sent with [`signal`]) and reaps it.
    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait().await
    }
}

/// Sends `signal` (a name as `kill -s` takes it: `KILL`, `STOP`, `CONT`, …) to `pid`. Through the
/// `kill` command rather than libc, which this crate does not otherwise need.
pub async fn signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .status()
        .await?;
    if !status.success() {
        bail!("kill -s {signal} {pid} failed");
    }
    Ok(())
}

/// The stdout of a tool that has finished, or an error with everything it printed when it failed
/// (its own message is the only explanation there is).
pub fn stdout_of(tool: &str, output: &std::process::Output) -> anyhow::Result<String> {
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    if !output.status.success() {
        bail!(
            "{tool} failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(stdout)
}
