use std::collections::BTreeMap;

use super::*;
use crate::desired;
use crate::types::{
    AuthorizationSpec, ClaimPolicy, FjordClusterSpec, ListenerAuthentication as Auth, PortsSpec,
    StorageSpec,
};

fn cluster(listeners: Vec<ListenerSpec>) -> FjordCluster {
    let mut c = FjordCluster::new(
        "demo",
        FjordClusterSpec {
            replicas: 3,
            image: None,
            image_pull_policy: None,
            resources: None,
            storage: StorageSpec {
                size: "1Gi".into(),
                storage_class_name: None,
                claim_policy_on_scale_down: ClaimPolicy::Delete,
                claim_policy_on_delete: ClaimPolicy::Retain,
            },
            config: BTreeMap::new(),
            listeners,
            ports: None,
            authorization: None,
            certificates: None,
            network_policy: None,
            rack: None,
            pod_template: None,
            rebalance: None,
        },
    );
    c.metadata.namespace = Some("ns".into());
    c.metadata.uid = Some("uid-1".into());
    c
}

fn listener(name: &str, port: i32, tls: bool, authentication: Auth) -> ListenerSpec {
    ListenerSpec {
        name: name.into(),
        port,
        tls,
        authentication,
    }
}

/// The args of the pod template, to check what the kubelet would run.
fn pod_args(c: &FjordCluster) -> Vec<String> {
    desired::desired_statefulset(c, 3)
        .spec
        .template
        .spec
        .unwrap()
        .containers[0]
        .args
        .clone()
        .unwrap()
}

#[test]
fn default_cluster_has_a_plain_listener_and_the_operator_mtls_listener() {
    let c = cluster(vec![]);
    assert_eq!(
        listener_args(&c),
        [
            "--listeners=PLAIN://$(POD_IP):9092,OPERATOR://$(POD_IP):9091",
            "--advertised-listeners=PLAIN://$(POD_NAME).demo-brokers.ns.svc:9092,OPERATOR://$(POD_NAME).demo-brokers.ns.svc:9091",
            "--listener-security-protocol-map=PLAIN:PLAINTEXT,OPERATOR:SSL",
            "--listener-ssl-client-auth=OPERATOR:required",
            "--ssl-principal-mapping-rules=RULE:^CN=([^,]+)$/$1/,DEFAULT",
        ]
    );
    // The pod runs exactly these, and no longer the single-listener shorthands.
    let args = pod_args(&c);
    for a in listener_args(&c) {
        assert!(args.contains(&a), "{a}");
    }
    assert!(!args.iter().any(|a| a.starts_with("--kafka-listen")
        || a.starts_with("--advertised-listener=")
        || a.starts_with("--authorizer")
        || a.starts_with("--sasl-enabled-mechanisms")));
}

#[test]
fn tls_listener_runs_ssl_without_client_certificates() {
    let c = cluster(vec![listener("tls", 9094, true, Auth::None)]);
    let args = listener_args(&c);
    assert_eq!(
        args[0],
        "--listeners=TLS://$(POD_IP):9094,OPERATOR://$(POD_IP):9091"
    );
    assert_eq!(
        args[2],
        "--listener-security-protocol-map=TLS:SSL,OPERATOR:SSL"
    );
    assert_eq!(args[3], "--listener-ssl-client-auth=OPERATOR:required");
}

#[test]
fn scram_listeners_run_sasl_with_scram_sha_512_only() {
    let c = cluster(vec![
        listener("scram", 9092, false, Auth::ScramSha512),
        listener("tls", 9094, true, Auth::ScramSha512),
    ]);
    let args = listener_args(&c);
    assert_eq!(
        args[2],
        "--listener-security-protocol-map=SCRAM:SASL_PLAINTEXT,TLS:SASL_SSL,OPERATOR:SSL"
    );
    // SASL_SSL asks for no client certificate: the password authenticates.
    assert_eq!(args[3], "--listener-ssl-client-auth=OPERATOR:required");
    assert_eq!(args[5], "--sasl-enabled-mechanisms=SCRAM-SHA-512");
    assert_eq!(args.len(), 6);
}

#[test]
fn tls_authentication_requires_a_client_certificate() {
    let c = cluster(vec![
        listener("plain", 9092, false, Auth::None),
        listener("mtls", 9095, true, Auth::Tls),
    ]);
    let args = listener_args(&c);
    assert_eq!(
        args[1],
        "--advertised-listeners=PLAIN://$(POD_NAME).demo-brokers.ns.svc:9092,MTLS://$(POD_NAME).demo-brokers.ns.svc:9095,OPERATOR://$(POD_NAME).demo-brokers.ns.svc:9091"
    );
    assert_eq!(
        args[2],
        "--listener-security-protocol-map=PLAIN:PLAINTEXT,MTLS:SSL,OPERATOR:SSL"
    );
    assert_eq!(
        args[3],
        "--listener-ssl-client-auth=MTLS:required,OPERATOR:required"
    );
    assert!(!args.iter().any(|a| a.starts_with("--sasl")));
}

