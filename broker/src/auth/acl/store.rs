//! The ACLs of the cluster, as the metadata log built them: by id (records name
//! ACLs by id, as Kafka's AccessControlEntryRecord / RemoveAccessControlEntryRecord
//! do) and by resource pattern, so that deciding on one resource looks up its
//! literal name, the `*` wildcard and only the prefix lengths that PREFIXED ACLs use,
//! never the whole set.

use imbl::OrdMap;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    AccessControlEntry, AclBinding, AclBindingFilter, InvalidAcl, PatternType, ResourcePattern,
    ResourceType, WILDCARD,
};

type Entries = OrdMap<Uuid, AccessControlEntry>;

/// Persistent maps, so an image that changes something else shares the whole store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<(Uuid, AclBinding)>", into = "Vec<(Uuid, AclBinding)>")]
pub struct AclStore {
    by_id: OrdMap<Uuid, AclBinding>,
    /// (type, pattern type) → name → the entries of that pattern; keyed so that a
    /// lookup borrows the resource name (no allocation per decision).
    by_pattern: OrdMap<(ResourceType, PatternType), OrdMap<String, Entries>>,
    /// Per resource type, the name lengths (bytes) of PREFIXED patterns and how many
    /// patterns have each.
    prefix_lengths: OrdMap<ResourceType, OrdMap<usize, usize>>,
}

impl From<Vec<(Uuid, AclBinding)>> for AclStore {
    fn from(acls: Vec<(Uuid, AclBinding)>) -> AclStore {
        let mut store = AclStore::default();
        for (id, binding) in acls {
            store.insert(id, binding);
        }
        store
    }
}

impl From<AclStore> for Vec<(Uuid, AclBinding)> {
    fn from(store: AclStore) -> Self {
        store.by_id.into_iter().collect()
    }
}

