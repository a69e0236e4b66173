//! The steps of the demo, in order: start the nodes, let them discover each
//! other, broadcast, send a routed reply, kill a node and watch the mesh
//! heal.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rs2p::{packets, MessageKind};

use super::nodes::Received;
use super::summary::ms;
use super::{Demo, DELIVERY_TIMEOUT, FORM_TIMEOUT};

/// What the routed-reply step saw.
pub(super) struct ReplyReport {
    pub(super) replier: usize,
    pub(super) target: usize,
    /// The replier was added for this step (every pair was connected).
    pub(super) extra_node: bool,
    pub(super) took: Option<Duration>,
    pub(super) dials: (u64, u64),
}

/// What the kill step saw.
pub(super) struct KillReport {
    pub(super) victim: usize,
    pub(super) links_lost: usize,
    pub(super) dropped_in: Option<Duration>,
    pub(super) healed_in: Option<Duration>,
    pub(super) new_links: usize,
    pub(super) survivors: usize,
}

impl Demo {
    /// Step 1: each node dials one earlier node, in a binary tree.
    pub(super) async fn start(&mut self, n: usize) -> Result<(), String> {
        self.progress.step(&format!("starting {n} nodes"));
        self.started = Instant::now();
        for i in 0..n {
            self.add_node(format!("n{i}"), 4).await?;
            if i > 0 {
                self.link(i, (i - 1) / 2).await?;
                self.seed_links += 1;
            }
            self.progress
                .update(&format!("starting {n} nodes: {}/{n} up", i + 1));
        }
        Ok(())
    }

    /// Step 2: peer lists fill in the mesh; wait until it settles.
    pub(super) async fn discover(&mut self) {
        self.progress.step("discovering peers through peer lists");
        let settling = self.wait_settled(None).await;
        let topology = settling.topology;
        let took = settling.last_change.saturating_duration_since(self.started);
        if settling.settled {
            let links = topology.links().len();
            self.check(
                "the mesh formed",
                true,
                format!(
                    "{} nodes, {links} connections; every node reaches every other",
                    self.nodes.len()
                ),
            );
        } else {
            self.fail(
                "the mesh formed",
                format!(
                    "not settled within {FORM_TIMEOUT:?} (symmetric: {}, connected: {})",
                    topology.symmetric(),
                    topology.connected()
                ),
            );
        }
        self.formed = Some((took, topology));
    }

    /// Step 3: broadcasts from different nodes.
    pub(super) async fn broadcast_round(&mut self, count: usize) -> Result<(), String> {
        self.progress
            .step(&format!("broadcasting {count} messages"));
        let n = self.nodes.len();
        let mut sent = Vec::new();
        for k in 0..count {
            let from = k * n / count;
            let text = format!("hello from {}", self.nodes[from].name);
            let b = self
                .broadcast(from, format!("#{}", k + 1), packets![text, k as i64])
                .await?;
            sent.push(b);
        }
        self.await_broadcasts(&sent).await;
        Ok(())
    }

