use super::invariants::Invariant;
use super::run_seed;

const SEEDS: u64 = 200;

/// Every seed (or only `FJORD_SIM_SEED`), failing with the first bad seed's report.
fn check_seeds(invariant: Invariant) {
    let count = std::env::var("FJORD_SIM_SEEDS")
        .map(|s| s.parse().expect("FJORD_SIM_SEEDS is a number"))
        .unwrap_or(SEEDS);
    let seeds: Vec<u64> = match std::env::var("FJORD_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("FJORD_SIM_SEED is a number")],
        Err(_) => (0..count).collect(),
    };
    let (mut acked, mut epochs, mut truncations, mut shutdowns, mut torn, mut too_few, mut loads) =
        (0, 0, 0, 0, 0, 0, 0);
    for &seed in &seeds {
        match run_seed(seed, invariant) {
            Ok(outcome) => {
                acked += outcome.acked;
                epochs += outcome.leader_epochs;
                truncations += outcome.truncations;
                shutdowns += outcome.controlled_shutdowns;
                torn += outcome.torn_writes;
                too_few += outcome.not_enough_replicas;
                loads += outcome.coordinator_loads;
            }
            Err(report) => panic!("{invariant:?} broken\n{report}"),
        }
    }
    println!(
        "{} seeds: {acked} acknowledged, {epochs} leader epochs, {truncations} truncations, {shutdowns} controlled shutdowns, {torn} torn writes, {too_few} writes refused below min.insync.replicas, {loads} coordinator loads",
        seeds.len()
    );
    // A run that acknowledges nothing proves nothing.
    assert!(
        acked >= seeds.len() * 50,
        "only {acked} acknowledged over {} seeds",
        seeds.len()
    );
}

#[test]
fn no_acknowledged_write_is_lost() {
    check_seeds(Invariant::NoAckedWriteLost);
}

#[test]
fn the_high_watermark_never_goes_back() {
    check_seeds(Invariant::HighWatermarkNeverGoesBack);
}

#[test]
fn at_most_one_leader_per_leader_epoch() {
    check_seeds(Invariant::OneLeaderPerEpoch);
}

#[test]
fn a_followers_committed_log_is_a_prefix_of_the_leaders() {
    check_seeds(Invariant::FollowerPrefixOfLeader);
}

#[test]
fn an_acknowledged_commit_survives_every_coordinator_failover() {
    check_seeds(Invariant::AckedCommitSurvivesFailover);
}

/// Nothing outside the seed steers a run: no wall clock, no thread scheduling, no
/// hash order, no temp dir name.
#[test]
fn a_seed_replays_exactly() {
    for invariant in [
        Invariant::NoAckedWriteLost,
        Invariant::AckedCommitSurvivesFailover,
    ] {
        let first = run_seed(7, invariant).expect("seed 7 passes");
        let again = run_seed(7, invariant).expect("seed 7 passes");
        assert_eq!(first.fingerprint, again.fingerprint, "{invariant:?}");
        assert_eq!(
            (first.acked, first.leader_epochs, first.truncations),
            (again.acked, again.leader_epochs, again.truncations),
        );
    }
}
