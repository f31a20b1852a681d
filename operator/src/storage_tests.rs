use super::*;

const GI: u128 = 1 << 30;

fn claim(name: &str, request: &str, capacity: &str) -> Claim {
    Claim {
        name: name.into(),
        request: Some(request.into()),
        capacity: Some(capacity.into()),
        class: Some("expandable".into()),
        ..Claim::default()
    }
}

fn three(request: &str, capacity: &str) -> Vec<Claim> {
    (0..3)
        .map(|i| claim(&format!("data-demo-{i}"), request, capacity))
        .collect()
}

fn classes(allow: bool) -> BTreeMap<String, bool> {
    BTreeMap::from([("expandable".to_string(), allow)])
}

fn present(template: &str) -> StatefulSetState<'_> {
    StatefulSetState::Present {
        replicas: 3,
        template_size: Some(template),
    }
}

fn run(
    last: Option<&StorageStatus>,
    wanted: &str,
    statefulset: StatefulSetState<'_>,
    claims: &[Claim],
    classes: &BTreeMap<String, bool>,
) -> Step {
    step(
        last,
        Observed {
            wanted,
            statefulset,
            claims,
            classes,
            replicas: 3,
            pods: &pods3(),
            classes_unreadable: false,
        },
    )
    .unwrap()
}

fn pods3() -> Vec<String> {
    (0..3).map(|i| format!("demo-{i}")).collect()
}

fn states(s: &StorageStatus) -> Vec<&str> {
    s.claims.iter().map(|c| c.state.as_str()).collect()
}

#[test]
fn quantities_in_bytes() {
    assert_eq!(bytes("1Gi"), Ok(GI));
    assert_eq!(bytes("1024Mi"), bytes("1Gi"));
    assert_eq!(bytes("1.5Gi"), Ok(GI + GI / 2));
    assert_eq!(bytes("500M"), Ok(500_000_000));
    assert_eq!(bytes("2e9"), Ok(2_000_000_000));
    assert_eq!(bytes("2E3"), Ok(2_000));
    assert_eq!(bytes("+7"), Ok(7));
    assert_eq!(bytes(".5k"), Ok(500));
    // A fraction of a byte rounds up, as the API server rounds storage.
    assert_eq!(bytes("100m"), Ok(1));
    assert_eq!(bytes("1e-50"), Ok(1));
    assert_eq!(bytes("1e-9223372036854775808"), Ok(1));
    assert_eq!(bytes("0e9223372036854775807"), Ok(0));
    assert_eq!(bytes("0"), Ok(0));
    assert_eq!(bytes("-0"), Ok(0));
    assert_eq!(bytes("1Ei"), Ok(1 << 60));
}

#[test]
fn quantities_refused() {
    for q in [
        "", ".", "Gi", "1.2.3", "1Xi", "1 Gi", "1GiB", "1e", "1e1.5", "--1",
    ] {
        assert_eq!(bytes(q), Err(QuantityError::Malformed(q.into())), "{q}");
    }
    assert_eq!(bytes("-1Gi"), Err(QuantityError::Negative("-1Gi".into())));
    let long = "1".repeat(MAX_QUANTITY_LEN + 1);
    assert_eq!(bytes(&long), Err(QuantityError::TooLarge(long.clone())));
    // At the limit of the length: accepted when the value fits.
    assert!(bytes(&format!("{}1", "0".repeat(MAX_QUANTITY_LEN - 1))).is_ok());
    for q in [
        "1e39",
        "400000000000000000000000000000000000Ei",
        "1e99999999999",
    ] {
        assert_eq!(bytes(q), Err(QuantityError::TooLarge(q.into())), "{q}");
    }
    assert_eq!(bytes("1e38"), Ok(10u128.pow(38)));
}

