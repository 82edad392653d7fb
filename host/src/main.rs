//! click2dial-host: the Linux service. For now it only checks that the core's validators load.

fn main() -> std::process::ExitCode {
    match click2dial_core::Validators::new() {
        Ok(_) => {
            println!("click2dial-host: validators loaded; the service itself is not built yet");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("click2dial-host: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
