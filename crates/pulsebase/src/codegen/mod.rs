//! `pulsebase codegen`: typed client code for the app, as Convex's `convex/_generated/`.
//!
//! Writes three files into `DIR/functions/_generated/` (or `--out`), a folder the functions
//! loader skips:
//! - `api.js`: `api` and `internal`, plain objects of function references built with
//!   `makeFunctionReference` from `convex/server`, so the official client accepts them
//!   (`useQuery(api.todos.getMyTodos)`); `admin/users.rhai` becomes `api.admin.users.NAME`.
//! - `api.d.ts`: their types, `FunctionReference<"query" | "mutation" | "action", visibility,
//!   Args, Returns>`, with `Args` from each function's argument validators and `Returns` from
//!   its `returns` validator (`any` when it declares none; `doc<todos>` becomes `Doc<"todos">`).
//! - `dataModel.d.ts`: `TableNames`, `Id<"todos">`, `Doc<"todos">` and `DataModel`, from
//!   `schema.toml`; every document type has `_id` and `_creationTime`.
//!
//! HTTP actions have no client reference and are left out. `pulsebase dev` regenerates the
//! files at startup and after every successful sync of `functions/` or `schema.toml`
//! ([`dev_regenerate`]); a file is rewritten only when its content changes.
//!
//! Inside: `namespace.rs` collects the references, `js.rs` writes `api.js`, `dts.rs` the two
//! declaration files, `types.rs` spells validators as TypeScript types, and `syntax.rs` holds
//! the literals, keys and header every file shares.

mod dts;
mod js;
mod namespace;
mod syntax;
mod types;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use application::App;
use functions::{FunctionKind, Modules};
use schema::Schema;

use self::namespace::References;
use self::types::TypeContext;
use crate::cli::CodegenArgs;
use crate::paths::AppPaths;
use crate::schema_file;

/// The generated files, in the order they are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    pub files: Vec<GeneratedFile>,
}

/// One generated file: its name in the output folder and its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    pub name: &'static str,
    pub text: String,
}

/// The default output folder of an app.
pub fn default_out(dir: &Path) -> PathBuf {
    AppPaths::new(dir).functions().join("_generated")
}

/// `pulsebase codegen [--dir DIR] [--out DIR] [--check]`.
pub fn run(args: CodegenArgs) -> anyhow::Result<ExitCode> {
    let paths = AppPaths::new(&args.dir);
    anyhow::ensure!(
        args.dir.is_dir(),
        "{} is not a directory; pass the app folder with --dir",
        args.dir.display()
    );
    let modules = Modules::load_dir(&paths.functions())
        .map_err(|errors| anyhow::anyhow!("functions/ does not load:\n{errors}"))?;
    let schema = schema_file::load(&paths.schema())?.schema;
    let generated = generate(&modules, &schema);
    let out = args.out.unwrap_or_else(|| default_out(&args.dir));
    let n_functions = modules
        .functions()
        .filter(|(_, def)| def.kind != FunctionKind::HttpAction)
        .count();
    if args.check {
        let stale = stale_files(&out, &generated);
        if stale.is_empty() {
            println!("✓ {} is up to date", out.display());
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!(
            "✗ {} is out of date ({}); run `pulsebase codegen --dir {} --out {}`",
            out.display(),
            stale.join(", "),
            args.dir.display(),
            out.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    let written = write(&out, &generated)?;
    println!(
        "✓ {} in {} ({n_functions} functions, {} tables)",
        if written.is_empty() {
            "generated code unchanged".to_string()
        } else {
            format!("wrote {}", written.join(", "))
        },
        out.display(),
        schema.tables.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// Regenerates `DIR/functions/_generated/` from the app's live functions and schema; used by
/// `pulsebase dev` at startup and after each successful sync. Returns the files rewritten, so
/// the sync line can say so (one line per sync); a failure is a warning only.
pub fn dev_regenerate(dir: &Path, app: &App) -> Vec<&'static str> {
    let modules = app.modules();
    let catalog = app.db().catalog();
    let generated = generate(&modules, &catalog.schema);
    let out = default_out(dir);
    match write(&out, &generated) {
        Ok(written) => {
            if !written.is_empty() {
                tracing::debug!("codegen: wrote {} in {}", written.join(", "), out.display());
            }
            written
        }
        Err(e) => {
            eprintln!("⚠ codegen: {e:#} (the server keeps running)");
            Vec::new()
        }
    }
}

/// Writes the files that changed (via a temporary file and a rename, so a bundler watching
/// the folder never reads half a file); returns the names written.
pub fn write(out: &Path, generated: &Generated) -> anyhow::Result<Vec<&'static str>> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut written = Vec::new();
    for GeneratedFile { name, text } in &generated.files {
        let path = out.join(name);
        if std::fs::read_to_string(&path).is_ok_and(|old| old == *text) {
            continue;
        }
        let tmp = out.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(*name);
    }
    Ok(written)
}

/// The files whose content on disk differs from `generated`.
fn stale_files(out: &Path, generated: &Generated) -> Vec<&'static str> {
    generated
        .files
        .iter()
        .filter(|file| {
            std::fs::read_to_string(out.join(file.name)).ok().as_ref() != Some(&file.text)
        })
        .map(|file| file.name)
        .collect()
}

/// Builds the three files.
pub fn generate(modules: &Modules, schema: &Schema) -> Generated {
    let References { public, internal } = References::collect(modules);
    let tables = TypeContext { schema };
    let file = |name, text| GeneratedFile { name, text };
    Generated {
        files: vec![
            file("api.js", js::api_js(&public, &internal)),
            file("api.d.ts", dts::api_dts(&public, &internal, &tables)),
            file("dataModel.d.ts", dts::data_model_dts(schema, &tables)),
        ],
    }
}

#[cfg(test)]
mod tests;
