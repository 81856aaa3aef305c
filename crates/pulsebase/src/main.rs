//! `pulsebase`: the one binary. Parses the command line (`cli.rs`) and hands off to the
//! command: `dev` / `serve` (`start.rs`, actions' options in `action_args.rs`), `run`
//! (`run_cmd.rs`), `token` and `auth check` (`auth_cmd.rs`), `codegen` (`codegen/`), `test`
//! (`test_cmd/`), `export` / `import` / `backup` / `restore` (`data_cmd.rs`). Wiring only; everything else lives in the library crates.

mod action_args;
mod auth_cmd;
mod cli;
mod codegen;
mod data_cmd;
mod file_events;
mod file_storage;
mod limit_args;
mod paths;
mod run_cmd;
mod scheduler_lease;
mod schema_file;
mod shutdown;
mod start;
mod test_cmd;
mod watch;

use clap::Parser;

/// mimalloc rather than the system allocator: Rhai, JSON and per-session buffers allocate
/// small objects from many threads, and glibc's malloc spent ~15% of a write-heavy server's
/// CPU on that (see ARCHITECTURE.md, "Dependencies worth a word").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Threads for queries and other blocking work (actions have threads of their own). They run scripts (CPU-bound, at
/// most 1 s each), so more threads than a few per core only add stacks and allocator heaps
/// (tokio's default of 512 cost ~150 MiB once 1,000 clients subscribed at the same moment).
const MAX_BLOCKING_THREADS: usize = 16;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    init_tracing(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            cli::Command::Dev(args) => start::run(args, cli::Mode::Dev).await,
            cli::Command::Serve(args) => start::run(args, cli::Mode::Serve).await,
            cli::Command::Run(args) => run_cmd::run(args).await,
            cli::Command::Token(args) => auth_cmd::token(args),
            cli::Command::Auth(cli::AuthCommand::Check(args)) => auth_cmd::check(args).await,
            cli::Command::Codegen(args) => codegen::run(args),
            cli::Command::Test(args) => test_cmd::run(args).await,
            cli::Command::Export(args) => data_cmd::export(args).await,
            cli::Command::Import(args) => data_cmd::import(args).await,
            cli::Command::Backup(args) => data_cmd::backup(args).await,
            cli::Command::Restore(args) => data_cmd::restore(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_tracing(cli: &cli::Cli) {
    // `pulsebase test` opens and closes a database per test: its lifecycle lines would bury
    // the test report, so that command logs warnings and errors only.
    let default = match (&cli.command, cli.verbose) {
        (_, true) => "debug",
        (cli::Command::Test(_), false) => "warn",
        _ => "info",
    };
    // Function executions are logged one event each (target `pulsebase::execution`): in JSON
    // for log collectors, and left out of the text log, which is for people.
    let executions = match cli.log_format {
        cli::LogFormat::Json => "info",
        cli::LogFormat::Text => "off",
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("PULSEBASE_LOG").unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(format!(
                "{default},hyper=warn,reqwest=warn,rustls=warn,pulsebase::execution={executions}"
            ))
        });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        cli::LogFormat::Json => builder.json().with_current_span(false).init(),
        cli::LogFormat::Text => builder.with_target(false).compact().init(),
    }
}
