//! The command line: `dev`, `serve`, `run`, `token`, `auth check`, `codegen`, `test`, `export`,
//! `import`, `backup`, `restore` (README.md,
//! "Commands"), and [`Mode`], which of `dev` and `serve` is running.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::action_args::ActionArgs;

#[derive(Parser)]
#[command(
    name = "pulsebase",
    version,
    about = "A reactive backend in one binary: Convex's protocol, Rhai functions, SQLite, OIDC auth."
)]
pub struct Cli {
    /// Log debug details (or set PULSEBASE_LOG, e.g. PULSEBASE_LOG=debug).
    #[arg(long, global = true)]
    pub verbose: bool,
    /// `text` for people, `json` for log collectors: one JSON object per line, including one
    /// per function execution (target `pulsebase::execution`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve the app in DIR and sync every change to functions/, schema.toml, auth.config.toml
    /// and .env files live; trusts the built-in dev issuer at /dev-issuer.
    Dev(ServeArgs),
    /// Serve the app in DIR for production: only auth.config.toml and .env files are reloaded.
    Serve(ServeArgs),
    /// Call a function (internal ones too) on the running server and print its result.
    Run(RunArgs),
    /// Print a token signed by the built-in dev issuer.
    Token(TokenArgs),
    /// Diagnose access tokens.
    #[command(subcommand)]
    Auth(AuthCommand),
    /// Write typed client code (`api.js`, `api.d.ts`, `dataModel.d.ts`) for the convex client.
    Codegen(CodegenArgs),
    /// Run the app's tests (functions/**/*.test.rhai), each on a fresh database with the app's schema.
    Test(TestArgs),
    /// Export a consistent snapshot of every table as a Convex-format ZIP.
    Export(ExportArgs),
    /// Import a Convex-format ZIP, or one table from .jsonl, .json or .csv.
    Import(ImportArgs),
    /// Copy the database and stored files into one file while the server runs.
    Backup(BackupArgs),
    /// Bring a backup back into an app directory.
    Restore(RestoreArgs),
}

#[derive(Args)]
pub struct ExportArgs {
    /// The app directory.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// The ZIP to write, or a folder for snapshot_<time>.zip [default: ./snapshot_<time>.zip].
    #[arg(long)]
    pub path: Option<PathBuf>,
    /// Also export stored files (under _storage/ in the ZIP).
    #[arg(long)]
    pub include_file_storage: bool,
    /// Ask this running server for the export instead of reading DIR's database.
    #[arg(long)]
    pub url: Option<String>,
}

#[derive(Args)]
pub struct ImportArgs {
    /// A .zip (Convex export format), .jsonl, .json (an array) or .csv file.
    pub file: PathBuf,
    /// The app directory.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// The table to import into (single-table files; for a ZIP, import only this table).
    #[arg(long)]
    pub table: Option<String>,
    /// Add to the documents already in the tables.
    #[arg(long, group = "mode")]
    pub append: bool,
    /// Replace the documents of the tables being imported.
    #[arg(long, group = "mode")]
    pub replace: bool,
    /// Replace the documents of every table, also those the import does not mention.
    #[arg(long, group = "mode")]
    pub replace_all: bool,
    /// The server to import through [default: the one running from DIR, else none: the
    /// database is opened directly].
    #[arg(long)]
    pub url: Option<String>,
}

#[derive(Args)]
pub struct BackupArgs {
    /// The backup file to write.
    pub file: PathBuf,
    /// The app directory.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
}

#[derive(Args)]
pub struct RestoreArgs {
    /// A file written by `pulsebase backup`.
    pub file: PathBuf,
    /// The app directory to restore into.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Replace the data already there (it is kept in .pulsebase/before-restore-<time>/).
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Clone)]
pub struct ServeArgs {
    /// The app directory (schema.toml, auth.config.toml, functions/).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Port to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 3210)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The SQLite database file [default: DIR/.pulsebase/data.sqlite3].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Store the app in PostgreSQL instead of SQLite: postgres://USER[:PASSWORD]@HOST:PORT/DB
    /// (a database of its own; files stay in DIR/.pulsebase/storage).
    #[arg(long, env = "PULSEBASE_DATABASE_URL", conflicts_with = "data")]
    pub database_url: Option<String>,
    /// Also serve this folder of static files at / (e.g. a built front-end).
    #[arg(long)]
    pub static_dir: Option<PathBuf>,
    #[command(flatten)]
    pub actions: ActionArgs,
    #[command(flatten)]
    pub limits: crate::limit_args::LimitArgs,
    /// Serve /metrics without the admin key (for a scraper that cannot send it).
    #[arg(long)]
    pub metrics_public: bool,
}

/// How logs are written to stderr.
#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum LogFormat {
    Text,
    Json,
}

/// Whether the server runs as `dev` (live sync of every app file, the dev issuer, typed client
/// code regenerated) or as `serve` (only the auth config and `.env` files are reloaded).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Dev,
    Serve,
}

#[derive(Args)]
pub struct RunArgs {
    /// The function, e.g. `users:getByClerkId`.
    pub function: String,
    /// Arguments as a JSON object [default: {}].
    pub args: Option<String>,
    /// The server [default: the one started from DIR, else http://127.0.0.1:3210].
    #[arg(long)]
    pub url: Option<String>,
    /// Run as this identity, e.g. '{"subject":"user_1","issuer":"https://example.com"}'.
    #[arg(long)]
    pub identity: Option<String>,
    /// The app directory, where .pulsebase/admin_key lives.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
}

#[derive(Args)]
pub struct TokenArgs {
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// The user id (`sub`).
    #[arg(long, default_value = "user_1")]
    pub sub: String,
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub email: Option<String>,
    /// Extra claims as a JSON object, e.g. '{"role":"admin"}' (iss, sub, aud, exp, iat and nbf are set by the issuer and refused here).
    #[arg(long)]
    pub claims: Option<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    pub ttl: u64,
    /// The server the token is for [default: the one started from DIR, else http://127.0.0.1:3210].
    #[arg(long)]
    pub url: Option<String>,
}

#[derive(Subcommand)]
pub enum AuthCommand {
    /// Decode a token and say, provider by provider, whether it is accepted and why not.
    Check(CheckArgs),
}

#[derive(Args)]
pub struct CheckArgs {
    /// The access token (JWT).
    pub token: String,
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
}

#[derive(Args)]
pub struct CodegenArgs {
    /// The app directory (schema.toml, functions/).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Where to write the files [default: DIR/functions/_generated].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Write nothing; exit with an error if the files in OUT are out of date.
    #[arg(long)]
    pub check: bool,
}

#[derive(Args)]
pub struct TestArgs {
    /// The app directory (schema.toml, functions/).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Run the tests again whenever a file of functions/ or schema.toml is saved.
    #[arg(long)]
    pub watch: bool,
    /// Run only the tests whose `module: name` contains this text.
    pub filter: Option<String>,
}
