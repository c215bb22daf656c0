fn main() -> std::process::ExitCode {
    flagrelay::tuning::limit_malloc_arenas();
    flagrelay::tuning::fix_malloc_thresholds();
    flagrelay::cli::main()
}
