use std::net::IpAddr;

use uuid::Uuid;

use super::*;
use crate::auth::Principal;
use AclOperation::*;
use PermissionType::{Allow, Deny};
use ResourceType::{Cluster, Group, Topic, TransactionalId};

fn binding(
    rt: ResourceType,
    name: &str,
    pt: PatternType,
    principal: &str,
    host: &str,
    op: AclOperation,
    perm: PermissionType,
) -> AclBinding {
    AclBinding {
        pattern: ResourcePattern {
            resource_type: rt,
            name: name.into(),
            pattern_type: pt,
        },
        entry: AccessControlEntry {
            principal: principal.into(),
            host: host.into(),
            operation: op,
            permission: perm,
        },
    }
}

fn topic_acl(
    name: &str,
    pt: PatternType,
    who: &str,
    op: AclOperation,
    perm: PermissionType,
) -> AclBinding {
    binding(Topic, name, pt, who, "*", op, perm)
}

fn store(bindings: &[AclBinding]) -> AclStore {
    let mut s = AclStore::default();
    for b in bindings {
        s.create(Uuid::new_v4(), b).unwrap();
    }
    s
}

fn standard() -> AuthorizerConfig {
    AuthorizerConfig {
        kind: AuthorizerKind::Standard,
        ..Default::default()
    }
}

const HOST: &str = "10.0.0.7";

fn alice() -> Principal {
    Principal::user("alice")
}

fn may(
    config: &AuthorizerConfig,
    acls: &AclStore,
    who: &Principal,
    op: AclOperation,
    rt: ResourceType,
    name: &str,
) -> bool {
    Authorizer::new(config, acls, who, HOST.parse::<IpAddr>().unwrap()).authorize(op, rt, name)
}

#[test]
fn without_an_authorizer_everything_is_allowed() {
    let acls = store(&[topic_acl(
        "t",
        PatternType::Literal,
        "User:alice",
        All,
        Deny,
    )]);
    let off = AuthorizerConfig::default();
    assert!(!off.enabled());
    assert!(may(&off, &acls, &alice(), Write, Topic, "t"));
    let who = alice();
    let a = Authorizer::new(&off, &acls, &who, HOST.parse().unwrap());
    assert!(a.authorize_by_resource_type(Write, Topic));
    // Kafka without an authorizer reports every supported operation.
    assert_eq!(a.authorized_operations(Group, "g"), 0b1101_0100_1000);
}

#[test]
fn no_acl_on_the_resource_follows_allow_everyone_if_no_acl_found() {
    let acls = store(&[topic_acl(
        "other",
        PatternType::Literal,
        "User:bob",
        Read,
        Allow,
    )]);
    let mut config = standard();
    assert!(!may(&config, &acls, &alice(), Read, Topic, "t"));
    config.allow_everyone_if_no_acl_found = true;
    assert!(may(&config, &acls, &alice(), Read, Topic, "t"));
    // An ACL for someone else on the resource makes it covered: no default then.
    let acls = store(&[topic_acl(
        "t",
        PatternType::Literal,
        "User:bob",
        Read,
        Allow,
    )]);
    assert!(!may(&config, &acls, &alice(), Read, Topic, "t"));
    // A PREFIXED or wildcard ACL covers the resource too.
    for b in [
        topic_acl("t", PatternType::Prefixed, "User:bob", Read, Allow),
        topic_acl("*", PatternType::Literal, "User:bob", Read, Allow),
    ] {
        assert!(
            !may(
                &config,
                &store(std::slice::from_ref(&b)),
                &alice(),
                Read,
                Topic,
                "t"
            ),
            "{b}"
        );
    }
}

#[test]
fn super_users_are_allowed_whatever_the_acls_say() {
    let acls = store(&[topic_acl(
        "t",
        PatternType::Literal,
        "User:alice",
        All,
        Deny,
    )]);
    let mut config = standard();
    config.super_users = SuperUsers::parse(" User:admin ; User:alice;").unwrap();
    assert!(may(&config, &acls, &alice(), Write, Topic, "t"));
    assert!(may(&config, &acls, &alice(), Alter, Cluster, CLUSTER_NAME));
    assert!(!may(
        &config,
        &acls,
        &Principal::user("bob"),
        Write,
        Topic,
        "t"
    ));
    assert!(SuperUsers::parse("admin").is_err());
    assert_eq!(SuperUsers::parse("").unwrap(), SuperUsers::default());
}

