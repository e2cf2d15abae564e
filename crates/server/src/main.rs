fn main() -> std::process::ExitCode {
    cairn_server::cli::main()
}
