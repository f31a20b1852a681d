//! More partitions than three descriptors each would allow: a broker whose process may
//! open 1,500 files hosts 1,000 partitions, and every one of them takes a record and
//! gives it back. Each active segment holds one descriptor (its data file); its indexes
//! are created on first write and go through the open-files cache, which gives way to
//! the pinned files under the process limit. With the three files of every active
//! segment held open, the same broker ran out of descriptors at about 500 partitions
//! and took the others offline ("Too many open files").
//!
//! The broker is started through a shell wrapper that lowers both limits first; the test
//! points `FJORD_BIN` at that wrapper, so it lives alone in this test binary.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use anyhow::{ensure, Result};
use bytes::Bytes;
use fjord_client::{FetchOptions, NewTopic, ProduceOptions, ProduceRecord};
use fjord_e2e::{fjord_binary, unique_topic, BrokerOptions, BrokerProcess};

mod common;

const LIMIT: u32 = 1_500;
const TOPICS: usize = 10;
const PARTITIONS: i32 = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_partitions_fit_in_fifteen_hundred_descriptors() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let wrapper = dir.path().join("fjord-few-nofile");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nulimit -n {LIMIT} || exit 1\nexec '{}' \"$@\"\n",
            fjord_binary()?.display()
        ),
    )?;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))?;
    std::env::set_var("FJORD_BIN", &wrapper);
    let broker = BrokerProcess::start(BrokerOptions {
        // A debug build on a loaded machine opening a thousand logs.
        args: vec!["--request-timeout-ms".into(), "120000".into()],
        ..BrokerOptions::default()
    })
    .await?;
    let client = common::client(&broker.bootstrap()).await?;
    let prefix = unique_topic("fds");
    let names: Vec<String> = (0..TOPICS).map(|i| format!("{prefix}-{i}")).collect();
    for name in &names {
        client
            .create_topic(NewTopic::new(name, PARTITIONS, 1))
            .await?;
    }

    let result = async {
        for name in &names {
            for p in 0..PARTITIONS {
                let value = format!("{name}/{p}");
                let record = ProduceRecord::new(None::<Bytes>, value.clone());
                let produced = client
                    .produce(name, p, &[record], &ProduceOptions::default())
                    .await?;
                ensure!(produced.base_offset == 0, "{name}/{p}: {produced:?}");
                let fetched = client
                    .fetch(
                        name,
                        p,
                        0,
                        &FetchOptions {
                            max_wait: Duration::from_millis(0),
                            ..FetchOptions::default()
                        },
                    )
                    .await?;
                let values: Vec<_> = fetched.records.iter().map(|r| r.value.clone()).collect();
                ensure!(
                    values == [Some(Bytes::from(value.clone()))],
                    "{name}/{p}: read back {values:?}"
                );
            }
        }
        Ok(())
    }
    .await;
    if result.is_err() || broker.logs().contains("Too many open files") {
        println!("{}", broker.logs());
    }
    result?;
    ensure!(
        !broker.logs().contains("Too many open files"),
        "the broker ran out of descriptors"
    );
    Ok(())
}
