//! The final topology as a Graphviz graph, and rendering it to PNG with
//! Graphviz's `dot` program.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::{Demo, SHORT};

impl Demo {
    /// The final topology as a Graphviz graph: closed nodes and their old
    /// links dashed, the routed reply's link in blue.
    pub(super) fn dot_graph(&self) -> String {
        let t = &self.final_topology;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "// rs2p demo: {} live nodes, {} connections. Render: dot -Tpng -o mesh.png THIS_FILE",
            t.adj.len(),
            t.links().len()
        );
        let _ = writeln!(s, "graph mesh {{");
        let _ = writeln!(s, "  layout=circo;");
        let _ = writeln!(
            s,
            "  node [shape=circle, fontname=\"Helvetica\", fontsize=10];"
        );
        for (i, node) in self.nodes.iter().enumerate() {
            let style = if !node.alive {
                ", style=dashed, color=gray, fontcolor=gray"
            } else if node.extra {
                ", shape=doublecircle"
            } else {
                ""
            };
            let _ = writeln!(
                s,
                "  n{i} [label=\"{}\\n{}\"{style}];",
                node.name,
                node.socket.id().short(SHORT)
            );
        }
        let route = self
            .reply
            .as_ref()
            .map(|r| (r.replier.min(r.target), r.replier.max(r.target)));
        for (a, b) in t.links() {
            let style = if Some((a, b)) == route {
                " [color=blue, penwidth=2, label=\"route\"]"
            } else {
                ""
            };
            let _ = writeln!(s, "  n{a} -- n{b}{style};");
        }
        for (a, b) in &self.killed_links {
            let _ = writeln!(s, "  n{a} -- n{b} [style=dashed, color=gray];");
        }
        let _ = writeln!(s, "}}");
        s
    }
}

/// The path of `program` if it is an executable file on PATH.
pub(super) fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Renders DOT text to a PNG with Graphviz.
pub(super) fn render_png(dot: &str, path: &Path) -> Result<(), String> {
    use std::process::{Command, Stdio};
    let mut child = Command::new("dot")
        .arg("-Tpng")
        .arg("-o")
        .arg(path)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run Graphviz's `dot`: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(dot.as_bytes())
            .map_err(|e| format!("cannot feed `dot`: {e}"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("`dot` failed: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`dot` exited with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}
