//! [`Graph`]: an undirected graph of nodes named by `usize`, and the
//! questions asked of a mesh's shape — is it connected, what are its
//! connected components, who is whose neighbour.
//!
//! One is built from routing tables: the nodes are the ones that count
//! (the live ones, or the members of one side of a partition), the edges
//! are pairs of nodes that list each other (or that either one lists, as
//! the caller decides). An edge with an end outside the nodes is left out,
//! so restricting a graph to some of its nodes is passing fewer nodes.
//!
//! The simulator's [`Topology`](super::Topology) counts its components with
//! it; `rs2p demo` and the integration tests ask it whether routing tables
//! connect their nodes.
//!
//! # Examples
//! ```
//! use rs2p::sim::graph::Graph;
//!
//! // 0 - 1 - 2, and 3 alone; the edge to 9 is dropped: 9 is not a node.
//! let g = Graph::new([0, 1, 2, 3], [(0, 1), (2, 1), (1, 0), (3, 9)]);
//! assert_eq!(g.edges().collect::<Vec<_>>(), [(0, 1), (1, 2)]);
//! assert!(!g.is_connected());
//! assert_eq!(g.components(), [vec![0, 1, 2], vec![3]]);
//!
//! // The same without node 3.
//! assert!(Graph::new(0..3, g.edges()).is_connected());
//! ```

/// An undirected graph without self-loops or parallel edges.
///
/// Nodes are any `usize` values (node indexes, usually), not necessarily
/// `0..n`. Everything it returns is in ascending node order, so results are
/// deterministic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Graph {
    /// The nodes, ascending, without repeats.
    nodes: Vec<usize>,
    /// For each node (by position in `nodes`), the positions of its
    /// neighbours, ascending, without repeats.
    adj: Vec<Vec<usize>>,
}

impl Graph {
    /// The graph on `nodes` (repeats are merged) with the undirected edges
    /// `edges`. `(a, b)` and `(b, a)` are the same edge, given once or
    /// twice; an edge `(a, a)`, or one with an end not among `nodes`, is
    /// left out.
    pub fn new(
        nodes: impl IntoIterator<Item = usize>,
        edges: impl IntoIterator<Item = (usize, usize)>,
    ) -> Graph {
        let mut nodes: Vec<usize> = nodes.into_iter().collect();
        nodes.sort_unstable();
        nodes.dedup();
        let mut adj = vec![Vec::new(); nodes.len()];
        for (a, b) in edges {
            if a == b {
                continue;
            }
            if let (Ok(i), Ok(j)) = (nodes.binary_search(&a), nodes.binary_search(&b)) {
                adj[i].push(j);
                adj[j].push(i);
            }
        }
        for neighbours in &mut adj {
            neighbours.sort_unstable();
            neighbours.dedup();
        }
        Graph { nodes, adj }
    }

