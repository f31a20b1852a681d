//! Cluster metadata: the image (pure state), admin planning (pure decisions), and
//! this data directory's identity. The image is replicated as a Raft log by
//! `crate::quorum`.

pub mod admin;
pub mod image;

use std::path::Path;

/// Claim `data_dir` for `node_id`, or refuse when another node id wrote it: serving
/// another broker's data would hand out its partitions under the wrong identity.
/// Returns the cluster id recorded in `meta.properties` (created on first start).
pub fn claim_data_dir(data_dir: &Path, node_id: i32) -> Result<String, String> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| format!("data dir {}: cannot create: {e}", data_dir.display()))?;
    let path = data_dir.join("meta.properties");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let get = |key: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
            };
            let recorded: i32 = get("node.id")
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| format!("{}: no valid node.id", path.display()))?;
            if recorded != node_id {
                return Err(format!(
                    "data dir {} belongs to node id {recorded}, not {node_id}; start with --node-id {recorded} or use another --data-dir",
                    data_dir.display()
                ));
            }
            get("cluster.id")
                .map(|s| s.trim().to_string())
                .ok_or_else(|| format!("{}: no cluster.id", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let cluster_id = base64_uuid(&uuid::Uuid::new_v4());
            let tmp = data_dir.join("meta.properties.tmp");
            let body = format!("version=1\nnode.id={node_id}\ncluster.id={cluster_id}\n");
            std::fs::write(&tmp, body)
                .and_then(|()| std::fs::rename(&tmp, &path))
                .map_err(|e| format!("data dir {} is not writable: {e}", data_dir.display()))?;
            Ok(cluster_id)
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Kafka prints ids (cluster id, topic id) as URL-safe base64 without padding.
pub fn base64_uuid(id: &uuid::Uuid) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = id.as_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_dir_belongs_to_one_node() {
        let dir = tempfile::tempdir().unwrap();
        let id = claim_data_dir(dir.path(), 1).unwrap();
        assert_eq!(claim_data_dir(dir.path(), 1).unwrap(), id);
        let err = claim_data_dir(dir.path(), 2).unwrap_err();
        assert!(err.contains("belongs to node id 1"), "{err}");
    }

    #[test]
    fn base64_matches_kafkas_form() {
        let id = uuid::Uuid::from_bytes([0xff; 16]);
        assert_eq!(base64_uuid(&id), "_____________________w");
        assert_eq!(base64_uuid(&uuid::Uuid::nil()).len(), 22);
    }
}
