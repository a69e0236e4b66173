//! `rs2p node --metrics HOST:PORT`: the node's Prometheus metrics over
//! HTTP, at `GET /metrics`.
//!
//! A minimal HTTP/1.1 responder, on purpose: one request per connection
//! (`Connection: close`), `GET` or `HEAD` of `/metrics` (a query string is
//! ignored) answered with the text exposition, anything else with 404 (or
//! 405 / 400). Requests are bounded in size (8 KiB of head), in time (5 s
//! to send it, 5 s to take the answer) and in number (64 at once); bad
//! input only ever closes its own connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rs2p::net::metrics::Metrics;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Largest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// Time a client has to send its request, and to take the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests served at once; more wait for a place.
const MAX_CLIENTS: usize = 64;

/// Binds `addr` and serves `metrics` there until the process ends.
/// Returns the bound address (port 0 picks a free one).
///
/// # Errors
/// A sentence for the user when `addr` cannot be bound.
pub async fn serve(addr: &str, metrics: Metrics) -> Result<SocketAddr, String> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot serve metrics on {addr}: {e}"))?;
    let places = Arc::new(Semaphore::new(MAX_CLIENTS));
    tokio::spawn(async move {
        loop {
            let Ok(place) = places.clone().acquire_owned().await else {
                return;
            };
            match listener.accept().await {
                Ok((stream, _)) => {
                    let metrics = metrics.clone();
                    tokio::spawn(async move {
                        let _place = place;
                        if let Err(e) = answer(stream, &metrics).await {
                            tracing::debug!(%e, "metrics request failed");
                        }
                    });
                }
                Err(e) => {
                    // Out of descriptors, most likely: wait, then go on.
                    tracing::warn!(%e, "cannot accept a metrics request");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(local)
}

/// Reads one request and answers it.
async fn answer(mut stream: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    let head = match tokio::time::timeout(IO_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(Some(head))) => head,
        // Too large, cut short, or too slow.
        Ok(Ok(None)) => {
            return respond(
                &mut stream,
                "400 Bad Request",
                "text/plain",
                b"bad request\n",
                true,
            )
            .await
        }
        Ok(Err(e)) => return Err(e),
        Err(_) => return Ok(()),
    };
    let reply = match route(&head) {
        Route::Metrics { head_only } => {
            let body = metrics.encode();
            (
                "200 OK",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                body.into_bytes(),
                !head_only,
            )
        }
        Route::NotFound => (
            "404 Not Found",
            "text/plain",
            b"not found: try /metrics\n".to_vec(),
            true,
        ),
        Route::NotAllowed => (
            "405 Method Not Allowed",
            "text/plain",
            b"only GET and HEAD\n".to_vec(),
            true,
        ),
        Route::Bad => (
            "400 Bad Request",
            "text/plain",
            b"bad request\n".to_vec(),
            true,
        ),
    };
    let (status, content_type, body, with_body) = reply;
    respond(&mut stream, status, content_type, &body, with_body).await
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
    with_body: bool,
) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if with_body {
        out.extend_from_slice(body);
    }
    let write = async {
        stream.write_all(&out).await?;
        stream.shutdown().await
    };
    tokio::time::timeout(IO_TIMEOUT, write)
        .await
        .unwrap_or(Ok(()))
}

/// The request head, up to the blank line; `None` if it is over
/// [`MAX_HEAD`] or the client stops before the end of it.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = find(&head, b"\r\n\r\n").or_else(|| find(&head, b"\n\n")) {
            head.truncate(end);
            return Ok(Some(head));
        }
        if head.len() > MAX_HEAD {
            return Ok(None);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics { head_only: bool },
    NotFound,
    NotAllowed,
    Bad,
}

/// Routes a request head by its request line.
fn route(head: &[u8]) -> Route {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let Ok(line) = std::str::from_utf8(line) else {
        return Route::Bad;
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::Bad;
    };
    if !version.starts_with("HTTP/1.") {
        return Route::Bad;
    }
    let path = target.split('?').next().unwrap_or_default();
    match (method, path) {
        ("GET", "/metrics") => Route::Metrics { head_only: false },
        ("HEAD", "/metrics") => Route::Metrics { head_only: true },
        ("GET" | "HEAD", _) => Route::NotFound,
        _ => Route::NotAllowed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x"),
            Route::Metrics { head_only: false }
        );
        assert_eq!(
            route(b"GET /metrics?x=1 HTTP/1.0"),
            Route::Metrics { head_only: false }
        );
        assert_eq!(
            route(b"HEAD /metrics HTTP/1.1"),
            Route::Metrics { head_only: true }
        );
        assert_eq!(route(b"GET / HTTP/1.1"), Route::NotFound);
        assert_eq!(route(b"POST /metrics HTTP/1.1"), Route::NotAllowed);
        assert_eq!(route(b"GET /metrics"), Route::Bad);
        assert_eq!(route(b"\xff\xfe garbage"), Route::Bad);
        assert_eq!(route(b""), Route::Bad);
        assert_eq!(route(b"GET /metrics SPDY/3"), Route::Bad);
    }
}
