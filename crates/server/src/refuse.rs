//! Answering a connection the accept loop will not serve (connection cap reached, too many
//! new connections from one address): a complete HTTP response with `Connection: close`,
//! written without reading the request, then the socket is closed.
//!
//! The request is never parsed, so a refusal costs one small write. After the write the
//! socket's reading side is drained for a moment: closing a socket that still holds unread
//! request bytes sends a reset, which can make the client lose the response.
//!
//! At most [`MAX_REFUSING`] refusals are written at once; past that a refused connection is
//! closed at once, so a flood of connections cannot turn the refusals into the next way of
//! running out of descriptors.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Refusals being written at once.
const MAX_REFUSING: usize = 64;
/// Longest time spent on one refusal.
const REFUSAL_TIME: Duration = Duration::from_millis(500);

static REFUSING: AtomicUsize = AtomicUsize::new(0);

/// What to answer.
pub(crate) struct Refusal {
    /// 503 or 429.
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub retry_after_secs: u64,
    /// Extra JSON fields of the body (the rate limit's name and retry time).
    pub extra: Option<serde_json::Value>,
}

impl Refusal {
    fn to_bytes(&self) -> Vec<u8> {
        let mut body = serde_json::json!({ "code": self.code, "message": self.message });
        if let (Some(serde_json::Value::Object(extra)), Some(object)) =
            (&self.extra, body.as_object_mut())
        {
            object.extend(extra.clone());
        }
        let body = body.to_string();
        let reason = if self.status == 429 {
            "Too Many Requests"
        } else {
            "Service Unavailable"
        };
        format!(
            "HTTP/1.1 {} {reason}\r\ncontent-type: application/json\r\nretry-after: {}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            self.status,
            self.retry_after_secs,
            body.len()
        )
        .into_bytes()
    }
}

/// Writes `refusal` to `stream` and closes it, in a task of its own.
pub(crate) fn refuse(mut stream: TcpStream, refusal: Refusal) {
    if REFUSING.fetch_add(1, Ordering::AcqRel) >= MAX_REFUSING {
        REFUSING.fetch_sub(1, Ordering::AcqRel);
        drop(stream);
        return;
    }
    tokio::spawn(async move {
        let bytes = refusal.to_bytes();
        let _ = tokio::time::timeout(REFUSAL_TIME, async {
            stream.write_all(&bytes).await?;
            stream.shutdown().await?;
            let mut sink = [0u8; 4096];
            while stream.read(&mut sink).await? > 0 {}
            Ok::<(), std::io::Error>(())
        })
        .await;
        REFUSING.fetch_sub(1, Ordering::AcqRel);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_a_complete_response() {
        let refusal = Refusal {
            status: 429,
            code: "RateLimited",
            message: "slow down".into(),
            retry_after_secs: 3,
            extra: Some(serde_json::json!({ "retryAfter": 2500 })),
        };
        let text = String::from_utf8(refusal.to_bytes()).expect("utf-8");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        assert!(
            head.starts_with("HTTP/1.1 429 Too Many Requests\r\n"),
            "{head}"
        );
        assert!(head.contains("retry-after: 3"), "{head}");
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let json: serde_json::Value = serde_json::from_str(body).expect("json body");
        assert_eq!(json["code"], "RateLimited");
        assert_eq!(json["retryAfter"], 2500);
    }
}