#[test]
fn deny_wins_over_allow_wherever_it_comes_from() {
    let config = standard();
    let allow = topic_acl("orders", PatternType::Literal, "User:alice", Write, Allow);
    let denies = [
        topic_acl("orders", PatternType::Literal, "User:alice", Write, Deny),
        topic_acl("ord", PatternType::Prefixed, "User:alice", Write, Deny),
        topic_acl("*", PatternType::Literal, "User:alice", Write, Deny),
        topic_acl("orders", PatternType::Literal, "User:*", Write, Deny),
        topic_acl("orders", PatternType::Literal, "User:alice", All, Deny),
        binding(
            Topic,
            "orders",
            PatternType::Literal,
            "User:alice",
            HOST,
            Write,
            Deny,
        ),
    ];
    assert!(may(
        &config,
        &store(std::slice::from_ref(&allow)),
        &alice(),
        Write,
        Topic,
        "orders"
    ));
    for deny in denies {
        let acls = store(&[allow.clone(), deny.clone()]);
        assert!(
            !may(&config, &acls, &alice(), Write, Topic, "orders"),
            "{deny}"
        );
    }
    // A DENY elsewhere does not: another host, principal, operation, name or type.
    for other in [
        binding(
            Topic,
            "orders",
            PatternType::Literal,
            "User:alice",
            "10.0.0.8",
            Write,
            Deny,
        ),
        topic_acl("orders", PatternType::Literal, "User:bob", Write, Deny),
        topic_acl("orders", PatternType::Literal, "User:alice", Read, Deny),
        topic_acl("orders2", PatternType::Literal, "User:alice", Write, Deny),
        topic_acl("orders2", PatternType::Prefixed, "User:alice", Write, Deny),
        binding(
            Group,
            "orders",
            PatternType::Literal,
            "User:alice",
            "*",
            Write,
            Deny,
        ),
    ] {
        let acls = store(&[allow.clone(), other.clone()]);
        assert!(
            may(&config, &acls, &alice(), Write, Topic, "orders"),
            "{other}"
        );
    }
}

#[test]
fn patterns_principals_and_hosts_match_as_in_kafka() {
    let config = standard();
    let cases = [
        // (acl, resource name, allowed)
        (
            topic_acl("orders", PatternType::Literal, "User:alice", Read, Allow),
            "orders",
            true,
        ),
        (
            topic_acl("orders", PatternType::Literal, "User:alice", Read, Allow),
            "orders-eu",
            false,
        ),
        (
            topic_acl("order", PatternType::Literal, "User:alice", Read, Allow),
            "orders",
            false,
        ),
        (
            topic_acl("ord", PatternType::Prefixed, "User:alice", Read, Allow),
            "orders",
            true,
        ),
        (
            topic_acl("orders", PatternType::Prefixed, "User:alice", Read, Allow),
            "orders",
            true,
        ),
        (
            topic_acl("orders-", PatternType::Prefixed, "User:alice", Read, Allow),
            "orders",
            false,
        ),
        (
            topic_acl("x", PatternType::Prefixed, "User:alice", Read, Allow),
            "orders",
            false,
        ),
        (
            topic_acl("*", PatternType::Literal, "User:alice", Read, Allow),
            "orders",
            true,
        ),
        // A PREFIXED `*` is a prefix like any other, not a wildcard.
        (
            topic_acl("*", PatternType::Prefixed, "User:alice", Read, Allow),
            "orders",
            false,
        ),
        (
            topic_acl("*", PatternType::Prefixed, "User:alice", Read, Allow),
            "*x",
            true,
        ),
        (
            topic_acl("orders", PatternType::Literal, "User:*", Read, Allow),
            "orders",
            true,
        ),
        (
            topic_acl("orders", PatternType::Literal, "User:bob", Read, Allow),
            "orders",
            false,
        ),
        (
            topic_acl("orders", PatternType::Literal, "Group:alice", Read, Allow),
            "orders",
            false,
        ),
        (
            binding(
                Topic,
                "orders",
                PatternType::Literal,
                "User:alice",
                HOST,
                Read,
                Allow,
            ),
            "orders",
            true,
        ),
        (
            binding(
                Topic,
                "orders",
                PatternType::Literal,
                "User:alice",
                "10.0.0.8",
                Read,
                Allow,
            ),
            "orders",
            false,
        ),
        (
            binding(
                Group,
                "orders",
                PatternType::Literal,
                "User:alice",
                "*",
                Read,
                Allow,
            ),
            "orders",
            false,
        ),
        // Names are compared as bytes at character boundaries.
        (
            topic_acl("fjø", PatternType::Prefixed, "User:alice", Read, Allow),
            "fjørd",
            true,
        ),
    ];
    for (acl, name, allowed) in cases {
        let acls = store(std::slice::from_ref(&acl));
        assert_eq!(
            may(&config, &acls, &alice(), Read, Topic, name),
            allowed,
            "{acl} on {name:?}"
        );
    }
}

