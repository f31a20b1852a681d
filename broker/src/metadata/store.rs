//! The local metadata log of a single-node broker: one record per line,
//! `<crc32c hex> <json>`, fsynced on every append (metadata changes are rare and must
//! survive a crash). On open the records are replayed into a [`MetadataImage`]; a
//! torn or corrupt tail (a crash mid-write) is cut off at the last good record.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use super::image::{MetadataImage, MetadataRecord};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("metadata log {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("metadata log {path} line {line}: {message}")]
    Corrupt {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

pub struct MetadataStore {
    path: PathBuf,
    file: File,
}

fn line_for(record: &MetadataRecord) -> String {
    let json = serde_json::to_string(record).expect("metadata records always serialize");
    format!("{:08x} {json}\n", crc32c::crc32c(json.as_bytes()))
}

fn parse_line(line: &str) -> Option<MetadataRecord> {
    let (crc, json) = line.split_once(' ')?;
    let crc = u32::from_str_radix(crc, 16).ok()?;
    (crc32c::crc32c(json.as_bytes()) == crc).then(|| serde_json::from_str(json).ok())?
}

impl MetadataStore {
    /// Open `<dir>/metadata.log`, replaying it. Returns the store and the image.
    pub fn open(dir: &Path) -> Result<(MetadataStore, MetadataImage), StoreError> {
        let path = dir.join("metadata.log");
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io)?;
        let mut image = MetadataImage::default();
        let mut good_len = 0u64;
        let mut reader = BufReader::new(&file);
        let mut buf = String::new();
        let mut line_no = 0;
        loop {
            buf.clear();
            let n = match reader.read_line(&mut buf) {
                Ok(n) => n,
                // Invalid UTF-8 can only be a torn or damaged tail.
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => break,
                Err(e) => return Err(io(e)),
            };
            if n == 0 || !buf.ends_with('\n') {
                break;
            }
            line_no += 1;
            let Some(record) = parse_line(buf.trim_end_matches('\n')) else {
                break;
            };
            image
                .apply(&record)
                .map_err(|message| StoreError::Corrupt {
                    path: path.clone(),
                    line: line_no,
                    message,
                })?;
            good_len += n as u64;
        }
        let len = file.metadata().map_err(io)?.len();
        if len > good_len {
            tracing::warn!(path = %path.display(), kept = good_len, dropped = len - good_len,
                "metadata log has a torn or corrupt tail; truncating to the last good record");
            file.set_len(good_len).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        Ok((MetadataStore { path, file }, image))
    }

    /// Append one record durably.
    pub fn append(&mut self, record: &MetadataRecord) -> Result<(), StoreError> {
        let io = |source| StoreError::Io {
            path: self.path.clone(),
            source,
        };
        self.file
            .write_all(line_for(record).as_bytes())
            .map_err(io)?;
        self.file.sync_data().map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn created(name: &str) -> MetadataRecord {
        MetadataRecord::TopicCreated {
            name: name.into(),
            id: uuid::Uuid::new_v4(),
            partitions: vec![],
            configs: BTreeMap::new(),
        }
    }

    #[test]
    fn replays_and_cuts_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut store, image) = MetadataStore::open(dir.path()).unwrap();
            assert_eq!(image, MetadataImage::default());
            store.append(&created("a")).unwrap();
            store.append(&created("b")).unwrap();
        }
        let path = dir.path().join("metadata.log");
        let good = std::fs::metadata(&path).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"deadbeef {\"type\":\"TopicCr").unwrap();
        drop(f);
        let (mut store, image) = MetadataStore::open(dir.path()).unwrap();
        assert!(image.topic("a").is_some() && image.topic("b").is_some());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good);
        store.append(&created("c")).unwrap();
        let (_, image) = MetadataStore::open(dir.path()).unwrap();
        assert_eq!(image.topics().count(), 3);
    }

    #[test]
    fn a_flipped_byte_stops_replay_there() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut store, _) = MetadataStore::open(dir.path()).unwrap();
            store.append(&created("a")).unwrap();
            store.append(&created("b")).unwrap();
        }
        let path = dir.path().join("metadata.log");
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 5;
        bytes[last] ^= 0x01;
        std::fs::write(&path, bytes).unwrap();
        let (_, image) = MetadataStore::open(dir.path()).unwrap();
        assert!(image.topic("a").is_some());
        assert!(image.topic("b").is_none());
    }
}
