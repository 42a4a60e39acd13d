fn main() -> std::process::ExitCode {
    quench::cli::main()
}
