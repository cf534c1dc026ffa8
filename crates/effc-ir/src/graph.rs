use std::collections::{BTreeMap, HashSet};

use petgraph::Direction;
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;

use crate::{DType, Error, Op, Result, Tensor};

pub type NodeId = NodeIndex<u32>;

/// One output of one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueRef {
    pub node: NodeId,
    pub port: usize,
}

impl ValueRef {
    pub fn new(node: NodeId, port: usize) -> Self {
        ValueRef { node, port }
    }
}

/// Name and static type of a value. The name is the ONNX tensor name, kept so that
/// intermediate results can be compared with a reference by name.
#[derive(Clone, Debug, PartialEq)]
pub struct ValueInfo {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
}

impl ValueInfo {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

#[derive(Clone, Debug)]
pub struct Node {
    /// The ONNX node name (or a generated one), for error messages and dumps.
    pub name: String,
    pub op: Op,
    pub outputs: Vec<ValueInfo>,
}

/// An edge carries output `from_port` of its source into input `to_port` of its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    pub from_port: usize,
    pub to_port: usize,
}

/// A model as a dataflow graph of typed ops with static shapes.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    g: StableDiGraph<Node, Edge>,
    /// The `Op::Input` nodes, in the model's input order.
    pub inputs: Vec<NodeId>,
    /// The model's outputs: ONNX name and the value that is returned under it.
    pub outputs: Vec<(String, ValueRef)>,
}

impl Graph {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a node fed by `inputs` (an absent optional input is `None`).
    pub fn add_node(
        &mut self,
        name: impl Into<String>,
        op: Op,
        inputs: &[Option<ValueRef>],
        outputs: Vec<ValueInfo>,
    ) -> NodeId {
        let id = self.g.add_node(Node { name: name.into(), op, outputs });
        for (to_port, input) in inputs.iter().enumerate() {
            if let Some(v) = input {
                self.g.add_edge(v.node, id, Edge { from_port: v.port, to_port });
            }
        }
        id
    }

    /// Adds a constant node and returns its value.
    pub fn add_const(&mut self, name: impl Into<String>, t: Tensor) -> ValueRef {
        let name = name.into();
        let info = ValueInfo { name: name.clone(), dtype: t.dtype(), shape: t.shape().to_vec() };
        ValueRef::new(self.add_node(name, Op::Const(t), &[], vec![info]), 0)
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.g[id]
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.g[id]
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.g.contains_node(id)
    }