impl AclStore {
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Every ACL, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&Uuid, &AclBinding)> {
        self.by_id.iter()
    }

    /// The ACLs a filter selects, in id order.
    pub fn matching<'a>(
        &'a self,
        filter: &'a AclBindingFilter,
    ) -> impl Iterator<Item = (&'a Uuid, &'a AclBinding)> {
        self.by_id.iter().filter(|(_, b)| filter.matches(b))
    }

    fn entries(&self, pattern: &ResourcePattern) -> Option<&Entries> {
        self.by_pattern
            .get(&(pattern.resource_type, pattern.pattern_type))?
            .get(pattern.name.as_str())
    }

    pub fn contains(&self, binding: &AclBinding) -> bool {
        self.entries(&binding.pattern)
            .is_some_and(|entries| entries.values().any(|e| *e == binding.entry))
    }

    /// Replay of an ACL-created record. A reused id or a binding already present
    /// means the log is corrupt: the controller never plans either.
    pub fn create(&mut self, id: Uuid, binding: &AclBinding) -> Result<(), String> {
        if self.by_id.contains_key(&id) {
            return Err(format!("ACL id {id} already exists"));
        }
        if self.contains(binding) {
            return Err(format!("ACL {binding} already exists"));
        }
        self.insert(id, binding.clone());
        Ok(())
    }

    /// Replay of an ACL-removed record.
    pub fn remove(&mut self, id: Uuid) -> Result<AclBinding, String> {
        let binding = self
            .by_id
            .remove(&id)
            .ok_or_else(|| format!("no ACL with id {id}"))?;
        let pattern = &binding.pattern;
        let key = (pattern.resource_type, pattern.pattern_type);
        let Some(names) = self.by_pattern.get_mut(&key) else {
            return Ok(binding);
        };
        if let Some(entries) = names.get_mut(pattern.name.as_str()) {
            entries.remove(&id);
            if entries.is_empty() {
                names.remove(pattern.name.as_str());
                if names.is_empty() {
                    self.by_pattern.remove(&key);
                }
                if pattern.pattern_type == PatternType::Prefixed {
                    let lengths = self
                        .prefix_lengths
                        .entry(pattern.resource_type)
                        .or_default();
                    let len = pattern.name.len();
                    match lengths.get(&len).copied() {
                        Some(n) if n > 1 => {
                            lengths.insert(len, n - 1);
                        }
                        _ => {
                            lengths.remove(&len);
                        }
                    }
                }
            }
        }
        Ok(binding)
    }

    fn insert(&mut self, id: Uuid, binding: AclBinding) {
        let pattern = &binding.pattern;
        let entries = self
            .by_pattern
            .entry((pattern.resource_type, pattern.pattern_type))
            .or_default()
            .entry(pattern.name.clone())
            .or_default();
        if entries.is_empty() && binding.pattern.pattern_type == PatternType::Prefixed {
            *self
                .prefix_lengths
                .entry(binding.pattern.resource_type)
                .or_default()
                .entry(binding.pattern.name.len())
                .or_default() += 1;
        }
        entries.insert(id, binding.entry.clone());
        self.by_id.insert(id, binding);
    }

    /// The entries of every ACL whose pattern covers the resource: its literal name,
    /// the literal `*`, and PREFIXED patterns that begin the name.
    pub fn applying_to<'a>(
        &'a self,
        resource_type: ResourceType,
        name: &'a str,
    ) -> impl Iterator<Item = &'a AccessControlEntry> + 'a {
        let literal = self
            .by_pattern
            .get(&(resource_type, PatternType::Literal))
            .into_iter()
            .flat_map(move |names| {
                std::iter::once(name)
                    .chain((name != WILDCARD).then_some(WILDCARD))
                    .filter_map(move |n| names.get(n))
            });
        let prefixed = self
            .by_pattern
            .get(&(resource_type, PatternType::Prefixed))
            .zip(self.prefix_lengths.get(&resource_type))
            .into_iter()
            .flat_map(move |(names, lengths)| {
                lengths
                    .keys()
                    .filter(move |&&len| len <= name.len() && name.is_char_boundary(len))
                    .filter_map(move |&len| names.get(&name[..len]))
            });
        literal.chain(prefixed).flat_map(|entries| entries.values())
    }

    /// Every ACL on a resource type (for "may this principal do X on some topic").
    pub fn of_type(&self, resource_type: ResourceType) -> impl Iterator<Item = &AclBinding> {
        self.by_id
            .values()
            .filter(move |b| b.pattern.resource_type == resource_type)
    }

    /// The ACLs to create for a CreateAcls: each binding validated (any invalid one
    /// refuses the whole change, the broker having answered it already), bindings
    /// already present or repeated left out (creating an existing ACL succeeds and
    /// changes nothing, as in Kafka), each new one with a fresh id. The cluster holds
    /// at most `max_acls` ACLs: every broker keeps them all in memory.
    pub fn plan_create(
        &self,
        bindings: &[AclBinding],
        max_acls: usize,
        mut new_id: impl FnMut() -> Uuid,
    ) -> Result<Vec<(Uuid, AclBinding)>, InvalidAcl> {
        let mut planned: Vec<(Uuid, AclBinding)> = Vec::new();
        for b in bindings {
            b.validate()?;
            if self.contains(b) || planned.iter().any(|(_, p)| p == b) {
                continue;
            }
            let id = loop {
                let id = new_id();
                if !self.by_id.contains_key(&id) && planned.iter().all(|(p, _)| *p != id) {
                    break id;
                }
            };
            planned.push((id, b.clone()));
        }
        if self.len() + planned.len() > max_acls {
            return Err(InvalidAcl(format!(
                "{} new ACLs would exceed the cluster's limit of {max_acls} (it holds {})",
                planned.len(),
                self.len()
            )));
        }
        Ok(planned)
    }

    /// The ACLs each filter of a DeleteAcls removes (Kafka lists an ACL under every
    /// filter that matches it; it is removed once).
    pub fn plan_delete(
        &self,
        filters: &[AclBindingFilter],
    ) -> Result<Vec<Vec<(Uuid, AclBinding)>>, InvalidAcl> {
        filters
            .iter()
            .map(|f| {
                f.validate()?;
                Ok(self.matching(f).map(|(id, b)| (*id, b.clone())).collect())
            })
            .collect()
    }
}
