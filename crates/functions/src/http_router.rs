//! HTTP routes: what `functions/http.rhai` declares with `httpRouter()`, and the lookup of the
//! route an incoming request takes. Mirrors Convex's `httpRouter()`:
//!
//! ```rhai
//! export const http = httpRouter()
//!     .route(#{ path: "/clerk-users-webhook", method: "POST", handler: httpAction(|ctx, request| { ... }) })
//!     .route(#{ pathPrefix: "/files/", method: "GET", handler: httpAction(|ctx, request| { ... }) });
//! ```
//!
//! Every mistake in a declaration is a load error at the `.route(...)` call's file:line:
//! a path outside `/` or inside the server's reserved space (`/api`, `/dev-issuer`), an
//! unknown method, a prefix not ending in `/`, a duplicate route, a handler that is not an
//! HTTP action. Lookup takes an exact `path` first, then the longest matching `pathPrefix`.

use rhai::{FnPtr, Map, NativeCallContext};

use crate::definition::{FunctionKind, Registration};
use crate::host_error::{HostResult, host_error_at};

/// The module that may declare routes.
pub const HTTP_MODULE: &str = "http";

/// Methods a route may name (Convex's set).
const METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Path spaces the server itself answers; no route may reach into them.
const RESERVED: [&str; 2] = ["/api", "/dev-issuer"];