#[test]
fn implied_operations_apply_to_allow_only() {
    let config = standard();
    // (granted, asked, allowed)
    let mut table = vec![];
    for granted in [Read, Write, Delete, Alter, Describe, All] {
        table.push((granted, Describe, true));
    }
    for granted in [
        Create,
        AlterConfigs,
        DescribeConfigs,
        ClusterAction,
        IdempotentWrite,
    ] {
        table.push((granted, Describe, false));
    }
    table.extend([
        (AlterConfigs, DescribeConfigs, true),
        (DescribeConfigs, DescribeConfigs, true),
        (All, DescribeConfigs, true),
        (Alter, DescribeConfigs, false),
        (Describe, Read, false),
        (Read, Write, false),
        (Write, Read, false),
        (DescribeConfigs, AlterConfigs, false),
        (All, Write, true),
        (All, ClusterAction, true),
    ]);
    for (granted, asked, allowed) in table {
        let acls = store(&[topic_acl(
            "t",
            PatternType::Literal,
            "User:alice",
            granted,
            Allow,
        )]);
        assert_eq!(
            may(&config, &acls, &alice(), asked, Topic, "t"),
            allowed,
            "ALLOW {granted:?} -> {asked:?}"
        );
    }
    // DENY READ does not deny DESCRIBE (implication is for ALLOW only) ...
    let acls = store(&[
        topic_acl("t", PatternType::Literal, "User:alice", Describe, Allow),
        topic_acl("t", PatternType::Literal, "User:alice", Read, Deny),
    ]);
    assert!(may(&config, &acls, &alice(), Describe, Topic, "t"));
    assert!(!may(&config, &acls, &alice(), Read, Topic, "t"));
    // ... while DENY ALL denies everything.
    let acls = store(&[
        topic_acl("t", PatternType::Literal, "User:alice", Describe, Allow),
        topic_acl("t", PatternType::Literal, "User:alice", All, Deny),
    ]);
    assert!(!may(&config, &acls, &alice(), Describe, Topic, "t"));
}

#[test]
fn authorized_operations_are_kafkas_bitfield() {
    let config = standard();
    let acls = store(&[
        topic_acl("t", PatternType::Literal, "User:alice", Read, Allow),
        topic_acl("t", PatternType::Literal, "User:alice", AlterConfigs, Allow),
    ]);
    let who = alice();
    let a = Authorizer::new(&config, &acls, &who, HOST.parse().unwrap());
    let bits = |ops: &[AclOperation]| ops.iter().fold(0, |b, op| b | (1 << op.code()));
    assert_eq!(
        a.authorized_operations(Topic, "t"),
        bits(&[Read, Describe, AlterConfigs, DescribeConfigs])
    );
    assert_eq!(a.authorized_operations(Topic, "u"), 0);
    let acls = store(&[binding(
        Cluster,
        CLUSTER_NAME,
        PatternType::Literal,
        "User:alice",
        "*",
        All,
        Allow,
    )]);
    let a = Authorizer::new(&config, &acls, &who, HOST.parse().unwrap());
    // Only the operations a cluster supports (not READ, not ALL).
    assert_eq!(
        a.authorized_operations(Cluster, CLUSTER_NAME),
        bits(&[
            Create,
            ClusterAction,
            DescribeConfigs,
            AlterConfigs,
            IdempotentWrite,
            Alter,
            Describe
        ])
    );
}

