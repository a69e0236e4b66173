//! `mesh_state`: the plain mesh (`Stack<()>`) under the shared driver.

use crate::driver::{mesh_command, run, Harness, Scenario};
use crate::Input;

/// The plain mesh: no layer, the mesh's own messages and commands.
pub struct Mesh;

impl Scenario for Mesh {
    type Layer = ();

    fn new(_: &mut Input) -> (Self, ()) {
        (Mesh, ())
    }

    fn command(h: &mut Harness<Self>, inp: &mut Input) {
        mesh_command(h, inp);
    }
}

/// What one `mesh_state` run reached (for tests of the harness itself).
#[derive(Debug, Default)]
pub struct Stats {
    pub delivered: usize,
    pub max_peers: usize,
}

/// Input layout: `[mode, config bytes ×5, events…]`; each event starts
/// with a byte choosing its kind (see `driver::run`).
pub fn mesh_state(data: &[u8]) {
    run_mesh_state(data);
}

/// [`mesh_state`], telling what the run reached.
pub fn run_mesh_state(data: &[u8]) -> Stats {
    let h = run::<Mesh>(data);
    Stats {
        delivered: h.delivered,
        max_peers: h.max_peers,
    }
}
