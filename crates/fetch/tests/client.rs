//! The fetch client against a small HTTP server on 127.0.0.1 (started and stopped by each
//! test): what the policy refuses and where (literal address, name, redirect), that a refused
//! request never reaches the server, timeouts, the body cap, the bound on concurrent requests,
//! and a plain exchange of status, headers and body.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use fetch::{FetchError, FetchLimits, Fetcher, NetworkPolicy, Request};

/// A tiny HTTP/1.1 server on 127.0.0.1 that answers by path; counts the requests it got.
struct TestServer {
    port: u16,
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl TestServer {
    fn start() -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (hits.clone(), stop.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                h.fetch_add(1, Ordering::SeqCst);
                thread::spawn(move || answer(stream, port));
            }
        });
        TestServer { port, hits, stop }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn answer(stream: TcpStream, port: u16) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut first = String::new();
    if reader.read_line(&mut first).is_err() {
        return;
    }
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    let mut parts = first.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut out = stream;
    let reply = |out: &mut TcpStream, status: &str, headers: &str, body: &[u8]| {
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n{headers}\r\n",
            body.len()
        );
        let _ = out.write_all(head.as_bytes());
        let _ = out.write_all(body);
    };
    match path.as_str() {
        "/json" => reply(
            &mut out,
            "200 OK",
            "content-type: application/json\r\nx-test: a\r\nx-test: b\r\n",
            br#"{"hello":"world"}"#,
        ),
        "/echo" => {
            let text = format!("{method} {}", String::from_utf8_lossy(&body));
            reply(&mut out, "201 Created", "", text.as_bytes())
        }
        "/slow" => {
            thread::sleep(Duration::from_millis(1500));
            reply(&mut out, "200 OK", "", b"late")
        }
        "/big" => reply(&mut out, "200 OK", "", &vec![b'x'; 5000]),
        "/big-chunked" => {
            let _ = out.write_all(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
            );
            for _ in 0..10 {
                let _ = out.write_all(b"3e8\r\n");
                let _ = out.write_all(&[b'y'; 1000]);
                let _ = out.write_all(b"\r\n");
            }
            let _ = out.write_all(b"0\r\n\r\n");
        }
        "/to-json" => reply(&mut out, "302 Found", "location: /json\r\n", b""),
        "/to-private" => {
            let location = format!("location: http://127.0.0.2:{port}/json\r\n");
            reply(&mut out, "302 Found", &location, b"")
        }
        "/to-localhost" => {
            let location = format!("location: http://localhost:{port}/json\r\n");
            reply(&mut out, "307 Temporary Redirect", &location, b"")
        }
        "/to-file" => reply(
            &mut out,
            "302 Found",
            "location: file:///etc/passwd\r\n",
            b"",
        ),
        "/loop" => reply(&mut out, "302 Found", "location: /loop\r\n", b""),
        _ => reply(&mut out, "404 Not Found", "", b"no such path"),
    }
}

fn fetcher(policy: &str, limits: FetchLimits) -> Fetcher {
    Fetcher::new(NetworkPolicy::parse(policy).expect("policy"), limits).expect("fetcher")
}

fn get(url: String) -> Request {
    Request {
        url,
        ..Request::default()
    }
}

