//! `power-cut`: the power goes out on one node, or on every node at once. Each node hit is
//! SIGKILLed, then its disk (the [`crate::lazyfs`] layer under its data directory) forgets every
//! write it had not fsynced and is mounted again; the node restarts on what remains when the
//! fault ends.
//!
//! The variant is drawn with the schedule: one node (a third of the draws are every node). A
//! cut of every node is the one fault here that leaves no majority running: the cluster is
//! unavailable until the nodes are back and have elected leaders, a window that property 15
//! (availability) reports with this fault and accepts within `--availability-bound`.

use rand::Rng;
use rand::rngs::StdRng;

use super::{Fault, Target};

/// One draw in this many cuts every node.
const ALL_ONE_IN: u32 = 3;

pub(crate) fn draw(rng: &mut StdRng, nodes: u64) -> Fault {
    if rng.random_range(0..ALL_ONE_IN) == 0 {
        Fault::PowerCut {
            all: true,
            nodes: (1..=nodes).collect(),
        }
    } else {
        Fault::PowerCut {
            all: false,
            nodes: vec![rng.random_range(1..=nodes)],
        }
    }
}

/// Kills the nodes, then cuts their disks. Returns what each disk lost, for the history.
pub(crate) async fn start(target: &Target, nodes: &[u64]) -> Result<String, String> {
    let disks = target
        .disks
        .clone()
        .ok_or_else(|| "no FUSE disks in this run".to_string())?;
    let mut errors = Vec::new();
    target.with_cluster(|c| {
        for &node in nodes {
            // A node that already exited has nothing left to kill; its disk is still cut.
            if c.is_running(node)
                && let Err(e) = c.kill(node)
            {
                errors.push(format!("kill -9 node {node}: {e}"));
            }
        }
    });
    let nodes = nodes.to_vec();
    let cuts = tokio::task::spawn_blocking(move || {
        nodes
            .iter()
            .map(|&n| disks.power_cut(n).map_err(|e| format!("node {n}: {e}")))
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| format!("power cut task failed: {e}"))?;
    let mut lost = Vec::new();
    for cut in cuts {
        match cut {
            Ok(c) => lost.push(format!(
                "node {} lost {} unsynced bytes in {} files",
                c.node, c.dropped.bytes, c.dropped.files
            )),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(lost.join("; "))
    } else {
        Err(errors.join("; "))
    }
}

pub(crate) fn heal(target: &Target, nodes: &[u64]) -> Result<(), String> {
    let mut errors = Vec::new();
    target.with_cluster(|c| {
        for &node in nodes {
            if let Err(e) = c.spawn(node) {
                errors.push(format!("restart node {node}: {e}"));
            }
        }
    });
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn both_variants_are_drawn() {
        let mut rng = StdRng::seed_from_u64(1);
        let faults: Vec<Fault> = (0..60).map(|_| draw(&mut rng, 5)).collect();
        let all = faults
            .iter()
            .filter(|f| matches!(f, Fault::PowerCut { all: true, .. }))
            .count();
        assert!(all > 5 && all < 40, "{all} of 60 cut every node");
        for f in &faults {
            match f {
                Fault::PowerCut { all: true, nodes } => assert_eq!(nodes, &vec![1, 2, 3, 4, 5]),
                Fault::PowerCut { all: false, nodes } => {
                    assert!(nodes.len() == 1 && (1..=5).contains(&nodes[0]))
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