#[test]
fn write_on_some_topic_follows_kafkas_resource_type_rule() {
    let config = standard();
    let allowed = |acls: &[AclBinding]| {
        let acls = store(acls);
        Authorizer::new(&config, &acls, &alice(), HOST.parse().unwrap())
            .authorize_by_resource_type(Write, Topic)
    };
    let w = |name: &str, pt, perm| topic_acl(name, pt, "User:alice", Write, perm);
    use PatternType::{Literal, Prefixed};
    assert!(!allowed(&[]));
    assert!(allowed(&[w("t", Literal, Allow)]));
    assert!(allowed(&[w("t", Prefixed, Allow)]));
    assert!(allowed(&[w("*", Literal, Allow)]));
    assert!(allowed(&[topic_acl(
        "t",
        Literal,
        "User:alice",
        All,
        Allow
    )]));
    assert!(!allowed(&[topic_acl(
        "t",
        Literal,
        "User:alice",
        Read,
        Allow
    )]));
    assert!(!allowed(&[topic_acl(
        "t", Literal, "User:bob", Write, Allow
    )]));
    assert!(!allowed(&[w("t", Literal, Allow), w("t", Literal, Deny)]));
    assert!(!allowed(&[w("tx", Literal, Allow), w("t", Prefixed, Deny)]));
    assert!(!allowed(&[
        w("tx", Prefixed, Allow),
        w("t", Prefixed, Deny)
    ]));
    assert!(allowed(&[w("t", Prefixed, Allow), w("tx", Prefixed, Deny)]));
    assert!(allowed(&[w("t", Literal, Allow), w("u", Literal, Deny)]));
    assert!(!allowed(&[w("*", Literal, Allow), w("*", Literal, Deny)]));
    assert!(!allowed(&[w("t", Literal, Allow), w("*", Literal, Deny)]));
    // A group or transactional id ACL is another resource type.
    assert!(!allowed(&[binding(
        Group,
        "t",
        Literal,
        "User:alice",
        "*",
        Write,
        Allow
    )]));
    assert!(!allowed(&[binding(
        TransactionalId,
        "t",
        Literal,
        "User:alice",
        "*",
        Write,
        Allow
    )]));
    // Super users, and everyone when nothing names the hard-coded resource and
    // allow.everyone.if.no.acl.found is set, as in Kafka.
    let mut open = standard();
    open.allow_everyone_if_no_acl_found = true;
    let none = AclStore::default();
    assert!(
        Authorizer::new(&open, &none, &alice(), HOST.parse().unwrap())
            .authorize_by_resource_type(Write, Topic)
    );
}

#[test]
fn new_acls_are_validated_as_kafka_does() {
    let ok = topic_acl("t", PatternType::Literal, "User:alice", Read, Allow);
    assert!(ok.validate().is_ok());
    let mut bad = vec![];
    for rt in [ResourceType::Any, ResourceType::Unknown] {
        let mut b = ok.clone();
        b.pattern.resource_type = rt;
        bad.push(b);
    }
    for pt in [PatternType::Any, PatternType::Match, PatternType::Unknown] {
        let mut b = ok.clone();
        b.pattern.pattern_type = pt;
        bad.push(b);
    }
    for op in [Any, AclOperation::Unknown] {
        let mut b = ok.clone();
        b.entry.operation = op;
        bad.push(b);
    }
    for perm in [PermissionType::Any, PermissionType::Unknown] {
        let mut b = ok.clone();
        b.entry.permission = perm;
        bad.push(b);
    }
    let mut b = ok.clone();
    b.pattern.name.clear();
    bad.push(b);
    let mut b = ok.clone();
    b.entry.principal = "alice".into();
    bad.push(b);
    bad.push(binding(
        Cluster,
        "my-cluster",
        PatternType::Literal,
        "User:a",
        "*",
        Alter,
        Allow,
    ));
    for b in bad {
        assert!(b.validate().is_err(), "{b}");
    }
    assert!(binding(
        Cluster,
        CLUSTER_NAME,
        PatternType::Literal,
        "User:a",
        "*",
        Alter,
        Allow
    )
    .validate()
    .is_ok());
    // Codes Kafka does not know read as UNKNOWN.
    assert_eq!(ResourceType::from_code(42), ResourceType::Unknown);
    assert_eq!(PatternType::from_code(4), PatternType::Prefixed);
    assert_eq!(AclOperation::from_code(15), TwoPhaseCommit);
    assert_eq!(PermissionType::from_code(-1), PermissionType::Unknown);
}

