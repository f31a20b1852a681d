//! The NetworkPolicy of a FjordCluster, as a pure function of the resource and of where
//! the operator runs. It selects the cluster's broker pods and allows, on ingress:
//!
//! - the internal port (replication, metadata quorum) from this cluster's brokers only:
//!   no client and no other cluster can speak the internal protocol to them;
//! - the operator port from the operator's pods only (their labels in the operator's
//!   namespace, given to the operator by the chart);
//! - the HTTP port (`/metrics`, `/health`, `/ready`, all read-only) from the sources in
//!   `spec.networkPolicy.httpFrom`, or from anywhere when that is empty (Prometheus
//!   usually scrapes from another namespace);
//! - every client listener port from anywhere: who may do what there is the listeners'
//!   authentication and the ACLs, not the network.
//!
//! Everything else into the broker pods is dropped by a network plugin that enforces
//! NetworkPolicy. Egress is not restricted. Kubelet probes come from the node, which
//! network plugins let through.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use crate::desired::{owner_reference, selector_labels};
use crate::types::FjordCluster;

/// The label every namespace carries with its own name (set by the API server).
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// The labels of the chart's operator pods when none are given (its selector labels
/// without the release name).
pub const DEFAULT_OPERATOR_POD_LABELS: &str = "app.kubernetes.io/name=fjord-operator";

/// Where the operator's own pods are: the one source allowed to the operator port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorPeer {
    /// The operator's namespace; `None`: its pods are matched in any namespace.
    pub namespace: Option<String>,
    /// Labels of the operator's pods (the chart's selector labels).
    pub pod_labels: BTreeMap<String, String>,
}

impl Default for OperatorPeer {
    fn default() -> Self {
        OperatorPeer {
            namespace: None,
            pod_labels: parse_labels(DEFAULT_OPERATOR_POD_LABELS).expect("valid default"),
        }
    }
}

/// A `k=v,k=v` label list that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("operator pod labels {0:?}: expected key=value pairs separated by commas, at least one")]
pub struct LabelsError(String);

/// Parses `k=v,k=v` (the `--operator-pod-labels` flag). Keys and values are checked only
/// for being non-empty keys without spaces: the API server validates the selector when
/// the NetworkPolicy is applied.
pub fn parse_labels(s: &str) -> Result<BTreeMap<String, String>, LabelsError> {
    let err = || LabelsError(s.to_string());
    let mut labels = BTreeMap::new();
    for pair in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').ok_or_else(err)?;
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() || k.contains(char::is_whitespace) || v.contains(char::is_whitespace) {
            return Err(err());
        }
        labels.insert(k.to_string(), v.to_string());
    }
    if labels.is_empty() {
        return Err(err());
    }
    Ok(labels)
}

/// Name of the NetworkPolicy (`<cluster>-brokers`, as the brokers it selects).
pub fn network_policy_name(cluster: &FjordCluster) -> String {
    format!("{}-brokers", cluster.name_any())
}

fn tcp(port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".into()),
        ..NetworkPolicyPort::default()
    }
}

fn pods(labels: BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels),
        ..LabelSelector::default()
    }
}

