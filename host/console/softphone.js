// The click2dial softphone (softphone.html): SIP.js (window.SIP, vendor/sip.js) registered
// over a WebSocket to the PBX or a SIP proxy. It shows the X-Teleforge-* values of an
// incoming call, can answer click-to-dial calls by itself, and places calls that carry them.
//
// Header values come from the network: they are only ever shown with textContent.
"use strict";

(() => {
  const SIP = window.SIP;
  const $ = (id) => document.getElementById(id);

  /** The click2dial headers (spec "WebRTC") and the element that shows each. */
  const HEADERS = [
    ["X-Teleforge-Agent", "in-agent"],
    ["X-Teleforge-Callee", "in-callee"],
    ["X-Teleforge-Outbound-Id", "in-outbound-id"],
    ["X-Teleforge-Contact-Ref", "in-contact-ref"],
    ["X-Teleforge-Recording-Ref", "in-recording-ref"],
  ];
  /** The header that makes a call a click-to-dial call. */
  const CLICK_TO_DIAL = "X-Teleforge-Contact-Ref";
  /** Settings kept in localStorage and read from the query string. Never the password. */
  const SETTINGS = ["server", "uri", "display-name", "auth-user", "ice-server"];
  const STORE = "click2dial.softphone";
  const MEDIA = { constraints: { audio: true, video: false } };

  let ua = null;
  let registerer = null;
  /** The one call in progress (an Inviter or an Invitation), or null. */
  let session = null;

  function log(text) {
    const item = document.createElement("li");
    item.textContent = `${new Date().toLocaleTimeString()} ${text}`;
    const list = $("log");
    list.prepend(item);
    while (list.children.length > 50) list.lastElementChild.remove();
  }

  function show(id, state, text) {
    const output = $(id);
    output.dataset.state = state;
    output.textContent = text || state;
  }

  function updateButtons() {
    const registered = registerer && registerer.state === SIP.RegistererState.Registered;
    $("unregister").disabled = !registered;
    const ringing = session instanceof SIP.Invitation && session.state === SIP.SessionState.Initial;
    $("answer").disabled = !ringing;
    $("reject").disabled = !ringing;
    $("call").disabled = !ua || session !== null;
    $("hangup").disabled = session === null;
  }

  // --- settings -------------------------------------------------------------------------

  function loadSettings() {
    let saved = {};
    try {
      saved = JSON.parse(localStorage.getItem(STORE) || "{}") || {};
    } catch (_) {
      saved = {};
    }
    const query = new URLSearchParams(location.search);
    for (const name of SETTINGS) {
      const value = query.has(name) ? query.get(name) : saved[name];
      if (typeof value === "string") $(name).value = value;
    }
    const auto = query.has("auto-answer") ? query.get("auto-answer") === "1" : saved.autoAnswer;
    $("auto-answer").checked = auto === true;
    // A password has no business in a URL (history, logs): drop one that was put there.
    if (query.has("password")) {
      query.delete("password");
      const rest = query.toString();
      history.replaceState(null, "", location.pathname + (rest ? `?${rest}` : ""));
    }
  }

  function saveSettings() {
    const saved = { autoAnswer: $("auto-answer").checked };
    for (const name of SETTINGS) saved[name] = $(name).value.trim();
    try {
      localStorage.setItem(STORE, JSON.stringify(saved));
    } catch (_) {
      // Storage may be disabled; the settings then last as long as the page.
    }
  }

  // --- registration ---------------------------------------------------------------------

  async function register() {
    await stop();
    saveSettings();
    const uri = SIP.UserAgent.makeURI($("uri").value.trim());
    if (!uri) {
      show("reg-state", "failed", "failed: not a SIP URI");
      return;
    }
    const ice = $("ice-server").value.trim();
    const options = {
      uri,
      displayName: $("display-name").value.trim(),
      transportOptions: { server: $("server").value.trim() },
      logLevel: "warn",
      sessionDescriptionHandlerFactoryOptions: {
        iceGatheringTimeout: 1000,
        peerConnectionConfiguration: { iceServers: ice ? [{ urls: ice }] : [] },
      },
      delegate: {
        onInvite,
        onDisconnect: (error) => {
          if (error) {
            show("reg-state", "failed", `failed: connection lost (${error.message})`);
            log(`connection lost: ${error.message}`);
          }
          updateButtons();
        },
      },
    };
    if ($("auth-user").value.trim()) options.authorizationUsername = $("auth-user").value.trim();
    if ($("password").value) options.authorizationPassword = $("password").value;

    const agent = new SIP.UserAgent(options);
    ua = agent;
    show("reg-state", "connecting", `connecting to ${options.transportOptions.server}`);
    try {
      await agent.start();
    } catch (error) {
      if (ua === agent) {
        ua = null;
        show("reg-state", "failed", `failed: cannot connect (${error.message})`);
      }
      updateButtons();
      return;
    }
    registerer = new SIP.Registerer(agent);
    registerer.stateChange.addListener((state) => {
      if (state === SIP.RegistererState.Registered) {
        show("reg-state", "registered", `registered as ${uri}`);
        log(`registered as ${uri}`);
      } else if (state === SIP.RegistererState.Unregistered) {
        show("reg-state", "unregistered");
        log("unregistered");
      }
      updateButtons();
    });
    show("reg-state", "registering");
    updateButtons();
    try {
      await registerer.register({
        requestDelegate: {
          onReject: (response) => {
            const { statusCode, reasonPhrase } = response.message;
            show("reg-state", "failed", `failed: ${statusCode} ${reasonPhrase}`);
            log(`registration refused: ${statusCode} ${reasonPhrase}`);
          },
        },
      });
    } catch (error) {
      show("reg-state", "failed", `failed: ${error.message}`);
    }
  }

  /** Sends REGISTER with Expires 0; the WebSocket stays open (calls can still be placed). */
  async function unregister() {
    if (!registerer) return;
    show("reg-state", "unregistering");
    try {
      await registerer.unregister();
    } catch (error) {
      show("reg-state", "failed", `failed: ${error.message}`);
    }
  }

  async function stop() {
    const agent = ua;
    ua = null;
    registerer = null;
    session = null;
    if (agent) {
      try {
        await agent.stop();
      } catch (_) {
        // Already stopped.
      }
    }
    updateButtons();
  }

  // --- calls ----------------------------------------------------------------------------

  /** Follows a call's state in the page; `direction` is "incoming" or "outgoing". */
  function follow(call, direction) {
    session = call;
    let established = false;
    call.stateChange.addListener((state) => {
      if (state === SIP.SessionState.Establishing) {
        show("call-state", "connecting", direction === "incoming" ? "answering" : "connecting");
      } else if (state === SIP.SessionState.Established) {
        established = true;
        show("call-state", "established", `in call (${direction})`);
        log(`${direction} call established`);
        playRemoteAudio(call);
      } else if (state === SIP.SessionState.Terminated) {
        // A refusal (ours or the far end's) already said why.
        if ($("call-state").dataset.state !== "rejected") {
          if (established) show("call-state", "ended");
          else show("call-state", "ended", direction === "incoming" ? "ended (missed)" : "ended (not answered)");
        }
        log(`${direction} call ended`);
        if (direction === "incoming") $("in-title").textContent = "Last incoming call";
        if (session === call) session = null;
        $("remote-audio").srcObject = null;
      }
      updateButtons();
    });
    updateButtons();
  }

  function playRemoteAudio(call) {
    const handler = call.sessionDescriptionHandler;
    const connection = handler && handler.peerConnection;
    if (!connection) return;
    const stream = new MediaStream();
    for (const receiver of connection.getReceivers()) {
      if (receiver.track) stream.addTrack(receiver.track);
    }
    const audio = $("remote-audio");
    audio.srcObject = stream;
    audio.play().catch(() => {});
  }

  function onInvite(invitation) {
    if (session) {
      invitation.reject({ statusCode: 486 }).catch(() => {});
      log("second call refused: busy");
      return;
    }
    const request = invitation.request;
    for (const [header, id] of HEADERS) {
      const value = request.getHeader(header);
      const element = $(id);
      element.textContent = value === undefined ? "" : value;
      element.dataset.present = String(value !== undefined);
    }
    const identity = invitation.remoteIdentity;
    const name = identity.displayName ? `${identity.displayName} ` : "";
    $("in-from").textContent = `${name}<${identity.uri}>`;
    const clickToDial = request.hasHeader(CLICK_TO_DIAL);
    $("incoming").dataset.clickToDial = String(clickToDial);
    $("in-kind").textContent = clickToDial ? "click-to-dial" : "";
    $("in-title").textContent = "Incoming call";
    $("incoming").hidden = false;
    follow(invitation, "incoming");
    show("call-state", "incoming", clickToDial ? "ringing (click-to-dial)" : "ringing");
    log(`incoming call from ${identity.uri}`);
    invitation.progress().catch(() => {});
    if (clickToDial && $("auto-answer").checked) {
      log("auto-answering the click-to-dial call");
      answer();
    }
  }

  function answer() {
    const call = session;
    if (!(call instanceof SIP.Invitation) || call.state !== SIP.SessionState.Initial) return;
    call.accept({ sessionDescriptionHandlerOptions: MEDIA }).catch((error) => {
      log(`answer failed: ${error.message}`);
    });
  }

  function reject() {
    const call = session;
    if (!(call instanceof SIP.Invitation) || call.state !== SIP.SessionState.Initial) return;
    show("call-state", "rejected", "rejected (486 Busy Here)");
    call.reject({ statusCode: 486 }).catch((error) => log(`reject failed: ${error.message}`));
  }

  function hangup() {
    const call = session;
    if (!call) return;
    if (call.state === SIP.SessionState.Established) {
      call.bye().catch((error) => log(`hang up failed: ${error.message}`));
    } else if (call instanceof SIP.Inviter) {
      call.cancel().catch((error) => log(`cancel failed: ${error.message}`));
    } else {
      reject();
    }
  }

  /** `c2d` → sip:c2d@<registrar's domain>; `user@host` and `sip:…` are taken as they are. */
  function targetUri(text) {
    const target = text || "c2d";
    if (/^sips?:/i.test(target)) return SIP.UserAgent.makeURI(target);
    if (target.includes("@")) return SIP.UserAgent.makeURI(`sip:${target}`);
    const home = ua.configuration.uri;
    const port = home.port ? `:${home.port}` : "";
    return SIP.UserAgent.makeURI(`sip:${target}@${home.host}${port}`);
  }

  async function call() {
    if (!ua || session) return;
    const fields = [
      ["X-Teleforge-Callee", $("callee").value.trim()],
      ["X-Teleforge-Outbound-Id", $("outbound-id").value.trim()],
      ["X-Teleforge-Contact-Ref", $("contact-ref").value.trim()],
      ["X-Teleforge-Agent", $("agent").value.trim()],
    ];
    for (const [header, value] of fields) {
      // A line break would start another header: refuse any control character.
      if (/[\u0000-\u001f\u007f]/.test(value)) {
        show("call-state", "failed", `failed: ${header} holds a control character`);
        return;
      }
    }
    const extraHeaders = fields.filter(([, value]) => value !== "").map(([h, v]) => `${h}: ${v}`);
    const target = targetUri($("target").value.trim());
    if (!target) {
      show("call-state", "failed", "failed: not a SIP target");
      return;
    }
    const inviter = new SIP.Inviter(ua, target, {
      extraHeaders,
      sessionDescriptionHandlerOptions: MEDIA,
    });
    follow(inviter, "outgoing");
    show("call-state", "calling", `calling ${target}`);
    log(`calling ${target}`);
    try {
      await inviter.invite({
        requestDelegate: {
          onProgress: (response) => {
            const code = response.message.statusCode;
            if (code === 180 || code === 183) show("call-state", "ringing", `ringing ${target}`);
          },
          onReject: (response) => {
            const { statusCode, reasonPhrase } = response.message;
            show("call-state", "rejected", `rejected: ${statusCode} ${reasonPhrase}`);
            log(`call rejected: ${statusCode} ${reasonPhrase}`);
          },
        },
      });
    } catch (error) {
      show("call-state", "failed", `failed: ${error.message}`);
      log(`call failed: ${error.message}`);
      if (session === inviter) session = null;
      updateButtons();
    }
  }

  // --- wiring ---------------------------------------------------------------------------

  if (!SIP) {
    show("reg-state", "failed", "failed: vendor/sip.js did not load");
    return;
  }
  loadSettings();
  updateButtons();
  $("settings").addEventListener("submit", (event) => {
    event.preventDefault();
    register();
  });
  $("unregister").addEventListener("click", unregister);
  $("outgoing").addEventListener("submit", (event) => {
    event.preventDefault();
    call();
  });
  $("hangup").addEventListener("click", hangup);
  $("answer").addEventListener("click", answer);
  $("reject").addEventListener("click", reject);
  $("auto-answer").addEventListener("change", saveSettings);
  window.addEventListener("pagehide", () => {
    if (ua) ua.stop().catch(() => {});
  });
})();
