//! What a module declares: [`FunctionDef`]s built by `query(...)`, `mutation(...)`,
//! `action(...)`, their `internal...` twins and `httpAction(...)` at load time, and who may
//! call them ([`Visibility`], [`Caller`]).

use auth::Authorization;
use rhai::{FnPtr, Position};
use schema::{ObjectType, Type};

/// The kinds of user function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FunctionKind {
    Query,
    Mutation,
    /// Not a transaction: reaches data through `ctx.runQuery`/`ctx.runMutation` and the
    /// outside world through `fetch`; runs on the application's action threads.
    Action,
    HttpAction,
}

impl FunctionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FunctionKind::Query => "query",
            FunctionKind::Mutation => "mutation",
            FunctionKind::Action => "action",
            FunctionKind::HttpAction => "HTTP action",
        }
    }

    /// The kind with its article, for messages: "a query", "an action".
    pub fn with_article(self) -> &'static str {
        match self {
            FunctionKind::Query => "a query",
            FunctionKind::Mutation => "a mutation",
            FunctionKind::Action => "an action",
            FunctionKind::HttpAction => "an HTTP action",
        }
    }
}

/// Whether clients may call the function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Visibility {
    Public,
    /// Callable only from other functions, actions, HTTP actions and the admin endpoint.
    Internal,
}

/// Who is calling, which decides whether internal functions are visible.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    /// A client over WebSocket or the public HTTP API: public functions only.
    Client,
    /// The admin endpoint, actions, HTTP actions and other functions: internal functions too.
    Trusted,
}

impl From<&Authorization> for Caller {
    /// The admin key sees internal functions; users and anonymous clients do not.
    fn from(authorization: &Authorization) -> Caller {
        if authorization.is_admin() {
            Caller::Trusted
        } else {
            Caller::Client
        }
    }
}

/// The value `query(#{ args, returns, handler })` evaluates to; becomes a [`FunctionDef`]
/// when the module exports it.
#[derive(Clone)]
pub(crate) struct Registration {
    pub kind: FunctionKind,
    pub visibility: Visibility,
    pub args: Option<ObjectType>,
    pub returns: Option<Type>,
    pub handler: FnPtr,
    /// Where `query(...)` (or its kind) was called.
    pub declared_at: Position,
}

/// One exported function.
#[derive(Clone)]
pub struct FunctionDef {
    pub kind: FunctionKind,
    pub visibility: Visibility,
    /// Argument validators; `None` when the function declared none (any object accepted).
    pub args: Option<ObjectType>,
    /// Result validator, when declared.
    pub returns: Option<Type>,
    pub(crate) handler: FnPtr,
    /// Where the function was declared; errors without a line of their own (time and call
    /// depth limits) point here.
    pub(crate) declared_at: Position,
}

impl FunctionDef {
    /// The line of `functions/FILE.rhai` where the function is declared (1-based; 0 if unknown).
    pub fn line(&self) -> usize {
        self.declared_at.line().unwrap_or(0)
    }
}

impl From<Registration> for FunctionDef {
    fn from(r: Registration) -> Self {
        FunctionDef {
            kind: r.kind,
            visibility: r.visibility,
            args: r.args,
            returns: r.returns,
            handler: r.handler,
            declared_at: r.declared_at,
        }
    }
}
