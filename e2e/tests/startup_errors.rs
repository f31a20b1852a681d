//! What an operator sees when `fjord` cannot start, and what it does with no settings:
//! the binary is spawned directly, with every `FJORD_*` variable of the test environment
//! removed so only the arguments given here count.

mod common;

use std::fs::File;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use bytes::Bytes;
use common::DEADLINE;
use fjord_client::{FetchOptions, NewTopic, ProduceOptions, ProduceRecord};
use fjord_e2e::{fjord_binary, free_port, http_status, unique_topic, BrokerOptions, BrokerProcess};

/// `fjord` with no inherited `FJORD_*` settings.
fn fjord() -> Result<Command> {
    let mut command = Command::new(fjord_binary()?);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("FJORD_") {
            command.env_remove(key);
        }
    }
    command.stdin(Stdio::null());
    Ok(command)
}

/// Kills the child when a test fails before reaping it.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Runs `command` with stdout and stderr captured in `dir`, expecting it to exit within
/// the deadline; returns its status and stderr.
fn run_to_exit(mut command: Command, dir: &Path) -> Result<(ExitStatus, String)> {
    let stdout = dir.join("stdout.txt");
    let stderr = dir.join("stderr.txt");
    command
        .stdout(File::create(&stdout)?)
        .stderr(File::create(&stderr)?);
    let mut child = Reaper(command.spawn().context("spawning fjord")?);
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = child.0.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            bail!(
                "fjord still running after {DEADLINE:?}; stderr so far:\n{}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok((status, std::fs::read_to_string(&stderr)?))
}

/// The one line of `stderr`, failing when there are none or several.
fn one_line(stderr: &str) -> Result<&str> {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    ensure!(
        lines.len() == 1,
        "expected exactly one line on stderr, got {}:\n{stderr}",
        lines.len()
    );
    Ok(lines[0])
}

fn with_listeners(command: &mut Command, kafka: &str, data_dir: &Path) -> Result<()> {
    command
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--kafka-listen")
        .arg(kafka)
        .arg("--http-listen")
        .arg(format!("127.0.0.1:{}", free_port()?))
        .arg("--internal-listen")
        .arg(format!("127.0.0.1:{}", free_port()?));
    Ok(())
}

#[test]
fn kafka_port_in_use() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let taken = TcpListener::bind("127.0.0.1:0")?;
    let addr = taken.local_addr()?.to_string();
    let mut command = fjord()?;
    with_listeners(&mut command, &addr, &dir.path().join("data"))?;
    let (status, stderr) = run_to_exit(command, dir.path())?;
    ensure!(!status.success(), "exited {status} with the port taken");
    let line = one_line(&stderr)?;
    ensure!(line.contains(&addr), "{line:?} does not name {addr}");
    drop(taken);
    Ok(())
}

#[test]
fn data_dir_not_writable() -> Result<()> {
    let dir = tempfile::tempdir()?;
    // Tests run as root, whom permissions do not stop; a path under a regular file
    // cannot be created by anyone.
    let file = dir.path().join("file");
    std::fs::write(&file, b"not a directory")?;
    let data_dir = file.join("data");
    let mut command = fjord()?;
    with_listeners(
        &mut command,
        &format!("127.0.0.1:{}", free_port()?),
        &data_dir,
    )?;
    let (status, stderr) = run_to_exit(command, dir.path())?;
    ensure!(
        !status.success(),
        "exited {status} with data dir {data_dir:?}"
    );
    let line = one_line(&stderr)?;
    ensure!(
        line.contains(&data_dir.display().to_string()),
        "{line:?} does not name {}",
        data_dir.display()
    );
    Ok(())
}

#[tokio::test]
async fn data_dir_of_another_node_id() -> Result<()> {
    let mut node1 = BrokerProcess::start(BrokerOptions::default()).await?;
    let status = node1.sigterm(DEADLINE).await?;
    ensure!(status.success(), "node 1 stopped with {status}");
    let data_dir = node1.data_dir();
    let dir = tempfile::tempdir()?;
    let mut command = fjord()?;
    with_listeners(
        &mut command,
        &format!("127.0.0.1:{}", free_port()?),
        &data_dir,
    )?;
    command.arg("--node-id").arg("2");
    let (status, stderr) =
        tokio::task::spawn_blocking(move || run_to_exit(command, dir.path())).await??;
    ensure!(
        !status.success(),
        "node 2 started on node 1's data dir ({status})"
    );
    let line = one_line(&stderr)?;
    // Both ids must be there as numbers in their own right, not as digits of the path.
    let without_path = line.replace(&data_dir.display().to_string(), "<dir>");
    let words: Vec<&str> = without_path
        .split(|c: char| !c.is_ascii_alphanumeric())
        .collect();
    ensure!(
        words.contains(&"1") && words.contains(&"2"),
        "{line:?} does not name node ids 1 and 2"
    );
    // Node 1 still starts on its own data.
    node1.restart().await?;
    Ok(())
}

