//! `podium serve`'s building blocks: submission intake for teams (issue 17).
//!
//! * [`archive`]: packing a submission folder for upload, and unpacking an upload while
//!   trusting nothing in it.
//! * [`store`]: the teams, their tokens' hashes and the queue, in SQLite.
//! * [`intake`]: an upload, from the quota check to a queued submission.
//! * [`queue`]: the workers that run each submission as a round of its own.
//! * [`lock`]: one server per data folder.
//! * [`http`] and [`pages`]: the JSON API and the pages.
//! * [`client`]: `podium submit`.

pub mod archive;
pub mod client;
pub mod http;
pub mod intake;
pub mod lock;
pub mod pages;
pub mod queue;
pub mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::challenge::split::CaseSelection;
use crate::challenge::Challenge;
use crate::error::{Error, Result};

/// What `podium serve` was asked for.
pub struct ServeOptions {
    pub challenge_dir: PathBuf,
    pub phase: String,
    pub data: PathBuf,
    pub listen: SocketAddr,
    /// Submissions evaluated at once.
    pub workers: usize,
    /// Options every round's `podium run` gets (backend, jobs).
    pub run_args: Vec<String>,
    /// Rank on the private split (the end of a hidden phase).
    pub final_split: bool,
    pub limits: intake::IntakeLimits,
}

/// Runs the server until SIGINT or SIGTERM. Rounds still running then stop with it (they keep
/// their finished cases) and are resumed by the next start.
pub fn serve(options: ServeOptions) -> Result<()> {
    let challenge = Challenge::load(&options.challenge_dir)?;
    challenge.phase(&options.phase)?;
    let lock = Arc::new(lock::DataLock::acquire(&options.data)?);
    let store = store::Store::open(&options.data)?;
    let phase = Arc::new(intake::Phase {
        challenge,
        phase: options.phase.clone(),
        data: options.data.clone(),
    });
    intake::clear_incoming(&phase)?;
    let queue = Arc::new(queue::Queue::new(store)?);
    let settings = Arc::new(queue::RunSettings {
        podium: std::env::current_exe()
            .map_err(|e| Error::msg(format!("cannot find the podium program: {e}")))?,
        run_args: options.run_args.clone(),
    });
    let app = Arc::new(http::App::new(
        Arc::clone(&queue),
        Arc::clone(&phase),
        options.limits,
    ));
    let selection = if options.final_split {
        CaseSelection::Private
    } else {
        CaseSelection::Public
    };
    {
        let app = Arc::clone(&app);
        std::thread::spawn(move || keep_board_current(&app, selection));
    }
    for _ in 0..options.workers.max(1) {
        let (queue, phase, settings, lock) = (
            Arc::clone(&queue),
            Arc::clone(&phase),
            Arc::clone(&settings),
            Arc::clone(&lock),
        );
        std::thread::spawn(move || queue::work(queue, phase, settings, lock));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::msg(format!("cannot start the server's threads: {e}")))?;
    runtime.block_on(listen(app, options.listen))
}

/// Rebuilds the leaderboard at start and after every round.
fn keep_board_current(app: &http::App, selection: CaseSelection) {
    let mut seen = None;
    loop {
        let now = app.queue.rounds_done.load(Ordering::SeqCst);
        if seen != Some(now) {
            seen = Some(now);
            match build_board(app, selection) {
                Ok(board) => *app.board.write().unwrap_or_else(|e| e.into_inner()) = board,
                Err(e) => eprintln!("podium serve: the leaderboard: {e}"),
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The phase leaderboard of the rounds folder, as `podium leaderboard DIR` computes it.
pub fn build_board(app: &http::App, selection: CaseSelection) -> Result<http::Board> {
    let rounds = app.phase.rounds_dir();
    let finished = std::fs::read_dir(&rounds)
        .map(|entries| {
            entries.flatten().any(|e| {
                e.path().join("run.json").is_file() && e.path().join("round.json").is_file()
            })
        })
        .unwrap_or(false);
    if !finished {
        return Ok(http::Board {
            json: "[]\n".into(),
            html_table: String::new(),
            built_unix: crate::pipeline::now_unix(),
        });
    }
    let (outcome, _) = crate::rounds::phase_leaderboard(&rounds, selection, None)?;
    let rows = crate::report::leaderboard::read(&outcome.out_dir)?;
    let json = crate::report::leaderboard::render(
        &outcome.out_dir,
        &rows,
        crate::report::leaderboard::Format::Json,
    )?;
    let plain: Vec<_> = rows.iter().map(|r| r.row.clone()).collect();
    Ok(http::Board {
        json,
        html_table: pages::leaderboard_table(&plain),
        built_unix: crate::pipeline::now_unix(),
    })
}

/// Connections served at once; more wait in the listen queue.
const MAX_CONNECTIONS: usize = 512;

async fn listen(app: Arc<http::App>, address: SocketAddr) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| Error::msg(format!("cannot listen on {address}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::msg(e.to_string()))?;
    // The first line on stdout: a test or a script reads the address from it.
    println!("podium serve: listening on http://{bound}");
    eprintln!("podium serve: teams submit with `podium submit --server http://{bound} --token TOKEN DIR`; Ctrl-C stops (queued and running submissions continue at the next start)");
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut stop = std::pin::pin!(shutdown_signal());
    loop {
        let accept = std::pin::pin!(listener.accept());
        let accepted = match futures_util::future::select(accept, &mut stop).await {
            futures_util::future::Either::Left((accepted, _)) => accepted,
            futures_util::future::Either::Right(_) => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                eprintln!("podium serve: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                http::handle(Arc::clone(&app), peer, request)
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(http::HEADER_TIMEOUT)
                .max_buf_size(64 * 1024)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = connection.await;
            drop(permit);
        });
    }
    app.queue.stopping.store(true, Ordering::SeqCst);
    eprintln!("podium serve: stopped; queued and running submissions continue at the next start");
    Ok(())
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let (sender, receiver) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        if let Ok(mut signals) = signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
        ]) {
            if signals.forever().next().is_some() {
                let _ = sender.send(());
            }
        }
    });
    let _ = receiver.await;
}
