//! Service ports spread over several tables of one family.
//!
//! nf_tables validates a whole table at commit whenever a transaction adds a
//! rule or a jump/goto element: it walks every chain reachable from the
//! table's base chains. With every Service in one table that walk costs
//! ~60 ms at 30k Services (both NAT hooks reach every Service chain through
//! `service-ips`), so one new Service could not be live in less. The walk is
//! per table, so Service ports are spread over tables of at most
//! [`PORTS_PER_TABLE`] ports each: the main table (`portico`, with the hooks
//! every packet needs: NodePorts, the no-endpoint checks, masquerading) and
//! shard tables (`portico-shard-N`, [`ruleset::shard_base`]) that hold only a
//! `service-ips` map, the masquerade-mark chain and their Services' chains.
//!
//! The price is one more `service-ips` lookup per shard table on the first
//! packet of a connection (the NAT hooks stop at the first table that DNATs);
//! established packets never see the NAT hooks.
//!
//! Ports with a NodePort always live in the main table (the NodePort map and
//! its `fib` check are there). Placement is sticky between full syncs; a full
//! sync packs the ports afresh, in key order, leaving a quarter of every table
//! free so that new Services rarely need a new table.

use super::plan::{self, State};
use super::ruleset::{self, NodeConfig, Rendered};
use super::slots::Slots;
use crate::servicemap::ServicePort;
use std::collections::HashMap;

/// Service ports per table before a new shard table is opened.
pub const PORTS_PER_TABLE: usize = 2000;

/// The name of table `index` (0: the main table).
pub fn table_name(main: &str, index: usize) -> String {
    if index == 0 { main.to_owned() } else { format!("{main}-shard-{index}") }
}

/// The shard index a table name from [`table_name`] stands for (None: not a shard of `main`).
pub fn index_of(main: &str, name: &str) -> Option<usize> {
    let n: usize = name.strip_prefix(main)?.strip_prefix("-shard-")?.parse().ok()?;
    (n > 0 && table_name(main, n) == name).then_some(n)
}

/// The node settings of table `index` (the same but for the table name).
pub fn node_for(main: &NodeConfig, index: usize) -> NodeConfig {
    NodeConfig { table: table_name(&main.table, index), ..main.clone() }
}

/// Whether a port must live in the main table.
pub fn needs_main(sp: &ServicePort) -> bool {
    sp.node_port.is_some()
}

/// Maps whose elements live in the main table whatever table the Service is in.
fn main_only(map: &str) -> bool {
    map == "no-endpoint-services" || map == "no-endpoint-nodeports"
}

/// Splits one port's rendering into what goes into its own table and what
/// goes into the main table (no-endpoint elements, hairpin addresses).
pub fn split(r: &Rendered) -> (Rendered, Rendered) {
    let mut main = Rendered { endpoint_ips: r.endpoint_ips.clone(), ..Rendered::default() };
    let mut own = Rendered { chains: r.chains.clone(), sets: r.sets.clone(), shards: r.shards.clone(), ..Rendered::default() };
    for ((map, key), value) in &r.elements {
        let to = if main_only(map) { &mut main } else { &mut own };
        to.elements.insert((map.clone(), key.clone()), value.clone());
    }
    (own, main)
}

/// A rendering as planner state, without hairpin addresses (kept per node, not per port).
pub fn state_of(r: &Rendered) -> State {
    State { chains: r.chains.clone(), sets: r.sets.clone(), elements: r.elements.clone(), hairpin: Default::default(), shards: r.shards.clone() }
}

/// Which table each Service port lives in.
#[derive(Debug, Clone)]
pub struct Placement {
    capacity: usize,
    of: HashMap<String, usize>,
    counts: Vec<usize>,
}

