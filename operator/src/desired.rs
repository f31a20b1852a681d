//! Desired objects of a FjordCluster, as pure functions of the resource: the controller
//! only applies them (server-side apply) and never edits them in place.
//!
//! Naming, for a FjordCluster `demo` in namespace `ns`:
//! - StatefulSet `demo`, pods `demo-0` … `demo-(N-1)`; pod N runs broker (node id) N.
//! - headless Service `demo-brokers`: broker N is `demo-N.demo-brokers.ns.svc`, the
//!   address it advertises to clients and the one other brokers reach it at.
//! - bootstrap Service `demo-bootstrap`: what clients connect to first.
//! - ConfigMap `demo-config`: the broker config as `FJORD_*` environment variables.
//! - PodDisruptionBudget `demo-brokers`: at most one broker down by eviction.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapEnvSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvFromSource, EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile,
    SecurityContext, Service, ServicePort, ServiceSpec, TopologySpreadConstraint, Volume,
    VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};

use crate::listeners::{self, bootstrap_service_name, headless_service_name};
use crate::types::{FjordCluster, DEFAULT_IMAGE};

/// The field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "fjord-operator";
/// Where each broker's claim is mounted.
pub const DATA_MOUNT: &str = "/var/lib/fjord";
/// Name of the volume claim template (claims are `data-<pod>`).
pub const DATA_VOLUME: &str = "data";
/// Pod annotation carrying a hash of the broker config, so a config change rolls pods.
pub const CONFIG_HASH_ANNOTATION: &str = "fjord.dev/config-hash";
/// The uid and gid the broker runs as: the image's `USER` (see the Dockerfile).
pub const BROKER_UID: i64 = 10001;
/// Name of the writable scratch volume mounted at [`TMP_MOUNT`].
pub const TMP_VOLUME: &str = "tmp";
/// The one writable path outside the data volume: the root file system is read-only.
pub const TMP_MOUNT: &str = "/tmp";
/// Voters of the metadata quorum: the first brokers, at most this many. Brokers beyond
/// follow as learners, so scaling never changes the voter set (nor restarts pods).
pub const MAX_VOTERS: i32 = 3;

/// Name of the ConfigMap.
pub fn configmap_name(cluster: &FjordCluster) -> String {
    format!("{}-config", cluster.name_any())
}

/// The ports a broker pod's arguments need: the first client listener's, the internal
/// and the HTTP port.
struct Ports {
    kafka: i32,
    internal: i32,
    http: i32,
}

fn listeners(cluster: &FjordCluster) -> Ports {
    let own = cluster.spec.ports();
    Ports {
        kafka: cluster.spec.client_listeners()[0].port,
        internal: own.internal,
        http: own.http,
    }
}

/// `host:port` clients bootstrap from.
pub fn bootstrap_address(cluster: &FjordCluster) -> String {
    format!(
        "{}.{}.svc:{}",
        bootstrap_service_name(cluster),
        cluster.namespace().unwrap_or_default(),
        listeners(cluster).kafka
    )
}

/// `host:port` of the operator's own listener behind the bootstrap Service (mutual
/// TLS, see [`crate::listeners`]).
pub fn operator_address(cluster: &FjordCluster) -> String {
    format!(
        "{}.{}.svc:{}",
        bootstrap_service_name(cluster),
        cluster.namespace().unwrap_or_default(),
        cluster.spec.ports().operator
    )
}

/// DNS name of broker `ordinal` under the headless Service.
pub fn broker_host(cluster: &FjordCluster, ordinal: i32) -> String {
    format!(
        "{}-{ordinal}.{}.{}.svc",
        cluster.name_any(),
        headless_service_name(cluster),
        cluster.namespace().unwrap_or_default()
    )
}

/// Labels that select the broker pods of `cluster` (also the StatefulSet selector,
/// which is immutable: never add to it).
pub fn selector_labels(cluster: &FjordCluster) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "fjord".to_string()),
        ("app.kubernetes.io/instance".to_string(), cluster.name_any()),
        (
            "app.kubernetes.io/component".to_string(),
            "broker".to_string(),
        ),
    ])
}

