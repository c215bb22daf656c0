//! What a notification says: the keys a change of the served flag set added, updated (before
//! and after) and deleted, with the new etag, the fleet version where there is one, and when.
//!
//! Two pending changes can be merged into one (a full queue does this instead of dropping
//! either): per key, the merged change goes from the first one's "before" to the second one's
//! "after", and a key that ends where it started is no change at all.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::{Map, Value, json};

use crate::snapshot::Snapshot;

/// One change (or several merged), ready to render for any notifier.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ChangeSet {
    /// key → (definition before, definition after); `None` where the set did not have it.
    pub flags: BTreeMap<String, (Option<Value>, Option<Value>)>,
    pub previous_etag: String,
    pub etag: String,
    pub version: Option<u64>,
    pub time: SystemTime,
    /// How many changes of the served set this one stands for (more than 1 once merged).
    pub changes: u64,
}

impl ChangeSet {
    /// The difference between two served sets.
    pub(crate) fn between(prev: &Snapshot, next: &Snapshot, version: Option<u64>) -> ChangeSet {
        let json = |e: Option<&crate::snapshot::Entry>| {
            e.map(|e| serde_json::from_str(e.def_json()).unwrap_or(Value::Null))
        };
        let flags = crate::snapshot::differences(prev, next)
            .into_iter()
            .map(|(key, before, after)| (key.to_owned(), (json(before), json(after))))
            .collect();
        ChangeSet {
            flags,
            previous_etag: prev.etag.clone(),
            etag: next.etag.clone(),
            version,
            time: SystemTime::now(),
            changes: 1,
        }
    }

    /// `self` followed by `later`, as one change.
    pub(crate) fn merge(self, later: ChangeSet) -> ChangeSet {
        let mut flags = self.flags;
        for (key, (before, after)) in later.flags {
            let start = match flags.remove(&key) {
                Some((first_before, _)) => first_before,
                None => before,
            };
            if start != after {
                flags.insert(key, (start, after));
            }
        }
        ChangeSet {
            flags,
            previous_etag: self.previous_etag,
            etag: later.etag,
            version: later.version.or(self.version),
            time: later.time,
            changes: self.changes + later.changes,
        }
    }

    pub(crate) fn added(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.flags.iter().filter_map(|(k, (b, a))| match (b, a) {
            (None, Some(a)) => Some((k.as_str(), a)),
            _ => None,
        })
    }

    pub(crate) fn updated(&self) -> impl Iterator<Item = (&str, &Value, &Value)> {
        self.flags.iter().filter_map(|(k, (b, a))| match (b, a) {
            (Some(b), Some(a)) => Some((k.as_str(), b, a)),
            _ => None,
        })
    }

    pub(crate) fn deleted(&self) -> impl Iterator<Item = &str> {
        self.flags
            .iter()
            .filter_map(|(k, (_, a))| a.is_none().then_some(k.as_str()))
    }

    /// The webhook body.
    pub(crate) fn to_json(&self) -> Value {
        let added: Map<String, Value> = self
            .added()
            .map(|(k, a)| (k.to_owned(), a.clone()))
            .collect();
        let updated: Map<String, Value> = self
            .updated()
            .map(|(k, b, a)| (k.to_owned(), json!({"before": b, "after": a})))
            .collect();
        let deleted: Vec<&str> = self.deleted().collect();
        json!({
            "event": "flagsChanged",
            "etag": self.etag,
            "previousEtag": self.previous_etag,
            "version": self.version,
            "time": crate::shared::rfc3339(self.time),
            "changes": self.changes,
            "added": added,
            "updated": updated,
            "deleted": deleted,
        })
    }

    /// A Slack message: what changed, in words, cut past `limit` characters with a count of
    /// what was left out.
    pub(crate) fn to_slack(&self, limit: usize) -> Value {
        let mut text = format!(
            "flagrelay: the flag set changed (etag `{}`{})",
            self.etag,
            self.version
                .map(|v| format!(", version {v}"))
                .unwrap_or_default()
        );
        let lines = self
            .added()
            .map(|(k, _)| format!("• added `{k}`"))
            .chain(self.updated().map(|(k, _, _)| format!("• changed `{k}`")))
            .chain(self.deleted().map(|k| format!("• removed `{k}`")));
        let mut left = 0usize;
        for line in lines {
            if left > 0 || text.len() + line.len() + 1 > limit {
                left += 1;
                continue;
            }
            text.push('\n');
            text.push_str(&line);
        }
        if left > 0 {
            text.push_str(&format!("\n… and {left} more"));
        }
        json!({ "text": text })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_added_updated_with_before_and_deleted() {
        let a = crate::snapshot::of_yaml("a: {rollout: 1}\nb: {rollout: 1}\nc: {rollout: 1}\n");
        let b = crate::snapshot::of_yaml("b: {rollout: 2}\nc: {rollout: 1}\nd: {enabled: true}\n");
        let c = ChangeSet::between(&a, &b, Some(7));
        let v = c.to_json();
        assert_eq!(v["added"]["d"]["enabled"], true);
        assert_eq!(v["updated"]["b"]["before"]["rollout"], 1);
        assert_eq!(v["updated"]["b"]["after"]["rollout"], 2);
        assert!(v["updated"].get("c").is_none());
        assert_eq!(v["deleted"], json!(["a"]));
        assert_eq!(
            (v["etag"].as_str(), v["version"].as_u64()),
            (Some(b.etag.as_str()), Some(7))
        );
        assert_eq!(v["previousEtag"], a.etag.as_str());
    }

    #[test]
    fn merging_spans_both_and_drops_what_came_back() {
        let a = crate::snapshot::of_yaml("x: {rollout: 1}\ny: {rollout: 1}\n");
        let b = crate::snapshot::of_yaml("x: {rollout: 2}\nz: {enabled: true}\n");
        let c = crate::snapshot::of_yaml("x: {rollout: 1}\ny: {rollout: 5}\nz: {enabled: true}\n");
        let merged = ChangeSet::between(&a, &b, Some(1)).merge(ChangeSet::between(&b, &c, Some(2)));
        // x went 1 → 2 → 1: no change. y: 1 → gone → 5: updated. z: added.
        assert_eq!(merged, {
            let mut direct = ChangeSet::between(&a, &c, Some(2));
            direct.time = merged.time;
            direct.changes = 2;
            direct
        });
        assert_eq!(merged.added().map(|(k, _)| k).collect::<Vec<_>>(), ["z"]);
        assert_eq!(
            merged.updated().map(|(k, _, _)| k).collect::<Vec<_>>(),
            ["y"]
        );
        assert_eq!(merged.previous_etag, a.etag);
    }

    #[test]
    fn slack_text_is_cut_with_a_count() {
        let a = crate::snapshot::of_yaml("{}");
        let many: String = (0..200)
            .map(|i| format!("flag-{i:03}: {{enabled: true}}\n"))
            .collect();
        let b = crate::snapshot::of_yaml(&many);
        let v = ChangeSet::between(&a, &b, None).to_slack(500);
        let text = v["text"].as_str().unwrap();
        assert!(text.len() < 560, "{}", text.len());
        assert!(text.contains("• added `flag-000`"));
        assert!(text.ends_with("more"), "{text}");
        let shown = text.matches("• added").count();
        assert!(text.contains(&format!("… and {} more", 200 - shown)));
    }
}