impl Placement {
    /// An empty placement with only the main table.
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), of: HashMap::new(), counts: vec![0] }
    }

    /// A full sync's placement of `ports` (key, needs the main table), in the
    /// given order: as few tables as keep each at most three quarters full,
    /// filled evenly in contiguous runs.
    pub fn pack<'a>(capacity: usize, ports: impl IntoIterator<Item = (&'a str, bool)>) -> Self {
        let mut p = Self::new(capacity);
        let ports: Vec<(&str, bool)> = ports.into_iter().collect();
        let fill = (p.capacity * 3 / 4).max(1);
        let tables = ports.len().div_ceil(fill).max(1);
        let per_table = ports.len().div_ceil(tables).max(1);
        for (key, main) in &ports {
            if *main {
                p.assign(key, 0);
            }
        }
        let mut t = 0;
        for (key, _) in ports.iter().filter(|(_, main)| !main) {
            while p.counts.get(t).is_some_and(|c| *c >= per_table) {
                t += 1;
            }
            p.assign(key, t);
        }
        p
    }

    fn assign(&mut self, key: &str, t: usize) {
        if self.counts.len() <= t {
            self.counts.resize(t + 1, 0);
        }
        self.counts[t] += 1;
        self.of.insert(key.to_owned(), t);
    }

    /// The table for `key`: where it is (unless it now needs the main table),
    /// else the first with room, else a new one.
    pub fn place(&mut self, key: &str, main: bool) -> usize {
        if let Some(&t) = self.of.get(key) {
            if t == 0 || !main {
                return t;
            }
            self.remove(key);
        }
        let t = if main { 0 } else { self.counts.iter().position(|c| *c < self.capacity).unwrap_or(self.counts.len()) };
        self.assign(key, t);
        t
    }

    /// Forgets `key` (its table keeps existing, perhaps empty, until a full sync).
    pub fn remove(&mut self, key: &str) {
        if let Some(t) = self.of.remove(key) {
            self.counts[t] -= 1;
        }
    }

    /// The table `key` lives in.
    pub fn get(&self, key: &str) -> Option<usize> {
        self.of.get(key).copied()
    }

    /// Number of tables (the main one included).
    pub fn tables(&self) -> usize {
        self.counts.len()
    }

    /// Ports in table `t`.
    pub fn count(&self, t: usize) -> usize {
        self.counts.get(t).copied().unwrap_or(0)
    }
}

/// One family's Service ports as programmed: where each lives, the slots of
/// every table, and each port's rendering (for the next diff).
#[derive(Debug, Clone)]
pub struct Layout {
    /// Which table each port lives in.
    pub placement: Placement,
    /// The endpoint slots of each table (the main one first).
    pub slots: Vec<Slots>,
    /// Each port's objects as rendered for its table.
    pub rendered: HashMap<String, Rendered>,
}

/// A full sync's result: the layout and the state of every table.
pub struct Full {
    /// Where everything went.
    pub layout: Layout,
    /// The wanted state of each table (the main one first).
    pub states: Vec<State>,
}

impl Full {
    /// The transaction that recreates every table (stale shard tables are the caller's).
    pub fn script(&self, node: &NodeConfig) -> String {
        let mut script = plan::full(node, &self.states[0]);
        for (t, state) in self.states.iter().enumerate().skip(1) {
            script.push_str(&plan::full_shard(&node_for(node, t), state));
        }
        script
    }

    /// Chains and rules over all tables.
    pub fn counts(&self) -> (usize, usize) {
        (self.states.iter().map(|s| s.chains.len()).sum(), self.states.iter().map(State::rule_count).sum())
    }
}

impl Layout {
    /// An empty layout: only the main table.
    pub fn new(capacity: usize) -> Self {
        Self { placement: Placement::new(capacity), slots: vec![Slots::default()], rendered: HashMap::new() }
    }

    /// Places and renders `ports` afresh (sorted by key here, so the result is deterministic).
    pub fn full(node: &NodeConfig, capacity: usize, ports: &[&ServicePort]) -> Full {
        let mut all = ports.to_vec();
        all.sort_by(|a, b| a.key.cmp(&b.key));
        let placement = Placement::pack(capacity, all.iter().map(|p| (p.key.as_str(), needs_main(p))));
        let tables = placement.tables();
        let mut slots: Vec<Slots> = (0..tables).map(|_| Slots::default()).collect();
        let mut rendered = HashMap::new();
        for p in &all {
            let t = placement.get(&p.key).unwrap_or(0);
            rendered.insert(p.key.clone(), ruleset::render(p, &node_for(node, t), &mut slots[t]));
        }
        let layout = Layout { placement, slots, rendered };
        Full { states: layout.states(), layout }
    }

    /// The state of every table (the main one first) as this layout has it.
    pub fn states(&self) -> Vec<State> {
        let mut own: Vec<Vec<Rendered>> = vec![Vec::new(); self.placement.tables().max(self.slots.len())];
        let mut to_main = Vec::new();
        let mut keys: Vec<&String> = self.rendered.keys().collect();
        keys.sort();
        for k in keys {
            let (o, m) = split(&self.rendered[k]);
            own[self.placement.get(k).unwrap_or(0)].push(o);
            to_main.push(m);
        }
        own.iter().enumerate().map(|(t, o)| if t == 0 { State::from_rendered(o.iter().chain(&to_main)) } else { State::from_rendered(o) }).collect()
    }

