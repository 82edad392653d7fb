// The agent console in headless Chromium, driven by tests/tests/browser/console.rs against a
// real host, PBX simulator and Redis. Reads C2D_BASE_URL, C2D_KEY, C2D_ARTIFACTS (screenshot
// directory) and optionally CHROMIUM; prints one JSON object on stdout with what the page
// showed (the Rust test compares it with Redis and the host); logs go to stderr. Exit status
// 0 when every scenario ran and the page showed what it should, 1 otherwise.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const base = process.env.C2D_BASE_URL;
const key = process.env.C2D_KEY;
const artifacts = process.env.C2D_ARTIFACTS;
if (!base || !key || !artifacts) {
  console.error('C2D_BASE_URL, C2D_KEY and C2D_ARTIFACTS must be set');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

// Flags that work on this machine (shared/notes/webrtc.md); no audio device is needed to
// decode a recording.
const FLAGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const WAIT = { timeout: 30000 };
const log = (...args) => console.error('[console.test]', ...args);
const failures = [];
const check = (ok, what) => {
  if (!ok) {
    failures.push(what);
    log('FAILED:', what);
  }
};

const watchdog = setTimeout(() => {
  console.error('[console.test] timed out after 90 s');
  process.exit(3);
}, 90000);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: FLAGS,
});
const result = { screenshots: [], page_errors: [] };
let page = null;
try {
  const context = await browser.newContext({ viewport: { width: 1000, height: 1000 } });
  page = await context.newPage();
  // Script errors and content-security-policy violations show up here.
  page.on('pageerror', (e) => result.page_errors.push(String(e)));
  // Chromium logs every 4xx answer as an error too: those are collected from the
  // responses instead, so the test can say which ones there were.
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) {
      result.page_errors.push(m.text());
    }
  });
  result.error_responses = [];
  page.on('response', (r) => {
    if (r.status() >= 400) {
      result.error_responses.push(r.request().method() + ' ' + new URL(r.url()).pathname + ' ' + r.status());
    }
  });
  const shot = async (name) => {
    const path = join(artifacts, name);
    await page.screenshot({ path, fullPage: true });
    result.screenshots.push(path);
    log('screenshot', path);
  };
  const fill = async (values) => {
    for (const [id, value] of Object.entries(values)) {
      await page.fill('#' + id, value);
    }
  };

  // (a) An answered call: the notifications as they come, then the recording.
  await page.goto(base + '/console/');
  await page.waitForSelector('body[data-ready="true"]', WAIT);
  await fill({
    'api-key': key, agent: '1001', callee: '0820001234', outbound_id: '27820001234',
    contact_ref: 'browser-answered',
  });
  await page.click('#place-call');
  await page.waitForSelector('#event-rows tr[data-event="recording_ready"]', WAIT);
  await page.waitForSelector('#stream-state[data-state="closed"]', WAIT);
  await page.waitForFunction(() => {
    const audio = document.getElementById('recording-audio');
    return document.getElementById('recording').dataset.size && audio.duration > 0;
  }, null, WAIT);
  const answered = await page.evaluate(() => {
    const audio = document.getElementById('recording-audio');
    return {
      contact_ref: document.getElementById('call-contact-ref').textContent,
      recording_ref: document.getElementById('call-recording-ref').textContent,
      events: [...document.querySelectorAll('#event-rows tr')].map((row) => ({
        event: row.dataset.event,
        sequence: Number(row.dataset.sequence),
        json: row.dataset.json,
        text: row.innerText,
      })),
      stream_state: document.getElementById('stream-state').textContent,
      recording_size: Number(document.getElementById('recording').dataset.size),
      audio_duration: audio.duration,
      audio_src_is_blob: audio.src.startsWith('blob:'),
      download: document.getElementById('recording-download').getAttribute('download'),
      key_in_session: sessionStorage.getItem('click2dial.apiKey'),
      local_storage_items: localStorage.length,
    };
  });
  result.answered = answered;
  check(answered.events.length > 0, 'answered: events shown');
  check(answered.audio_duration > 0, 'answered: the recording plays');
  check(answered.key_in_session === key, 'answered: the key is in sessionStorage');
  await shot('console-answered.png');

  // (b) A bad callee: the 422's field error next to the callee input.
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]', WAIT);
  result.key_kept_after_reload = (await page.inputValue('#api-key')) === key;
  await fill({ agent: '1001', callee: '12345', outbound_id: '27820001234', contact_ref: 'browser-422' });
  await page.click('#place-call');
  await page.waitForSelector('#callee-error:not([hidden])', WAIT);
  result.invalid_callee = await page.evaluate(() => {
    const box = document.getElementById('error');
    return {
      status: Number(box.dataset.status),
      code: box.dataset.code,
      summary: box.innerText,
      callee_error: document.getElementById('callee-error').textContent,
      callee_invalid: document.getElementById('callee').getAttribute('aria-invalid'),
      callee_described_by: document.getElementById('callee').getAttribute('aria-describedby'),
      others_invalid: ['agent', 'outbound_id', 'contact_ref', 'api-key']
        .filter((id) => document.getElementById(id).getAttribute('aria-invalid') === 'true'),
      call_shown: !document.getElementById('call').hidden,
    };
  });
  check(result.invalid_callee.status === 422, 'invalid callee: 422 shown');
  await shot('console-422-callee.png');

  // (c) A wrong key: the 401 says so, next to the key.
  await fill({ 'api-key': 'c2d_not_a_valid_key_0123456789abcdef', callee: '0820001234', contact_ref: 'browser-401' });
  await page.click('#place-call');
  await page.waitForSelector('#error[data-status="401"]', WAIT);
  result.wrong_key = await page.evaluate(() => {
    const box = document.getElementById('error');
    return {
      status: Number(box.dataset.status),
      code: box.dataset.code,
      summary: box.innerText,
      key_error: document.getElementById('api-key-error').textContent,
      key_invalid: document.getElementById('api-key').getAttribute('aria-invalid'),
      callee_invalid: document.getElementById('callee').getAttribute('aria-invalid'),
    };
  });
  check(result.wrong_key.code === 'unauthorized', 'wrong key: unauthorized shown');
  await shot('console-401-key.png');
  await context.close();
} catch (e) {
  failures.push(String(e && e.stack ? e.stack : e));
  log('error:', e);
  if (page) {
    const path = join(artifacts, 'console-failure.png');
    await page.screenshot({ path, fullPage: true }).catch(() => {});
    log('screenshot of the failure', path);
  }
} finally {
  await browser.close();
  clearTimeout(watchdog);
}
check(result.page_errors.length === 0, 'no script errors or policy violations: ' + result.page_errors.join(' | '));
result.failures = failures;
process.stdout.write(JSON.stringify(result) + '\n');
process.exit(failures.length === 0 ? 0 : 1);