#[test]
fn nothing_to_do_leaves_no_status() {
    let claims = three("1Gi", "1Gi");
    let s = run(None, "1Gi", present("1Gi"), &claims, &classes(true));
    assert_eq!(s.status, None);
    assert_eq!(s.action, Action::None);
    assert_eq!(s.unsupported, None);
    assert_eq!(s.template_size.as_deref(), Some("1Gi"));
    assert!(!needs_claims("1Gi", Some("1Gi"), None));
    assert!(!needs_claims("1024Mi", Some("1Gi"), None));
    assert!(classes_to_read("1Gi", &claims).is_empty());
}

#[test]
fn a_larger_size_patches_every_claim_and_keeps_the_template() {
    let claims = three("1Gi", "1Gi");
    assert!(needs_claims("2Gi", Some("1Gi"), None));
    assert_eq!(classes_to_read("2Gi", &claims), ["expandable"]);
    let s = run(None, "2Gi", present("1Gi"), &claims, &classes(true));
    assert_eq!(
        s.action,
        Action::PatchClaims(vec![
            "data-demo-0".into(),
            "data-demo-1".into(),
            "data-demo-2".into()
        ])
    );
    // The applied StatefulSet keeps its immutable claim template until re-created.
    assert_eq!(s.template_size.as_deref(), Some("1Gi"));
    assert_eq!(s.unsupported, None);
    let st = s.status.unwrap();
    assert_eq!((st.size.as_str(), st.state.as_str()), ("2Gi", "Resizing"));
    assert_eq!((st.claims_resized, st.claims_total), (0, 3));
    assert_eq!(states(&st), ["Pending", "Pending", "Pending"]);
    assert_eq!(st.claims[0].capacity.as_deref(), Some("1Gi"));
    assert_eq!(st.recreate_replicas, None);
}

#[test]
fn a_class_without_expansion_changes_nothing_and_says_so() {
    let claims = three("1Gi", "1Gi");
    let s = run(None, "2Gi", present("1Gi"), &claims, &classes(false));
    assert_eq!(s.action, Action::None);
    assert_eq!(s.template_size.as_deref(), Some("1Gi"));
    let u = s.unsupported.unwrap();
    assert_eq!(u.reason, "StorageClassNotExpandable");
    assert!(u.message.contains("\"expandable\""), "{}", u.message);
    assert!(u.message.contains("allowVolumeExpansion"), "{}", u.message);
    let st = s.status.unwrap();
    assert_eq!(st.state, "Unsupported");
    assert_eq!(st.message, u.message);
    assert_eq!(states(&st), ["Pending", "Pending", "Pending"]);
}

#[test]
fn unreadable_classes_patch_the_claims_and_a_refusal_is_unsupported() {
    // A namespaced install may not read StorageClasses: the claims are patched anyway.
    let claims = three("1Gi", "1Gi");
    let s = step(
        None,
        Observed {
            wanted: "2Gi",
            statefulset: present("1Gi"),
            claims: &claims,
            classes: &BTreeMap::new(),
            replicas: 3,
            pods: &pods3(),
            classes_unreadable: true,
        },
    )
    .unwrap();
    assert_eq!(s.unsupported, None);
    assert_eq!(
        s.action,
        Action::PatchClaims(vec![
            "data-demo-0".into(),
            "data-demo-1".into(),
            "data-demo-2".into()
        ])
    );
    // The API server refuses: Unsupported, in its words.
    let mut st = s.status.unwrap();
    assert_eq!(st.state, "Resizing");
    let u = expansion_refused(
        &mut st,
        "data-demo-0",
        "only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize",
    );
    assert_eq!(u.reason, "ExpansionRefused");
    assert_eq!(st.state, "Unsupported");
    assert!(
        u.message.contains("claim data-demo-0 to 2Gi"),
        "{}",
        u.message
    );
    assert!(u.message.contains("must support resize"), "{}", u.message);
    assert_eq!(st.message, u.message);
    // A class that was read still decides, readable or not.
    let s = step(
        None,
        Observed {
            wanted: "2Gi",
            statefulset: present("1Gi"),
            claims: &claims,
            classes: &classes(false),
            replicas: 3,
            pods: &pods3(),
            classes_unreadable: true,
        },
    )
    .unwrap();
    assert_eq!(s.unsupported.unwrap().reason, "StorageClassNotExpandable");
}

