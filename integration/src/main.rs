//! The `parevm` command line: replay historical blocks, run the consensus suite, benchmark.

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