    pub fn node_count(&self) -> usize {
        self.g.node_count()
    }

    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.g.node_indices()
    }

    pub fn value(&self, v: ValueRef) -> &ValueInfo {
        &self.g[v.node].outputs[v.port]
    }

    pub fn value_mut(&mut self, v: ValueRef) -> &mut ValueInfo {
        &mut self.g[v.node].outputs[v.port]
    }

    /// The constant behind `v`, if its producer is a `Const` node.
    pub fn const_value(&self, v: ValueRef) -> Option<&Tensor> {
        match &self.g[v.node].op {
            Op::Const(t) => Some(t),
            _ => None,
        }
    }

    /// Inputs of a node by port; absent optional inputs are `None`.
    pub fn inputs(&self, id: NodeId) -> Vec<Option<ValueRef>> {
        let mut ins: Vec<Option<ValueRef>> = Vec::new();
        for e in self.g.edges_directed(id, Direction::Incoming) {
            let w = e.weight();
            if ins.len() <= w.to_port {
                ins.resize(w.to_port + 1, None);
            }
            ins[w.to_port] = Some(ValueRef::new(e.source(), w.from_port));
        }
        ins
    }

    /// Input `port` of a node.
    pub fn input(&self, id: NodeId, port: usize) -> Option<ValueRef> {
        self.g
            .edges_directed(id, Direction::Incoming)
            .find(|e| e.weight().to_port == port)
            .map(|e| ValueRef::new(e.source(), e.weight().from_port))
    }

    /// Consumers of a value as (node, input port).
    pub fn users(&self, v: ValueRef) -> Vec<(NodeId, usize)> {
        self.g
            .edges_directed(v.node, Direction::Outgoing)
            .filter(|e| e.weight().from_port == v.port)
            .map(|e| (e.target(), e.weight().to_port))
            .collect()
    }

    /// Whether `v` is one of the model outputs.
    pub fn is_output(&self, v: ValueRef) -> bool {
        self.outputs.iter().any(|(_, o)| *o == v)
    }

    /// Points every consumer of `old` (including model outputs) at `new` instead.
    pub fn replace_uses(&mut self, old: ValueRef, new: ValueRef) {
        let edges: Vec<_> = self
            .g
            .edges_directed(old.node, Direction::Outgoing)
            .filter(|e| e.weight().from_port == old.port)
            .map(|e| (e.id(), e.target(), e.weight().to_port))
            .collect();
        for (edge, target, to_port) in edges {
            self.g.remove_edge(edge);
            self.g.add_edge(new.node, target, Edge { from_port: new.port, to_port });
        }
        for (_, o) in &mut self.outputs {
            if *o == old {
                *o = new;
            }
        }
    }

    /// Rewires input `port` of `node` to `v` (or disconnects it when `None`).
    pub fn set_input(&mut self, node: NodeId, port: usize, v: Option<ValueRef>) {
        let old: Vec<_> = self
            .g
            .edges_directed(node, Direction::Incoming)
            .filter(|e| e.weight().to_port == port)
            .map(|e| e.id())
            .collect();
        for e in old {
            self.g.remove_edge(e);
        }
        if let Some(v) = v {
            self.g.add_edge(v.node, node, Edge { from_port: v.port, to_port: port });
        }
    }

    pub fn remove_node(&mut self, id: NodeId) -> Option<Node> {
        self.inputs.retain(|&i| i != id);
        self.g.remove_node(id)
    }

    /// Nodes in dependency order; a cycle is an error.
    pub fn topo_order(&self) -> Result<Vec<NodeId>> {
        petgraph::algo::toposort(&self.g, None)
            .map_err(|c| Error::invalid(format!("the graph has a cycle through node '{}'", self.g[c.node_id()].name)))
    }

    /// Removes every node that no model output depends on. Returns how many were removed.
    pub fn prune_dead(&mut self) -> usize {
        let mut live: HashSet<NodeId> = HashSet::new();
        let mut stack: Vec<NodeId> = self.outputs.iter().map(|(_, v)| v.node).collect();
        stack.extend(self.inputs.iter().copied());
        while let Some(n) = stack.pop() {
            if live.insert(n) {
                stack.extend(self.g.neighbors_directed(n, Direction::Incoming));
            }
        }
        let dead: Vec<NodeId> = self.g.node_indices().filter(|n| !live.contains(n)).collect();
        for &n in &dead {
            self.g.remove_node(n);
        }
        dead.len()
    }

    /// How many nodes of each op there are, leaving out inputs and constants.
    pub fn op_histogram(&self) -> BTreeMap<String, usize> {
        let mut h = BTreeMap::new();
        for n in self.g.node_weights() {
            if !matches!(n.op, Op::Input { .. } | Op::Const(_)) {
                *h.entry(n.op.name().to_string()).or_insert(0) += 1;
            }
        }
        h
    }

    /// Graphviz text, rendered by petgraph: one box per op (constants hidden), edges
    /// labelled with the dtype and shape they carry, model outputs drawn bold.
    pub fn to_dot(&self) -> String {
        use petgraph::dot::{Config, Dot};
        use petgraph::visit::NodeFiltered;
        let shown = NodeFiltered::from_fn(&self.g, |id| !matches!(self.g[id].op, Op::Const(_)));
        let edge_attrs = |_, e: petgraph::stable_graph::EdgeReference<'_, Edge>| {
            let v = &self.g[e.source()].outputs[e.weight().from_port];
            format!("label=\"{}{:?}\"", v.dtype, v.shape)
        };
        let node_attrs = |_, (id, n): (NodeId, &Node)| {
            let out = self.outputs.iter().any(|(_, v)| v.node == id);
            format!(
                "shape=box, label=\"{}\\n{}\"{}",
                n.op.name(),
                escape(&n.name),
                if out { ", style=bold" } else { "" }
            )
        };
        let dot = Dot::with_attr_getters(&shown, &[Config::NodeNoLabel, Config::EdgeNoLabel], &edge_attrs, &node_attrs);
        format!("{dot:?}")
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}
