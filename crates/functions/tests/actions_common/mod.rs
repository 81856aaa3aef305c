//! What the action tests share: the `acts` and `data` modules, a recording [`Host`], and
//! helpers to run an action and read its outcome.

// Each test file uses a part of these.
#![allow(dead_code)]

use std::sync::Arc;

use auth::Identity;
use functions::{
    ActionHost, ActionOutcome, Caller, FetchRequest, FetchResponse, FunctionError, FunctionPath,
    ModuleSource, Modules, NestedCall,
};
use parking_lot::Mutex;
use value::{Object, Value};

pub const ACTIONS: &str = r#"
export const echo = action(#{
    args: #{ text: "string" },
    returns: "object{ text: string, twice: string }",
    handler: |ctx, args| {
        print("echoing " + args.text);
        #{ text: args.text, twice: args.text + args.text }
    }
});

export const hidden = internalAction(|ctx, args| "secret");

export const badResult = action(#{ args: #{}, returns: "number", handler: |ctx, args| "text" });

export const store = action(#{
    args: #{ n: "number" },
    handler: |ctx, args| {
        let seen = ctx.runQuery("data:get", #{ n: args.n });
        let written = ctx.runMutation("data:put", #{ n: args.n });
        #{ seen: seen, written: written }
    }
});

export const outer = action(|ctx, args| {
    print("outer");
    let inner = ctx.runAction("acts:inner", #{ x: 2 });
    #{ inner: inner, me: ctx.auth.getUserIdentity() }
});

export const inner = internalAction(#{
    args: #{ x: "number" },
    handler: |ctx, args| {
        print("inner");
        #{ doubled: args.x * 2.0, me: ctx.auth.getUserIdentity() }
    }
});

export const recurse = action(|ctx, args| ctx.runAction("acts:recurse", #{}));

export const throwsData = action(|ctx, args| { throw #{ code: "NOPE", n: 1.5 }; });

export const catchesInner = action(|ctx, args| {
    // try/catch is a statement in Rhai, not an expression: keep what the catch sees.
    let code = ();
    try { ctx.runAction("acts:throwsData"); } catch (e) { code = e.code; }
    code
});

export const useDb = action(|ctx, args| ctx.db.query("todos").collect());
export const useScheduler = action(|ctx, args| ctx.scheduler);

export const fetchIt = action(|ctx, args| {
    let response = fetch(args.url, args.options);
    #{
        status: response.status,
        ok: response.ok,
        statusText: response.statusText,
        url: response.url,
        type: response.headers["content-type"],
        json: response.json(),
        text: response.text(),
    }
});

export const fetchPlain = action(|ctx, args| fetch(args.url).status);
export const fetchText = action(|ctx, args| fetch(args.url).json());
"#;

pub const DATA: &str = r#"
export const get = internalQuery(|ctx, args| ctx.runAction("acts:hidden"));
export const viaQuery = query(|ctx, args| fetch("http://example.com/").status);
"#;

/// Records nested calls and fetches; answers fetches with a canned JSON response.
#[derive(Default)]
pub struct Host {
    pub calls: Mutex<Vec<String>>,
    pub fetches: Mutex<Vec<FetchRequest>>,
}

pub struct NoTables;
impl schema::IdTables for NoTables {
    fn table_of(&self, _: &str) -> Option<String> {
        None
    }
}

impl ActionHost for Host {
    fn run_query(&self, path: &FunctionPath, args: Value) -> NestedCall {
        self.calls.lock().push(format!("query {path}"));
        NestedCall {
            result: Ok(args),
            log_lines: vec!["[LOG] 'from the query'".into()],
        }
    }

    fn run_mutation(&self, path: &FunctionPath, _: Value) -> NestedCall {
        self.calls.lock().push(format!("mutation {path}"));
        NestedCall {
            result: Ok(Value::from("written")),
            log_lines: Vec::new(),
        }
    }

    fn env_var(&self, _: &str) -> Result<Option<String>, String> {
        Ok(None)
    }

    fn fetch(&self, request: FetchRequest) -> Result<FetchResponse, String> {
        if request.url.contains("refused") {
            return Err(format!(
                "fetch to {} refused: 10.0.0.1 is a private address",
                request.url
            ));
        }
        let url = request.url.clone();
        self.fetches.lock().push(request);
        let body = if url.contains("not-json") {
            "<html>"
        } else {
            r#"{"a":[1,2]}"#
        };
        Ok(FetchResponse {
            status: 201,
            status_text: "Created".into(),
            url: format!("{url}#final"),
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        })
    }

    fn id_tables(&self) -> Arc<dyn schema::IdTables + Send + Sync> {
        Arc::new(NoTables)
    }
}

pub fn modules() -> Modules {
    Modules::from_sources(vec![
        ModuleSource {
            module: "acts".into(),
            file: "functions/acts.rhai".into(),
            source: ACTIONS.into(),
        },
        ModuleSource {
            module: "data".into(),
            file: "functions/data.rhai".into(),
            source: DATA.into(),
        },
    ])
    .expect("the modules load")
}

pub fn args(pairs: &[(&str, Value)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<Object>(),
    )
}

pub fn run_as(
    host: &Arc<Host>,
    path: &str,
    a: Value,
    caller: Caller,
    identity: Option<Identity>,
) -> ActionOutcome {
    modules().run_action(
        &FunctionPath::parse(path),
        caller,
        a,
        identity,
        host.clone(),
        0.0,
    )
}

pub fn run(host: &Arc<Host>, path: &str, a: Value) -> ActionOutcome {
    run_as(host, path, a, Caller::Client, None)
}

pub fn error(outcome: ActionOutcome) -> FunctionError {
    outcome.result.expect_err("the action should fail")
}

pub fn field<'a>(value: &'a Value, name: &str) -> &'a Value {
    value
        .as_object()
        .and_then(|o| o.get(name))
        .unwrap_or_else(|| panic!("no field {name} in {}", value.to_json()))
}