    /// The number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the graph has no node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The nodes, ascending.
    pub fn nodes(&self) -> impl Iterator<Item = usize> + '_ {
        self.nodes.iter().copied()
    }

    /// The edges, each once as `(low, high)`, ascending.
    pub fn edges(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.adj
            .iter()
            .enumerate()
            .flat_map(move |(i, neighbours)| {
                neighbours
                    .iter()
                    .filter(move |&&j| j > i)
                    .map(move |&j| (self.nodes[i], self.nodes[j]))
            })
    }

    /// The number of edges.
    pub fn edge_count(&self) -> usize {
        self.adj.iter().map(Vec::len).sum::<usize>() / 2
    }

    /// The neighbours of `node`, ascending; none if it is not a node.
    pub fn neighbours(&self, node: usize) -> impl Iterator<Item = usize> + '_ {
        let positions = match self.nodes.binary_search(&node) {
            Ok(i) => self.adj[i].as_slice(),
            Err(_) => &[],
        };
        positions.iter().map(|&j| self.nodes[j])
    }

    /// Whether every node reaches every other. True for a graph with no
    /// node or one node.
    pub fn is_connected(&self) -> bool {
        self.is_empty() || self.reach(0, &mut vec![false; self.len()]).len() == self.len()
    }

    /// The connected components, each a list of nodes, ascending; the
    /// components are in the order of their smallest node. An isolated node
    /// is a component of its own; a graph with no node has none.
    pub fn components(&self) -> Vec<Vec<usize>> {
        let mut seen = vec![false; self.len()];
        let mut components = Vec::new();
        for start in 0..self.len() {
            if seen[start] {
                continue;
            }
            let mut component: Vec<usize> = self
                .reach(start, &mut seen)
                .into_iter()
                .map(|i| self.nodes[i])
                .collect();
            component.sort_unstable();
            components.push(component);
        }
        components
    }

    /// Breadth-first search from position `start`: the positions it
    /// reaches that `seen` did not mark yet (`start` included), marking
    /// them.
    fn reach(&self, start: usize, seen: &mut [bool]) -> Vec<usize> {
        seen[start] = true;
        let mut reached = vec![start];
        let mut next = 0;
        while let Some(&i) = reached.get(next) {
            next += 1;
            for &j in &self.adj[i] {
                if !seen[j] {
                    seen[j] = true;
                    reached.push(j);
                }
            }
        }
        reached
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(n: usize) -> Graph {
        Graph::new(0..n, (1..n).map(|i| (i - 1, i)))
    }

    fn cycle(n: usize) -> Graph {
        Graph::new(0..n, (0..n).map(|i| (i, (i + 1) % n)))
    }

    #[test]
    fn empty_graph() {
        let g = Graph::new([], []);
        assert_eq!(g, Graph::default());
        assert!(g.is_empty());
        assert_eq!(g.len(), 0);
        assert_eq!(g.edge_count(), 0);
        assert!(g.is_connected());
        assert!(g.components().is_empty());
        assert_eq!(g.neighbours(0).count(), 0);
    }

    #[test]
    fn single_node() {
        let g = Graph::new([7], [(7, 7), (7, 8)]);
        assert_eq!(g.len(), 1);
        assert_eq!(g.nodes().collect::<Vec<_>>(), [7]);
        assert_eq!(g.edge_count(), 0, "no self-loop, no edge to a non-node");
        assert!(g.is_connected());
        assert_eq!(g.components(), [vec![7]]);
    }

    #[test]
    fn disconnected() {
        let g = Graph::new([0, 1, 2, 3, 4], [(3, 1), (4, 0), (2, 4)]);
        assert!(!g.is_connected());
        assert_eq!(g.components(), [vec![0, 2, 4], vec![1, 3]]);
        // Two nodes, no edge.
        let g = Graph::new([5, 6], []);
        assert!(!g.is_connected());
        assert_eq!(g.components(), [vec![5], vec![6]]);
    }

    #[test]
    fn path_graph() {
        let g = path(5);
        assert!(g.is_connected());
        assert_eq!(g.components(), [vec![0, 1, 2, 3, 4]]);
        assert_eq!(g.edge_count(), 4);
        assert_eq!(g.neighbours(0).collect::<Vec<_>>(), [1]);
        assert_eq!(g.neighbours(2).collect::<Vec<_>>(), [1, 3]);
        // Without a middle edge it falls in two.
        let cut = Graph::new(g.nodes(), g.edges().filter(|&e| e != (1, 2)));
        assert_eq!(cut.components(), [vec![0, 1], vec![2, 3, 4]]);
        // Without a middle node, too.
        let cut = Graph::new(g.nodes().filter(|&n| n != 2), g.edges());
        assert_eq!(cut.components(), [vec![0, 1], vec![3, 4]]);
        assert_eq!(cut.edge_count(), 2);
    }

    #[test]
    fn cycle_graph() {
        let g = cycle(6);
        assert!(g.is_connected());
        assert_eq!(g.edge_count(), 6);
        assert_eq!(g.neighbours(0).collect::<Vec<_>>(), [1, 5]);
        // One edge less is a path: still connected.
        let open = Graph::new(g.nodes(), g.edges().filter(|&e| e != (0, 5)));
        assert!(open.is_connected());
        assert_eq!(open, path(6));
        // Two less is not.
        let cut = Graph::new(g.nodes(), g.edges().filter(|&e| e != (0, 5) && e != (2, 3)));
        assert_eq!(cut.components(), [vec![0, 1, 2], vec![3, 4, 5]]);
    }

    #[test]
    fn repeats_and_direction_do_not_matter() {
        let a = Graph::new([2, 0, 1, 2], [(0, 1), (1, 0), (1, 2), (0, 1)]);
        let b = Graph::new(0..3, [(2, 1), (1, 0)]);
        assert_eq!(a, b);
        assert_eq!(a.edges().collect::<Vec<_>>(), [(0, 1), (1, 2)]);
        assert_eq!(a.edge_count(), 2);
    }

    #[test]
    fn node_names_need_not_be_contiguous() {
        let g = Graph::new([10, 40, 20, 30], [(40, 10), (30, 20)]);
        assert_eq!(g.edges().collect::<Vec<_>>(), [(10, 40), (20, 30)]);
        assert_eq!(g.components(), [vec![10, 40], vec![20, 30]]);
        assert_eq!(g.neighbours(40).collect::<Vec<_>>(), [10]);
        assert_eq!(g.neighbours(15).count(), 0);
    }
}
