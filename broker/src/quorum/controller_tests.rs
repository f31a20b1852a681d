//! Unit tests of the controller's pure checks.

use super::*;
use std::collections::BTreeMap as Map;

#[test]
fn records_are_checked_against_the_image() {
    let image = MetadataImage::default();
    let create = |name: &str| MetadataRecord::TopicCreated {
        name: name.into(),
        id: uuid::Uuid::new_v4(),
        partitions: vec![],
        configs: Map::new(),
    };
    assert!(check_records(&image, &[create("a")]).is_ok());
    // Two creations of one name in one request: the second does not apply.
    let (code, _) = check_records(&image, &[create("a"), create("a")]).unwrap_err();
    assert_eq!(code, ResponseError::TopicAlreadyExists);
    let mut with_a = image.clone();
    with_a.apply(&create("a")).unwrap();
    let (code, _) = check_records(&with_a, &[create("b"), create("a")]).unwrap_err();
    assert_eq!(code, ResponseError::TopicAlreadyExists);
    let (code, _) = check_records(
        &with_a,
        &[MetadataRecord::TopicDeleted {
            topic_id: uuid::Uuid::new_v4(),
        }],
    )
    .unwrap_err();
    assert_eq!(code, ResponseError::UnknownTopicOrPartition);
}
