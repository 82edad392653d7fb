// The agent console (index.html): places a call with POST /click2dial/calls, follows its
// notifications on GET /click2dial/calls/{contact_ref}/events, and plays the recording.
//
// The API key stays in sessionStorage (this tab only) and travels only in the
// Authorization header, never in a URL. That is why the event stream is read with fetch()
// and a ReadableStream: EventSource cannot send headers.
'use strict';

(function () {
  const KEY_STORAGE = 'click2dial.apiKey';
  const FIELDS = ['agent', 'callee', 'outbound_id', 'contact_ref'];
  // call_ref is the pre-v3 name of contact_ref: its errors belong next to that input.
  const FIELD_INPUT = { call_ref: 'contact_ref' };
  const TERMINAL = ['recording_ready', 'failed'];

  const $ = (id) => document.getElementById(id);

  let current = null; // { contactRef, key, abort, last, ended }

  // ---- API key -----------------------------------------------------------------------

  function loadKey() {
    try {
      $('api-key').value = sessionStorage.getItem(KEY_STORAGE) || '';
    } catch (e) {
      // Storage disabled: the key lives in the input only.
    }
  }

  function saveKey() {
    try {
      sessionStorage.setItem(KEY_STORAGE, $('api-key').value.trim());
    } catch (e) {
      // Storage disabled.
    }
  }

  function forgetKey() {
    try {
      sessionStorage.removeItem(KEY_STORAGE);
    } catch (e) {
      // Storage disabled.
    }
    $('api-key').value = '';
    setStatus('The API key is forgotten.');
  }

  // ---- Messages ----------------------------------------------------------------------

  function setStatus(text) {
    $('status').textContent = text;
  }

  function clearErrors() {
    const box = $('error');
    box.hidden = true;
    box.removeAttribute('data-status');
    box.removeAttribute('data-code');
    $('error-code').textContent = '';
    $('error-message').textContent = '';
    for (const name of FIELDS.concat(['api-key'])) {
      const input = $(name);
      input.removeAttribute('aria-invalid');
      const note = $(name + '-error');
      note.hidden = true;
      note.textContent = '';
    }
  }

  function markField(inputId, message) {
    const input = $(inputId);
    const note = $(inputId + '-error');
    if (!input || !note) {
      return false;
    }
    input.setAttribute('aria-invalid', 'true');
    note.textContent = message;
    note.hidden = false;
    return true;
  }

  // What a status means to an agent, in front of the server's own message.
  function explain(status, retryAfter) {
    switch (status) {
      case 400: return 'The request was not understood.';
      case 401: return 'The API key was refused: check it (or ask for a new one).';
      case 403: return 'This API key may not do that.';
      case 404: return 'Not found.';
      case 409: return 'This CRM reference was already used for a different call.';
      case 413: return 'The request is too large.';
      case 415: return 'The request was not sent as JSON.';
      case 422: return 'The call was not placed: a value is not accepted.';
      case 429: return 'Too many requests with this key' +
        (retryAfter ? ': try again in ' + retryAfter + ' s.' : '; try again shortly.');
      case 503: return 'The service cannot place calls right now; nothing was dialled.' +
        (retryAfter ? ' Try again in ' + retryAfter + ' s.' : '');
      default: return status >= 500 ? 'The service failed.' : 'The request was refused.';
    }
  }

  // Shows an error answer: the code and message, and the offending field when named.
  function showError(status, body, retryAfter) {
    const error = (body && body.error) || {};
    const code = error.code || ('http_' + status);
    const message = error.message || '';
    const box = $('error');
    box.dataset.status = String(status);
    box.dataset.code = code;
    $('error-code').textContent = status + ' ' + code + ':';
    $('error-message').textContent = explain(status, retryAfter) + (message ? ' ' + message : '');
    box.hidden = false;
    let field = null;
    if (error.field) {
      field = FIELD_INPUT[error.field] || error.field;
      markField(field, message || code);
    }
    if (status === 401) {
      field = 'api-key';
      markField(field, message || 'The API key was refused.');
    }
    if (field && $(field)) {
      $(field).focus();
    }
  }

  function showFailure(text) {
    const box = $('error');
    box.dataset.status = '0';
    box.dataset.code = 'network';
    $('error-code').textContent = 'No answer:';
    $('error-message').textContent = text;
    box.hidden = false;
  }

  async function readJson(response) {
    try {
      return await response.json();
    } catch (e) {
      return null;
    }
  }

  // ---- Placing a call ----------------------------------------------------------------

  async function placeCall(event) {
    event.preventDefault();
    clearErrors();
    const key = $('api-key').value.trim();
    if (!key) {
      markField('api-key', 'Enter your API key first.');
      $('api-key').focus();
      return;
    }
    saveKey();
    const body = {};
    for (const name of FIELDS) {
      const value = $(name).value.trim();
      if (value !== '' || name !== 'contact_ref') {
        body[name] = value;
      }
    }
    stopFollowing();
    const button = $('place-call');
    button.disabled = true;
    setStatus('Placing the call…');
    let response;
    try {
      response = await fetch('/click2dial/calls', {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer ' + key },
        body: JSON.stringify(body),
      });
    } catch (e) {
      setStatus('');
      showFailure('the service could not be reached (' + e.message + ').');
      button.disabled = false;
      return;
    }
    const answer = await readJson(response);
    button.disabled = false;
    if (response.status !== 202 || !answer) {
      setStatus('');
      showError(response.status, answer, response.headers.get('retry-after'));
      return;
    }
    setStatus('Call queued: your phone rings first.');
    showCall(answer);
    follow(answer.contact_ref, key);
  }

  function showCall(answer) {
    $('call').hidden = false;
    $('call-contact-ref').textContent = answer.contact_ref;
    $('call-recording-ref').textContent = answer.recording_ref || '—';
    $('call-notifications-key').textContent = answer.notifications_key || '—';
    const list = $('warnings');
    list.replaceChildren();
    for (const warning of answer.warnings || []) {
      const item = document.createElement('li');
      item.dataset.code = warning.code;
      item.textContent = 'Warning (' + warning.code + '): ' + warning.message;
      list.append(item);
    }
    $('event-rows').replaceChildren();
    const recording = $('recording');
    recording.hidden = true;
    recording.removeAttribute('data-size');
    const audio = $('recording-audio');
    if (audio.src.startsWith('blob:')) {
      URL.revokeObjectURL(audio.src);
    }
    audio.removeAttribute('src');
    $('recording-state').textContent = '';
  }

  // ---- Following the call's notifications --------------------------------------------

  function stopFollowing() {
    if (current) {
      current.abort.abort();
      current = null;
    }
  }

  function setStreamState(state, text) {
    const el = $('stream-state');
    el.dataset.state = state;
    el.textContent = text;
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  async function follow(contactRef, key) {
    const call = { contactRef, key, abort: new AbortController(), last: 0, ended: false };
    current = call;
    let notFound = 0;
    let reconnects = 0;
    while (current === call) {
      setStreamState('connecting', 'Connecting to the notifications…');
      const headers = { authorization: 'Bearer ' + key, accept: 'text/event-stream' };
      if (call.last > 0) {
        headers['last-event-id'] = String(call.last);
      }
      let response;
      try {
        response = await fetch('/click2dial/calls/' + encodeURIComponent(contactRef) + '/events',
          { headers, signal: call.abort.signal, cache: 'no-store' });
      } catch (e) {
        if (call.abort.signal.aborted) {
          return;
        }
        response = null;
      }
      if (response && response.status === 404 && notFound < 10 && call.last === 0) {
        // Placed through another host that this one has not seen start yet.
        notFound += 1;
        await sleep(300);
        continue;
      }
      if (response && !response.ok) {
        const body = await readJson(response);
        const error = (body && body.error) || {};
        setStreamState('error', 'Notifications unavailable: ' + response.status + ' ' +
          (error.code || '') + (error.message ? ' — ' + error.message : ''));
        return;
      }
      if (response) {
        setStreamState('open', 'Following the call…');
        try {
          await readEvents(response.body, call);
        } catch (e) {
          if (call.abort.signal.aborted) {
            return;
          }
        }
      }
      if (current !== call) {
        return;
      }
      if (call.ended || reconnects >= 5) {
        break;
      }
      // The stream closed before the call's last event (host restart, network): resume.
      reconnects += 1;
      setStreamState('connecting', 'Reconnecting…');
      await sleep(1000);
    }
    if (current === call) {
      setStreamState('closed', call.ended ? 'The call is over.' : 'Notifications stopped.');
    }
  }

  // Reads text/event-stream messages (event, id, data fields; comments ignored).
  async function readEvents(body, call) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = '';
    let message = { event: 'message', id: '', data: [] };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) {
        return;
      }
      buffer += decoder.decode(value, { stream: true });
      const lines = buffer.split(/\r\n|\r|\n/);
      buffer = lines.pop();
      for (const line of lines) {
        if (line === '') {
          if (message.data.length > 0) {
            onEvent(call, message.event, Number(message.id), message.data.join('\n'));
          }
          message = { event: 'message', id: '', data: [] };
        } else if (!line.startsWith(':')) {
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          let text = colon < 0 ? '' : line.slice(colon + 1);
          if (text.startsWith(' ')) {
            text = text.slice(1);
          }
          if (field === 'event') {
            message.event = text;
          } else if (field === 'id') {
            message.id = text;
          } else if (field === 'data') {
            message.data.push(text);
          }
        }
      }
    }
  }

  function formatTime(timestamp) {
    const at = new Date(timestamp);
    if (Number.isNaN(at.getTime())) {
      return timestamp || '';
    }
    return at.toLocaleTimeString([], { hour12: false }) + '.' +
      String(at.getMilliseconds()).padStart(3, '0');
  }

  function onEvent(call, name, sequence, data) {
    if (current !== call || !(sequence > call.last)) {
      return;
    }
    call.last = sequence;
    let notification = {};
    try {
      notification = JSON.parse(data);
    } catch (e) {
      // Shown with what is known.
    }
    const row = document.createElement('tr');
    row.dataset.event = name;
    row.dataset.sequence = String(sequence);
    row.dataset.json = data;
    const cells = [
      String(sequence),
      name,
      formatTime(notification.timestamp),
      notification.cause || '',
      notification.q850 === undefined ? '' : String(notification.q850),
    ];
    for (const [i, text] of cells.entries()) {
      const cell = document.createElement(i === 1 ? 'th' : 'td');
      if (i === 1) {
        cell.scope = 'row';
      }
      if (i === 2 && notification.timestamp) {
        const time = document.createElement('time');
        time.dateTime = notification.timestamp;
        time.textContent = text;
        cell.append(time);
      } else {
        cell.textContent = text;
      }
      row.append(cell);
    }
    $('event-rows').append(row);
    // After these, a closed stream means the call is over (a recording_ready that follows a
    // failed call comes before the server closes the stream).
    call.ended = TERMINAL.includes(name);
    if (name === 'recording_ready' && notification.recording_ref) {
      loadRecording(notification.recording_ref, call.key);
    }
  }

  // ---- The recording -----------------------------------------------------------------

  async function loadRecording(recordingRef, key) {
    const box = $('recording');
    const state = $('recording-state');
    box.hidden = false;
    state.textContent = 'Fetching the recording…';
    // Same origin, whatever public_url the notification names (the page's policy allows
    // no other).
    const url = '/click2dial/recordings/' + encodeURIComponent(recordingRef);
    for (let attempt = 0; attempt < 10; attempt += 1) {
      let response;
      try {
        response = await fetch(url, { headers: { authorization: 'Bearer ' + key }, cache: 'no-store' });
      } catch (e) {
        state.textContent = 'The recording could not be fetched (' + e.message + ').';
        return;
      }
      if (response.status === 409) {
        const wait = Number(response.headers.get('retry-after')) || 2;
        state.textContent = 'The recording is still being written; retrying in ' + wait + ' s…';
        await sleep(Math.min(wait, 10) * 1000);
        continue;
      }
      if (!response.ok) {
        const body = await readJson(response);
        const error = (body && body.error) || {};
        state.textContent = 'The recording could not be fetched: ' + response.status + ' ' +
          (error.code || '') + (error.message ? ' — ' + error.message : '');
        return;
      }
      const blob = await response.blob();
      const blobUrl = URL.createObjectURL(blob);
      const audio = $('recording-audio');
      audio.src = blobUrl;
      const link = $('recording-download');
      link.href = blobUrl;
      link.download = recordingRef + '.wav';
      box.dataset.size = String(blob.size);
      state.textContent = 'Recording: ' + blob.size + ' bytes.';
      return;
    }
    state.textContent = 'The recording is not complete yet; try again later.';
  }

  // ---- Start -------------------------------------------------------------------------

  function start() {
    loadKey();
    $('api-key').addEventListener('change', saveKey);
    $('forget-key').addEventListener('click', forgetKey);
    $('call-form').addEventListener('submit', placeCall);
    document.body.dataset.ready = 'true';
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
}());
