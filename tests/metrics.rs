//! Operating a node: its Prometheus metrics (in process, and served by
//! `rs2p node --metrics` and scraped with curl while traffic flows), its
//! events as a stream with lag made visible, receive-queue overflow and
//! replies without a route reported as events.

mod support;

use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

use futures_util::StreamExt;
use rs2p::net::Lagged;
use rs2p::protocol::mesh::MeshConfig;
use rs2p::{packets, Event, MeshSocket, PeerId};
use support::mesh::{link, next, rs_node, wait_event};
use support::process::NodeProcess;
use support::wait::{wait_until, WAIT};

/// The value of one series (`name` or `name{labels}`) in a text
/// exposition.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// `value`, or 0 when the series is absent.
fn get(text: &str, series: &str) -> f64 {
    value(text, series).unwrap_or(0.0)
}

/// Waits until the node's metrics satisfy `check` (mirrored counters move
/// on the node's tick).
async fn wait_metrics<F>(node: &MeshSocket, what: &str, check: F) -> String
where
    F: Fn(&str) -> Result<(), String>,
{
    let metrics = node.metrics();
    wait_until(what, WAIT, || {
        let text = metrics.encode();
        let r = check(&text);
        async move { r }
    })
    .await;
    metrics.encode()
}

fn at_least(text: &str, series: &str, min: f64) -> Result<(), String> {
    let v = get(text, series);
    if v >= min {
        Ok(())
    } else {
        Err(format!("{series} is {v}, expected at least {min}"))
    }
}

fn exactly(text: &str, series: &str, want: f64) -> Result<(), String> {
    let v = get(text, series);
    if v == want {
        Ok(())
    } else {
        Err(format!("{series} is {v}, expected {want}"))
    }
}

