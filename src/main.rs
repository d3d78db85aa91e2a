fn main() -> std::process::ExitCode {
    acura_ha::cli::main()
}
