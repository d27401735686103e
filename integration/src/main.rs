//! The `parevm` command line: replay historical blocks, run the consensus suite, benchmark.

/// jemalloc, counting allocations while `parevm bench` asks it to (see `parevm::alloc_count`).
#[global_allocator]
static GLOBAL: parevm::alloc_count::CountingAlloc<tikv_jemallocator::Jemalloc> =
    parevm::alloc_count::CountingAlloc(tikv_jemallocator::Jemalloc);

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
