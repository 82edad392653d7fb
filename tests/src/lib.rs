//! End-to-end test support. The PBX simulator and the process-level tests arrive with the host.
