fn main() -> std::process::ExitCode {
    flagrelay::cli::main()
}
