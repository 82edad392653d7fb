//! The control listener: tests (in another process) make the simulator play a softphone's
//! INVITE to the click-to-dial extension, one line each way.
//!
//! ```text
//! > invite 1002 X-Teleforge-Callee=0820001234 X-Teleforge-Outbound-Id=27820001234 X-Teleforge-Contact-Ref=crm-77
//! < dial 1779960000.0
//! ```
//!
//! A request is `invite <endpoint> [<Header>=<value>]… [cancel=<n>]`: header values are
//! percent-decoded (`%20` is a space); `cancel=<n>` makes the caller hang up while the
//! service's command number `n` (from 0) is in flight. The answer comes once the FastAGI
//! session is over (a dialled call then plays on):
//!
//! | answer | meaning |
//! |---|---|
//! | `dial <uniqueid>` | the dialplan dials `C2D_CALLEE`; `<uniqueid>` is the agent channel's |
//! | `reject cause=<q850> reason=<C2D_REJECT_REASON, spaces as %20, or ->` | the caller is hung up |
//! | `cancelled <uniqueid>` | the caller hung up during the AGI |
//! | `agi-failed` | no FastAGI service answered (`AGISTATUS=FAILURE`); the caller gets 21 |
//! | `error <text>` | the request line was not understood |
//!
//! A connection may send any number of requests, one at a time.

use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tracing::warn;

use super::hub::Shared;
use super::webrtc::{invite, parse_invite};

/// Serves control connections until the task is dropped.
pub(crate) async fn serve(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(connection(Arc::clone(&shared), stream));
            }
            Err(e) => {
                warn!(error = %e, "control accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection(shared: Arc<Shared>, stream: TcpStream) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let answer = match parse_invite(line.trim()) {
            Ok(request) => {
                let fastagi = shared.config.fastagi;
                invite(Arc::clone(&shared), fastagi, request)
                    .await
                    .to_string()
            }
            Err(e) => format!("error {e}"),
        };
        if write
            .write_all(format!("{answer}\n").as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
}
