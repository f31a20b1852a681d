//! How broker pods get their certificates: the Secret volumes, where they are mounted,
//! and the broker flags that point at the files (pure pieces of the StatefulSet that
//! [`crate::desired`] assembles).

use k8s_openapi::api::core::v1::{SecretVolumeSource, Volume, VolumeMount};

use super::plan::secret_names;
use super::{CA_CERT_KEY, TRUSTSTORE_KEY};

/// Where the broker certificates Secret is mounted.
pub const BROKER_CERTS_MOUNT: &str = "/etc/fjord/tls/broker";
/// Where the cluster CA's trust bundle is mounted.
pub const CLUSTER_CA_MOUNT: &str = "/etc/fjord/tls/cluster-ca";
const BROKER_CERTS_VOLUME: &str = "broker-certs";
const CLUSTER_CA_VOLUME: &str = "cluster-ca";

/// The certificate volumes of a broker pod of `cluster`.
pub fn volumes(cluster: &str) -> Vec<Volume> {
    let names = secret_names(cluster);
    [
        (BROKER_CERTS_VOLUME, names.broker_certs),
        (CLUSTER_CA_VOLUME, names.cluster_ca_cert),
    ]
    .into_iter()
    .map(|(volume, secret)| Volume {
        name: volume.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret),
            default_mode: Some(0o440),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    })
    .collect()
}

/// Their mounts in the broker container, read-only.
pub fn volume_mounts() -> Vec<VolumeMount> {
    [
        (BROKER_CERTS_VOLUME, BROKER_CERTS_MOUNT),
        (CLUSTER_CA_VOLUME, CLUSTER_CA_MOUNT),
    ]
    .into_iter()
    .map(|(name, path)| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(true),
        ..VolumeMount::default()
    })
    .collect()
}

/// The broker flags of the certificate files: the internal plane's mutual TLS
/// (`--internal-ssl-*`, always on) and the TLS listeners' keystore and truststore.
/// `$(POD_NAME)` is expanded by the kubelet.
pub fn broker_args() -> Vec<String> {
    let crt = format!("{BROKER_CERTS_MOUNT}/$(POD_NAME).crt");
    let key = format!("{BROKER_CERTS_MOUNT}/$(POD_NAME).key");
    vec![
        format!("--internal-ssl-certificate={crt}"),
        format!("--internal-ssl-key={key}"),
        format!("--internal-ssl-ca={CLUSTER_CA_MOUNT}/{CA_CERT_KEY}"),
        format!("--ssl-keystore-location={crt}"),
        format!("--ssl-key-location={key}"),
        format!("--ssl-truststore-location={BROKER_CERTS_MOUNT}/{TRUSTSTORE_KEY}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_certificates_and_cluster_ca_are_mounted_read_only_where_the_flags_point() {
        let volumes: Vec<_> = volumes("demo")
            .into_iter()
            .map(|v| {
                let s = v.secret.unwrap();
                (v.name, s.secret_name.unwrap(), s.default_mode)
            })
            .collect();
        assert_eq!(
            volumes,
            [
                (
                    "broker-certs".into(),
                    "demo-broker-certs".into(),
                    Some(0o440)
                ),
                (
                    "cluster-ca".into(),
                    "demo-cluster-ca-cert".into(),
                    Some(0o440)
                ),
            ]
        );
        let mounts: Vec<_> = volume_mounts()
            .into_iter()
            .map(|m| (m.name, m.mount_path, m.read_only))
            .collect();
        assert_eq!(
            mounts,
            [
                ("broker-certs".into(), BROKER_CERTS_MOUNT.into(), Some(true)),
                ("cluster-ca".into(), CLUSTER_CA_MOUNT.into(), Some(true)),
            ]
        );
        for arg in broker_args() {
            let path = arg.split_once('=').unwrap().1;
            assert!(
                path.starts_with(BROKER_CERTS_MOUNT) || path.starts_with(CLUSTER_CA_MOUNT),
                "{arg}"
            );
        }
    }
}
