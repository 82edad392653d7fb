//! One manager connection, as Asterisk 22's `manager.c` runs it: banner, actions answered in
//! order, events of every call delivered once logged in.

use std::sync::Arc;

use click2dial_core::ami::{Decoder, Frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use super::action::{self, Action};
use super::call::Call;
use super::hub::{Bytes, EventMask, Shared, Subscription};
use super::render::now_secs_micros;

/// What Asterisk 22 sends first (its AMI version is 11.0.0).
pub(crate) const BANNER: &[u8] = b"Asterisk Call Manager/11.0.0\r\n";

/// How long Asterisk waits before answering a failed login.
const LOGIN_FAILURE_DELAY_MS: u64 = 1_000;

/// A response as `astman_send_response_full` writes it: `Response`, `ActionID` when the
/// action had one, `Message`.
pub(crate) fn response(status: &str, action_id: Option<&str>, message: &str) -> Vec<u8> {
    let mut out = format!("Response: {status}\r\n");
    if let Some(id) = action_id {
        out.push_str(&format!("ActionID: {id}\r\n"));
    }
    out.push_str(&format!("Message: {message}\r\n\r\n"));
    out.into_bytes()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
}

struct Session {
    shared: Arc<Shared>,
    events: mpsc::UnboundedSender<Bytes>,
    subscription: Option<Subscription>,
    username: Option<String>,
}

/// Serves one connection until the client leaves, logs off or fails to log in.
pub(crate) async fn serve(shared: Arc<Shared>, stream: TcpStream) {
    let peer = stream
        .peer_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    debug!(%peer, "manager connection");
    if let Err(e) = run(shared, stream).await {
        debug!(%peer, error = %e, "manager connection ended");
    }
}

async fn run(shared: Arc<Shared>, stream: TcpStream) -> std::io::Result<()> {
    let (mut reader, mut writer) = stream.into_split();
    writer.write_all(BANNER).await?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
    let mut session = Session {
        shared,
        events: tx,
        subscription: None,
        username: None,
    };
    let mut decoder = Decoder::without_banner();
    let mut buf = Vec::with_capacity(4096);
    loop {
        tokio::select! {
            // Events queued before an action arrived go out before its answer.
            biased;
            Some(event) = rx.recv() => writer.write_all(&event).await?,
            read = reader.read_buf(&mut buf) => {
                if read? == 0 {
                    return Ok(());
                }
                loop {
                    let (action, len) = match decoder.decode(&buf) {
                        Ok(Some(decoded)) => match decoded.frame {
                            Frame::Message(m) => (Some(Action::new(&m)), decoded.len),
                            Frame::Banner(_) => (None, decoded.len),
                        },
                        Ok(None) => break,
                        Err(e) => {
                            warn!(error = %e, "unreadable action: closing");
                            return Ok(());
                        }
                    };
                    buf.drain(..len);
                    let Some(action) = action else { continue };
                    if session.handle(&action, &mut writer).await? == Flow::Close {
                        writer.shutdown().await?;
                        return Ok(());
                    }
                }
            }
        }
    }
}

impl Session {
    async fn handle(&mut self, action: &Action, out: &mut OwnedWriteHalf) -> std::io::Result<Flow> {
        let id = action.action_id();
        let name = action.get("Action");
        let is = |n: &str| name.eq_ignore_ascii_case(n);
        if name.is_empty() {
            // A frame with no header at all (a stray empty line) is skipped, like Asterisk.
            if action != &Action::default() {
                out.write_all(&response("Error", id, "Missing action in request"))
                    .await?;
            }
            return Ok(Flow::Continue);
        }
        if self.username.is_none() && !(is("Login") || is("Logoff") || is("Challenge")) {
            out.write_all(&response("Error", id, "Permission denied"))
                .await?;
            return Ok(Flow::Continue);
        }
        if is("Login") {
            return self.login(action, out).await;
        }
        if !self.shared.config.pbx().allows(name) {
            out.write_all(&response("Error", id, "Permission denied"))
                .await?;
            return Ok(Flow::Continue);
        }
        if is("ListCommands") {
            out.write_all(&self.shared.config.pbx().list_commands(id))
                .await?;
            return Ok(Flow::Continue);
        }
        if is("ShowDialPlan") {
            let context = action.get("Context");
            let extension = Some(action.get("Extension")).filter(|e| !e.is_empty());
            let answer = self
                .shared
                .config
                .pbx()
                .show_dialplan(id, context, extension);
            out.write_all(&answer).await?;
            return Ok(Flow::Continue);
        }
        if is("Logoff") {
            out.write_all(&response("Goodbye", id, "Thanks for all the fish."))
                .await?;
            info!(user = self.username.as_deref(), "logoff");
            return Ok(Flow::Close);
        }
        if is("Ping") {
            let mut pong = String::from("Response: Success\r\n");
            if let Some(id) = id {
                pong.push_str(&format!("ActionID: {id}\r\n"));
            }
            pong.push_str(&format!(
                "Ping: Pong\r\nTimestamp: {}\r\n\r\n",
                now_secs_micros()
            ));
            out.write_all(pong.as_bytes()).await?;
            return Ok(Flow::Continue);
        }
        if is("CoreShowChannels") {
            // Written in one piece: no event comes between the list's lines, as in Asterisk.
            let (answer, channels) = self.shared.channels.list(id);
            info!(action = "CoreShowChannels", channels, "channels listed");
            out.write_all(&answer).await?;
            return Ok(Flow::Continue);
        }
        if is("Originate") {
            return self.originate(action, out).await;
        }
        if is("Hangup") {
            out.write_all(&self.hangup(action)).await?;
            return Ok(Flow::Continue);
        }
        // Logged, so a test can tell which PBX was asked (e.g. a `Hangup` of a channel).
        info!(
            action = name,
            channel = action.get("Channel"),
            "action not simulated"
        );
        let message = format!(
            "Invalid/unknown command: {name}. Use Action: ListCommands to show available commands."
        );
        out.write_all(&response("Error", id, &message)).await?;
        Ok(Flow::Continue)
    }

    async fn login(&mut self, action: &Action, out: &mut OwnedWriteHalf) -> std::io::Result<Flow> {
        let id = action.action_id();
        if self.username.is_some() {
            out.write_all(&response("Success", id, "Already authenticated"))
                .await?;
            return Ok(Flow::Continue);
        }
        let config = &self.shared.config;
        let username = action.get("Username");
        if !username.eq_ignore_ascii_case(&config.username) || action.get("Secret") != config.secret
        {
            warn!(username, "authentication failed");
            tokio::time::sleep(self.shared.scaled(LOGIN_FAILURE_DELAY_MS)).await;
            out.write_all(&response("Error", id, "Authentication failed"))
                .await?;
            return Ok(Flow::Close);
        }
        let mask = EventMask::parse(action.get("Events"));
        out.write_all(&response("Success", id, "Authentication accepted"))
            .await?;
        if mask.allows("system,all") {
            let uptime = self.shared.uptime_secs();
            let booted = format!(
                "Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: {uptime}\r\n\
                 LastReload: {uptime}\r\nStatus: Fully Booted\r\n\r\n"
            );
            if self.shared.passes_filters(booted.as_bytes()) {
                out.write_all(booted.as_bytes()).await?;
            }
        }
        self.subscription = Some(self.shared.subscribe(mask, self.events.clone()));
        self.username = Some(username.to_owned());
        info!(username, "logged in");
        Ok(Flow::Continue)
    }

    /// `Hangup` as `manager.c`'s `action_hangup` answers it: the channel is looked up by its
    /// name or `Uniqueid` (the simulator knows each call's first channel by its `Uniqueid`,
    /// the host's `ChannelId`); found, it is hung up and the answer is `Channel Hungup`.
    fn hangup(&self, action: &Action) -> Vec<u8> {
        let id = action.action_id();
        let channel = action.get("Channel");
        if channel.is_empty() {
            return response("Error", id, "No channel specified");
        }
        if self.shared.request_hangup(channel) {
            info!(action = "Hangup", channel, "channel hung up");
            response("Success", id, "Channel Hungup")
        } else {
            info!(action = "Hangup", channel, "no such channel");
            response("Error", id, "No such channel")
        }
    }

    async fn originate(
        &mut self,
        action: &Action,
        out: &mut OwnedWriteHalf,
    ) -> std::io::Result<Flow> {
        let id = action.action_id();
        let config = &self.shared.config;
        // The kit's one-leg context is always there unless the PBX lacks it.
        let contexts: Vec<String> = config
            .contexts
            .iter()
            .map(String::as_str)
            .chain([action::DIRECT_CONTEXT])
            .filter(|c| config.pbx().has_context(c))
            .map(str::to_owned)
            .collect();
        let originate = match action::originate(action, &contexts) {
            Ok(originate) => originate,
            Err(message) => {
                info!(action_id = id, %message, "originate refused");
                out.write_all(&response("Error", id, &message)).await?;
                return Ok(Flow::Continue);
            }
        };
        if config.refused_callees.contains(&originate.exten) {
            tokio::time::sleep(config.refusal_delay).await;
            let message = "Extension does not exist.";
            info!(action_id = id, %message, "originate refused");
            out.write_all(&response("Error", id, message)).await?;
            return Ok(Flow::Continue);
        }
        let (reply_tx, reply_rx) = if originate.asynchronous {
            (None, None)
        } else {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        };
        let call = Call::new(&self.shared, &originate, reply_tx);
        let contact_ref = originate
            .variables
            .iter()
            .find(|(name, _)| name == "C2D_CONTACT_REF")
            .map_or("", |(_, value)| value.as_str());
        info!(
            action_id = id,
            contact_ref,
            channel = %originate.channel,
            exten = %originate.exten,
            outcome = %call.outcome,
            "originate"
        );
        // Logged first: a test sees the Originate arrive, then the PBX takes its time.
        if config.slow_callees.contains(&originate.exten) {
            tokio::time::sleep(config.queue_delay).await;
        }
        tokio::spawn(call.run(Arc::clone(&self.shared)));
        match reply_rx {
            None => {
                out.write_all(&response("Success", id, "Originate successfully queued"))
                    .await?;
            }
            // A synchronous Originate holds the session until the outcome is known; events
            // wait in the queue meanwhile, as in Asterisk.
            Some(rx) => {
                let answer = rx
                    .await
                    .unwrap_or_else(|_| response("Error", id, "Originate failed"));
                out.write_all(&answer).await?;
            }
        }
        Ok(Flow::Continue)
    }
}
