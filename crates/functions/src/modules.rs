//! [`Modules`]: every module of `functions/`, compiled and evaluated once, and the entry points
//! that run them. Immutable; a reload builds a new `Modules` and the server swaps the `Arc`, so
//! calls in flight finish on the version they started with.
//!
//! Loading is `loader.rs`, running a query or mutation `runner.rs`, an action `action.rs`,
//! an HTTP action `http_action.rs`; the compiled modules themselves are a `ModuleSet` (`module_set.rs`),
//! shared with the calls they run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use auth::{Authorization, Identity};
use database::Transaction;
use value::Value;

use crate::action::{self, ActionOutcome, ActionRun};
use crate::action_host::ActionHost;
use crate::definition::{Caller, FunctionDef, FunctionKind};
use crate::error::{FunctionError, LoadErrors};
use crate::file_host::FileHost;
use crate::http_action::{self, ActionCall, ActionExecution};
use crate::http_request::HttpRequest;
use crate::http_router::{HttpRoute, HttpRouter};
use crate::loader::{self, ModuleSource};
use crate::module_set::{LoadedModule, ModuleSet};
use crate::path::FunctionPath;
use crate::runner::{self, Call, Ran};
use crate::system;

/// All loaded modules and the engine that runs them.
pub struct Modules {
    set: Arc<ModuleSet>,
    /// The `functions/` folder these were loaded from, when loaded from disk.
    functions_dir: Option<PathBuf>,
    /// Hash of every module's path and source: equal fingerprints, same code.
    fingerprint: u64,
}

impl Modules {
    fn new(set: ModuleSet, functions_dir: Option<PathBuf>) -> Modules {
        Modules {
            fingerprint: loader::fingerprint(&set),
            set: Arc::new(set),
            functions_dir,
        }
    }

    /// An empty set (no functions directory).
    pub fn empty() -> Modules {
        Modules::new(ModuleSet::new(loader::engine(), BTreeMap::new()), None)
    }

    /// Reads every module under `dir` (recursively). All problems are reported together.
    pub fn load_dir(dir: &Path) -> Result<Modules, LoadErrors> {
        let set = loader::compile(loader::read_dir(dir)?)?;
        Ok(Modules::new(set, Some(dir.to_path_buf())))
    }

    /// Compiles and evaluates the given sources.
    pub fn from_sources(sources: Vec<ModuleSource>) -> Result<Modules, LoadErrors> {
        Ok(Modules::new(loader::compile(sources)?, None))
    }

    /// A fingerprint of the whole function set (every module's path and source). A query
    /// reaches other modules through `ctx.runQuery`, so a result is made by "this code" only
    /// while the whole set is unchanged.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The app folder (the parent of `functions/`), where `.env.local` and `.env` live;
    /// `None` for modules not loaded from disk.
    pub fn app_dir(&self) -> Option<&Path> {
        self.functions_dir.as_deref().and_then(Path::parent)
    }

    /// Gives `ctx.storage` its file storage; the application attaches it to every version of
    /// the functions it installs.
    pub fn attach_files(&self, files: Arc<dyn FileHost>) {
        self.set.attach_files(files);
    }

    /// Finds a function by canonical path.
    pub fn get(&self, path: &FunctionPath) -> Option<(&LoadedModule, &FunctionDef)> {
        self.set.get(path)
    }

    /// The compiled modules, for a call that builds its own execution (`t.run` in tests).
    pub(crate) fn module_set(&self) -> &Arc<ModuleSet> {
        &self.set
    }

    pub fn module(&self, path: &str) -> Option<&LoadedModule> {
        self.set.module(path)
    }

    pub fn modules(&self) -> impl Iterator<Item = &LoadedModule> {
        self.set.modules()
    }

    /// Every function, with its path.
    pub fn functions(&self) -> impl Iterator<Item = (FunctionPath, &FunctionDef)> {
        self.set.modules().flat_map(|m| {
            m.functions
                .iter()
                .map(move |(name, def)| (FunctionPath::new(&m.path, name), def))
        })
    }

    /// The kind of the function at `path`, the built-in `_system/` functions included.
    pub fn kind_of(&self, path: &FunctionPath) -> Option<FunctionKind> {
        if system::is_system(path) {
            return system::kind_of(path);
        }
        self.get(path).map(|(_, def)| def.kind)
    }

    /// Finds `path`, checking that it is a function of `kind` that `caller` may call.
    pub fn resolve(
        &self,
        path: &FunctionPath,
        kind: FunctionKind,
        caller: Caller,
    ) -> Result<(&LoadedModule, &FunctionDef), FunctionError> {
        self.set.resolve(path, kind, caller)
    }

    /// Runs a query or mutation with `txn` and gives the transaction back with the outcome.
    pub fn run(&self, call: Call, txn: Box<dyn Transaction + Send>) -> Ran {
        if system::is_system(&call.path) {
            return system::run(call, txn);
        }
        runner::run(&self.set, call, txn)
    }

    /// Runs an action as `caller` with `identity`; its `ctx` reaches data, the network and
    /// the environment through `host`. Blocking (Rhai, the network, the host's nested calls,
    /// for up to the action time limit): call it on a thread of its own.
    pub fn run_action(
        &self,
        path: &FunctionPath,
        caller: Caller,
        args: Value,
        identity: Option<Identity>,
        host: Arc<dyn ActionHost>,
        now_ms: f64,
    ) -> ActionOutcome {
        let run = ActionRun {
            path: path.clone(),
            caller,
            args,
            identity,
            host,
            now_ms,
        };
        action::run(&self.set, run)
    }

    /// The cron jobs `functions/crons.rhai` exports, in declaration order.
    pub fn crons(&self) -> &[crate::scheduled::crons::CronJob] {
        self.set.crons()
    }

    /// The routes of `functions/http.rhai`, if it exports a router.
    pub fn http_router(&self) -> Option<&HttpRouter> {
        self.set.http_router()
    }

    /// Runs `route`'s handler for `request`. Blocking (Rhai, and the host's nested calls):
    /// call it on a blocking thread.
    pub fn run_http_action(
        &self,
        route: &HttpRoute,
        request: HttpRequest,
        authorization: Authorization,
        host: Arc<dyn ActionHost>,
        now_ms: f64,
    ) -> ActionExecution {
        let call = ActionCall {
            request,
            authorization,
            host,
            now_ms,
        };
        http_action::run(&self.set, route, call)
    }
}
