//! Planning one transaction: the difference between the objects in the
//! kernel and the objects wanted, in an order the kernel accepts (sets and
//! chains before the rules and elements that use them; elements removed
//! before the chains they point at).

use super::ruleset::{self, NodeConfig, Rendered};
use super::slots;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::net::IpAddr;

/// Everything Portico has put in its table (besides the base objects).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// Chains and their rules.
    pub chains: BTreeMap<String, Vec<String>>,
    /// Sets and their definitions.
    pub sets: BTreeMap<String, String>,
    /// Map elements.
    pub elements: BTreeMap<(String, String), String>,
    /// Hairpin set elements.
    pub hairpin: BTreeSet<IpAddr>,
    /// Endpoint-slot shard maps.
    pub shards: BTreeSet<u32>,
}

impl State {
    /// Merges per-Service renderings; on a clash of map keys (two Services
    /// claiming one external IP and port) the first in key order wins.
    pub fn from_rendered<'a>(rendered: impl IntoIterator<Item = &'a Rendered>) -> Self {
        let mut s = Self::default();
        for r in rendered {
            for (k, v) in &r.chains {
                s.chains.entry(k.clone()).or_insert_with(|| v.clone());
            }
            for (k, v) in &r.sets {
                s.sets.entry(k.clone()).or_insert_with(|| v.clone());
            }
            for (k, v) in &r.elements {
                s.elements.entry(k.clone()).or_insert_with(|| v.clone());
            }
            s.hairpin.extend(r.endpoint_ips.iter().copied());
            s.shards.extend(r.shards.iter().copied());
        }
        s
    }

    /// Number of rules (for metrics).
    pub fn rule_count(&self) -> usize {
        self.chains.values().map(Vec::len).sum()
    }
}

/// The statements that turn `old` into `new` (empty when nothing changes).
pub fn diff(cfg: &NodeConfig, old: &State, new: &State) -> String {
    let t = cfg.qualified_table();
    let mut out = String::new();
    // `add map` of an existing map is a no-op: shards shared with other
    // Services are never deleted here (a full sync drops unused ones).
    for shard in new.shards.difference(&old.shards) {
        let _ = writeln!(out, "add map {t} {} {{ {} }}", slots::map_name(*shard), ruleset::slot_map_definition(cfg.family, slots::shard_protocol(*shard)));
    }
    for (name, def) in &new.sets {
        match old.sets.get(name) {
            Some(d) if d == def => {}
            Some(_) => {
                let _ = writeln!(out, "delete set {t} {name}\nadd set {t} {name} {{ {def} }}");
            }
            None => {
                let _ = writeln!(out, "add set {t} {name} {{ {def} }}");
            }
        }
    }
    for name in new.chains.keys().filter(|n| !old.chains.contains_key(*n)) {
        let _ = writeln!(out, "add chain {t} {name}");
    }
    for (name, rules) in &new.chains {
        match old.chains.get(name) {
            Some(r) if r == rules => continue,
            Some(_) => {
                let _ = writeln!(out, "flush chain {t} {name}");
            }
            None => {}
        }
        for rule in rules {
            let _ = writeln!(out, "add rule {t} {name} {rule}");
        }
    }
    // Elements go in one statement per map: nft handles a large set literal far
    // faster than the same elements as separate commands.
    let mut deletes: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for ((map, key), value) in &old.elements {
        if new.elements.get(&(map.clone(), key.clone())) != Some(value) {
            deletes.entry(map.as_str()).or_default().push(key.as_str());
        }
    }
    for (map, keys) in deletes {
        let _ = writeln!(out, "delete element {t} {map} {{ {} }}", keys.join(", "));
    }
    let mut adds: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for ((map, key), value) in &new.elements {
        if old.elements.get(&(map.clone(), key.clone())) != Some(value) {
            adds.entry(map.as_str()).or_default().push(format!("{key} : {value}"));
        }
    }
    for (map, elems) in adds {
        let _ = writeln!(out, "add element {t} {map} {{ {} }}", elems.join(", "));
    }
    let gone: Vec<String> = old.hairpin.difference(&new.hairpin).map(|ip| format!("{ip} . {ip}")).collect();
    if !gone.is_empty() {
        let _ = writeln!(out, "delete element {t} hairpin {{ {} }}", gone.join(", "));
    }
    let added: Vec<String> = new.hairpin.difference(&old.hairpin).map(|ip| format!("{ip} . {ip}")).collect();
    if !added.is_empty() {
        let _ = writeln!(out, "add element {t} hairpin {{ {} }}", added.join(", "));
    }
    let dead: Vec<&String> = old.chains.keys().filter(|n| !new.chains.contains_key(*n)).collect();
    for name in &dead {
        let _ = writeln!(out, "flush chain {t} {name}");
    }
    for name in &dead {
        let _ = writeln!(out, "delete chain {t} {name}");
    }
    for name in old.sets.keys().filter(|n| !new.sets.contains_key(*n)) {
        let _ = writeln!(out, "delete set {t} {name}");
    }
    out
}

/// A full sync: the table recreated from scratch with everything in `new`, atomically.
pub fn full(cfg: &NodeConfig, new: &State) -> String {
    recreate(cfg, &ruleset::base(cfg), new)
}

/// A shard table (`nft::shards`) recreated from scratch with everything in
/// `new`: one part of a full sync's transaction.
pub fn full_shard(cfg: &NodeConfig, new: &State) -> String {
    recreate(cfg, &ruleset::shard_base(cfg), new)
}

/// The table emptied (created first if missing), given `base`, and filled with `new`.
fn recreate(cfg: &NodeConfig, base: &str, new: &State) -> String {
    let t = cfg.qualified_table();
    let mut out = format!("add table {t}\ndelete table {t}\n");
    out.push_str(base);
    out.push_str(&diff(cfg, &State::default(), new));
    out
}
