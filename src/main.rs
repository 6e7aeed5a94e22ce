//! The `formwork` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use formwork::config::{Cli, Command};
use formwork::store::Db;

/// mimalloc instead of the system allocator: request handling allocates many small, short-lived
/// values (JSON documents, SQL text), where glibc malloc showed up as about 13% of a profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    formwork::telemetry::init();
    let result = match cli.command {
        None => formwork::app::serve(cli.serve).await,
        Some(Command::Serve(config)) => formwork::app::serve(*config).await,
        Some(Command::Migrate(config)) => match Db::connect(&config).await {
            Ok(db) => db.migrate().await.map(|()| println!("migrations applied")),
            Err(e) => Err(e),
        },
        Some(Command::Backup(args)) => {
            formwork::store::backup::backup(&args.database.database_url, &args.file)
                .await
                .map(|report| {
                    println!(
                        "backup written to {} ({} bytes)",
                        report.file.display(),
                        report.bytes
                    );
                })
        }
        Some(Command::Restore(args)) => {
            formwork::store::backup::restore(&args.database.database_url, &args.file)
                .await
                .map(|report| {
                    println!(
                        "restored {} ({} bytes){}",
                        report.file.display(),
                        report.bytes,
                        report
                            .previous
                            .map(|p| format!("; the database before is kept as {}", p.display()))
                            .unwrap_or_default()
                    );
                })
        }
        Some(Command::Check(args)) => {
            let report = formwork::check::run(&args.paths);
            for problem in &report.problems {
                println!("{problem}");
            }
            println!(
                "checked {} definitions in {} bundles: {} problems",
                report.definitions,
                report.bundles,
                report.problems.len()
            );
            return if report.problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("formwork: {e}");
            ExitCode::from(2)
        }
    }
}
