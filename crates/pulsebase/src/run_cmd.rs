//! `pulsebase run FUNCTION [ARGS_JSON]`: calls any function (internal ones too) on the
//! running server through `/api/function`, authorised by the admin key in
//! `.pulsebase/admin_key`, and prints the result as JSON.

use std::process::ExitCode;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::cli::RunArgs;
use crate::paths::AppPaths;

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let paths = AppPaths::new(&args.dir);
    let url = paths.server_url(args.url.as_deref());
    let key = paths.read_admin_key()?;
    let call_args: serde_json::Value = match &args.args {
        Some(text) => {
            serde_json::from_str(text).with_context(|| format!("ARGS_JSON is not JSON: {text}"))?
        }
        None => serde_json::json!({}),
    };
    anyhow::ensure!(
        call_args.is_object(),
        "ARGS_JSON must be a JSON object, like '{{\"clerkId\": \"user_1\"}}'"
    );
    let authorization = match &args.identity {
        Some(identity) => {
            let parsed: serde_json::Value = serde_json::from_str(identity)
                .with_context(|| format!("--identity is not JSON: {identity}"))?;
            anyhow::ensure!(
                parsed.is_object(),
                "--identity must be a JSON object with `issuer` and `subject` (or `tokenIdentifier`), like '{{\"subject\":\"user_1\",\"issuer\":\"https://example.com\"}}'"
            );
            format!("Convex {key}:{}", STANDARD.encode(parsed.to_string()))
        }
        None => format!("Convex {key}"),
    };
    let response = reqwest::Client::new()
        .post(format!("{url}/api/function"))
        .header("Authorization", authorization)
        .json(&serde_json::json!({ "path": args.function, "args": call_args, "format": "convex_encoded_json" }))
        .send()
        .await
        .with_context(|| format!("cannot reach the server at {url}: is `pulsebase dev` running? (or pass --url)"))?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.with_context(|| {
        format!("the server at {url} answered {status} with a body that is not JSON")
    })?;
    if !status.is_success() {
        eprintln!(
            "error: {}",
            body["message"].as_str().unwrap_or(&body.to_string())
        );
        return Ok(ExitCode::FAILURE);
    }
    for line in body["logLines"].as_array().into_iter().flatten() {
        eprintln!("{}", line.as_str().unwrap_or_default());
    }
    if body["status"] == "success" {
        println!("{}", serde_json::to_string_pretty(&body["value"])?);
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "error: {}",
            body["errorMessage"]
                .as_str()
                .unwrap_or("the function failed")
        );
        if !body["errorData"].is_null() {
            eprintln!("data: {}", body["errorData"]);
        }
        Ok(ExitCode::FAILURE)
    }
}