    /// Step 4: a reply to a node the replier is not connected to.
    pub(super) async fn routed_reply(&mut self, n: usize) -> Result<(), String> {
        self.progress.step("routed reply");
        let topology = self.topology().await;
        let alive = self.alive();
        let pair = alive.iter().rev().find_map(|&a| {
            alive
                .iter()
                .find(|&&b| b != a && !topology.linked(a, b))
                .map(|&b| (a, b))
        });
        let (replier, target, extra_node) = match pair {
            Some((a, b)) => (a, b, false),
            None => {
                // Every node is connected to every other: add one that
                // dials only n0 and never fills up from peer lists.
                let x = self.add_node(format!("n{n}"), 0).await?;
                self.nodes[x].extra = true;
                self.link(x, 0).await?;
                let settling = self.wait_settled(None).await;
                if !settling.settled {
                    self.fail(
                        "the extra node joined",
                        format!(
                            "the mesh did not settle; its peers: {:?}",
                            settling.topology.adj.get(&x)
                        ),
                    );
                }
                (x, n - 1, true)
            }
        };
        let (r_name, t_name) = (
            self.nodes[replier].name.clone(),
            self.nodes[target].name.clone(),
        );
        let before = self.topology().await;
        if before.linked(replier, target) {
            self.fail(
                format!("{r_name} was not connected to {t_name} before replying"),
                "they are connected: the reply would not need a route",
            );
        }
        let dials_before = self.dials_started(replier).await;

        // The target asks; the replier answers the message it got.
        let ask = self
            .broadcast(target, "ask".into(), packets!["who is there?"])
            .await?;
        let deadline = Instant::now() + DELIVERY_TIMEOUT;
        let asked = loop {
            if let Some(m) = self.received(replier, self.broadcasts[ask].id) {
                break Some(m);
            }
            if Instant::now() >= deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let Some(asked) = asked else {
            self.fail(
                format!("{r_name} got {t_name}'s question"),
                format!("nothing within {DELIVERY_TIMEOUT:?}"),
            );
            self.await_broadcasts(&[ask]).await;
            return Ok(());
        };
        let sent = Instant::now();
        let answer = format!("{r_name} answers {t_name} through a route");
        asked
            .reply(packets![answer.as_str()])
            .map_err(|e| format!("{r_name} cannot reply: {e}"))?;
        let replier_id = self.nodes[replier].socket.id().clone();
        let is_reply = |r: &Received| {
            r.node == target
                && r.sender == replier_id
                && r.message.packets().first().and_then(|p| p.as_str()) == Some(answer.as_str())
        };
        let deadline = Instant::now() + DELIVERY_TIMEOUT;
        let took = loop {
            let at = self.find(|r| is_reply(r)).map(|r| r.at);
            if let Some(at) = at {
                break Some(at.saturating_duration_since(sent));
            }
            if Instant::now() >= deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        self.await_broadcasts(&[ask]).await;
        let replies: Vec<MessageKind> = {
            let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
            log.iter().filter(|r| is_reply(r)).map(|r| r.kind).collect()
        };
        let dials_after = self.dials_started(replier).await;
        let after = self.topology().await;
        self.check(
            format!("the reply from {r_name} reached {t_name} as a whisper, exactly once"),
            replies == [MessageKind::Whisper],
            match took {
                Some(t) => format!("{} in {}", describe_kinds(&replies), ms(t)),
                None => format!("nothing within {DELIVERY_TIMEOUT:?}"),
            },
        );
        self.check(
            "the reply went through a route request",
            !before.linked(replier, target)
                && dials_after > dials_before
                && after.dialled.contains(&(replier, target)),
            format!(
                "{r_name} was not connected to {t_name}; a peer answered the route request \
                 and {r_name} dialled {t_name} (dials {dials_before} -> {dials_after})"
            ),
        );
        self.reply = Some(ReplyReport {
            replier,
            target,
            extra_node,
            took,
            dials: (dials_before, dials_after),
        });
        Ok(())
    }

    /// Step 5: close the best-connected node; survivors heal.
    pub(super) async fn kill_and_heal(&mut self) -> Result<(), String> {
        self.progress.step("killing a node");
        let before = self.topology().await;
        let (replier, target) = self
            .reply
            .as_ref()
            .map_or((usize::MAX, usize::MAX), |r| (r.replier, r.target));
        let degree = |i: &usize| before.adj.get(i).map_or(0, BTreeSet::len);
        let alive = self.alive();
        let victim = alive
            .iter()
            .copied()
            .filter(|&i| i != 0 && i != replier && i != target && !self.nodes[i].extra)
            .max_by_key(|i| (degree(i), std::cmp::Reverse(*i)))
            .or_else(|| alive.iter().copied().filter(|&i| i != 0).max_by_key(degree));
        let Some(victim) = victim else {
            return Err("no node to kill".into());
        };
        let v_name = self.nodes[victim].name.clone();
        self.killed_links = before
            .links()
            .into_iter()
            .filter(|&(a, b)| a == victim || b == victim)
            .collect();
        let survivors_links_before = before.links().len() - self.killed_links.len();

        let killed_at = Instant::now();
        if tokio::time::timeout(Duration::from_secs(5), self.nodes[victim].socket.close())
            .await
            .is_err()
        {
            self.fail(format!("{v_name} closed cleanly"), "close took over 5 s");
        }
        self.nodes[victim].alive = false;

        let settling = self.wait_settled(Some(victim)).await;
        let dropped_in = settling
            .gone_at
            .map(|at| at.saturating_duration_since(killed_at));
        let healed_in = settling
            .settled
            .then(|| settling.last_change.saturating_duration_since(killed_at));
        let after = settling.topology;
        let survivors = self.alive().len();
        self.check(
            format!("the survivors dropped {v_name} and the mesh healed"),
            dropped_in.is_some() && healed_in.is_some(),
            format!(
                "{survivors} nodes, {} connections; connected: {}",
                after.links().len(),
                after.connected()
            ),
        );
        self.kill = Some(KillReport {
            victim,
            links_lost: self.killed_links.len(),
            dropped_in,
            healed_in,
            new_links: after.links().len().saturating_sub(survivors_links_before),
            survivors,
        });

        // A broadcast after the kill, from a former neighbour if any.
        let from = self
            .killed_links
            .iter()
            .map(|&(a, b)| if a == victim { b } else { a })
            .find(|&i| self.nodes[i].alive)
            .unwrap_or(0);
        self.progress.update("broadcasting after the kill");
        let b = self
            .broadcast(from, "after".into(), packets![format!("{v_name} is gone")])
            .await?;
        self.await_broadcasts(&[b]).await;
        Ok(())
    }
}

/// What the target got of the reply, in words.
fn describe_kinds(kinds: &[MessageKind]) -> String {
    match kinds {
        [] => "no reply".into(),
        [MessageKind::Whisper] => "a whisper".into(),
        [MessageKind::Broadcast] => "a broadcast (expected a whisper)".into(),
        more => format!("{} copies", more.len()),
    }
}