/// The label selector as a string, for the scale subresource.
pub fn selector_string(cluster: &FjordCluster) -> String {
    selector_labels(cluster)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn labels(cluster: &FjordCluster) -> BTreeMap<String, String> {
    let mut labels = selector_labels(cluster);
    labels.insert(
        "app.kubernetes.io/managed-by".into(),
        "fjord-operator".into(),
    );
    labels
}

/// The controller owner reference every object of `cluster` carries, so deleting the
/// FjordCluster deletes them (garbage collection) and their changes wake the controller.
pub fn owner_reference(cluster: &FjordCluster) -> OwnerReference {
    cluster
        .controller_owner_ref(&())
        .expect("a FjordCluster read from the API server has a name and uid")
}

fn meta(cluster: &FjordCluster, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: cluster.namespace(),
        labels: Some(labels(cluster)),
        owner_references: Some(vec![owner_reference(cluster)]),
        ..ObjectMeta::default()
    }
}

/// Kafka broker config names whose `fjord` flag is spelled differently; every other
/// name maps by rule (`log.retention.ms` → `--log-retention-ms`). The broker ignores
/// `FJORD_*` variables it does not know, so a wrong mapping would silently do nothing.
const BROKER_ENV_EXCEPTIONS: &[(&str, &str)] = &[
    ("auto.create.topics.enable", "AUTO_CREATE_TOPICS"),
    ("broker.rack", "RACK"),
];

/// Broker config as environment: `log.retention.ms` → `FJORD_LOG_RETENTION_MS`.
pub fn broker_env(config: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    config
        .iter()
        .map(|(k, v)| {
            if let Some((_, flag)) = BROKER_ENV_EXCEPTIONS.iter().find(|(name, _)| name == k) {
                return (format!("FJORD_{flag}"), v.clone());
            }
            let name: String = k
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            (format!("FJORD_{name}"), v.clone())
        })
        .collect()
}

/// The ConfigMap with the broker config, mounted as environment by every broker.
pub fn desired_configmap(cluster: &FjordCluster) -> ConfigMap {
    ConfigMap {
        metadata: meta(cluster, configmap_name(cluster)),
        data: Some(broker_env(&cluster.spec.config)),
        ..ConfigMap::default()
    }
}

/// FNV-1a over the broker config: stable across runs and Rust versions, unlike
/// `DefaultHasher`, so an unchanged config never rolls the pods.
pub fn config_hash(cluster: &FjordCluster) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, v) in broker_env(&cluster.spec.config) {
        for b in k.bytes().chain([0]).chain(v.bytes()).chain([0]) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

fn service_ports(ports: Vec<(String, i32)>) -> Vec<ServicePort> {
    ports
        .into_iter()
        .map(|(name, port)| ServicePort {
            target_port: Some(IntOrString::String(name.clone())),
            name: Some(name),
            port,
            ..ServicePort::default()
        })
        .collect()
}

/// Headless Service: one DNS name per broker. Not-ready addresses are published
/// because brokers must reach each other (quorum, replication) before any is ready.
pub fn desired_headless_service(cluster: &FjordCluster) -> Service {
    Service {
        metadata: meta(cluster, headless_service_name(cluster)),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector_labels(cluster)),
            ports: Some(service_ports(listeners::pod_ports(&cluster.spec))),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// Bootstrap Service: a stable address on ready brokers for a client's first Metadata
/// request; after that clients talk to each broker by its advertised name.
pub fn desired_bootstrap_service(cluster: &FjordCluster) -> Service {
    Service {
        metadata: meta(cluster, bootstrap_service_name(cluster)),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector_labels(cluster)),
            ports: Some(service_ports(listeners::bootstrap_ports(&cluster.spec))),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// PodDisruptionBudget: voluntary evictions (node drains) take one broker at a time.
pub fn desired_pdb(cluster: &FjordCluster) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: meta(cluster, headless_service_name(cluster)),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(cluster)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

/// The `--voters` value for a StatefulSet of `replicas` pods: `id@host:internal-port`
/// for the first brokers (up to three). A single broker is a quorum of one at its
/// stable DNS name, so that growing the cluster later adds voters to a quorum whose
/// first address stays valid. It follows the replicas applied, not the spec, so a
/// refused or pending scale-in does not roll the pods.
pub fn voters(cluster: &FjordCluster, replicas: i32) -> String {
    let port = listeners(cluster).internal;
    (0..replicas.clamp(1, MAX_VOTERS))
        .map(|n| format!("{n}@{}:{port}", broker_host(cluster, n)))
        .collect::<Vec<_>>()
        .join(",")
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// The broker pods' security context: not root, the image's uid, and `fsGroup` so the
/// data volume (owned by root when provisioned) is writable by that uid. The ownership
/// change walks the volume only when its root does not already belong to the group, so
/// a restart of a broker with a large log does not wait for a recursive chown.
pub fn pod_security_context() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(BROKER_UID),
        run_as_group: Some(BROKER_UID),
        fs_group: Some(BROKER_UID),
        fs_group_change_policy: Some("OnRootMismatch".into()),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

/// The broker container's security context: the broker needs no capability (its ports
/// are above 1024), never gains privileges, and writes only to its volumes.
pub fn container_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Capabilities::default()
        }),
        ..SecurityContext::default()
    }
}