#[test]
fn help_lists_every_flag_with_env_and_default() -> Result<()> {
    let output = fjord()?.arg("--help").output()?;
    ensure!(output.status.success(), "--help exited {}", output.status);
    let help = String::from_utf8(output.stdout)?;
    // Split into one entry per flag: an entry starts at a line whose text starts with "-".
    let mut entries: Vec<String> = Vec::new();
    for line in help.lines() {
        let text = line.trim_start();
        if text.starts_with("--") || text.starts_with("-h") || text.starts_with("-V") {
            entries.push(String::new());
        }
        if let Some(entry) = entries.last_mut() {
            entry.push_str(text);
            entry.push(' ');
        }
    }
    let flag_of = |entry: &str| {
        entry
            .split_whitespace()
            .find(|w| w.starts_with("--"))
            .map(|w| w.trim_end_matches(',').to_string())
    };
    let mut flags = Vec::new();
    for entry in &entries {
        let flag = flag_of(entry).with_context(|| format!("no long flag in {entry:?}"))?;
        if flag == "--help" || flag == "--version" {
            continue;
        }
        let env = format!(
            "[env: FJORD_{}",
            flag.trim_start_matches("--")
                .replace('-', "_")
                .to_uppercase()
        );
        // `[env: NAME=value]`, or `[env: NAME]` for a secret whose value is hidden.
        ensure!(
            entry.contains(&format!("{env}=")) || entry.contains(&format!("{env}]")),
            "{flag} does not show {env}...]: {entry:?}"
        );
        flags.push((flag, entry.clone()));
    }
    ensure!(flags.len() >= 10, "only {} flags in:\n{help}", flags.len());
    for (flag, default) in [
        ("--data-dir", "./fjord-data"),
        ("--kafka-listen", "127.0.0.1:9092"),
        ("--http-listen", "127.0.0.1:9644"),
        ("--node-id", "1"),
        ("--num-partitions", "1"),
        ("--offsets-topic-replication-factor", "3"),
        ("--auto-create-topics", "true"),
        ("--socket-request-max-bytes", "104857600"),
        ("--log-retention-check-interval-ms", "300000"),
    ] {
        let (_, entry) = flags
            .iter()
            .find(|(f, _)| f == flag)
            .with_context(|| format!("{flag} missing from --help:\n{help}"))?;
        let shown = format!("[default: {default}]");
        ensure!(entry.contains(&shown), "{flag}: no {shown} in {entry:?}");
    }
    Ok(())
}

/// Whether nothing listens on `port` of loopback right now.
fn port_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

#[tokio::test]
async fn no_arguments_serves_on_the_default_ports_and_dir() -> Result<()> {
    // Kafka, internal and HTTP listeners.
    for port in [9092, 9093, 9644] {
        if !port_free(port) {
            println!(
                "NOTE: no_arguments_serves_on_the_default_ports_and_dir skipped: \
                 127.0.0.1:{port} is in use on this machine"
            );
            return Ok(());
        }
    }
    let cwd = tempfile::tempdir()?;
    let stderr = cwd.path().join("stderr.txt");
    let mut command = fjord()?;
    command
        .current_dir(cwd.path())
        .stdout(Stdio::null())
        .stderr(File::create(&stderr)?);
    let mut child = Reaper(command.spawn()?);
    let result = async {
        let deadline = Instant::now() + DEADLINE;
        while http_status(9644, "/ready").await != Some(200) {
            if let Some(status) = child.0.try_wait()? {
                bail!("fjord exited with {status}");
            }
            ensure!(
                Instant::now() < deadline,
                "not ready on :9644 within {DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let client = common::client("127.0.0.1:9092").await?;
        let topic = unique_topic("defaults");
        client.create_topic(NewTopic::new(&topic, 1, 1)).await?;
        let produced = client
            .produce(
                &topic,
                0,
                &[ProduceRecord::new(None::<Bytes>, "v")],
                &ProduceOptions::default(),
            )
            .await?;
        let fetched = client
            .fetch(&topic, 0, produced.base_offset, &FetchOptions::default())
            .await?;
        ensure!(
            fetched.records.first().and_then(|r| r.value.as_deref()) == Some(&b"v"[..]),
            "{fetched:?}"
        );
        let data = cwd.path().join("fjord-data");
        ensure!(
            data.join("meta.properties").is_file(),
            "no ./fjord-data/meta.properties"
        );
        ensure!(
            data.join(format!("{topic}-0")).is_dir(),
            "no ./fjord-data/{topic}-0"
        );
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )?;
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = child.0.try_wait()? {
                ensure!(status.success(), "exit after SIGTERM: {status}");
                return Ok(());
            }
            ensure!(Instant::now() < deadline, "still running after SIGTERM");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
    .await;
    if let Err(e) = &result {
        eprintln!(
            "failed: {e:#}\nstderr:\n{}",
            std::fs::read_to_string(&stderr).unwrap_or_default()
        );
    }
    result
}
