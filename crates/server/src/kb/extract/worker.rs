//! The extraction worker: `cairn extract-worker`, started by the server (never by hand).
//! It reads documents from stdin and writes their text to stdout, one frame each
//! (see [`super::wire`]), until stdin closes. It runs with a memory ceiling of its own,
//! so that a document that makes a parser allocate without bound kills the worker and
//! not the server; the server also kills it when a document takes too long.

use std::io;
use std::process::ExitCode;

use cairn_core::kb::extract::{self, ExtractError, Limits};

use super::wire;

/// The extraction thread's stack: the depth limit keeps the converter's recursion far
/// below this (a level takes well under 4 KiB even unoptimised).
pub const STACK_BYTES: usize = 64 * 1024 * 1024;

/// What the server tells a worker at start (command-line flags).
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerArgs {
    #[arg(long)]
    pub max_depth: usize,
    #[arg(long)]
    pub max_nodes: usize,
    #[arg(long)]
    pub max_output_bytes: usize,
    /// The largest document the server may send.
    #[arg(long)]
    pub max_input_bytes: usize,
    /// Data-segment ceiling of this process, in MiB (0: none).
    #[arg(long, default_value_t = 0)]
    pub memory_mb: u64,
}

impl WorkerArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            max_depth: self.max_depth,
            max_nodes: self.max_nodes,
            max_output_bytes: self.max_output_bytes,
        }
    }
}

pub fn run(args: &WorkerArgs) -> ExitCode {
    if args.memory_mb > 0 {
        let bytes = args.memory_mb.saturating_mul(1024 * 1024);
        // RLIMIT_DATA covers the heap, anonymous mappings and thread stacks but not the
        // executable's own mapping (large: the built-in model is compiled in), and it is
        // enforced when memory is requested: an allocation beyond it fails and the
        // worker aborts, alone.
        if let Err(e) = rlimit::setrlimit(rlimit::Resource::DATA, bytes, bytes) {
            eprintln!("extract-worker: cannot set the memory limit: {e}");
            return ExitCode::FAILURE;
        }
    }
    let limits = args.limits();
    let max_input = args.max_input_bytes;
    let thread = std::thread::Builder::new()
        .name("extract".into())
        .stack_size(STACK_BYTES)
        .spawn(move || serve(&limits, max_input));
    match thread.map(std::thread::JoinHandle::join) {
        Ok(Ok(Ok(()))) => ExitCode::SUCCESS,
        Ok(Ok(Err(e))) => {
            eprintln!("extract-worker: {e}");
            ExitCode::FAILURE
        }
        _ => ExitCode::FAILURE,
    }
}

fn serve(limits: &Limits, max_input: usize) -> io::Result<()> {
    let mut input = io::stdin().lock();
    let mut output = io::stdout().lock();
    while let Some((tag, body)) = wire::read_frame(&mut input, max_input)? {
        let kind = wire::kind_from(tag).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unknown kind"))?;
        let reply = match std::str::from_utf8(&body) {
            Ok(text) => extract::extract(text, kind, limits),
            // The server checks UTF-8 before sending; a worker does not trust that.
            Err(_) => Err(ExtractError::Empty),
        };
        let (status, bytes) = wire::encode_reply(&reply);
        wire::write_frame(&mut output, status, &bytes)?;
    }
    Ok(())
}