fn filter() -> AclBindingFilter {
    AclBindingFilter {
        resource_type: ResourceType::Any,
        name: None,
        pattern_type: PatternType::Any,
        principal: None,
        host: None,
        operation: Any,
        permission: PermissionType::Any,
    }
}

#[test]
fn filters_match_as_kafkas_acl_binding_filter() {
    let lit = topic_acl("orders", PatternType::Literal, "User:alice", Read, Allow);
    let pre = topic_acl("ord", PatternType::Prefixed, "User:bob", Write, Deny);
    let wild = topic_acl("*", PatternType::Literal, "User:alice", Read, Allow);
    let group = binding(
        Group,
        "orders",
        PatternType::Literal,
        "User:alice",
        "h",
        Read,
        Allow,
    );
    let all = [&lit, &pre, &wild, &group];
    let selected = |f: &AclBindingFilter| -> Vec<&AclBinding> {
        all.iter().copied().filter(|b| f.matches(b)).collect()
    };
    assert_eq!(selected(&filter()), all.to_vec());
    let f = AclBindingFilter {
        resource_type: Topic,
        ..filter()
    };
    assert_eq!(selected(&f), vec![&lit, &pre, &wild]);
    // ANY with a name: that exact name, any pattern type.
    let f = AclBindingFilter {
        name: Some("orders".into()),
        ..filter()
    };
    assert_eq!(selected(&f), vec![&lit, &group]);
    let f = AclBindingFilter {
        name: Some("ord".into()),
        pattern_type: PatternType::Prefixed,
        ..filter()
    };
    assert_eq!(selected(&f), vec![&pre]);
    let f = AclBindingFilter {
        pattern_type: PatternType::Literal,
        ..filter()
    };
    assert_eq!(selected(&f), vec![&lit, &wild, &group]);
    // MATCH: what applies to the named resource (literal, wildcard and prefixes).
    let f = AclBindingFilter {
        resource_type: Topic,
        name: Some("orders".into()),
        pattern_type: PatternType::Match,
        ..filter()
    };
    assert_eq!(selected(&f), vec![&lit, &pre, &wild]);
    let f = AclBindingFilter {
        resource_type: Topic,
        name: Some("other".into()),
        pattern_type: PatternType::Match,
        ..filter()
    };
    assert_eq!(selected(&f), vec![&wild]);
    // Entry fields.
    let f = AclBindingFilter {
        principal: Some("User:bob".into()),
        ..filter()
    };
    assert_eq!(selected(&f), vec![&pre]);
    let f = AclBindingFilter {
        host: Some("h".into()),
        ..filter()
    };
    assert_eq!(selected(&f), vec![&group]);
    let f = AclBindingFilter {
        operation: Write,
        ..filter()
    };
    assert_eq!(selected(&f), vec![&pre]);
    let f = AclBindingFilter {
        permission: Allow,
        ..filter()
    };
    assert_eq!(selected(&f), vec![&lit, &wild, &group]);
    // UNKNOWN anywhere is refused.
    assert!(filter().validate().is_ok());
    assert!(AclBindingFilter {
        operation: AclOperation::Unknown,
        ..filter()
    }
    .validate()
    .is_err());
    assert!(AclBindingFilter {
        resource_type: ResourceType::Unknown,
        ..filter()
    }
    .validate()
    .is_err());
}