/// The NetworkPolicy of `cluster`'s broker pods; `operator` says where the operator runs.
pub fn desired_network_policy(cluster: &FjordCluster, operator: &OperatorPeer) -> NetworkPolicy {
    let ports = cluster.spec.ports();
    let http_from = cluster
        .spec
        .network_policy
        .as_ref()
        .map(|n| n.http_from.clone())
        .unwrap_or_default();
    let operator_peer = NetworkPolicyPeer {
        pod_selector: Some(pods(operator.pod_labels.clone())),
        // Without a namespace selector a pod selector matches in the policy's own
        // namespace only; the operator usually runs in another.
        namespace_selector: Some(match &operator.namespace {
            Some(ns) => pods(BTreeMap::from([(
                NAMESPACE_NAME_LABEL.to_string(),
                ns.clone(),
            )])),
            None => LabelSelector::default(),
        }),
        ..NetworkPolicyPeer::default()
    };
    let ingress = vec![
        // Client listeners: from anywhere (no `from`).
        NetworkPolicyIngressRule {
            ports: Some(
                cluster
                    .spec
                    .client_listeners()
                    .iter()
                    .map(|l| tcp(l.port))
                    .collect(),
            ),
            from: None,
        },
        NetworkPolicyIngressRule {
            ports: Some(vec![tcp(ports.internal)]),
            from: Some(vec![NetworkPolicyPeer {
                pod_selector: Some(pods(selector_labels(cluster))),
                ..NetworkPolicyPeer::default()
            }]),
        },
        NetworkPolicyIngressRule {
            ports: Some(vec![tcp(ports.operator)]),
            from: Some(vec![operator_peer]),
        },
        NetworkPolicyIngressRule {
            ports: Some(vec![tcp(ports.http)]),
            from: (!http_from.is_empty()).then_some(http_from),
        },
    ];
    let mut labels = selector_labels(cluster);
    labels.insert(
        "app.kubernetes.io/managed-by".into(),
        "fjord-operator".into(),
    );
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(network_policy_name(cluster)),
            namespace: cluster.namespace(),
            labels: Some(labels),
            owner_references: Some(vec![owner_reference(cluster)]),
            ..ObjectMeta::default()
        },
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(pods(selector_labels(cluster))),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(ingress),
            ..NetworkPolicySpec::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{
        ClaimPolicy, FjordClusterSpec, ListenerAuthentication as Authentication, ListenerSpec,
        NetworkPolicySpec, StorageSpec,
    };

    fn cluster() -> FjordCluster {
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
                listeners: vec![],
                ports: None,
                authorization: None,
                certificates: None,
                rack: None,
                pod_template: None,
                rebalance: None,
                network_policy: None,
            },
        );
        c.metadata.namespace = Some("ns".into());
        c.metadata.uid = Some("uid-1".into());
        c
    }

    fn operator() -> OperatorPeer {
        OperatorPeer {
            namespace: Some("fjord-system".into()),
            pod_labels: parse_labels(
                "app.kubernetes.io/name=fjord-operator,app.kubernetes.io/instance=fjord",
            )
            .unwrap(),
        }
    }

    /// (ports, sources) of each ingress rule; `None` sources: anywhere.
    type Rules = Vec<(Vec<i32>, Option<Vec<NetworkPolicyPeer>>)>;

    fn rules(np: &NetworkPolicy) -> Rules {
        np.spec
            .as_ref()
            .unwrap()
            .ingress
            .iter()
            .flatten()
            .map(|r| {
                let ports = r
                    .ports
                    .iter()
                    .flatten()
                    .map(|p| {
                        assert_eq!(p.protocol.as_deref(), Some("TCP"));
                        match p.port {
                            Some(IntOrString::Int(n)) => n,
                            ref other => panic!("port {other:?}"),
                        }
                    })
                    .collect();
                (ports, r.from.clone())
            })
            .collect()
    }

    /// The sources allowed to `port`: `None` when any source is.
    fn sources(np: &NetworkPolicy, port: i32) -> Option<Vec<NetworkPolicyPeer>> {
        let matching: Vec<_> = rules(np)
            .into_iter()
            .filter(|(ports, _)| ports.contains(&port))
            .collect();
        assert_eq!(matching.len(), 1, "one rule for port {port}");
        matching.into_iter().next().unwrap().1
    }

    #[test]
    fn selects_the_brokers_and_is_owned_by_the_cluster() {
        let c = cluster();
        let np = desired_network_policy(&c, &operator());
        assert_eq!(np.metadata.name.as_deref(), Some("demo-brokers"));
        assert_eq!(np.metadata.namespace.as_deref(), Some("ns"));
        let owner = &np.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("FjordCluster", "uid-1")
        );
        assert_eq!(owner.controller, Some(true));
        assert_eq!(
            np.metadata.labels.as_ref().unwrap()["app.kubernetes.io/managed-by"],
            "fjord-operator"
        );
        let spec = np.spec.as_ref().unwrap();
        assert_eq!(
            spec.pod_selector.as_ref().unwrap().match_labels,
            Some(selector_labels(&c))
        );
        assert_eq!(
            spec.policy_types.as_deref(),
            Some(&["Ingress".to_string()][..])
        );
        assert!(spec.egress.is_none());
    }

    #[test]
    fn internal_port_only_from_this_clusters_brokers() {
        let c = cluster();
        let from = sources(&desired_network_policy(&c, &operator()), 9093).unwrap();
        assert_eq!(from.len(), 1);
        assert_eq!(
            from[0].pod_selector.as_ref().unwrap().match_labels,
            Some(selector_labels(&c))
        );
        // No namespace selector: brokers of the policy's own namespace only.
        assert!(from[0].namespace_selector.is_none());
        assert!(from[0].ip_block.is_none());
    }

    #[test]
    fn operator_port_only_from_the_operators_pods_in_its_namespace() {
        let from = sources(&desired_network_policy(&cluster(), &operator()), 9091).unwrap();
        assert_eq!(from.len(), 1);
        let peer = &from[0];
        assert_eq!(
            peer.pod_selector.as_ref().unwrap().match_labels,
            Some(operator().pod_labels)
        );
        assert_eq!(
            peer.namespace_selector.as_ref().unwrap().match_labels,
            Some(BTreeMap::from([(
                "kubernetes.io/metadata.name".to_string(),
                "fjord-system".to_string()
            )]))
        );
        // Namespace unknown: the operator's labels in any namespace, never any pod.
        let anywhere = OperatorPeer {
            namespace: None,
            ..operator()
        };
        let from = sources(&desired_network_policy(&cluster(), &anywhere), 9091).unwrap();
        assert_eq!(from[0].namespace_selector, Some(LabelSelector::default()));
        assert!(from[0]
            .pod_selector
            .as_ref()
            .unwrap()
            .match_labels
            .is_some());
    }

    #[test]
    fn client_listeners_from_anywhere_and_custom_ports_followed() {
        let mut c = cluster();
        c.spec.listeners = vec![
            ListenerSpec {
                name: "plain".into(),
                port: 9092,
                tls: false,
                authentication: Authentication::None,
            },
            ListenerSpec {
                name: "secure".into(),
                port: 9094,
                tls: true,
                authentication: Authentication::ScramSha512,
            },
        ];
        c.spec.ports = Some(crate::types::PortsSpec {
            internal: 19093,
            operator: 19091,
            http: 19644,
        });
        let np = desired_network_policy(&c, &operator());
        assert_eq!(sources(&np, 9092), None);
        assert_eq!(sources(&np, 9094), None);
        assert!(sources(&np, 19093).is_some());
        assert!(sources(&np, 19091).is_some());
        assert_eq!(sources(&np, 19644), None);
        // Every port the brokers listen on is covered by exactly one rule.
        let covered: Vec<i32> = rules(&np).into_iter().flat_map(|(p, _)| p).collect();
        assert_eq!(covered, [9092, 9094, 19093, 19091, 19644]);
    }

    #[test]
    fn http_port_restricted_to_the_given_sources() {
        let mut c = cluster();
        let prometheus = NetworkPolicyPeer {
            namespace_selector: Some(pods(BTreeMap::from([(
                NAMESPACE_NAME_LABEL.to_string(),
                "monitoring".to_string(),
            )]))),
            ..NetworkPolicyPeer::default()
        };
        c.spec.network_policy = Some(NetworkPolicySpec {
            http_from: vec![prometheus.clone()],
        });
        let np = desired_network_policy(&c, &operator());
        assert_eq!(sources(&np, 9644), Some(vec![prometheus]));
        assert_eq!(sources(&np, 9092), None);
    }

    #[test]
    fn operator_labels_parse() {
        assert_eq!(
            parse_labels("a=b, c=d").unwrap(),
            BTreeMap::from([("a".into(), "b".into()), ("c".into(), "d".into())])
        );
        assert_eq!(
            OperatorPeer::default().pod_labels,
            BTreeMap::from([(
                "app.kubernetes.io/name".to_string(),
                "fjord-operator".to_string()
            )])
        );
        for bad in ["", ",", "a", "=b", "a b=c", "a=b c"] {
            assert!(parse_labels(bad).is_err(), "{bad:?}");
        }
    }
}