    /// Moves port `key` to its new rendering (`None`: gone), appending the
    /// statements to `script` and any shard table this opens to `opened`
    /// (which must precede `script` in the transaction). Returns the old and
    /// new renderings; hairpin addresses are the caller's.
    pub fn change(&mut self, node: &NodeConfig, key: &str, new: Option<&ServicePort>, opened: &mut String, script: &mut String) -> (Rendered, Rendered) {
        let old_r = self.rendered.remove(key).unwrap_or_default();
        let was = self.placement.get(key);
        let (now, new_r) = match new {
            Some(p) => {
                let t = self.placement.place(key, needs_main(p));
                while self.slots.len() <= t {
                    opened.push_str(&ruleset::shard_base(&node_for(node, self.slots.len())));
                    self.slots.push(Slots::default());
                }
                if let Some(w) = was.filter(|w| *w != t) {
                    ruleset::release(key, &mut self.slots[w]);
                }
                (Some(t), ruleset::render(p, &node_for(node, t), &mut self.slots[t]))
            }
            None => {
                self.placement.remove(key);
                if let Some(w) = was {
                    ruleset::release(key, &mut self.slots[w]);
                }
                (was, Rendered::default())
            }
        };
        let ((old_own, old_main), (new_own, new_main)) = (split(&old_r), split(&new_r));
        let (os, ns) = (state_of(&old_own), state_of(&new_own));
        match (was, now) {
            (Some(w), Some(t)) if w != t => {
                script.push_str(&plan::diff(&node_for(node, w), &os, &State::default()));
                script.push_str(&plan::diff(&node_for(node, t), &State::default(), &ns));
            }
            (w, t) => script.push_str(&plan::diff(&node_for(node, t.or(w).unwrap_or(0)), &os, &ns)),
        }
        script.push_str(&plan::diff(node, &state_of(&old_main), &state_of(&new_main)));
        if new.is_some() {
            self.rendered.insert(key.to_owned(), new_r.clone());
        }
        (old_r, new_r)
    }

    /// Makes the slots freed by the last transaction reusable (call after it went in).
    pub fn settle(&mut self) {
        for s in &mut self.slots {
            s.settle();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("ns/svc-{i:05}/tcp/http")).collect()
    }

    #[test]
    fn a_small_cluster_stays_in_the_main_table() {
        let k = keys(10);
        let p = Placement::pack(PORTS_PER_TABLE, k.iter().map(|k| (k.as_str(), false)));
        assert_eq!(p.tables(), 1);
        assert!(k.iter().all(|k| p.get(k) == Some(0)));
    }

    #[test]
    fn a_full_sync_fills_tables_evenly_to_three_quarters() {
        let k = keys(30_000);
        let p = Placement::pack(2000, k.iter().map(|k| (k.as_str(), false)));
        assert_eq!(p.tables(), 20, "30k ports at 1500 per table");
        assert!((0..20).all(|t| p.count(t) == 1500));
        assert_eq!((p.get(&k[0]), p.get(&k[1499]), p.get(&k[1500]), p.get(&k[29_999])), (Some(0), Some(0), Some(1), Some(19)), "contiguous runs in key order");
    }

    #[test]
    fn node_ports_live_in_the_main_table() {
        let k = keys(9);
        let p = Placement::pack(4, k.iter().enumerate().map(|(i, k)| (k.as_str(), i % 3 == 0)));
        assert_eq!(p.tables(), 3, "9 ports at 3 per table");
        assert!([0, 3, 6].iter().all(|i| p.get(&k[*i]) == Some(0)));
        assert_eq!(p.count(0), 3, "the NodePorts fill the main table's share");
        assert_eq!(p.get(&k[1]), Some(1));
    }

    #[test]
    fn new_ports_take_the_first_table_with_room_and_stay_there() {
        let mut p = Placement::new(2);
        assert_eq!([p.place("a", false), p.place("b", false), p.place("c", false)], [0, 0, 1]);
        assert_eq!(p.place("a", false), 0, "sticky");
        p.remove("a");
        assert_eq!(p.place("d", false), 0, "a's room is reused");
        assert_eq!(p.place("e", false), 1);
        assert_eq!(p.place("f", false), 2, "a new table when all are full");
        assert_eq!(p.place("f", true), 0, "gaining a NodePort moves a port to the main table");
        assert_eq!(p.count(2), 0);
        assert_eq!(p.place("g", true), 0, "the main table takes NodePorts past its capacity");
        assert_eq!(p.count(0), 4);
    }

    #[test]
    fn shard_table_names_round_trip() {
        assert_eq!(table_name("portico", 0), "portico");
        assert_eq!(table_name("portico", 7), "portico-shard-7");
        assert_eq!(index_of("portico", "portico-shard-7"), Some(7));
        assert_eq!(index_of("portico", "portico"), None);
        assert_eq!(index_of("portico", "portico-shard-07"), None);
        assert_eq!(index_of("portico", "portico-shard-0"), None);
        assert_eq!(index_of("portico", "other-shard-1"), None);
    }
}