#[test]
fn a_missing_class_or_a_claim_without_class_is_unsupported() {
    let claims = three("1Gi", "1Gi");
    let s = run(None, "2Gi", present("1Gi"), &claims, &BTreeMap::new());
    let u = s.unsupported.unwrap();
    assert_eq!(u.reason, "StorageClassNotFound");
    assert!(u.message.contains("\"expandable\""), "{}", u.message);
    assert_eq!(s.action, Action::None);

    let mut claims = three("1Gi", "1Gi");
    claims[1].class = None;
    let s = run(None, "2Gi", present("1Gi"), &claims, &classes(true));
    let u = s.unsupported.unwrap();
    assert_eq!(u.reason, "NoStorageClass");
    assert!(u.message.contains("data-demo-1"), "{}", u.message);
    // None of the claims is patched: they grow together or not at all.
    assert_eq!(s.action, Action::None);
}

#[test]
fn a_class_that_allows_expansion_again_clears_the_condition() {
    let claims = three("1Gi", "1Gi");
    let before = run(None, "2Gi", present("1Gi"), &claims, &classes(false));
    let after = run(
        before.status.as_ref(),
        "2Gi",
        present("1Gi"),
        &claims,
        &classes(true),
    );
    assert_eq!(after.unsupported, None);
    assert!(matches!(after.action, Action::PatchClaims(ref c) if c.len() == 3));
    assert_eq!(after.status.unwrap().state, "Resizing");
}

#[test]
fn resumes_after_some_claims_were_patched() {
    // The operator died after patching claim 0: only 1 and 2 are patched now.
    let mut claims = three("1Gi", "1Gi");
    claims[0].request = Some("2Gi".into());
    let last = run(
        None,
        "2Gi",
        present("1Gi"),
        &three("1Gi", "1Gi"),
        &classes(true),
    )
    .status;
    let s = run(
        last.as_ref(),
        "2Gi",
        present("1Gi"),
        &claims,
        &classes(true),
    );
    assert_eq!(
        s.action,
        Action::PatchClaims(vec!["data-demo-1".into(), "data-demo-2".into()])
    );
    let st = s.status.unwrap();
    assert_eq!(states(&st), ["Resizing", "Pending", "Pending"]);
    // The same holds without any status (it was never written).
    let s = run(None, "2Gi", present("1Gi"), &claims, &classes(true));
    assert_eq!(
        s.action,
        Action::PatchClaims(vec!["data-demo-1".into(), "data-demo-2".into()])
    );
}

#[test]
fn once_every_claim_asks_for_the_size_the_statefulset_is_recreated() {
    let mut claims = three("2Gi", "1Gi");
    claims[2].capacity = Some("2Gi".into());
    // Claims already patched: no class needs reading.
    assert!(classes_to_read("2Gi", &claims).is_empty());
    let s = run(None, "2Gi", present("1Gi"), &claims, &BTreeMap::new());
    assert_eq!(s.action, Action::RecreateStatefulSet);
    assert_eq!(s.unsupported, None);
    let st = s.status.unwrap();
    assert_eq!(st.recreate_replicas, Some(3));
    assert_eq!((st.claims_resized, st.claims_total), (1, 3));
    assert_eq!(states(&st), ["Resizing", "Resizing", "Resized"]);
    assert_eq!(st.claims[2].capacity.as_deref(), Some("2Gi"));
}

