//! Running an HTTP action: one handler of `functions/http.rhai` for one request, and
//! everything an action (and only an action) can call.
//!
//! An action has no transaction. It reaches data through `ctx.runQuery` / `ctx.runMutation`,
//! which go to the [`ActionHost`] (implemented by the application, which runs each mutation
//! as its own transaction on the Committer), so `ctx.db` is refused with a clear error. It
//! runs in the same sandbox as queries (operation cap, user-time budget; time spent in nested
//! calls is not counted) and is the only code that may read the app's environment
//! (`env("NAME")`) or verify webhook signatures, because actions are not cached and need not
//! be deterministic.
//!
//! Script surface (the rest of the host API is in `host_api.rs`):
//! - `ctx.runQuery(path, args)`, `ctx.runMutation(path, args)`, `ctx.auth.getUserIdentity()`,
//!   `ctx.now()`;
//! - `request.method`, `.url`, `.path`, `.query` (map), `.headers` (map, lowercase names),
//!   `request.text()`, `request.json()` (up to the 16 MiB string cap), `request.bytes()` (up
//!   to the sandbox's blob cap, 100,000 bytes);
//! - `env(name)` (throws naming the variable when unset), `env(name, default)`;
//! - `Webhook(secret).verify(request)` and `verifyWebhook(secret, request)`: the parsed JSON
//!   payload of a correctly signed Standard Webhooks / Svix message, else a thrown error;
//! - the handler returns `#{ status, headers, body }` (see [`HttpResponse`]).

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rhai::{
    Blob, Dynamic, Engine, EvalAltResult, ImmutableString, Map, NativeCallContext, Position,
};
use value::Value;

use crate::convert::{from_dynamic, to_dynamic};
use crate::definition::FunctionKind;
use crate::error::{ErrorKind, FunctionError};
use crate::host_api::{HostResult, host_error};
use crate::http_router::{HTTP_MODULE, HttpRoute, HttpRouter};
use crate::modules::Modules;
use crate::path::FunctionPath;
use crate::runner::describe_error;
use crate::sandbox::{Enter, Exec, with_current};
use crate::webhook::{self, SignedHeaders};

/// Nesting limit for JSON bodies turned into script values.
const MAX_JSON_DEPTH: usize = 64;
/// Log lines kept per action (nested calls' lines included).
const MAX_LOG_LINES: usize = 256;

/// What an action's `ctx.runQuery` / `ctx.runMutation` / `env` reach. Implemented by the
/// application; called on the blocking thread that runs the action.
pub trait ActionHost: Send + Sync {
    /// Runs a query (internal ones included) at the latest snapshot.
    fn run_query(&self, path: &FunctionPath, args: Value) -> NestedCall;
    /// Runs a mutation (internal ones included) as its own transaction and waits for it.
    fn run_mutation(&self, path: &FunctionPath, args: Value) -> NestedCall;
    /// A variable of the app's environment; `Err` when the env files cannot be read.
    fn env_var(&self, name: &str) -> Result<Option<String>, String>;
}

/// The outcome of a query or mutation called from an action.
pub struct NestedCall {
    pub result: Result<Value, FunctionError>,
    pub log_lines: Vec<String>,
}

/// An incoming request, as the handler sees it.
#[derive(Debug, Clone, Default)]
pub struct HttpRequest {
    pub method: String,
    /// The full URL, `http://host/path?query`.
    pub url: String,
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    /// Lowercase names; repeated headers joined with `, `.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Who sent the request, from its `Authorization: Bearer` header.
#[derive(Debug, Clone)]
pub enum RequestIdentity {
    Anonymous,
    /// The UserIdentity object of a verified token.
    User(Value),
    /// The token was refused: the request still runs, `getUserIdentity()` throws this.
    Invalid(String),
}

/// What the handler returned: `#{ status: 200, headers: #{ ... }, body: ... }`. A string
/// body is sent as `text/plain`, a blob as `application/octet-stream`, anything else (map,
/// array, number, boolean) as JSON, unless the handler set `content-type` itself.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The outcome of one action.
pub struct ActionExecution {
    pub result: Result<HttpResponse, FunctionError>,
    pub log_lines: Vec<String>,
}

impl Modules {
    /// The routes of `functions/http.rhai`, if it exports a router.
    pub fn http_router(&self) -> Option<&HttpRouter> {
        self.module(HTTP_MODULE)?.http_router.as_ref()
    }

