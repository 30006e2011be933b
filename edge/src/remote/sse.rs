//! The legacy MCP HTTP+SSE client transport (protocol 2024-11-05), which rmcp 3.9 no
//! longer ships: GET the server's event stream, wait for its `endpoint` event (which must
//! stay on the same origin, so it cannot point the edge elsewhere), then POST every
//! outgoing message to that endpoint while `message` events carry the replies.

use futures::StreamExt;
use rmcp::service::{RoleClient, RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use tokio::sync::{mpsc, oneshot};

/// Largest event accepted from the stream (8 MiB).
const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;

/// A connected legacy SSE transport.
pub struct SseTransport {
    http: reqwest::Client,
    post_url: reqwest::Url,
    token: Option<String>,
    rx: mpsc::Receiver<RxJsonRpcMessage<RoleClient>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for SseTransport {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

fn io(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::other(msg.into())
}

impl SseTransport {
    /// Opens the event stream and waits for the endpoint.
    ///
    /// # Errors
    /// A description of what failed (status, missing or foreign endpoint).
    pub async fn connect(
        http: reqwest::Client,
        url: reqwest::Url,
        token: Option<String>,
    ) -> Result<SseTransport, String> {
        let mut req = http.get(url.clone()).header("accept", "text/event-stream");
        if let Some(t) = &token {
            req = req.bearer_auth(t);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("event stream request failed ({})", e.without_url()))?;
        if !resp.status().is_success() {
            return Err(format!("event stream answered HTTP {}", resp.status()));
        }
        let (tx, rx) = mpsc::channel(64);
        let (ep_tx, ep_rx) = oneshot::channel::<String>();
        let reader = tokio::spawn(read_events(resp, tx, ep_tx));
        let endpoint = tokio::time::timeout(super::client::CONNECT_TIMEOUT, ep_rx)
            .await
            .map_err(|_| "no endpoint event on the stream".to_owned())?
            .map_err(|_| "the event stream ended before its endpoint event".to_owned())?;
        let post_url = url
            .join(endpoint.trim())
            .map_err(|_| "the endpoint event is not a URL".to_owned())?;
        if post_url.origin() != url.origin() {
            reader.abort();
            return Err("the endpoint event points to another origin; refused".to_owned());
        }
        Ok(SseTransport {
            http,
            post_url,
            token,
            rx,
            reader,
        })
    }
}

async fn read_events(
    resp: reqwest::Response,
    tx: mpsc::Sender<RxJsonRpcMessage<RoleClient>>,
    ep_tx: oneshot::Sender<String>,
) {
    let mut ep_tx = Some(ep_tx);
    let mut stream = resp.bytes_stream();
    let mut buf: Vec<u8> = Vec::new();
    while let Some(Ok(chunk)) = stream.next().await {
        buf.extend_from_slice(&chunk);
        if buf.len() > MAX_EVENT_BYTES {
            tracing::warn!("sse: event over the size limit; closing the stream");
            return;
        }
        while let Some((end, sep)) = event_end(&buf) {
            let event_text = String::from_utf8_lossy(&buf[..end]).replace("\r\n", "\n");
            buf.drain(..end + sep);
            let (mut event, mut data) = ("message".to_owned(), String::new());
            for line in event_text.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(v.strip_prefix(' ').unwrap_or(v));
                }
            }
            match event.as_str() {
                "endpoint" => {
                    if let Some(s) = ep_tx.take() {
                        let _ = s.send(data);
                    }
                }
                "message" if !data.is_empty() => {
                    match serde_json::from_str::<RxJsonRpcMessage<RoleClient>>(&data) {
                        Ok(m) => {
                            if tx.send(m).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "sse: message does not parse"),
                    }
                }
                _ => {}
            }
        }
    }
}

/// Where the first event of `buf` ends (a blank line) and the separator's length.
fn event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

impl Transport<RoleClient> for SseTransport {
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let http = self.http.clone();
        let url = self.post_url.clone();
        let token = self.token.clone();
        async move {
            let mut req = http.post(url).json(&item);
            if let Some(t) = &token {
                req = req.bearer_auth(t);
            }
            let resp = req
                .send()
                .await
                .map_err(|e| io(format!("POST failed ({})", e.without_url())))?;
            if resp.status().is_success() {
                Ok(())
            } else {
                Err(io(format!("POST answered HTTP {}", resp.status())))
            }
        }
    }

    fn receive(&mut self) -> impl Future<Output = Option<RxJsonRpcMessage<RoleClient>>> + Send {
        self.rx.recv()
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.reader.abort();
        Ok(())
    }
}
