fn main() -> std::process::ExitCode {
    flagrelay::tuning::limit_malloc_arenas();
    flagrelay::tuning::fix_mmap_threshold();
    flagrelay::cli::main()
}
