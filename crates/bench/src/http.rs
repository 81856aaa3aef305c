//! A minimal keep-alive HTTP/1.1 client: one request in flight per connection, a
//! `Content-Length` body, a few microseconds per request, so the load generator leaves the
//! server as much of the 2 cores as it can (the PocketBase peer's client does the same).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::stats::wall_ns;

pub struct HttpConn {
    stream: TcpStream,
    host: String,
    buf: Vec<u8>,
}

/// A response: status, body, and the wall-clock send time of the request.
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    pub sent_ns: u64,
}

impl HttpConn {
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<HttpConn> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(HttpConn {
            stream,
            host: addr.to_string(),
            buf: Vec::with_capacity(4096),
        })
    }

    /// `POST path` with a JSON body and an optional bearer token, bounded by `limit`.
    pub async fn post(
        &mut self,
        path: &str,
        token: Option<&str>,
        body: &[u8],
        limit: Duration,
    ) -> anyhow::Result<Response> {
        let mut request = Vec::with_capacity(256 + body.len() + token.map_or(0, str::len));
        request.extend_from_slice(
            format!("POST {path} HTTP/1.1\r\nHost: {}\r\n", self.host).as_bytes(),
        );
        if let Some(token) = token {
            request.extend_from_slice(b"Authorization: Bearer ");
            request.extend_from_slice(token.as_bytes());
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(
            format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        request.extend_from_slice(body);
        let sent_ns = wall_ns();
        match timeout(limit, self.exchange(&request)).await {
            Ok(Ok((status, body))) => Ok(Response {
                status,
                body,
                sent_ns,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => bail!("no HTTP response within {limit:?}"),
        }
    }

    async fn exchange(&mut self, request: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
        self.stream.write_all(request).await?;
        loop {
            if let Some(Head {
                len: head_len,
                status,
                content_length: body_len,
            }) = parse_head(&self.buf)?
            {
                let total = head_len + body_len;
                while self.buf.len() < total {
                    self.read_more().await?;
                }
                let body = self.buf[head_len..total].to_vec();
                self.buf.drain(..total);
                return Ok((status, body));
            }
            self.read_more().await?;
        }
    }

    async fn read_more(&mut self) -> anyhow::Result<()> {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("the server closed the connection");
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

/// A response head, once it is complete.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    /// Bytes of the head, including the blank line.
    len: usize,
    status: u16,
    /// The body's length from `Content-Length`.
    content_length: usize,
}

fn parse_head(buf: &[u8]) -> anyhow::Result<Option<Head>> {
    let Some(end) = memchr::memmem::find(buf, b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..end]).context("response head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let mut length = None;
    for line in lines {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            bail!("chunked responses are not supported by this client");
        }
    }
    Ok(Some(Head {
        len: end + 4,
        status,
        content_length: length.unwrap_or(0),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads() {
        let r = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
        assert_eq!(
            parse_head(r).expect("parses"),
            Some(Head {
                len: r.len() - 5,
                status: 200,
                content_length: 5
            })
        );
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\n").expect("partial"), None);
    }
}
