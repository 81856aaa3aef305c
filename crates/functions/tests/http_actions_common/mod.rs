//! What the HTTP action tests share: a loader for `functions/http.rhai`, a recording
//! [`Recorder`] host, and helpers to build a request, run it and read the response.

// Each test file uses a part of these.
#![allow(dead_code)]

use std::sync::Arc;

use auth::Authorization;
use functions::{
    ActionExecution, ActionHost, ErrorKind, FetchRequest, FetchResponse, FunctionError,
    FunctionPath, HttpRequest, ModuleSource, Modules, NestedCall,
};
use parking_lot::Mutex;
use value::Value;

pub fn load(http: &str) -> Result<Arc<Modules>, functions::LoadErrors> {
    Modules::from_sources(vec![ModuleSource {
        module: "http".into(),
        file: "functions/http.rhai".into(),
        source: http.into(),
    }])
    .map(Arc::new)
}

/// Records nested calls; answers queries with their args and mutations with "done".
#[derive(Default)]
pub struct Recorder {
    pub calls: Mutex<Vec<(String, String, Value)>>,
    pub env: Vec<(&'static str, &'static str)>,
}

impl ActionHost for Recorder {
    fn run_query(&self, path: &FunctionPath, args: Value) -> NestedCall {
        self.calls
            .lock()
            .push(("query".into(), path.to_string(), args.clone()));
        if path.name() == "fails" {
            return NestedCall {
                result: Err(FunctionError::new(
                    ErrorKind::Uncaught,
                    "Uncaught Error: nope",
                )),
                log_lines: vec!["[LOG] 'inside'".into()],
            };
        }
        NestedCall {
            result: Ok(args),
            log_lines: Vec::new(),
        }
    }

    fn run_mutation(&self, path: &FunctionPath, args: Value) -> NestedCall {
        self.calls
            .lock()
            .push(("mutation".into(), path.to_string(), args));
        NestedCall {
            result: Ok(Value::from("done")),
            log_lines: Vec::new(),
        }
    }

    fn env_var(&self, name: &str) -> Result<Option<String>, String> {
        Ok(self
            .env
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string()))
    }

    fn fetch(&self, request: FetchRequest) -> Result<FetchResponse, String> {
        Err(format!("fetch to {} refused: no network here", request.url))
    }

    fn id_tables(&self) -> Arc<dyn schema::IdTables + Send + Sync> {
        Arc::new(NoTables)
    }
}

pub struct NoTables;
impl schema::IdTables for NoTables {
    fn table_of(&self, _: &str) -> Option<String> {
        None
    }
}

pub fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpRequest {
    HttpRequest {
        method: method.into(),
        url: format!("http://127.0.0.1:3210{path}"),
        path: path.into(),
        query: String::new(),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        body: body.to_vec(),
    }
}

pub fn run(
    modules: &Arc<Modules>,
    host: Arc<Recorder>,
    request: HttpRequest,
    authorization: Authorization,
) -> ActionExecution {
    let router = modules.http_router().expect("a router");
    let route = router
        .lookup(&request.method, &request.path)
        .expect("a route")
        .clone();
    modules.run_http_action(&route, request, authorization, host, 0.0)
}

pub fn body_text(execution: &ActionExecution) -> String {
    match &execution.result {
        Ok(response) => String::from_utf8_lossy(&response.body).into_owned(),
        Err(e) => panic!("the action failed: {}", e.message),
    }
}

pub fn load_error(source: &str) -> (usize, String) {
    let errors = load(source).err().expect("a load error");
    let first = &errors.0[0];
    assert_eq!(first.file, "functions/http.rhai");
    (first.line, first.message.clone())
}
