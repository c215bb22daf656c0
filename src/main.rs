fn main() -> std::process::ExitCode {
    flagrelay::tuning::limit_malloc_arenas();
    flagrelay::cli::main()
}