    /// Runs `route`'s handler for `request`. Blocking (Rhai, and the host's nested calls):
    /// call it on a blocking thread.
    pub fn run_http_action(
        self: &Arc<Self>,
        route: &HttpRoute,
        request: HttpRequest,
        identity: RequestIdentity,
        host: Arc<dyn ActionHost>,
        now_ms: f64,
    ) -> ActionExecution {
        let Some(module) = self.module(HTTP_MODULE) else {
            return ActionExecution {
                result: Err(FunctionError::new(
                    ErrorKind::NotFound,
                    "functions/http.rhai is not loaded",
                )),
                log_lines: Vec::new(),
            };
        };
        let user = match &identity {
            RequestIdentity::User(value) => Some(value.clone()),
            _ => None,
        };
        let exec = Arc::new(Exec::for_action(
            user,
            now_ms,
            self.clone(),
            format!("the HTTP action {}", route.describe()),
        ));
        let ctx = ActionCtx {
            exec: exec.clone(),
            host: host.clone(),
            identity: Arc::new(identity),
        };
        let outcome = {
            let _host = HostGuard::push(host);
            let _current = Enter::new(exec.clone());
            route.handler.call::<Dynamic>(
                &self.engine,
                &module.ast,
                (
                    Dynamic::from(ctx),
                    Dynamic::from(RequestHandle(Arc::new(request))),
                ),
            )
        };
        let result = match outcome {
            Ok(value) => response_from_dynamic(&value).map_err(|why| {
                FunctionError::new(
                    ErrorKind::Uncaught,
                    format!(
                        "{} (declared at {}): {why}",
                        route.describe(),
                        route.declared_at
                    ),
                )
            }),
            Err(e) => {
                let d = describe_error(&e, &module.file, None);
                Err(FunctionError {
                    kind: d.kind,
                    message: d.located(),
                    data: d.data,
                })
            }
        };
        let log_lines = std::mem::take(&mut *exec.logs.lock());
        ActionExecution { result, log_lines }
    }
}

thread_local! {
    /// The host of the action running on this thread, for `env()`, which has no `ctx`.
    static HOSTS: RefCell<Vec<Arc<dyn ActionHost>>> = const { RefCell::new(Vec::new()) };
}

struct HostGuard;

impl HostGuard {
    fn push(host: Arc<dyn ActionHost>) -> HostGuard {
        HOSTS.with(|h| h.borrow_mut().push(host));
        HostGuard
    }
}

impl Drop for HostGuard {
    fn drop(&mut self) {
        HOSTS.with(|h| {
            h.borrow_mut().pop();
        });
    }
}

/// `ctx` of an action.
#[derive(Clone)]
struct ActionCtx {
    exec: Arc<Exec>,
    host: Arc<dyn ActionHost>,
    identity: Arc<RequestIdentity>,
}

/// `ctx.auth` of an action.
#[derive(Clone)]
struct ActionAuth(Arc<RequestIdentity>);

/// `request`.
#[derive(Clone)]
struct RequestHandle(Arc<HttpRequest>);

impl RequestHandle {
    fn header(&self, name: &str) -> Option<&str> {
        self.0
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `Webhook(secret)`: a verifier holding the decoded secret.
#[derive(Clone)]
struct WebhookVerifier {
    verifier: Arc<webhook::Verifier>,
}

impl WebhookVerifier {
    fn new(secret: &Dynamic) -> HostResult<WebhookVerifier> {
        let secret = secret.clone().into_string().map_err(|found| {
            host_error(format!(
                "the webhook secret must be a string like \"whsec_...\", not {found}"
            ))
        })?;
        let verifier = webhook::Verifier::new(&secret).map_err(|e| host_error(e.to_string()))?;
        Ok(WebhookVerifier {
            verifier: Arc::new(verifier),
        })
    }

    /// Checks the signature against the raw body, then parses the body as JSON.
    fn verify(&self, request: &RequestHandle) -> HostResult<Dynamic> {
        let refused = |why: String| host_error(format!("webhook verification failed: {why}"));
        let headers = SignedHeaders::from_lookup(|name| request.header(name))
            .map_err(|e| refused(e.to_string()))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.verifier
            .verify(headers, &request.0.body, now)
            .map_err(|e| refused(e.to_string()))?;
        let json: serde_json::Value = serde_json::from_slice(&request.0.body)
            .map_err(|e| refused(format!("the payload is not JSON: {e}")))?;
        json_to_dynamic(&json, 0).map_err(refused)
    }
}

fn action_only(what: &str) -> HostResult<()> {
    let in_action = with_current(|exec| exec.kind == FunctionKind::HttpAction).unwrap_or(false);
    if in_action {
        Ok(())
    } else {
        Err(host_error(format!(
            "{what} is only available in HTTP actions (queries and mutations must be deterministic)"
        )))
    }
}

fn env_var(name: &str) -> HostResult<Option<String>> {
    action_only("env()")?;
    let host = HOSTS.with(|h| h.borrow().last().cloned());
    let host = host.ok_or_else(|| host_error("env() is only available in HTTP actions".into()))?;
    host.env_var(name)
        .map_err(|e| host_error(format!("env({name:?}): {e}")))
}

/// `ctx.runQuery` / `ctx.runMutation` from an action: through the host, each call its own
/// transaction. Time spent there is not the action's user time.
fn nested(ctx: &ActionCtx, path: &str, args: Dynamic, kind: FunctionKind) -> HostResult<Dynamic> {
    let args = from_dynamic(&args, "the arguments").map_err(host_error)?;
    let path = FunctionPath::parse(path);
    let started = Instant::now();
    let call = match kind {
        FunctionKind::Mutation => ctx.host.run_mutation(&path, args),
        _ => ctx.host.run_query(&path, args),
    };
    ctx.exec.add_db_time(started.elapsed());
    {
        let mut logs = ctx.exec.logs.lock();
        let room = MAX_LOG_LINES.saturating_sub(logs.len());
        logs.extend(call.log_lines.into_iter().take(room));
    }
    match call.result {
        Ok(value) => Ok(to_dynamic(&value)),
        // A structured error is re-thrown as its data, so `catch (e)` sees the same map the
        // callee threw.
        Err(FunctionError {
            data: Some(data), ..
        }) => Err(Box::new(EvalAltResult::ErrorRuntime(
            to_dynamic(&data),
            Position::NONE,
        ))),
        Err(error) => {
            let message = error
                .message
                .strip_prefix("Uncaught Error: ")
                .unwrap_or(&error.message);
            Err(host_error(format!("{path}: {message}")))
        }
    }
}

/// Plain JSON (numbers are float64, as in JavaScript) as a script value.
fn json_to_dynamic(json: &serde_json::Value, depth: usize) -> Result<Dynamic, String> {
    if depth > MAX_JSON_DEPTH {
        return Err(format!("the JSON is nested deeper than {MAX_JSON_DEPTH}"));
    }
    Ok(match json {
        serde_json::Value::Null => Dynamic::UNIT,
        serde_json::Value::Bool(b) => Dynamic::from_bool(*b),
        serde_json::Value::Number(n) => Dynamic::from_float(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::String(s) => Dynamic::from(ImmutableString::from(s.as_str())),
        serde_json::Value::Array(items) => Dynamic::from_array(
            items
                .iter()
                .map(|item| json_to_dynamic(item, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        serde_json::Value::Object(fields) => {
            let mut map = Map::new();
            for (k, v) in fields {
                map.insert(k.as_str().into(), json_to_dynamic(v, depth + 1)?);
            }
            Dynamic::from_map(map)
        }
    })
}

/// A value as plain JSON for a response body: int64 as a number, bytes as base64.
fn plain_json(value: &Value) -> serde_json::Value {
    use base64::Engine as _;
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Boolean(b) => serde_json::Value::Bool(*b),
        Value::Int64(i) => serde_json::Value::from(*i),
        Value::Float64(f) => serde_json::Number::from_f64(*f)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Bytes(b) => {
            serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        Value::Array(items) => serde_json::Value::Array(items.iter().map(plain_json).collect()),
        Value::Object(fields) => serde_json::Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), plain_json(v)))
                .collect(),
        ),
    }
}

const RESPONSE_SHAPE: &str =
    "#{ status: 200, headers: #{ \"content-type\": \"...\" }, body: \"text\" | blob | map }";

/// The handler's return value as a response.
fn response_from_dynamic(value: &Dynamic) -> Result<HttpResponse, String> {
    let value = value.flatten_clone();
    if !value.is_map() {
        return Err(format!(
            "an HTTP action must return a response like {RESPONSE_SHAPE}, not {}",
            value.type_name()
        ));
    }
    let map = value.cast::<Map>();
    if let Some(unknown) = map
        .keys()
        .find(|k| !["status", "headers", "body"].contains(&k.as_str()))
    {
        return Err(format!(
            "the response has an unknown field `{unknown}` (expected status, headers, body)"
        ));
    }
    let status = match map.get("status") {
        None => 200,
        Some(s) => {
            let code = s.as_int().ok().or_else(|| {
                s.as_float()
                    .ok()
                    .filter(|f| f.fract() == 0.0)
                    .map(|f| f as i64)
            });
            match code {
                Some(code @ 100..=599) => code as u16,
                _ => return Err(format!("the response status must be 100..599, not {s}")),
            }
        }
    };
    let mut headers = Vec::new();
    match map.get("headers") {
        None => {}
        Some(h) if h.is_unit() => {}
        Some(h) if h.is_map() => {
            for (name, value) in h.clone().cast::<Map>() {
                if value.is_unit() {
                    continue;
                }
                if value.is_map() || value.is_array() || value.is_blob() {
                    return Err(format!(
                        "the response header `{name}` must be a string, not {}",
                        value.type_name()
                    ));
                }
                headers.push((name.to_string(), value.to_string()));
            }
        }
        Some(h) => {
            return Err(format!(
                "the response headers must be a map like #{{ \"content-type\": \"text/plain\" }}, not {}",
                h.type_name()
            ));
        }
    }
    let (body, content_type) = match map.get("body") {
        None => (Vec::new(), None),
        Some(b) if b.is_unit() => (Vec::new(), None),
        Some(b) if b.is_string() => (
            b.clone().cast::<ImmutableString>().as_bytes().to_vec(),
            Some("text/plain; charset=utf-8"),
        ),
        Some(b) if b.is_blob() => (b.clone().cast::<Blob>(), Some("application/octet-stream")),
        Some(b) => {
            let value = from_dynamic(b, "the response body")?;
            (
                plain_json(&value).to_string().into_bytes(),
                Some("application/json"),
            )
        }
    };
    if let Some(content_type) = content_type
        && !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
    {
        headers.push(("content-type".to_string(), content_type.to_string()));
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// Registers the action-only API on `engine`.
pub(crate) fn register(engine: &mut Engine) {
    engine.register_type_with_name::<ActionCtx>("ActionCtx");
    engine.register_type_with_name::<ActionAuth>("ActionAuth");
    engine.register_type_with_name::<RequestHandle>("Request");
    engine.register_type_with_name::<WebhookVerifier>("Webhook");

    // ctx
    engine.register_get("db", |_: &mut ActionCtx| -> HostResult<Dynamic> {
        Err(host_error(
            "ctx.db is not available in an HTTP action; read with ctx.runQuery(\"module:query\", args) and write with ctx.runMutation(\"module:mutation\", args)".to_string(),
        ))
    });
    engine.register_get("auth", |ctx: &mut ActionCtx| {
        ActionAuth(ctx.identity.clone())
    });
    engine.register_fn("now", |ctx: &mut ActionCtx| ctx.exec.now_ms);
    engine.register_fn(
        "runQuery",
        |ctx: &mut ActionCtx, path: &str, args: Dynamic| {
            nested(ctx, path, args, FunctionKind::Query)
        },
    );
    engine.register_fn("runQuery", |ctx: &mut ActionCtx, path: &str| {
        nested(
            ctx,
            path,
            Dynamic::from_map(Map::new()),
            FunctionKind::Query,
        )
    });
    engine.register_fn(
        "runMutation",
        |ctx: &mut ActionCtx, path: &str, args: Dynamic| {
            nested(ctx, path, args, FunctionKind::Mutation)
        },
    );
    engine.register_fn("runMutation", |ctx: &mut ActionCtx, path: &str| {
        nested(
            ctx,
            path,
            Dynamic::from_map(Map::new()),
            FunctionKind::Mutation,
        )
    });
    engine.register_fn(
        "getUserIdentity",
        |auth: &mut ActionAuth| -> HostResult<Dynamic> {
            match auth.0.as_ref() {
                RequestIdentity::Anonymous => Ok(Dynamic::UNIT),
                RequestIdentity::User(value) => Ok(to_dynamic(value)),
                RequestIdentity::Invalid(message) => Err(host_error(message.clone())),
            }
        },
    );

    // request
    engine.register_get("method", |r: &mut RequestHandle| r.0.method.clone());
    engine.register_get("url", |r: &mut RequestHandle| r.0.url.clone());
    engine.register_get("path", |r: &mut RequestHandle| r.0.path.clone());
    engine.register_get("headers", |r: &mut RequestHandle| {
        let mut map = Map::new();
        for (name, value) in &r.0.headers {
            map.insert(name.as_str().into(), Dynamic::from(value.clone()));
        }
        map
    });
    engine.register_get("query", |r: &mut RequestHandle| {
        let mut map = Map::new();
        for pair in r.0.query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = percent_decode(name);
            // The first value wins, like URLSearchParams.get.
            map.entry(name.into())
                .or_insert_with(|| Dynamic::from(percent_decode(value)));
        }
        map
    });
    engine.register_fn("text", |r: &mut RequestHandle| {
        String::from_utf8_lossy(&r.0.body).into_owned()
    });
    engine.register_fn(
        "bytes",
        |call: NativeCallContext, r: &mut RequestHandle| -> HostResult<Blob> {
            // Rhai counts blob bytes against the sandbox's array-size cap; say so plainly
            // instead of a generic size error.
            let cap = call.engine().max_array_size();
            if cap > 0 && r.0.body.len() > cap {
                return Err(host_error(format!(
                    "request.bytes(): the body is {} bytes and the sandbox caps blobs at {cap}; use request.text() or request.json() for larger bodies",
                    r.0.body.len()
                )));
            }
            Ok(r.0.body.clone())
        },
    );
    engine.register_fn("json", |r: &mut RequestHandle| -> HostResult<Dynamic> {
        let json: serde_json::Value = serde_json::from_slice(&r.0.body)
            .map_err(|e| host_error(format!("request.json(): the body is not JSON: {e}")))?;
        json_to_dynamic(&json, 0).map_err(|e| host_error(format!("request.json(): {e}")))
    });

    // env
    engine.register_fn("env", |name: &str| -> HostResult<String> {
        env_var(name)?.ok_or_else(|| {
            host_error(format!(
                "the environment variable {name} is not set; add {name}=... to .env.local in the app folder (or the server's environment)"
            ))
        })
    });
    engine.register_fn(
        "env",
        |name: &str, default: Dynamic| -> HostResult<Dynamic> {
            Ok(env_var(name)?.map_or(default, Dynamic::from))
        },
    );

    // webhooks
    engine.register_fn("Webhook", |secret: Dynamic| {
        action_only("Webhook()")?;
        WebhookVerifier::new(&secret)
    });
    engine.register_fn(
        "verify",
        |verifier: &mut WebhookVerifier, request: RequestHandle| verifier.verify(&request),
    );
    engine.register_fn(
        "verifyWebhook",
        |secret: Dynamic, request: RequestHandle| -> HostResult<Dynamic> {
            action_only("verifyWebhook()")?;
            WebhookVerifier::new(&secret)?.verify(&request)
        },
    );
}

/// `+` and `%XX` decoding of one query-string name or value; invalid escapes stay as they are.
/// `+` becomes a space first, so `%2B` still decodes to a literal `+`; `percent-encoding`
/// decodes an escape only when both bytes after `%` are hex digits, so `%+41` is `%`, a space
/// and `41`.
fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(&text.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%41"), "A");
    }

    #[test]
    fn escapes_at_the_very_end_and_signs_in_escapes() {
        // An escape that ends the text is decoded (the last two bytes are its digits).
        assert_eq!(percent_decode("a%41"), "aA");
        assert_eq!(percent_decode("path%2F"), "path/");
        assert_eq!(percent_decode("caf%C3%A9"), "café");
        // One digit short of an escape stays as it is.
        assert_eq!(percent_decode("a%4"), "a%4");
        assert_eq!(percent_decode("%"), "%");
        // An escape needs two hex digits, so "%+41" is a literal '%', a space and "41" (not
        // byte 0x04 followed by "1", which a sign-accepting hex parse would give).
        assert_eq!(percent_decode("%+41"), "% 41");
        // A `+` written as an escape stays a `+`.
        assert_eq!(percent_decode("a%2Bb"), "a+b");
    }

    #[test]
    fn responses_from_maps() {
        let mut map = Map::new();
        map.insert("status".into(), Dynamic::from_int(201));
        map.insert("body".into(), Dynamic::from("hi"));
        let response = response_from_dynamic(&Dynamic::from_map(map)).expect("response");
        assert_eq!(response.status, 201);
        assert_eq!(response.body, b"hi");
        assert_eq!(
            response.headers,
            vec![(
                "content-type".to_string(),
                "text/plain; charset=utf-8".to_string()
            )]
        );

        let mut body = Map::new();
        body.insert("n".into(), Dynamic::from_int(3));
        let mut map = Map::new();
        map.insert("body".into(), Dynamic::from_map(body));
        let response = response_from_dynamic(&Dynamic::from_map(map)).expect("response");
        assert_eq!(response.status, 200);
        assert_eq!(response.body, br#"{"n":3}"#);

        assert!(response_from_dynamic(&Dynamic::from("text")).is_err());
        let mut bad = Map::new();
        bad.insert("status".into(), Dynamic::from_int(42));
        assert!(response_from_dynamic(&Dynamic::from_map(bad)).is_err());
    }
}
