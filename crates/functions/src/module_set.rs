//! [`ModuleSet`]: the compiled modules and the engine that runs them, which is all a running
//! call needs to find and call another function (`ctx.runQuery`, `ctx.runMutation`). `Modules`
//! (`modules.rs`) wraps it with what only loading and deploys need.
//!
//! Two rules live here: [`ModuleSet::resolve`] decides who may call what (internal functions
//! are invisible to clients), and [`ModuleSet::call`] carries the call depth across nested
//! calls, so the depth limit holds through `ctx.runQuery` recursion too.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use rhai::{AST, Dynamic, Engine, EvalAltResult, NativeCallContext};

use crate::definition::{Caller, FunctionDef, FunctionKind, Visibility};
use crate::error::{ErrorKind, FunctionError};
use crate::file_host::FileHost;
use crate::http_router::{HTTP_MODULE, HttpRouter};
use crate::path::FunctionPath;

/// One loaded module.
pub struct LoadedModule {
    pub path: String,
    pub file: String,
    /// Hash of the source, to tell which modules a reload changed.
    pub source_hash: u64,
    pub(crate) ast: AST,
    pub functions: BTreeMap<String, FunctionDef>,
    /// The routes `functions/http.rhai` exports (`httpRouter()...`).
    pub(crate) http_router: Option<HttpRouter>,
}

/// Every loaded module, by module path, and the engine they were compiled for.
pub(crate) struct ModuleSet {
    engine: Engine,
    modules: BTreeMap<String, LoadedModule>,
    /// File storage for `ctx.storage`, attached once by the application.
    files: OnceLock<Arc<dyn FileHost>>,
}

impl ModuleSet {
    pub(crate) fn new(engine: Engine, modules: BTreeMap<String, LoadedModule>) -> ModuleSet {
        ModuleSet {
            engine,
            modules,
            files: OnceLock::new(),
        }
    }

    /// Attaches file storage (a second attach keeps the first).
    pub(crate) fn attach_files(&self, files: Arc<dyn FileHost>) {
        let _ = self.files.set(files);
    }

    /// File storage, when the application attached it.
    pub(crate) fn files(&self) -> Option<&Arc<dyn FileHost>> {
        self.files.get()
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn module(&self, path: &str) -> Option<&LoadedModule> {
        self.modules.get(path)
    }

    pub(crate) fn modules(&self) -> impl Iterator<Item = &LoadedModule> {
        self.modules.values()
    }

    /// Finds a function by canonical path.
    pub(crate) fn get(&self, path: &FunctionPath) -> Option<(&LoadedModule, &FunctionDef)> {
        let module = self.modules.get(path.module())?;
        Some((module, module.functions.get(path.name())?))
    }

    /// The routes of `functions/http.rhai`, if it exports a router.
    pub(crate) fn http_router(&self) -> Option<&HttpRouter> {
        self.module(HTTP_MODULE)?.http_router.as_ref()
    }

    /// Finds `path`, checking that it is a function of `kind` that `caller` may call.
    pub(crate) fn resolve(
        &self,
        path: &FunctionPath,
        kind: FunctionKind,
        caller: Caller,
    ) -> Result<(&LoadedModule, &FunctionDef), FunctionError> {
        let not_found = |why: String| {
            FunctionError::new(
                ErrorKind::NotFound,
                format!("Could not find public function for '{path}': {why}"),
            )
        };
        let Some(module) = self.module(path.module()) else {
            return Err(not_found(format!(
                "there is no module functions/{}.rhai",
                path.module()
            )));
        };
        // Internal functions stay unnamed to clients: to them, one is exactly as absent as a
        // function that does not exist (Convex answers the same).
        let exported = || {
            let names: Vec<&str> = module
                .functions
                .iter()
                .filter(|(_, d)| caller == Caller::Trusted || d.visibility == Visibility::Public)
                .map(|(name, _)| name.as_str())
                .collect();
            not_found(format!(
                "{} does not export `{}` (it exports: {})",
                module.file,
                path.name(),
                if names.is_empty() {
                    "nothing".to_string()
                } else {
                    names.join(", ")
                }
            ))
        };
        let Some(def) = module.functions.get(path.name()) else {
            return Err(exported());
        };
        if def.visibility == Visibility::Internal && caller == Caller::Client {
            tracing::info!(
                function = %path,
                "a client called internal {} {path}; answered as not found (internal functions are callable from other functions, actions, HTTP actions and `pulsebase run`)",
                def.kind.as_str()
            );
            return Err(FunctionError {
                kind: ErrorKind::InternalFunction,
                ..exported()
            });
        }
        if def.kind != kind {
            return Err(FunctionError::new(
                ErrorKind::NotFound,
                format!(
                    "'{path}' is {}, not {}; call it as {}",
                    def.kind.with_article(),
                    kind.with_article(),
                    def.kind.with_article()
                ),
            ));
        }
        Ok((module, def))
    }

    /// Calls a function's handler closure. Rhai's call depth starts at `level` (the depth of
    /// the `ctx.runQuery`/`ctx.runMutation` call that got here, 0 at the top), so the depth
    /// limit counts across nested calls: each nested handler would otherwise start again at 0,
    /// and recursion through `ctx.runQuery` would overflow the thread's stack and take the
    /// server down. The call position is the `query(...)` declaration, which is where errors
    /// Rhai does not locate itself (time and depth limits) point.
    pub(crate) fn call(
        &self,
        module: &LoadedModule,
        def: &FunctionDef,
        level: usize,
        mut args: [Dynamic; 2],
    ) -> Result<Dynamic, Box<EvalAltResult>> {
        let mut global = self.engine.new_global_runtime_state();
        global.lib.push(module.ast.shared_lib().clone());
        global.source = Some(module.file.as_str().into());
        global.level = level;
        let context = NativeCallContext::new_with_all_fields(
            &self.engine,
            def.handler.fn_name(),
            None,
            &global,
            def.declared_at,
        );
        def.handler.call_raw(&context, None, &mut args)
    }
}