#[test]
fn the_store_replays_creations_and_removals_and_plans_changes() {
    let a = topic_acl("t", PatternType::Prefixed, "User:alice", Read, Allow);
    let b = topic_acl("tt", PatternType::Prefixed, "User:alice", Read, Allow);
    let mut s = AclStore::default();
    let (ida, idb) = (Uuid::new_v4(), Uuid::new_v4());
    s.create(ida, &a).unwrap();
    s.create(idb, &b).unwrap();
    assert!(
        s.create(Uuid::new_v4(), &a).is_err(),
        "a duplicate binding means a corrupt log"
    );
    assert!(s
        .create(
            ida,
            &topic_acl("x", PatternType::Literal, "User:a", Read, Allow)
        )
        .is_err());
    assert_eq!(s.applying_to(Topic, "ttx").count(), 2);
    assert_eq!(s.remove(ida).unwrap(), a);
    assert!(s.remove(ida).is_err());
    assert_eq!(s.applying_to(Topic, "ttx").count(), 1);
    assert_eq!(s.applying_to(Topic, "tx").count(), 0);
    // Snapshots carry the bindings; the index is rebuilt from them.
    let json = serde_json::to_string(&s).unwrap();
    let back: AclStore = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
    assert_eq!(back.applying_to(Topic, "ttx").count(), 1);

    // Planning: existing and repeated bindings are left out; ids are fresh.
    let c = topic_acl("c", PatternType::Literal, "User:alice", Read, Allow);
    let mut ids = [idb, idb, Uuid::from_u128(7)].into_iter();
    let planned = s
        .plan_create(&[b.clone(), c.clone(), c.clone()], 10, || {
            ids.next().unwrap()
        })
        .unwrap();
    assert_eq!(planned, vec![(Uuid::from_u128(7), c.clone())]);
    let mut invalid = c.clone();
    invalid.entry.operation = Any;
    assert!(s
        .plan_create(&[c.clone(), invalid], 10, Uuid::new_v4)
        .is_err());
    // The limit counts what is held and what is new; existing bindings are free.
    assert_eq!(s.len(), 1);
    let one = |max| s.plan_create(std::slice::from_ref(&c), max, Uuid::new_v4);
    assert_eq!(one(2).unwrap().len(), 1);
    let e = one(1).unwrap_err();
    assert!(e.0.contains("limit of 1"), "{e}");
    assert!(s
        .plan_create(std::slice::from_ref(&b), 1, Uuid::new_v4)
        .unwrap()
        .is_empty());
    s.create(Uuid::from_u128(7), &c).unwrap();
    let by_principal = AclBindingFilter {
        principal: Some("User:alice".into()),
        ..filter()
    };
    let literal = AclBindingFilter {
        pattern_type: PatternType::Literal,
        ..filter()
    };
    let deleted = s.plan_delete(&[by_principal, literal]).unwrap();
    assert_eq!(deleted[0].len(), 2);
    assert_eq!(deleted[1], vec![(Uuid::from_u128(7), c)]);
    assert!(s
        .plan_delete(&[AclBindingFilter {
            permission: PermissionType::Unknown,
            ..filter()
        }])
        .is_err());
}

/// Cost of one decision as the ACL set grows: a few map lookups, growing with the
/// logarithm of the set, where a scan of every ACL would grow with the set itself.
///
///     cargo test -p fjord-broker --lib --release acl_decision_cost -- --ignored --nocapture
#[test]
#[ignore = "benchmark: prints figures"]
fn acl_decision_cost() {
    let config = standard();
    let who = alice();
    for n in [10usize, 1_000, 100_000] {
        let mut acls = AclStore::default();
        for i in 0..n {
            let pt = if i % 10 == 0 {
                PatternType::Prefixed
            } else {
                PatternType::Literal
            };
            let b = topic_acl(&format!("topic-{i}"), pt, "User:alice", Write, Allow);
            acls.create(Uuid::new_v4(), &b).unwrap();
        }
        let a = Authorizer::new(&config, &acls, &who, HOST.parse().unwrap());
        let names: Vec<String> = (0..1000).map(|i| format!("topic-{}", i * 7 % n)).collect();
        let rounds = 200_000;
        let started = std::time::Instant::now();
        let mut allowed = 0;
        for i in 0..rounds {
            allowed += usize::from(a.authorize(Write, Topic, &names[i % names.len()]));
        }
        let per = started.elapsed() / u32::try_from(rounds).unwrap();
        assert_eq!(allowed, rounds);
        println!("{n:>7} ACLs: {per:?} per decision");
    }
}