/// The broker container's arguments. `$(VAR)` references are expanded by the kubelet
/// from the container's environment: POD_INDEX (the StatefulSet ordinal label),
/// POD_NAME and POD_IP come from the downward API.
pub fn broker_args(cluster: &FjordCluster, replicas: i32) -> Vec<String> {
    let l = listeners(cluster);
    let mut args = vec![
        "--node-id=$(POD_INDEX)".to_string(),
        format!("--data-dir={DATA_MOUNT}/data"),
        format!("--http-listen=$(POD_IP):{}", l.http),
    ];
    args.extend(listeners::listener_args(cluster));
    args.push(format!("--internal-listen=$(POD_IP):{}", l.internal));
    args.push(format!("--voters={}", voters(cluster, replicas)));
    args.extend(crate::pki::pod::broker_args());
    args
}

/// The StatefulSet running the brokers with `replicas` pods. `replicas` is passed in
/// rather than read from the spec because a refused scale-in keeps the current count
/// (see [`crate::scale`]).
pub fn desired_statefulset(cluster: &FjordCluster, replicas: i32) -> StatefulSet {
    let l = listeners(cluster);
    let overrides = cluster.spec.pod_template.clone().unwrap_or_default();
    let storage = &cluster.spec.storage;

    let mut pod_labels = overrides.labels.clone();
    pod_labels.extend(labels(cluster));
    let mut pod_annotations = overrides.annotations.clone();
    pod_annotations.extend([
        ("prometheus.io/scrape".to_string(), "true".to_string()),
        ("prometheus.io/port".to_string(), l.http.to_string()),
        ("prometheus.io/path".to_string(), "/metrics".to_string()),
        (CONFIG_HASH_ANNOTATION.to_string(), config_hash(cluster)),
    ]);

    let mut env = vec![
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
        field_env("POD_IP", "status.podIP"),
        field_env(
            "POD_INDEX",
            "metadata.labels['apps.kubernetes.io/pod-index']",
        ),
    ];
    let mut spread = None;
    if let Some(rack) = &cluster.spec.rack {
        env.push(field_env(
            "FJORD_RACK",
            &format!("metadata.labels['{}']", rack.topology_key),
        ));
        spread = Some(vec![TopologySpreadConstraint {
            max_skew: 1,
            topology_key: rack.topology_key.clone(),
            when_unsatisfiable: "ScheduleAnyway".into(),
            label_selector: Some(LabelSelector {
                match_labels: Some(selector_labels(cluster)),
                ..LabelSelector::default()
            }),
            ..TopologySpreadConstraint::default()
        }]);
    }
    env.extend(overrides.env.clone());

    let container = Container {
        name: "broker".into(),
        image: Some(
            cluster
                .spec
                .image
                .clone()
                .unwrap_or_else(|| DEFAULT_IMAGE.into()),
        ),
        image_pull_policy: cluster.spec.image_pull_policy.clone(),
        command: Some(vec!["fjord".into()]),
        args: Some(broker_args(cluster, replicas)),
        env: Some(env),
        env_from: Some(vec![EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: configmap_name(cluster),
                ..ConfigMapEnvSource::default()
            }),
            ..EnvFromSource::default()
        }]),
        ports: Some(
            listeners::pod_ports(&cluster.spec)
                .into_iter()
                .map(|(name, container_port)| ContainerPort {
                    name: Some(name),
                    container_port,
                    ..ContainerPort::default()
                })
                .collect(),
        ),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/ready/in-sync".into()),
                port: IntOrString::String("http".into()),
                ..HTTPGetAction::default()
            }),
            period_seconds: Some(5),
            failure_threshold: Some(3),
            ..Probe::default()
        }),
        liveness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/health".into()),
                port: IntOrString::String("http".into()),
                ..HTTPGetAction::default()
            }),
            period_seconds: Some(10),
            failure_threshold: Some(6),
            ..Probe::default()
        }),
        resources: cluster.spec.resources.clone(),
        volume_mounts: Some(
            [
                VolumeMount {
                    name: DATA_VOLUME.into(),
                    mount_path: DATA_MOUNT.into(),
                    ..VolumeMount::default()
                },
                VolumeMount {
                    name: TMP_VOLUME.into(),
                    mount_path: TMP_MOUNT.into(),
                    ..VolumeMount::default()
                },
            ]
            .into_iter()
            .chain(crate::pki::pod::volume_mounts())
            .collect(),
        ),
        security_context: Some(container_security_context()),
        ..Container::default()
    };

    StatefulSet {
        metadata: meta(cluster, cluster.name_any()),
        spec: StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some(headless_service_name(cluster)),
            // Brokers of a quorum must start together; one-by-one start would wait
            // forever for a broker that is ready only once a quorum exists.
            pod_management_policy: Some("Parallel".into()),
            // The operator restarts pods itself (crate::roll), one broker at a time
            // once the cluster is in sync again; Kubernetes' rolling update would
            // wait for readiness only.
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".into()),
                ..StatefulSetUpdateStrategy::default()
            }),
            selector: LabelSelector {
                match_labels: Some(selector_labels(cluster)),
                ..LabelSelector::default()
            },
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_scaled: Some(storage.claim_policy_on_scale_down.as_str().into()),
                    when_deleted: Some(storage.claim_policy_on_delete.as_str().into()),
                },
            ),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(pod_annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    termination_grace_period_seconds: Some(60),
                    node_selector: (!overrides.node_selector.is_empty())
                        .then(|| overrides.node_selector.clone()),
                    tolerations: (!overrides.tolerations.is_empty())
                        .then(|| overrides.tolerations.clone()),
                    priority_class_name: overrides.priority_class_name.clone(),
                    service_account_name: overrides.service_account_name.clone(),
                    // Brokers never call the Kubernetes API: no token in the pod, whatever
                    // ServiceAccount it runs as.
                    automount_service_account_token: Some(false),
                    security_context: Some(pod_security_context()),
                    volumes: Some(
                        [Volume {
                            name: TMP_VOLUME.into(),
                            empty_dir: Some(EmptyDirVolumeSource {
                                size_limit: Some(Quantity("64Mi".into())),
                                ..EmptyDirVolumeSource::default()
                            }),
                            ..Volume::default()
                        }]
                        .into_iter()
                        .chain(crate::pki::pod::volumes(&cluster.name_any()))
                        .collect(),
                    ),
                    topology_spread_constraints: spread,
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(DATA_VOLUME.into()),
                    labels: Some(selector_labels(cluster)),
                    ..ObjectMeta::default()
                },
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".into()]),
                    storage_class_name: storage.storage_class_name.clone(),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some(BTreeMap::from([(
                            "storage".to_string(),
                            Quantity(storage.size.clone()),
                        )])),
                        ..VolumeResourceRequirements::default()
                    }),
                    ..PersistentVolumeClaimSpec::default()
                }),
                ..PersistentVolumeClaim::default()
            }]),
            ..StatefulSetSpec::default()
        },
        ..StatefulSet::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ClaimPolicy, FjordClusterSpec, RackSpec, StorageSpec};

    fn cluster(replicas: i32) -> FjordCluster {
        let mut c = FjordCluster::new(
            "demo",
            FjordClusterSpec {
                replicas,
                image: Some("fjord:test".into()),
                image_pull_policy: None,
                resources: None,
                storage: StorageSpec {
                    size: "10Gi".into(),
                    storage_class_name: Some("fast".into()),
                    claim_policy_on_scale_down: ClaimPolicy::Delete,
                    claim_policy_on_delete: ClaimPolicy::Retain,
                },
                config: BTreeMap::from([("log.retention.ms".into(), "60000".into())]),
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

    fn assert_owned(meta: &ObjectMeta) {
        let refs = meta.owner_references.as_ref().unwrap();
        assert_eq!(refs.len(), 1);
        let r = &refs[0];
        assert_eq!(
            (
                r.api_version.as_str(),
                r.kind.as_str(),
                r.name.as_str(),
                r.uid.as_str()
            ),
            ("fjord.dev/v1alpha1", "FjordCluster", "demo", "uid-1")
        );
        assert_eq!(r.controller, Some(true));
        assert_eq!(meta.namespace.as_deref(), Some("ns"));
    }

    #[test]
    fn statefulset_runs_pod_n_as_broker_n_with_headless_dns() {
        let sts = desired_statefulset(&cluster(1), 1);
        assert_eq!(sts.metadata.name.as_deref(), Some("demo"));
        assert_owned(&sts.metadata);
        let spec = sts.spec;
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(spec.service_name.as_deref(), Some("demo-brokers"));
        assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"));
        assert_eq!(
            spec.selector.match_labels,
            Some(selector_labels(&cluster(1)))
        );
        let pod = spec.template.spec.unwrap();
        let c = &pod.containers[0];
        assert_eq!(c.image.as_deref(), Some("fjord:test"));
        assert_eq!(c.command.as_deref(), Some(&["fjord".to_string()][..]));
        assert_eq!(
            c.args.as_deref().unwrap(),
            [
                "--node-id=$(POD_INDEX)",
                "--data-dir=/var/lib/fjord/data",
                "--http-listen=$(POD_IP):9644",
                "--listeners=PLAIN://$(POD_IP):9092,OPERATOR://$(POD_IP):9091",
                "--advertised-listeners=PLAIN://$(POD_NAME).demo-brokers.ns.svc:9092,OPERATOR://$(POD_NAME).demo-brokers.ns.svc:9091",
                "--listener-security-protocol-map=PLAIN:PLAINTEXT,OPERATOR:SSL",
                "--listener-ssl-client-auth=OPERATOR:required",
                "--ssl-principal-mapping-rules=RULE:^CN=([^,]+)$/$1/,DEFAULT",
                "--internal-listen=$(POD_IP):9093",
                "--voters=0@demo-0.demo-brokers.ns.svc:9093",
                "--internal-ssl-certificate=/etc/fjord/tls/broker/$(POD_NAME).crt",
                "--internal-ssl-key=/etc/fjord/tls/broker/$(POD_NAME).key",
                "--internal-ssl-ca=/etc/fjord/tls/cluster-ca/ca.crt",
                "--ssl-keystore-location=/etc/fjord/tls/broker/$(POD_NAME).crt",
                "--ssl-key-location=/etc/fjord/tls/broker/$(POD_NAME).key",
                "--ssl-truststore-location=/etc/fjord/tls/broker/truststore.crt",
            ]
        );
        // The certificate Secrets, mounted where the flags point (crate::pki::pod),
        // after the data volume and /tmp.
        let mounts = c.volume_mounts.as_deref().unwrap();
        assert_eq!(mounts[2..], crate::pki::pod::volume_mounts());
        let volumes = pod.volumes.as_deref().unwrap();
        assert_eq!(volumes[1..], crate::pki::pod::volumes("demo"));
        let env = c.env.as_ref().unwrap();
        let index = env.iter().find(|e| e.name == "POD_INDEX").unwrap();
        assert_eq!(
            index
                .value_from
                .as_ref()
                .unwrap()
                .field_ref
                .as_ref()
                .unwrap()
                .field_path,
            "metadata.labels['apps.kubernetes.io/pod-index']"
        );
        for name in ["POD_NAME", "POD_IP", "POD_NAMESPACE"] {
            assert!(env.iter().any(|e| e.name == name), "{name}");
        }
        assert_eq!(
            c.env_from.as_ref().unwrap()[0]
                .config_map_ref
                .as_ref()
                .unwrap()
                .name,
            "demo-config"
        );
        let ready = c
            .readiness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap();
        assert_eq!(ready.path.as_deref(), Some("/ready/in-sync"));
        assert_eq!(ready.port, IntOrString::String("http".into()));
        let ports: Vec<_> = c
            .ports
            .iter()
            .flatten()
            .map(|p| (p.name.clone().unwrap(), p.container_port))
            .collect();
        assert_eq!(
            ports,
            [
                ("plain".into(), 9092),
                ("operator".into(), 9091),
                ("internal".into(), 9093),
                ("http".into(), 9644)
            ]
        );
        assert_eq!(
            c.volume_mounts.as_ref().unwrap()[0].mount_path,
            "/var/lib/fjord"
        );
    }

    #[test]
    fn broker_pods_are_hardened() {
        let pod = desired_statefulset(&cluster(3), 3)
            .spec
            .template
            .spec
            .unwrap();
        let psc = pod.security_context.as_ref().unwrap();
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(
            (psc.run_as_user, psc.run_as_group, psc.fs_group),
            (Some(10001), Some(10001), Some(10001))
        );
        assert_eq!(
            psc.fs_group_change_policy.as_deref(),
            Some("OnRootMismatch")
        );
        assert_eq!(
            psc.seccomp_profile.as_ref().unwrap().type_,
            "RuntimeDefault"
        );
        assert_eq!(pod.automount_service_account_token, Some(false));
        let c = &pod.containers[0];
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(
            sc.capabilities.as_ref().unwrap().drop.as_deref(),
            Some(&["ALL".to_string()][..])
        );
        assert!(sc.capabilities.as_ref().unwrap().add.is_none());
        // The root file system is read-only: /tmp is an emptyDir, the data a claim.
        let tmp = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == TMP_VOLUME)
            .unwrap();
        assert!(tmp.empty_dir.is_some());
        let mounts: Vec<_> = c
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| (m.name.as_str(), m.mount_path.as_str()))
            .collect();
        assert!(mounts.contains(&("tmp", "/tmp")), "{mounts:?}");
        assert!(mounts.contains(&("data", "/var/lib/fjord")), "{mounts:?}");
        // A ServiceAccount named in the spec is kept (image pull secrets), its token not.
        let mut c = cluster(3);
        c.spec.pod_template = Some(crate::types::PodTemplateOverrides {
            service_account_name: Some("brokers".into()),
            ..Default::default()
        });
        let pod = desired_statefulset(&c, 3).spec.template.spec.unwrap();
        assert_eq!(pod.service_account_name.as_deref(), Some("brokers"));
        assert_eq!(pod.automount_service_account_token, Some(false));
    }

    #[test]
    fn statefulset_pod_template_has_scrape_annotations_and_config_hash() {
        let c = cluster(1);
        let sts = desired_statefulset(&c, 1);
        let meta = sts.spec.template.metadata.unwrap();
        let a = meta.annotations.unwrap();
        assert_eq!(a["prometheus.io/scrape"], "true");
        assert_eq!(a["prometheus.io/port"], "9644");
        assert_eq!(a["prometheus.io/path"], "/metrics");
        assert_eq!(a[CONFIG_HASH_ANNOTATION], config_hash(&c));
        let mut changed = c.clone();
        changed
            .spec
            .config
            .insert("log.retention.ms".into(), "1".into());
        assert_ne!(config_hash(&changed), config_hash(&c));
        assert_eq!(meta.labels.unwrap()["app.kubernetes.io/instance"], "demo");
    }

    #[test]
    fn statefulset_pods_are_restarted_by_the_operator_only() {
        let spec = desired_statefulset(&cluster(3), 3).spec;
        let strategy = spec.update_strategy.unwrap();
        assert_eq!(strategy.type_.as_deref(), Some("OnDelete"));
        assert!(strategy.rolling_update.is_none());
    }

    #[test]
    fn statefulset_claims_follow_storage_spec() {
        let spec = desired_statefulset(&cluster(1), 1).spec;
        let claim = &spec.volume_claim_templates.unwrap()[0];
        assert_eq!(claim.metadata.name.as_deref(), Some("data"));
        let cs = claim.spec.as_ref().unwrap();
        assert_eq!(cs.storage_class_name.as_deref(), Some("fast"));
        assert_eq!(
            cs.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"],
            Quantity("10Gi".into())
        );
        let policy = spec.persistent_volume_claim_retention_policy.unwrap();
        assert_eq!(policy.when_scaled.as_deref(), Some("Delete"));
        assert_eq!(policy.when_deleted.as_deref(), Some("Retain"));
    }

    #[test]
    fn multi_broker_pods_get_a_fixed_voter_set() {
        let c = cluster(5);
        let args = desired_statefulset(&c, 5)
            .spec
            .template
            .spec
            .unwrap()
            .containers[0]
            .args
            .clone()
            .unwrap();
        assert!(args.contains(&"--internal-listen=$(POD_IP):9093".to_string()));
        assert!(args.contains(
            &"--voters=0@demo-0.demo-brokers.ns.svc:9093,1@demo-1.demo-brokers.ns.svc:9093,2@demo-2.demo-brokers.ns.svc:9093"
                .to_string()
        ));
        // Scaling 3 → 5 keeps the voters and so the pod template.
        assert_eq!(voters(&c, 3), voters(&c, 5));
        assert_eq!(voters(&c, 1), "0@demo-0.demo-brokers.ns.svc:9093");
        // A spec asking for fewer brokers than run (a refused scale-in) changes nothing.
        let fewer = cluster(2);
        assert_eq!(
            desired_statefulset(&fewer, 3).spec.template,
            desired_statefulset(&cluster(3), 3).spec.template
        );
    }

    #[test]
    fn rack_awareness_spreads_pods_and_sets_rack_env() {
        let mut c = cluster(3);
        c.spec.rack = Some(RackSpec {
            topology_key: "topology.kubernetes.io/zone".into(),
        });
        let pod = desired_statefulset(&c, 3).spec.template.spec.unwrap();
        let spread = &pod.topology_spread_constraints.unwrap()[0];
        assert_eq!(spread.topology_key, "topology.kubernetes.io/zone");
        assert_eq!(spread.max_skew, 1);
        let rack = pod.containers[0]
            .env
            .iter()
            .flatten()
            .find(|e| e.name == "FJORD_RACK")
            .unwrap();
        assert_eq!(
            rack.value_from
                .as_ref()
                .unwrap()
                .field_ref
                .as_ref()
                .unwrap()
                .field_path,
            "metadata.labels['topology.kubernetes.io/zone']"
        );
    }

    #[test]
    fn services_headless_and_bootstrap() {
        let c = cluster(3);
        let h = desired_headless_service(&c);
        assert_eq!(h.metadata.name.as_deref(), Some("demo-brokers"));
        assert_owned(&h.metadata);
        let hs = h.spec.unwrap();
        assert_eq!(hs.cluster_ip.as_deref(), Some("None"));
        assert_eq!(hs.publish_not_ready_addresses, Some(true));
        assert_eq!(hs.selector, Some(selector_labels(&c)));
        assert_eq!(hs.ports.unwrap().len(), 4);

        let b = desired_bootstrap_service(&c);
        assert_eq!(b.metadata.name.as_deref(), Some("demo-bootstrap"));
        assert_owned(&b.metadata);
        let bs = b.spec.unwrap();
        assert_eq!(bs.cluster_ip, None);
        assert_eq!(bs.selector, Some(selector_labels(&c)));
        let port = &bs.ports.unwrap()[0];
        assert_eq!((port.name.as_deref(), port.port), (Some("plain"), 9092));
        assert_eq!(bootstrap_address(&c), "demo-bootstrap.ns.svc:9092");
    }

    #[test]
    fn configmap_maps_kafka_names_to_broker_env() {
        let mut c = cluster(1);
        c.spec
            .config
            .insert("auto.create.topics.enable".into(), "false".into());
        let cm = desired_configmap(&c);
        assert_eq!(cm.metadata.name.as_deref(), Some("demo-config"));
        assert_owned(&cm.metadata);
        let data = cm.data.unwrap();
        assert_eq!(data["FJORD_LOG_RETENTION_MS"], "60000");
        // The broker's flag is --auto-create-topics (FJORD_AUTO_CREATE_TOPICS).
        assert_eq!(data["FJORD_AUTO_CREATE_TOPICS"], "false");
        assert_eq!(data.len(), 2);
    }

    #[test]
    fn pdb_allows_one_broker_down() {
        let c = cluster(3);
        let pdb = desired_pdb(&c);
        assert_owned(&pdb.metadata);
        let spec = pdb.spec.unwrap();
        assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
        assert_eq!(spec.min_available, None);
        assert_eq!(
            spec.selector.unwrap().match_labels,
            Some(selector_labels(&c))
        );
    }
}