#[test]
fn waits_for_the_deletion_then_creates_with_the_new_size() {
    let claims = three("2Gi", "1Gi");
    let recreating = run(None, "2Gi", present("1Gi"), &claims, &classes(true)).status;
    assert_eq!(recreating.as_ref().unwrap().recreate_replicas, Some(3));

    let s = run(
        recreating.as_ref(),
        "2Gi",
        StatefulSetState::Deleting,
        &claims,
        &classes(true),
    );
    assert_eq!(s.action, Action::WaitForDeletion);
    assert_eq!(s.status.as_ref().unwrap().recreate_replicas, Some(3));

    // Gone (also what an operator killed right after the deletion finds): the apply
    // creates it with the spec's size and as many replicas as it had.
    let s = run(
        recreating.as_ref(),
        "2Gi",
        StatefulSetState::Absent,
        &claims,
        &classes(true),
    );
    assert_eq!(s.action, Action::None);
    assert_eq!(s.template_size, None);
    let st = s.status.unwrap();
    assert_eq!(st.recreate_replicas, Some(3));
    assert_eq!(current_replicas(None, Some(&st)), Some(3));
    assert_eq!(current_replicas(Some(4), Some(&st)), Some(4));
    assert_eq!(current_replicas(None, None), None);

    // Back with the new template: the recreation is over, the volumes still grow.
    let s = run(Some(&st), "2Gi", present("2Gi"), &claims, &classes(true));
    assert_eq!(s.action, Action::None);
    assert_eq!(s.template_size.as_deref(), Some("2Gi"));
    let st = s.status.unwrap();
    assert_eq!(
        (st.state.as_str(), st.recreate_replicas),
        ("Resizing", None)
    );
    assert!(needs_claims("2Gi", Some("2Gi"), Some(&st)));
}

#[test]
fn done_once_every_capacity_has_the_size() {
    let claims = three("2Gi", "2Gi");
    let last = StorageStatus {
        size: "2Gi".into(),
        state: "Resizing".into(),
        ..StorageStatus::default()
    };
    let s = run(Some(&last), "2Gi", present("2Gi"), &claims, &classes(true));
    assert_eq!(s.action, Action::None);
    let st = s.status.unwrap();
    assert_eq!(st.state, "Done");
    assert_eq!((st.claims_resized, st.claims_total), (3, 3));
    assert_eq!(states(&st), ["Resized", "Resized", "Resized"]);
    assert!(st.pods_to_restart.is_empty());
    assert!(st.message.contains("3/3"), "{}", st.message);
    assert!(!needs_claims("2Gi", Some("2Gi"), Some(&st)));
    // A later, larger size starts again.
    assert!(needs_claims("3Gi", Some("2Gi"), Some(&st)));
}

#[test]
fn a_file_system_resize_pending_asks_for_a_restart() {
    let mut claims = three("2Gi", "2Gi");
    claims[1].capacity = Some("1Gi".into());
    claims[1].file_system_resize_pending = true;
    let s = run(None, "2Gi", present("2Gi"), &claims, &classes(true));
    assert_eq!(s.action, Action::None);
    let st = s.status.unwrap();
    assert_eq!(st.state, "Resizing");
    assert_eq!(
        states(&st),
        ["Resized", "FileSystemResizePending", "Resized"]
    );
    assert_eq!(st.pods_to_restart, ["demo-1"]);
    assert!(st.message.contains("demo-1"), "{}", st.message);
}

#[test]
fn an_infeasible_claim_is_reported() {
    let mut claims = three("2Gi", "1Gi");
    claims[0].infeasible = true;
    let s = run(None, "2Gi", present("2Gi"), &claims, &classes(true));
    let st = s.status.unwrap();
    assert_eq!(states(&st), ["Infeasible", "Resizing", "Resizing"]);
    assert!(st.message.contains("data-demo-0"), "{}", st.message);
}

#[test]
fn a_size_raised_again_mid_run_patches_again() {
    let claims = three("2Gi", "1Gi");
    let s = run(None, "3Gi", present("1Gi"), &claims, &classes(true));
    assert!(matches!(s.action, Action::PatchClaims(ref c) if c.len() == 3));
    assert_eq!(s.status.unwrap().size, "3Gi");
}