fn refused_message(result: Result<fetch::Response, FetchError>) -> String {
    match result {
        Err(error @ FetchError::Refused { .. }) => error.to_string(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn status_headers_and_body_come_back() {
    let server = TestServer::start();
    let fetcher = fetcher("127.0.0.1", FetchLimits::default());
    let response = fetcher
        .fetch_blocking(get(server.url("/json")))
        .expect("fetch");
    assert_eq!(response.status, 200);
    assert_eq!(response.status_text, "OK");
    assert_eq!(response.body, br#"{"hello":"world"}"#);
    assert!(
        response
            .headers
            .contains(&("content-type".into(), "application/json".into()))
    );
    assert!(response.headers.contains(&("x-test".into(), "a, b".into())));

    let posted = fetcher
        .fetch_blocking(Request {
            url: server.url("/echo"),
            method: "POST".into(),
            headers: vec![("content-type".into(), "text/plain".into())],
            body: Some(b"payload".to_vec()),
            timeout: None,
        })
        .expect("post");
    assert_eq!(posted.status, 201);
    assert_eq!(posted.body, b"POST payload");

    let redirected = fetcher
        .fetch_blocking(get(server.url("/to-json")))
        .expect("redirect");
    assert_eq!(redirected.url, server.url("/json"));
    assert_eq!(redirected.status, 200);
}

#[test]
fn loopback_is_refused_by_default_and_the_server_never_sees_the_request() {
    let server = TestServer::start();
    let fetcher = fetcher("false", FetchLimits::default());
    let message = refused_message(fetcher.fetch_blocking(get(server.url("/json"))));
    assert!(
        message.starts_with(&format!(
            "fetch to {} refused: 127.0.0.1 is a loopback address",
            server.url("/json")
        )),
        "{message}"
    );
    assert!(message.contains("--allow-private-network"), "{message}");

    // A name that resolves to loopback is refused by the resolver, not by the URL text.
    let by_name = format!("http://localhost:{}/json", server.port);
    let message = refused_message(fetcher.fetch_blocking(get(by_name)));
    assert!(
        message.contains("localhost resolves to non-public addresses only"),
        "{message}"
    );
    assert!(message.contains("loopback"), "{message}");

    for url in [
        format!("http://[::1]:{}/json", server.port),
        format!("http://[::ffff:127.0.0.1]:{}/json", server.port),
        format!("http://0x7f.1:{}/json", server.port),
        format!("http://2130706433:{}/json", server.port),
        format!("http://0.0.0.0:{}/json", server.port),
    ] {
        refused_message(fetcher.fetch_blocking(get(url)));
    }
    assert_eq!(server.hits(), 0, "a refused request reached the server");
}

#[test]
fn redirects_to_refused_places_are_not_followed() {
    let server = TestServer::start();
    let fetcher = fetcher("127.0.0.1", FetchLimits::default());
    let message = refused_message(fetcher.fetch_blocking(get(server.url("/to-private"))));
    assert!(
        message.contains(&format!(
            "it redirected to http://127.0.0.2:{}/json, and 127.0.0.2 is a loopback address",
            server.port
        )),
        "{message}"
    );

    // localhost resolves to 127.0.0.1 (allowed) and ::1 (not): only 127.0.0.1 is used.
    let response = fetcher
        .fetch_blocking(get(server.url("/to-localhost")))
        .expect("localhost");
    assert_eq!(response.status, 200);

    let scheme = fetcher
        .fetch_blocking(get(server.url("/to-file")))
        .expect_err("file:");
    assert!(
        scheme
            .to_string()
            .contains("file:///etc/passwd, which is not an http or https URL"),
        "{scheme}"
    );
    let looping = fetcher
        .fetch_blocking(get(server.url("/loop")))
        .expect_err("loop");
    assert!(
        matches!(looping, FetchError::TooManyRedirects { limit: 10, .. }),
        "{looping}"
    );
}

#[test]
fn only_http_urls_are_fetched() {
    let fetcher = fetcher("true", FetchLimits::default());
    let ftp = fetcher
        .fetch_blocking(get("ftp://127.0.0.1/x".into()))
        .expect_err("ftp");
    assert_eq!(
        ftp.to_string(),
        "fetch to ftp://127.0.0.1/x refused: only http and https URLs can be fetched, not ftp:"
    );
    let bad = fetcher
        .fetch_blocking(get("not a url".into()))
        .expect_err("bad");
    assert!(
        bad.to_string()
            .starts_with("fetch to not a url refused: not a valid URL"),
        "{bad}"
    );
    let metadata = fetcher.fetch_blocking(get("http://169.254.169.254/latest/meta-data/".into()));
    assert!(refused_message(metadata).contains("169.254.169.254 is a cloud metadata address"));
}

#[test]
fn timeouts_and_the_body_cap_end_a_request() {
    let server = TestServer::start();
    let limits = FetchLimits {
        max_body_bytes: 4096,
        ..FetchLimits::default()
    };
    let fetcher = fetcher("127.0.0.1", limits);
    let started = Instant::now();
    let slow = fetcher
        .fetch_blocking(Request {
            timeout: Some(Duration::from_millis(200)),
            ..get(server.url("/slow"))
        })
        .expect_err("too slow");
    assert!(matches!(slow, FetchError::Timeout { .. }), "{slow}");
    assert!(
        slow.to_string().contains("timed out after 200 ms"),
        "{slow}"
    );
    assert!(started.elapsed() < Duration::from_millis(1200));

    let big = fetcher
        .fetch_blocking(get(server.url("/big")))
        .expect_err("too big");
    assert!(
        big.to_string().contains("exceeds the limit of 4096 bytes"),
        "{big}"
    );
    let chunked = fetcher
        .fetch_blocking(get(server.url("/big-chunked")))
        .expect_err("too big");
    assert!(matches!(chunked, FetchError::TooLarge { .. }), "{chunked}");
}

#[test]
fn concurrent_requests_beyond_the_bound_wait_for_a_slot() {
    let server = TestServer::start();
    let limits = FetchLimits {
        max_concurrent: 1,
        ..FetchLimits::default()
    };
    let fetcher = Arc::new(fetcher("127.0.0.1", limits));
    let first = {
        let fetcher = fetcher.clone();
        let url = server.url("/slow");
        thread::spawn(move || fetcher.fetch_blocking(get(url)))
    };
    thread::sleep(Duration::from_millis(300));
    // The only slot is taken by the slow request: this one waits, and its timeout runs.
    let second = fetcher
        .fetch_blocking(Request {
            timeout: Some(Duration::from_millis(300)),
            ..get(server.url("/json"))
        })
        .expect_err("no slot in time");
    assert!(matches!(second, FetchError::Timeout { .. }), "{second}");
    let done = first
        .join()
        .expect("thread")
        .expect("the slow one finishes");
    assert_eq!(done.body, b"late");
    assert_eq!(
        fetcher
            .fetch_blocking(get(server.url("/json")))
            .expect("slot free")
            .status,
        200
    );
}
