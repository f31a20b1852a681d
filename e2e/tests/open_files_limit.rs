//! At start the broker raises its soft limit of open files (RLIMIT_NOFILE) to the hard
//! limit, and logs both values: with the common soft default of 1024, a broker with a
//! few hundred partitions runs out of descriptors while the hard limit allows more.
//!
//! The broker is started through a shell wrapper that lowers the soft limit first; the
//! test points `FJORD_BIN` at that wrapper, so it lives alone in this test binary.

use std::os::unix::fs::PermissionsExt;

use anyhow::{ensure, Context, Result};
use fjord_e2e::{fjord_binary, BrokerOptions, BrokerProcess};

/// The soft and hard "Max open files" of a process (`self` or a pid), from /proc.
fn open_files_limits(process: &str) -> Result<(u64, u64)> {
    let limits = std::fs::read_to_string(format!("/proc/{process}/limits"))?;
    let line = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .context("no \"Max open files\" in /proc/<pid>/limits")?;
    let mut values = line.split_whitespace().map(str::parse::<u64>);
    let soft = values.next().context("no soft limit")??;
    let hard = values.next().context("no hard limit")??;
    Ok((soft, hard))
}

#[tokio::test]
async fn the_soft_open_files_limit_is_raised_to_the_hard_limit() -> Result<()> {
    let (_, hard) = open_files_limits("self")?;
    let soft = (hard / 2).min(1024);
    ensure!(
        soft >= 256,
        "the hard limit of open files here ({hard}) leaves no room to start lower and raise"
    );
    let dir = tempfile::tempdir()?;
    let wrapper = dir.path().join("fjord-low-nofile");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nulimit -Sn {soft} || exit 1\nexec '{}' \"$@\"\n",
            fjord_binary()?.display()
        ),
    )?;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))?;
    std::env::set_var("FJORD_BIN", &wrapper);
    let broker = BrokerProcess::start(BrokerOptions::default()).await?;
    let pid = broker.pid().context("broker pid")?;
    let limits = open_files_limits(&pid.to_string())?;
    let logs = broker.logs();
    println!("started with {soft} of {hard} open files; now {limits:?}");
    ensure!(
        limits == (hard, hard),
        "broker's open files limits {limits:?}, expected the hard limit {hard} for both\n{logs}"
    );
    let said = logs.lines().any(|l| {
        l.contains("raised the open files limit (RLIMIT_NOFILE)")
            && l.contains(&format!("before={soft}"))
            && l.contains(&format!("after={hard}"))
    });
    ensure!(said, "no log line names {soft} -> {hard}\n{logs}");
    Ok(())
}
