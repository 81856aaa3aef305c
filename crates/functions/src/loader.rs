//! Loading `functions/`: reading the module files, compiling them with the sandboxed engine,
//! and evaluating each once to collect what it exports. Every problem is a [`LoadError`] at
//! file:line:column, and all of them are reported together.
//!
//! `functions/todos.rhai` is module `todos`; `functions/admin/users.rhai` is `admin/users`.
//! Files and folders whose names start with `_` or `.` are skipped (`_generated/` holds
//! client code), and so are test files (`*.test.rhai`, read by [`read_test_dir`] for
//! `pulsebase test` only, never callable). A module's functions are its exported registrations:
//! `export const list = query(#{ args: #{}, handler: |ctx, args| { ... } });`

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;

use rhai::{Engine, Module, ParseError, Position, Scope};

use crate::definition::{FunctionDef, Registration};
use crate::error::{LoadError, LoadErrors};
use crate::error_report::describe_error;
use crate::http_router::{HTTP_MODULE, HttpRouter};
use crate::module_set::{LoadedModule, ModuleSet};
use crate::{hints, host_api, sandbox};

/// The source of one module.
#[derive(Clone, Debug)]
pub struct ModuleSource {
    /// Module path, e.g. `todos` or `admin/users`.
    pub module: String,
    /// How errors name the file, e.g. `functions/todos.rhai`.
    pub file: String,
    pub source: String,
}

/// The sandboxed engine with the whole host API.
pub(crate) fn engine() -> Engine {
    let mut engine = sandbox::new_engine();
    host_api::register(&mut engine);
    engine
}

/// How a test file's name ends: `functions/todos.test.rhai` tests module `todos`.
pub const TEST_FILE_SUFFIX: &str = ".test.rhai";

/// Whether `name` (a file name) is a test file, which is never a module.
pub fn is_test_file(name: &str) -> bool {
    name.ends_with(TEST_FILE_SUFFIX)
}

/// Which files a walk of `functions/` collects.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Collect {
    Modules,
    Tests,
}

/// Reads every module under `dir` (recursively); a missing folder has none.
pub(crate) fn read_dir(dir: &Path) -> Result<Vec<ModuleSource>, LoadErrors> {
    read_sources(dir, Collect::Modules)
}

/// Reads every test file (`*.test.rhai`) under `dir` (recursively); `module` is the module
/// the file is named after (`todos` for `todos.test.rhai`).
pub fn read_test_dir(dir: &Path) -> Result<Vec<ModuleSource>, LoadErrors> {
    read_sources(dir, Collect::Tests)
}

fn read_sources(dir: &Path, collect: Collect) -> Result<Vec<ModuleSource>, LoadErrors> {
    let mut sources = Vec::new();
    let mut errors = Vec::new();
    if dir.exists() {
        collect_sources(dir, dir, collect, &mut sources, &mut errors);
    }
    if errors.is_empty() {
        Ok(sources)
    } else {
        Err(LoadErrors(errors))
    }
}

/// Compiles and evaluates the given sources.
pub(crate) fn compile(sources: Vec<ModuleSource>) -> Result<ModuleSet, LoadErrors> {
    let engine = engine();
    let mut modules = BTreeMap::new();
    let mut errors = Vec::new();
    for source in sources {
        match load_module(&engine, source) {
            Ok(module) => {
                modules.insert(module.path.clone(), module);
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(ModuleSet::new(engine, modules))
    } else {
        Err(LoadErrors(errors))
    }
}

/// Hash of every module's path and source: equal fingerprints, same code.
pub(crate) fn fingerprint(set: &ModuleSet) -> u64 {
    let mut hasher = DefaultHasher::new();
    for module in set.modules() {
        (module.path.as_str(), module.source_hash).hash(&mut hasher);
    }
    hasher.finish()
}

fn collect_sources(
    root: &Path,
    dir: &Path,
    collect: Collect,
    sources: &mut Vec<ModuleSource>,
    errors: &mut Vec<LoadError>,
) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            errors.push(LoadError {
                file: dir.display().to_string(),
                line: 0,
                column: 0,
                message: format!("cannot read the directory: {e}"),
            });
            return;
        }
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with('_') || name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect_sources(root, &path, collect, sources, errors);
            continue;
        }
        if path.extension().and_then(|e| e.to_str()) != Some("rhai")
            || is_test_file(name) != (collect == Collect::Tests)
        {
            continue;
        }
        let relative = path.strip_prefix(root).unwrap_or(&path);
        let module_file = relative.with_file_name(
            name.strip_suffix(TEST_FILE_SUFFIX)
                .or_else(|| name.strip_suffix(".rhai"))
                .unwrap_or(name),
        );
        let module = module_file
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        let file = format!("functions/{}", relative.display());
        match std::fs::read_to_string(&path) {
            Ok(source) => sources.push(ModuleSource {
                module,
                file,
                source,
            }),
            Err(e) => errors.push(LoadError {
                file,
                line: 0,
                column: 0,
                message: format!("cannot read the file: {e}"),
            }),
        }
    }
}

fn at(file: &str, position: Position, message: String) -> LoadError {
    LoadError {
        file: file.to_string(),
        line: position.line().unwrap_or(0),
        column: position.position().unwrap_or(0),
        message,
    }
}

fn load_module(engine: &Engine, source: ModuleSource) -> Result<LoadedModule, LoadError> {
    let ModuleSource {
        module,
        file,
        source,
    } = source;
    let mut hasher = DefaultHasher::new();
    source.hash(&mut hasher);
    let source_hash = hasher.finish();

    let mut ast = engine
        .compile(&source)
        .map_err(|ParseError(kind, position)| {
            at(
                &file,
                position,
                format!("syntax error: {}", hints::explain_syntax(&kind.to_string())),
            )
        })?;
    ast.set_source(file.as_str());
    let evaluated = Module::eval_ast_as_new(Scope::new(), &ast, engine).map_err(|e| {
        let error = describe_error(&e, &file, None);
        // "Uncaught Error:" describes a failed call; here the module itself failed to load.
        let message = error
            .message
            .strip_prefix("Uncaught Error: ")
            .unwrap_or(&error.message);
        at(
            &file,
            error.position,
            format!("error while loading the module: {message}"),
        )
    })?;

    let mut functions = BTreeMap::new();
    let mut http_router = None;
    for (name, value) in evaluated.iter_var() {
        if let Some(registration) = value.clone().try_cast::<Registration>() {
            functions.insert(name.to_string(), FunctionDef::from(registration));
        } else if let Some(router) = value.clone().try_cast::<HttpRouter>() {
            http_router = Some(check_router(&file, &module, name, router, http_router)?);
        }
    }
    Ok(LoadedModule {
        path: module,
        file,
        source_hash,
        ast,
        functions,
        http_router,
    })
}

/// Routes are served from `functions/http.rhai` only, from one exported router.
fn check_router(
    file: &str,
    module: &str,
    name: &str,
    router: HttpRouter,
    previous: Option<HttpRouter>,
) -> Result<HttpRouter, LoadError> {
    let line = router.line;
    let error = |message: String| LoadError {
        file: file.to_string(),
        line,
        column: 1,
        message,
    };
    if module != HTTP_MODULE {
        return Err(error(format!(
            "`{name}` is an HTTP router; routes are served only from functions/{HTTP_MODULE}.rhai, so move it there"
        )));
    }
    if previous.is_some() {
        return Err(error(format!(
            "`{name}` is a second HTTP router; export one router and add every route to it"
        )));
    }
    Ok(router)
}