#[test]
fn a_new_claim_from_the_old_template_is_grown_too() {
    // A broker added while the template still had the old size.
    let mut claims = three("2Gi", "2Gi");
    claims.push(claim("data-demo-3", "1Gi", "1Gi"));
    let last = StorageStatus {
        size: "2Gi".into(),
        state: "Done".into(),
        ..StorageStatus::default()
    };
    let s = run(Some(&last), "2Gi", present("2Gi"), &claims, &classes(true));
    assert_eq!(s.action, Action::PatchClaims(vec!["data-demo-3".into()]));
    assert_eq!(s.status.unwrap().state, "Resizing");
}

#[test]
fn a_bad_wanted_size_is_an_error() {
    let claims = three("1Gi", "1Gi");
    let err = step(
        None,
        Observed {
            wanted: "lots",
            statefulset: present("1Gi"),
            claims: &claims,
            classes: &classes(true),
            replicas: 3,
            pods: &pods3(),
            classes_unreadable: false,
        },
    )
    .unwrap_err();
    assert_eq!(err, QuantityError::Malformed("lots".into()));
    assert!(needs_claims("lots", Some("1Gi"), None));
    assert!(classes_to_read("lots", &claims).is_empty());
}

#[test]
fn the_applied_template_keeps_the_existing_size() {
    use crate::types::{FjordCluster, FjordClusterSpec};
    let spec: FjordClusterSpec = serde_json::from_value(serde_json::json!({
        "replicas": 3, "storage": {"size": "2Gi"}
    }))
    .unwrap();
    let mut cluster = FjordCluster::new("demo", spec);
    cluster.metadata.namespace = Some("ns".into());
    cluster.metadata.uid = Some("u".into());
    let size = |sts: &StatefulSet| {
        sts.spec.volume_claim_templates.as_ref().unwrap()[0]
            .spec
            .as_ref()
            .unwrap()
            .resources
            .as_ref()
            .unwrap()
            .requests
            .as_ref()
            .unwrap()["storage"]
            .0
            .clone()
    };
    let mut sts = crate::desired::desired_statefulset(&cluster, 3);
    keep_template_size(&mut sts, None);
    assert_eq!(size(&sts), "2Gi");
    keep_template_size(&mut sts, Some("1Gi"));
    assert_eq!(size(&sts), "1Gi");
}

/// A cluster the steps act on: claims grow one step after their request is raised
/// (the resizer), a deleted StatefulSet is gone one step later, and a missing one is
/// created by the apply with the size it is given.
struct World {
    claims: Vec<Claim>,
    statefulset: Option<(bool, String)>, // (deleting, template size)
    patches: usize,
    recreations: usize,
}

impl World {
    fn observe(&self) -> StatefulSetState<'_> {
        match &self.statefulset {
            None => StatefulSetState::Absent,
            Some((true, _)) => StatefulSetState::Deleting,
            Some((false, t)) => StatefulSetState::Present {
                replicas: 3,
                template_size: Some(t),
            },
        }
    }

    /// One reconcile; `lose_status` drops what it would write (the operator died
    /// before the status write), except what is written before a deletion.
    fn reconcile(&mut self, last: &mut Option<StorageStatus>, wanted: &str, lose_status: bool) {
        for c in &mut self.claims {
            if c.request != c.capacity {
                c.capacity = c.request.clone();
            }
        }
        if matches!(self.statefulset, Some((true, _))) {
            self.statefulset = None;
        }
        let s = step(
            last.as_ref(),
            Observed {
                wanted,
                statefulset: self.observe(),
                claims: &self.claims,
                classes: &classes(true),
                replicas: 3,
                pods: &pods3(),
                classes_unreadable: false,
            },
        )
        .unwrap();
        match &s.action {
            Action::PatchClaims(names) => {
                for c in &mut self.claims {
                    if names.contains(&c.name) {
                        c.request = Some(wanted.into());
                        self.patches += 1;
                    }
                }
            }
            Action::RecreateStatefulSet => {
                *last = s.status.clone();
                self.statefulset.as_mut().unwrap().0 = true;
                self.recreations += 1;
                return;
            }
            Action::WaitForDeletion => {}
            Action::None => {
                if self.statefulset.is_none() {
                    let size = s.template_size.clone().unwrap_or_else(|| wanted.into());
                    self.statefulset = Some((false, size));
                }
            }
        }
        if !lose_status {
            *last = s.status;
        }
    }
}