#[test]
fn authorization_makes_the_operator_a_super_user() {
    let mut c = cluster(vec![]);
    assert!(authorization_args(&c.spec).is_empty());
    c.spec.authorization = Some(AuthorizationSpec {
        type_: AuthorizationType::Simple,
        super_users: vec![
            "admin".into(),
            "User:ops".into(),
            " ".into(),
            "admin".into(),
        ],
    });
    assert_eq!(
        authorization_args(&c.spec),
        [
            "--authorizer=standard",
            "--super-users=User:fjord:operator;User:admin;User:ops",
        ]
    );
    let args = pod_args(&c);
    assert!(args.contains(&"--authorizer=standard".to_string()));
}

#[test]
fn ports_and_services_publish_every_listener_by_name() {
    let mut c = cluster(vec![
        listener("plain", 9092, false, Auth::None),
        listener("tls", 9094, true, Auth::ScramSha512),
        listener("mtls", 9095, true, Auth::Tls),
    ]);
    c.spec.ports = Some(PortsSpec {
        internal: 9193,
        operator: 9191,
        http: 9744,
    });
    let named = |ports: Vec<(String, i32)>| {
        ports
            .into_iter()
            .map(|(n, p)| format!("{n}={p}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        named(pod_ports(&c.spec)),
        "plain=9092 tls=9094 mtls=9095 operator=9191 internal=9193 http=9744"
    );
    let sts = desired::desired_statefulset(&c, 3);
    let container = &sts.spec.template.spec.as_ref().unwrap().containers[0];
    let container_ports: Vec<_> = container
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.clone().unwrap(), p.container_port))
        .collect();
    assert_eq!(container_ports, pod_ports(&c.spec));
    // Prometheus still scrapes the HTTP port, wherever it is.
    let annotations = sts.spec.template.metadata.unwrap().annotations.unwrap();
    assert_eq!(annotations["prometheus.io/port"], "9744");

    let service = |s: k8s_openapi::api::core::v1::Service| {
        s.spec
            .unwrap()
            .ports
            .unwrap()
            .into_iter()
            .map(|p| {
                assert_eq!(
                    p.target_port,
                    Some(
                        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(
                            p.name.clone().unwrap()
                        )
                    )
                );
                format!("{}={}", p.name.unwrap(), p.port)
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        service(desired::desired_headless_service(&c)),
        "plain=9092 tls=9094 mtls=9095 operator=9191 internal=9193 http=9744"
    );
    assert_eq!(
        service(desired::desired_bootstrap_service(&c)),
        "plain=9092 tls=9094 mtls=9095 operator=9191"
    );
    assert_eq!(desired::bootstrap_address(&c), "demo-bootstrap.ns.svc:9092");
    assert_eq!(desired::operator_address(&c), "demo-bootstrap.ns.svc:9191");
}

#[test]
fn a_listener_change_changes_the_pod_template_so_the_brokers_roll() {
    let before = cluster(vec![listener("plain", 9092, false, Auth::None)]);
    let mut after = before.clone();
    after.spec.listeners[0].tls = true;
    assert_ne!(
        desired::desired_statefulset(&before, 3).spec.template,
        desired::desired_statefulset(&after, 3).spec.template
    );
    let mut authz = before.clone();
    authz.spec.authorization = Some(AuthorizationSpec {
        type_: AuthorizationType::Simple,
        super_users: vec![],
    });
    assert_ne!(
        desired::desired_statefulset(&before, 3).spec.template,
        desired::desired_statefulset(&authz, 3).spec.template
    );
    // An empty list is the default listener: nothing to roll.
    assert_eq!(
        desired::desired_statefulset(&cluster(vec![]), 3)
            .spec
            .template,
        desired::desired_statefulset(&before, 3).spec.template
    );
}

#[test]
fn ports_the_crd_cannot_check_are_refused_with_a_message() {
    assert_eq!(validate(&cluster(vec![]).spec), Ok(()));
    let on_operator = cluster(vec![listener("tls", 9091, true, Auth::None)]);
    assert_eq!(
        validate(&on_operator.spec),
        Err(
            "listener \"tls\" port 9091 is the brokers' operator port (spec.ports.operator)".into()
        )
    );
    let mut own_clash = cluster(vec![]);
    own_clash.spec.ports = Some(PortsSpec {
        internal: 9093,
        operator: 9093,
        http: 9644,
    });
    assert_eq!(
        validate(&own_clash.spec),
        Err("ports.internal and ports.operator are both 9093".into())
    );
    let mut http = cluster(vec![listener("web", 8080, false, Auth::None)]);
    http.spec.ports = Some(PortsSpec {
        http: 8080,
        ..PortsSpec::default()
    });
    assert!(validate(&http.spec).unwrap_err().contains("http port"));
    let twice = cluster(vec![
        listener("a", 9092, false, Auth::None),
        listener("b", 9092, true, Auth::None),
    ]);
    assert!(validate(&twice.spec).is_err());
    let tls_auth_plain = cluster(vec![listener("m", 9095, false, Auth::Tls)]);
    assert!(validate(&tls_auth_plain.spec).is_err());
}