/// Whether `path` belongs to the server's reserved space (`/api`, `/api/...`, `/dev-issuer...`).
pub fn is_reserved_path(path: &str) -> bool {
    RESERVED.iter().any(|reserved| {
        path.strip_prefix(reserved)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// How a route matches a request path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathMatcher {
    /// `path: "/exact"`.
    Exact(String),
    /// `pathPrefix: "/files/"`: every path that starts with it.
    Prefix(String),
}

impl PathMatcher {
    fn describe(&self) -> String {
        match self {
            PathMatcher::Exact(p) => p.clone(),
            PathMatcher::Prefix(p) => format!("{p}*"),
        }
    }
}

/// One declared route.
#[derive(Clone)]
pub struct HttpRoute {
    pub method: String,
    pub matcher: PathMatcher,
    /// Where it was declared, for logs: `functions/http.rhai:12`.
    pub declared_at: String,
    pub(crate) handler: FnPtr,
}

impl HttpRoute {
    /// `POST /clerk-users-webhook`, for logs and errors.
    pub fn describe(&self) -> String {
        format!("{} {}", self.method, self.matcher.describe())
    }
}

/// The value `httpRouter()` evaluates to; `.route(...)` adds to it and returns it, so calls
/// chain. The module exports it (`export const http = httpRouter()...`).
#[derive(Clone, Default)]
pub struct HttpRouter {
    routes: Vec<(HttpRoute, usize)>,
    /// The line of the `httpRouter()` call, for load errors about the router itself.
    pub(crate) line: usize,
}

impl HttpRouter {
    /// What `httpRouter()` returns: no routes yet, declared at `line`.
    pub(crate) fn new(line: usize) -> HttpRouter {
        HttpRouter {
            routes: Vec::new(),
            line,
        }
    }

    pub fn routes(&self) -> impl Iterator<Item = &HttpRoute> {
        self.routes.iter().map(|(route, _)| route)
    }

    /// The route for `method` and `path`: an exact path first, then the longest prefix.
    /// `Err` says why nothing matched (shown in the 404).
    pub fn lookup(&self, method: &str, path: &str) -> Result<&HttpRoute, String> {
        // `//api/x` reaches the server's own routes after normalisation, so it is reserved too.
        if is_reserved_path(&format!("/{}", path.trim_start_matches('/'))) {
            return Err(format!("{path} is reserved for the server"));
        }
        let exact = self
            .routes()
            .filter(|r| matches!(&r.matcher, PathMatcher::Exact(p) if p == path));
        let prefixed = self.routes().filter(
            |r| matches!(&r.matcher, PathMatcher::Prefix(p) if path.starts_with(p.as_str())),
        );
        let mut candidates: Vec<&HttpRoute> = exact.collect();
        let mut by_prefix: Vec<&HttpRoute> = prefixed.collect();
        by_prefix.sort_by_key(|r| match &r.matcher {
            PathMatcher::Prefix(p) => std::cmp::Reverse(p.len()),
            PathMatcher::Exact(_) => std::cmp::Reverse(usize::MAX),
        });
        candidates.extend(by_prefix);
        if let Some(route) = candidates.iter().find(|r| r.method == method) {
            return Ok(route);
        }
        if candidates.is_empty() {
            Err(format!(
                "no HTTP route in functions/http.rhai matches {path}"
            ))
        } else {
            let mut methods: Vec<&str> = candidates.iter().map(|r| r.method.as_str()).collect();
            methods.dedup();
            Err(format!(
                "the routes for {path} in functions/http.rhai accept {}, not {method}",
                methods.join(", ")
            ))
        }
    }

    /// `.route(#{ path | pathPrefix, method, handler })`; a mistake is a load error at the
    /// call's position.
    pub(crate) fn add(&mut self, call: &NativeCallContext, spec: Map) -> HostResult<HttpRouter> {
        let position = call.call_position();
        let fail = |message: String| host_error_at(message, position);
        if let Some(unknown) = spec
            .keys()
            .find(|k| !["path", "pathPrefix", "method", "handler"].contains(&k.as_str()))
        {
            return Err(fail(format!(
                "route: unknown option `{unknown}` (expected path or pathPrefix, method, handler)"
            )));
        }
        let text =
            |key: &str| -> HostResult<Option<String>> {
                match spec.get(key) {
                    None => Ok(None),
                    Some(v) => v.clone().into_string().map(Some).map_err(|found| {
                        fail(format!("route: `{key}` must be a string, not {found}"))
                    }),
                }
            };
        let matcher = match (text("path")?, text("pathPrefix")?) {
            (Some(path), None) => PathMatcher::Exact(path),
            (None, Some(prefix)) => {
                if !prefix.ends_with('/') {
                    return Err(fail(format!(
                        "route: pathPrefix {prefix:?} must end with `/` (e.g. \"{prefix}/\")"
                    )));
                }
                PathMatcher::Prefix(prefix)
            }
            (Some(_), Some(_)) => {
                return Err(fail(
                    "route: give either `path` (exact) or `pathPrefix`, not both".to_string(),
                ));
            }
            (None, None) => {
                return Err(fail(
                    "route: needs `path: \"/exact\"` or `pathPrefix: \"/prefix/\"`".to_string(),
                ));
            }
        };
        let (PathMatcher::Exact(path) | PathMatcher::Prefix(path)) = &matcher;
        if !path.starts_with('/') {
            return Err(fail(format!(
                "route: the path {path:?} must start with `/`"
            )));
        }
        let reaches_reserved = match &matcher {
            PathMatcher::Exact(p) => is_reserved_path(p),
            // "/" stays allowed as a catch-all: lookup never hands reserved paths to routes.
            PathMatcher::Prefix(p) => p != "/" && is_reserved_path(p.trim_end_matches('/')),
        };
        if reaches_reserved {
            return Err(fail(format!(
                "route: {path} is inside the server's reserved paths (/api/..., /dev-issuer/...); choose another path"
            )));
        }
        let method = text("method")?
            .ok_or_else(|| fail("route: needs `method`, e.g. method: \"POST\"".to_string()))?;
        let method = method.to_ascii_uppercase();
        if !METHODS.contains(&method.as_str()) {
            return Err(fail(format!(
                "route: method {method:?} is not one of {}",
                METHODS.join(", ")
            )));
        }
        let handler = match spec.get("handler") {
            Some(h) if h.is::<Registration>() => {
                let registration = h.clone().cast::<Registration>();
                if registration.kind != FunctionKind::HttpAction {
                    return Err(fail(format!(
                        "route: the handler is a {}; wrap the handler in httpAction(|ctx, request| ...)",
                        registration.kind.as_str()
                    )));
                }
                registration.handler
            }
            Some(h) if h.is::<FnPtr>() => h.clone().cast::<FnPtr>(),
            _ => {
                return Err(fail(
                    "route: needs `handler: httpAction(|ctx, request| { ... })`".to_string(),
                ));
            }
        };
        let line = position.line().unwrap_or(0);
        if let Some((_, first)) = self
            .routes
            .iter()
            .find(|(r, _)| r.method == method && r.matcher == matcher)
        {
            return Err(fail(format!(
                "route: {method} {} is already declared at line {first}",
                matcher.describe()
            )));
        }
        let file = call.call_source().unwrap_or("functions/http.rhai");
        self.routes.push((
            HttpRoute {
                method,
                matcher,
                declared_at: format!("{file}:{line}"),
                handler,
            },
            line,
        ));
        Ok(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_paths() {
        for reserved in [
            "/api",
            "/api/",
            "/api/query",
            "/dev-issuer",
            "/dev-issuer/x",
        ] {
            assert!(is_reserved_path(reserved), "{reserved}");
        }
        for free in [
            "/",
            "/apis",
            "/api-docs",
            "/clerk-users-webhook",
            "/dev-issuers",
        ] {
            assert!(!is_reserved_path(free), "{free}");
        }
    }
}