#[test]
fn killed_at_any_step_it_finishes_without_repeating_a_step() {
    for killed_at in 0..8 {
        let mut world = World {
            claims: three("1Gi", "1Gi"),
            statefulset: Some((false, "1Gi".into())),
            patches: 0,
            recreations: 0,
        };
        let mut last = None;
        for i in 0..12 {
            world.reconcile(&mut last, "2Gi", i == killed_at);
        }
        let st = last.unwrap();
        assert_eq!(st.state, "Done", "killed at {killed_at}: {st:?}");
        assert_eq!((st.claims_resized, st.claims_total), (3, 3));
        assert_eq!(st.recreate_replicas, None);
        assert_eq!(world.statefulset, Some((false, "2Gi".into())));
        assert_eq!(world.patches, 3, "killed at {killed_at}");
        assert_eq!(world.recreations, 1, "killed at {killed_at}");
    }
}

#[test]
fn a_pending_claim_of_a_removed_broker_or_a_missing_pod_is_not_restarted() {
    // Broker 3 was removed by a scale-in: its claim waits for a pod to mount it and
    // does not hold the run; broker 2's pod is being re-created (not listed now).
    let mut claims: Vec<Claim> = (0..4)
        .map(|i| claim(&format!("data-demo-{i}"), "2Gi", "1Gi"))
        .collect();
    for c in &mut claims {
        c.file_system_resize_pending = true;
    }
    claims[0].capacity = Some("2Gi".into());
    claims[0].file_system_resize_pending = false;
    let pods = vec!["demo-0".to_string(), "demo-1".into(), "demo-3".into()];
    let observe = |claims: &[Claim], last: Option<&StorageStatus>| {
        step(
            last,
            Observed {
                wanted: "2Gi",
                statefulset: present("2Gi"),
                claims,
                classes: &classes(true),
                replicas: 3,
                pods: &pods,
                classes_unreadable: false,
            },
        )
        .unwrap()
    };
    let st = observe(&claims, None).status.unwrap();
    assert_eq!(
        states(&st),
        [
            "Resized",
            "FileSystemResizePending",
            "FileSystemResizePending",
            "PendingMount"
        ]
    );
    assert_eq!(st.pods_to_restart, ["demo-1"]);
    assert_eq!(st.state, "Resizing");

    // Brokers 1 and 2 restarted: done although the removed broker's claim waits.
    for c in &mut claims[1..3] {
        c.capacity = Some("2Gi".into());
        c.file_system_resize_pending = false;
    }
    let st = observe(&claims, Some(&st)).status.unwrap();
    assert_eq!(st.state, "Done");
    assert_eq!((st.claims_resized, st.claims_total), (3, 4));
    assert!(st.pods_to_restart.is_empty());
    assert!(st.message.contains("data-demo-3"), "{}", st.message);
    // Read again until that claim reports its size.
    assert!(needs_claims("2Gi", Some("2Gi"), Some(&st)));
    claims[3].capacity = Some("2Gi".into());
    claims[3].file_system_resize_pending = false;
    let st = observe(&claims, Some(&st)).status.unwrap();
    assert_eq!((st.claims_resized, st.claims_total), (4, 4));
    assert!(!needs_claims("2Gi", Some("2Gi"), Some(&st)));
}
