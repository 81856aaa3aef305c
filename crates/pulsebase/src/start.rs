//! `pulsebase dev` and `pulsebase serve`: load the app (schema, functions, auth config),
//! open the database, bind the port, print the ready line, watch files, serve until Ctrl-C.
//!
//! Startup refuses a broken app with the full report (there is no last good version yet);
//! later edits that break it are reported and the running version keeps serving.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use application::App;
use authenticator::{Authenticator, AuthenticatorOptions, DevIssuer};
use database::Database;
use functions::Modules;
use server::ServerState;
use tokio::net::TcpListener;

use crate::cli::{Mode, ServeArgs};
use crate::paths::{AppPaths, write_private};
use crate::schema_file::{self, SchemaFile};
use crate::{codegen, file_storage, scheduler_lease, shutdown, watch};

pub async fn run(args: ServeArgs, mode: Mode) -> anyhow::Result<ExitCode> {
    let paths = AppPaths::new(&args.dir);
    anyhow::ensure!(
        args.dir.is_dir(),
        "{} is not a directory; pass the app folder with --dir",
        args.dir.display()
    );
    let started = std::time::Instant::now();
    let fd_limit = guard::raise_fd_limit().unwrap_or(1024);
    let guard_config = args.limits.guard_config(fd_limit)?;

    let SchemaFile { schema, text } = schema_file::load(&paths.schema())?;
    let data = args.data.clone().unwrap_or_else(|| paths.database());
    let data_path = data.clone();
    let durability = args.limits.durability;
    let database_url = args.database_url.clone();
    let opened = match &database_url {
        Some(_) => "in PostgreSQL".to_string(),
        None => data.display().to_string(),
    };
    let (db, report) = tokio::task::spawn_blocking(move || match database_url {
        Some(url) => {
            let (storage, writer) = pgstore::open(&url)?;
            tracing::info!("storing the app in {}", storage.describe());
            Database::start(storage, writer, schema, &text)
        }
        None => Database::open_with(&data, schema, &text, durability),
    })
    .await
    .context("opening the database")?
    .map_err(|e| match &e {
        database::DbError::Unavailable { kind, detail } => anyhow::anyhow!(
            "cannot open the database {opened}: {kind} ({detail}); {}",
            kind.remedy()
        ),
        _ => anyhow::Error::new(e).context(format!("opening the database {opened}")),
    })?;
    if !report.is_empty() {
        tracing::info!("schema applied: {report}");
    }
    let modules = Modules::load_dir(&paths.functions())
        .map_err(|errors| anyhow::anyhow!("functions/ does not load:\n{errors}"))?;
    let n_functions = modules.functions().count();
    let action_options = args.actions.options(mode == Mode::Dev)?;
    tracing::info!(
        "fetch() in actions may reach {}",
        action_options.network.describe()
    );
    let app = App::with_actions(db, modules, action_options);
    if mode == Mode::Dev {
        codegen::dev_regenerate(&paths.dir, &app);
    }

    let auth_config =
        authenticator::load_auth_config(&paths.dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let auth = Arc::new(
        Authenticator::new(auth_config, AuthenticatorOptions::new(&paths.dir))
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    );

    let listener = TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("cannot listen on {}:{} (is another server running? pass --port 0 for any free port)", args.host, args.port))?;
    let port = listener.local_addr()?.port();
    let url = format!("http://{}:{port}", args.host);
    file_storage::enable(&app, &data_path, &url).await?;
    scheduler_lease::start(&app).await?;

    let dev_issuer = if mode == Mode::Dev {
        let state_dir = paths.state.clone();
        let issuer = tokio::task::spawn_blocking(move || DevIssuer::load_or_create(&state_dir))
            .await
            .context("loading the dev issuer key")?
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Some(issuer)
    } else {
        None
    };

    let admin_key = paths.ensure_admin_key()?;
    tracing::info!(
        "limits: {} connections (descriptor limit {fd_limit}), request headers within {} s, commits {}",
        guard_config.max_connections,
        guard_config.header_timeout.as_secs_f64(),
        durability.as_str()
    );
    let shutdown_timeout = guard_config.shutdown_timeout;
    let mut state = ServerState::new(app.clone(), auth.clone(), admin_key.clone())
        .with_static_dir(args.static_dir.clone())
        .with_guard(guard::Guard::new(guard_config))
        .with_metrics_public(args.metrics_public);
    if let Some(issuer) = dev_issuer {
        state = state.with_dev_issuer(issuer, format!("{url}/dev-issuer"));
    }
    let hub = state.hub().clone();
    let db_app = app.clone();
    let state = Arc::new(state);
    write_private(
        &paths.server_info(),
        &serde_json::json!({ "url": url, "port": port, "pid": std::process::id() }).to_string(),
    )?;
    let _watcher =
        watch::start(&paths, mode, app, hub, auth).context("starting the file watcher")?;

    println!(
        "Pulsebase {} is serving {} at {url} ({n_functions} functions, ready in {} ms)",
        if mode == Mode::Dev { "dev" } else { "serve" },
        args.dir.display(),
        started.elapsed().as_millis()
    );
    if mode == Mode::Dev {
        // A local dev server: the link signs in at once (the key is in the fragment, which the
        // browser never sends to a server).
        println!("  dashboard:  {url}/_dashboard/#adminKey={admin_key}");
    } else {
        println!(
            "  dashboard:  {url}/_dashboard/   (sign in with the admin key in {})",
            paths.admin_key().display()
        );
    }
    if mode == Mode::Dev {
        println!(
            "  dev issuer: {url}/dev-issuer   (pulsebase token --dir {} --sub user_1)",
            args.dir.display()
        );
    }
    use std::io::Write as _;
    let _ = std::io::stdout().flush();

    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel();
    let signal = async move {
        shutdown::signal().await;
        let _ = signalled_tx.send(std::time::Instant::now());
    };
    server::serve(listener, state, signal).await?;
    let deadline = signalled_rx
        .await
        .unwrap_or_else(|_| std::time::Instant::now())
        + shutdown_timeout;
    shutdown::finish(&db_app, deadline).await;
    let _ = std::fs::remove_file(paths.server_info());
    Ok(ExitCode::SUCCESS)
}