/// Sends the same broadcast twice within one second: the same message (id
/// and time), so every receiver sees the second as a duplicate.
async fn send_twice(node: &MeshSocket, text: &str) {
    loop {
        let first = node.send(packets![text]).await.unwrap();
        let second = node.send(packets![text]).await.unwrap();
        if first == second {
            return;
        }
        // A second boundary fell between the two: try again.
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_follow_traffic() {
    let a = rs_node("mesh", "Plaintext", 0).await;
    let b = rs_node("mesh", "Plaintext", 0).await;
    let before = b.metrics().encode();
    assert_eq!(get(&before, "rs2p_bytes_received_total"), 0.0);
    link(&b, &a).await;

    // Connections by direction and transport, on both ends.
    let text = wait_metrics(&a, "A's connections", |t| {
        exactly(
            t,
            r#"rs2p_connections{direction="incoming",transport="Plaintext"}"#,
            1.0,
        )?;
        exactly(t, "rs2p_peers", 1.0)
    })
    .await;
    assert_eq!(
        get(
            &text,
            r#"rs2p_connections{direction="outgoing",transport="Plaintext"}"#
        ),
        0.0
    );
    wait_metrics(&b, "B's connections", |t| {
        exactly(
            t,
            r#"rs2p_connections{direction="outgoing",transport="Plaintext"}"#,
            1.0,
        )
    })
    .await;
    assert_eq!(get(&b.metrics().encode(), "rs2p_dials_total"), 1.0);

    // Five broadcasts from B, one of them sent twice: A gets six copies,
    // delivers five and drops one as a duplicate.
    for i in 0..4 {
        b.send(packets![format!("m{i}")]).await.unwrap();
    }
    send_twice(&b, "again").await;
    for _ in 0..5 {
        next(&a, "a broadcast at A").await;
    }
    let text = wait_metrics(&a, "A's counts", |t| {
        exactly(t, r#"rs2p_messages_received_total{kind="broadcast"}"#, 6.0)?;
        exactly(t, "rs2p_duplicates_total", 1.0)?;
        at_least(t, "rs2p_delivery_latency_seconds_count", 5.0)
    })
    .await;
    // Handshake and peer list came before: frames and bytes add up.
    assert!(get(&text, "rs2p_frames_received_total") >= 8.0, "{text}");
    assert!(get(&text, r#"rs2p_messages_received_total{kind="whisper"}"#) >= 1.0);
    let bytes_in = get(&text, "rs2p_bytes_received_total");
    let b_text = wait_metrics(&b, "B's counts", |t| {
        exactly(t, r#"rs2p_messages_sent_total{kind="broadcast"}"#, 6.0)?;
        // What B wrote, A read: the same bytes.
        exactly(t, "rs2p_bytes_sent_total", bytes_in)
    })
    .await;
    assert!(get(&b_text, "rs2p_frames_sent_total") >= 8.0, "{b_text}");
    assert_eq!(
        get(&text, r#"rs2p_messages_dropped_total{reason="stale"}"#),
        0.0
    );

    // A rejection by reason: a node of another subnet dials A.
    let stranger = rs_node("other", "Plaintext", 0).await;
    assert!(stranger
        .connect("127.0.0.1", a.addr().port(), None)
        .await
        .is_err());
    let text = wait_metrics(&a, "A's rejection", |t| {
        at_least(
            t,
            r#"rs2p_connections_closed_total{reason="subnet_mismatch"}"#,
            1.0,
        )?;
        // The stranger is gone: one connection again.
        exactly(
            t,
            r#"rs2p_connections{direction="incoming",transport="Plaintext"}"#,
            1.0,
        )
    })
    .await;
    assert_eq!(
        get(&text, r#"rs2p_connections_closed_total{reason="too_slow"}"#),
        0.0
    );
    // A peer leaving is a close by the peer.
    b.close().await;
    wait_metrics(&a, "B's departure", |t| {
        at_least(
            t,
            r#"rs2p_connections_closed_total{reason="disconnected"}"#,
            1.0,
        )?;
        exactly(t, "rs2p_peers", 0.0)
    })
    .await;
    for n in [a, stranger] {
        n.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_of_a_group_share_a_registry_under_their_own_labels() {
    use rs2p::net::metrics::prometheus_client::encoding::text::encode;
    use rs2p::net::metrics::prometheus_client::metrics::counter::Counter;
    use rs2p::net::metrics::prometheus_client::registry::Registry;
    use rs2p::net::MetricsGroup;
    let group = MetricsGroup::new();
    let node = |label: &'static str| {
        MeshSocket::builder()
            .max_outgoing(0)
            .metrics_group(&group, label)
            .bind("127.0.0.1:0")
    };
    let a = node("a").await.unwrap();
    let b = node("b").await.unwrap();
    let mut registry = Registry::with_prefix("app");
    let mine = Counter::<u64>::default();
    registry.register("requests", "The application's own", mine.clone());
    group.register(&mut registry);
    link(&b, &a).await;
    b.send(packets!["x"]).await.unwrap();
    next(&a, "x at A").await;
    mine.inc();
    let encoded = || {
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        text
    };
    wait_until("both nodes counted", WAIT, || {
        let text = encoded();
        let r = exactly(
            &text,
            r#"app_rs2p_messages_sent_total{node="b",kind="broadcast"}"#,
            1.0,
        )
        .and_then(|()| {
            exactly(
                &text,
                r#"app_rs2p_messages_received_total{node="a",kind="broadcast"}"#,
                1.0,
            )
        });
        async move { r }
    })
    .await;
    let text = encoded();
    assert_eq!(get(&text, "app_requests_total"), 1.0);
    assert_eq!(
        get(
            &text,
            r#"app_rs2p_messages_sent_total{node="a",kind="broadcast"}"#
        ),
        0.0
    );
    assert_eq!(
        get(
            &text,
            r#"app_rs2p_connections{node="a",direction="incoming",transport="Plaintext"}"#
        ),
        1.0
    );
    // Each metric is described once, however many nodes.
    assert_eq!(
        text.matches("# TYPE app_rs2p_peers gauge").count(),
        1,
        "{text}"
    );
    assert_eq!(text.matches("# HELP app_rs2p_dials ").count(), 1, "{text}");
    // A node's handle reads the whole group.
    assert!(a.metrics().encode().contains(r#"rs2p_peers{node="b"}"#));
    // A node gone (and its handles dropped) leaves the group.
    b.close().await;
    drop(b);
    wait_until("B's series gone", WAIT, || {
        let text = encoded();
        let r = if text.contains(r#"node="b""#) {
            Err("B's series are still there".to_owned())
        } else {
            Ok(())
        };
        async move { r }
    })
    .await;
    assert!(encoded().contains(r#"app_rs2p_peers{node="a"}"#));
    a.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_stream_reports_lag_and_ends_after_shutdown() {
    let a = rs_node("mesh", "Plaintext", 0).await;
    let b = rs_node("mesh", "Plaintext", 0).await;
    let mut stream = a.event_stream();
    link(&b, &a).await;
    // More events than the channel holds (one `Message` each), unread.
    let n = 1_200;
    for i in 0..n {
        b.send(packets![i]).await.unwrap();
    }
    let mut got = 0;
    while got < n {
        got += a.recv_many(n).len();
        if got < n {
            next(&a, "broadcasts at A").await;
            got += 1;
        }
    }
    let first = tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("an item");
    let Some(Err(Lagged(missed))) = first else {
        panic!("expected the lag first, got {first:?}");
    };
    assert!(missed > 0);
    // Then the events after the gap: the last ones are messages.
    let after = tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("an item");
    assert_eq!(after, Some(Ok(Event::Message)));
    a.close().await;
    // What is left is read, then the stream ends.
    let ended = tokio::time::timeout(WAIT, async {
        let mut left = 0;
        while let Some(item) = stream.next().await {
            assert!(item.is_ok(), "{item:?}");
            left += 1;
        }
        left
    })
    .await
    .expect("the stream ends after the shutdown");
    assert!(ended < 1_100, "{ended}");
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_queue_overflow_is_an_event_and_a_metric() {
    let a = MeshSocket::builder()
        .recv_queue(10)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let b = rs_node("mesh", "Plaintext", 0).await;
    let mut events = a.events();
    link(&b, &a).await;
    for i in 0..50 {
        b.send(packets![i]).await.unwrap();
    }
    // Reported, rate-limited, and nothing lost: the events add up to the
    // 40 messages dropped.
    let mut reports = Vec::new();
    while reports.iter().map(|(d, _)| d).sum::<u64>() < 40 {
        let event = wait_event(&mut events, WAIT, "QueueOverflow", |e| {
            matches!(e, Event::QueueOverflow { .. })
        })
        .await;
        if let Event::QueueOverflow { dropped, total } = event {
            reports.push((dropped, total));
        }
    }
    assert_eq!(reports.iter().map(|(d, _)| d).sum::<u64>(), 40);
    assert_eq!(reports.last().unwrap().1, 40);
    // 40 drops within a second or two: two or three events, not 40.
    assert!(reports.len() <= 3, "{reports:?}");
    assert_eq!(a.snapshot().await.unwrap().queue_dropped, 40);
    let text = a.metrics().encode();
    assert_eq!(
        get(&text, r#"rs2p_messages_dropped_total{reason="queue_full"}"#),
        40.0
    );
    // The queue holds the newest ten.
    let kept = a.recv_many(100);
    assert_eq!(kept.len(), 10);
    assert_eq!(kept[0].packets()[0].as_i64(), Some(40));
    wait_metrics(&a, "the gauge", |t| {
        exactly(t, "rs2p_receive_queue_messages", 0.0)
    })
    .await;
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_without_a_route_is_reported() {
    let a = MeshSocket::builder()
        .config(MeshConfig {
            request_ttl: 1,
            ..MeshConfig::default()
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let b = rs_node("mesh", "Plaintext", 0).await;
    link(&b, &a).await;
    let mut events = a.events();
    // Nobody knows this node: the route request goes unanswered.
    let nobody = PeerId::from("no-such-node");
    a.reply_to(&nobody, packets!["hello?"]).await.unwrap();
    assert_eq!(a.snapshot().await.unwrap().pending_requests, 1);
    let event = wait_event(&mut events, WAIT, "ReplyFailed", |e| {
        matches!(e, Event::ReplyFailed { .. })
    })
    .await;
    assert_eq!(event, Event::ReplyFailed { to: nobody });
    assert_eq!(a.snapshot().await.unwrap().pending_requests, 0);
    let text = a.metrics().encode();
    assert_eq!(
        get(&text, r#"rs2p_messages_dropped_total{reason="unrouted"}"#),
        1.0
    );
    assert_eq!(get(&text, r#"rs2p_messages_sent_total{kind="reply"}"#), 1.0);
    // A reply to a peer is not reported.
    a.reply_to(b.id(), packets!["direct"]).await.unwrap();
    assert_eq!(
        next(&b, "direct reply").await.packets()[0].as_str(),
        Some("direct")
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    while let Ok(event) = events.try_recv() {
        assert!(!matches!(event, Event::ReplyFailed { .. }), "{event:?}");
    }
    a.close().await;
    b.close().await;
}

// ---------------------------------------------------------------------------
// `rs2p node --metrics`, scraped with curl.

/// The metrics URL the node printed on stderr.
async fn metrics_url(node: &NodeProcess) -> String {
    let mut url = String::new();
    wait_until("the metrics address on stderr", WAIT, || {
        let found = node
            .stderr()
            .lines()
            .find_map(|l| l.strip_prefix("-- metrics at ").map(str::to_owned));
        if let Some(u) = &found {
            url.clone_from(u);
        }
        async move { found.map(|_| ()).ok_or_else(|| "not yet".to_owned()) }
    })
    .await;
    url
}

/// `curl -sS URL` (bounded): status code and body.
async fn curl(url: &str) -> (u16, String) {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "5", "-w", "\n%{http_code}", &url])
            .output()
            .expect("curl (apt-get install curl)");
        assert!(out.status.success(), "curl {url}: {out:?}");
        let text = String::from_utf8(out.stdout).expect("UTF-8");
        let (body, code) = text.rsplit_once('\n').expect("a status code");
        (code.parse().expect("a status code"), body.to_owned())
    })
    .await
    .unwrap()
}

/// Scrapes until `check` holds (bounded by [`WAIT`]).
async fn scrape_until<F>(url: &str, what: &str, check: F) -> String
where
    F: Fn(&str) -> Result<(), String>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (code, body) = curl(url).await;
        let r = if code == 200 {
            check(&body)
        } else {
            Err(format!("status {code}"))
        };
        match r {
            Ok(()) => return body,
            Err(e) if tokio::time::Instant::now() > deadline => {
                panic!("{what}: {e}\n{body}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Sends `request` on a raw connection and returns the answer.
fn raw_request(url: &str, request: &[u8]) -> String {
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches("/metrics");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(request);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_serves_metrics_over_http() {
    let mut p = NodeProcess::rs2p("metrics", &["--metrics", "127.0.0.1:0"]);
    let url = metrics_url(&p).await;
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/metrics"),
        "{url}"
    );

    let idle = scrape_until(&url, "an idle node", |t| exactly(t, "rs2p_peers", 0.0)).await;
    assert!(idle.ends_with("# EOF\n"), "{idle}");
    assert!(idle.contains("# TYPE rs2p_delivery_latency_seconds histogram"));

    // Traffic: a library node joins and broadcasts, once twice over.
    let b = rs_node("mesh", "Plaintext", 0).await;
    b.connect_addr(&p.addr).await.unwrap();
    for i in 0..3 {
        b.send(packets![format!("to the process {i}")])
            .await
            .unwrap();
    }
    send_twice(&b, "twice").await;
    for i in 0..3 {
        p.wait_message(&format!("to the process {i}"));
    }
    p.wait_message("twice");
    let text = scrape_until(&url, "traffic counted", |t| {
        exactly(
            t,
            r#"rs2p_connections{direction="incoming",transport="Plaintext"}"#,
            1.0,
        )?;
        exactly(t, "rs2p_peers", 1.0)?;
        exactly(t, r#"rs2p_messages_received_total{kind="broadcast"}"#, 5.0)?;
        exactly(t, "rs2p_duplicates_total", 1.0)?;
        at_least(t, "rs2p_delivery_latency_seconds_count", 4.0)
    })
    .await;
    assert!(get(&text, "rs2p_bytes_received_total") > get(&idle, "rs2p_bytes_received_total"));
    assert!(get(&text, "rs2p_bytes_sent_total") > 0.0, "{text}");

    // Messages out: the process broadcasts.
    p.broadcast(serde_json::json!(["from the process"]));
    assert_eq!(
        next(&b, "the process's broadcast").await.packets()[0].as_str(),
        Some("from the process")
    );
    scrape_until(&url, "a broadcast sent", |t| {
        exactly(t, r#"rs2p_messages_sent_total{kind="broadcast"}"#, 1.0)
    })
    .await;

    // A rejection by reason.
    let stranger = rs_node("other", "Plaintext", 0).await;
    assert!(stranger.connect_addr(&p.addr).await.is_err());
    scrape_until(&url, "a rejection", |t| {
        at_least(
            t,
            r#"rs2p_connections_closed_total{reason="subnet_mismatch"}"#,
            1.0,
        )
    })
    .await;

    // Anything but GET /metrics, and bad input, is answered and survived.
    let (code, _) = curl(&url.replace("/metrics", "/other")).await;
    assert_eq!(code, 404);
    let (code, _) = curl(&url.replace("/metrics", "/")).await;
    assert_eq!(code, 404);
    let answer = raw_request(&url, b"\x00\xff\x16\x03 not http\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let answer = raw_request(&url, b"POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    let answer = raw_request(&url, &[b'x'; 20_000]);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    let answer = raw_request(&url, b"HEAD /metrics HTTP/1.1\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(!answer.contains("# EOF"), "HEAD has no body: {answer}");
    let (code, body) = curl(&url).await;
    assert_eq!(code, 200);
    assert!(body.contains("rs2p_peers 1"), "{body}");

    b.close().await;
    stranger.close().await;
    p.quit();
}

#[test]
fn a_metrics_address_in_use_is_refused_at_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = support::process::rs2p_run(&[
        "node",
        "--bind",
        "127.0.0.1:0",
        "--metrics",
        &addr,
        "--linger",
        "0",
    ]);
    assert!(!out.status.success());
    let stderr = &out.stderr;
    assert!(stderr.contains("cannot serve metrics on"), "{stderr}");
}
