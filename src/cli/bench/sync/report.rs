//! The sync benchmark's report: ratios, verdicts, Markdown and JSON.

use super::*;

fn human_secs(s: f64) -> String {
    if s >= 1.0 {
        format!("{s:.2} s")
    } else {
        format!("{:.1} ms", s * 1e3)
    }
}

fn verdict(ratio: f64) -> &'static str {
    if ratio >= 100.0 {
        "**met**"
    } else {
        "**not met**"
    }
}

impl SyncReport {
    /// rs2p's figure over py2p's: sets/s ratio on the line, time ratio
    /// (py2p's over rs2p's) on the catch-up.
    /// The catch-up is compared with py2p with its framing bugs patched:
    /// as shipped, py2p does not finish it.
    pub fn ratios(&self) -> (Option<f64>, Option<f64>) {
        let find = |v: &[SyncMeasured], system: &str| {
            v.iter()
                .find(|m| m.system == system && m.complete())
                .cloned()
        };
        const RS2P: &str = "rs2p, one process";
        let line = find(&self.line, RS2P)
            .zip(find(&self.line, PY2P))
            .map(|(rs, py)| rs.rate().0 / py.rate().0.max(1e-9));
        let catch_up = find(&self.catch_up, RS2P)
            .zip(find(&self.catch_up, PY2P_PATCHED))
            .map(|(rs, py)| py.seconds().0 / rs.seconds().0.max(1e-9));
        (line, catch_up)
    }

    /// The report as Markdown tables.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let (line_ratio, catch_up_ratio) = self.ratios();
        s.push_str(&format!(
            "\n### Sync: sets propagated through a 4-node line\n\n\
             Node 0 sets distinct keys ({} B values); timed until node 3 holds \
             every key. py2p: at most {} keys in flight.\n\n\
             | system | keys | sets/s (median) | min – max | node 0's set loop | runs |\n\
             |---|---:|---:|---:|---:|---:|\n",
            self.value_len, self.py2p_window
        ));
        for m in &self.line {
            let (med, min, max) = m.rate();
            let set_loop = median(
                &m.runs
                    .iter()
                    .filter_map(|r| r.set_loop)
                    .map(|d| d.as_secs_f64())
                    .collect::<Vec<_>>(),
            );
            s.push_str(&format!(
                "| {} | {} | {} | {} – {} | {} | {} |\n",
                m.system,
                m.runs[0].ops,
                human_rate(med),
                human_rate(min),
                human_rate(max),
                human_secs(set_loop),
                m.runs.len()
            ));
        }
        if let Some(r) = line_ratio {
            s.push_str(&format!(
                "\nrs2p / py2p: **{r:.0}×** (target ≥ 100×: {})\n",
                verdict(r)
            ));
        }
        s.push_str(&format!(
            "\n### Sync: catch-up of a new node\n\n\
             A node holds the keys ({} B values); a new node dials it; timed from \
             the connect call until the new node holds every key.\n\n\
             | system | keys | time (median) | min – max | keys/s | runs |\n\
             |---|---:|---:|---:|---:|---:|\n",
            self.value_len
        ));
        for m in &self.catch_up {
            let (med, min, max) = m.seconds();
            if m.complete() {
                s.push_str(&format!(
                    "| {} | {} | {} | {} – {} | {} | {} |\n",
                    m.system,
                    m.runs[0].ops,
                    human_secs(med),
                    human_secs(min),
                    human_secs(max),
                    human_rate(m.rate().0),
                    m.runs.len()
                ));
            } else {
                let held: Vec<String> = m.runs.iter().map(|r| r.held.to_string()).collect();
                s.push_str(&format!(
                    "| {} | {} | never: {} of {} keys arrived (the last after {}), then none | | | {} |\n",
                    m.system,
                    m.runs[0].ops,
                    held.join(", "),
                    m.runs[0].ops,
                    human_secs(med),
                    m.runs.len()
                ));
            }
        }
        if let Some(r) = catch_up_ratio {
            s.push_str(&format!(
                "\npy2p's time (framing bugs patched) / rs2p's: **{r:.0}×** (target ≥ 100×: {})\n",
                verdict(r)
            ));
        }
        for f in &self.failures {
            s.push_str(&format!("\nFAILED: {f}\n"));
        }
        s
    }

    /// The report as JSON.
    pub fn to_json(&self) -> Value {
        let (line_ratio, catch_up_ratio) = self.ratios();
        json!({
            "value_len": self.value_len,
            "py2p_window": self.py2p_window,
            "line": self.line.iter().map(SyncMeasured::to_json).collect::<Vec<_>>(),
            "catch_up": self.catch_up.iter().map(SyncMeasured::to_json).collect::<Vec<_>>(),
            "line_ratio": line_ratio,
            "catch_up_ratio": catch_up_ratio,
            "failures": self.failures,
        })
    }
}
