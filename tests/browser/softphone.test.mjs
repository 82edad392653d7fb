// Drives the softphone page in headless Chromium for tests/tests/browser/softphone.rs, which
// starts the host, Kamailio and SIPp and gives the addresses and values in C2D_* variables.
//
// It talks to the Rust test in lines on stdout:
//   screenshot <path>          after each step
//   registered                 the page shows "registered": the test now sends the SIPp INVITE
//   incoming <json>            what the incoming-call panel shows; the page then rejected it
//   auto-answer-on             auto-answer is checked: the test sends a click-to-dial INVITE
//   auto <json>                the page answered it by itself, and the caller hung up
//   outgoing <json>            the page's own call, placed and declined by the SIPp UAS
//   unregistered               the page unregistered (the WebSocket stays open)
//   done <json>                console errors and page errors seen
// and waits for stdin to close before it closes the browser, so that the test can check the
// registrar while the page is still connected. Any failure: a message on stderr, exit 1.

import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const env = (name) => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};

const STEP_MS = 8000;
const pageUrl = env("C2D_PAGE_URL");
const artifacts = env("C2D_ARTIFACTS");
const outgoing = {
  target: process.env.C2D_OUT_TARGET ?? "",
  callee: env("C2D_OUT_CALLEE"),
  outboundId: env("C2D_OUT_OUTBOUND_ID"),
  contactRef: env("C2D_OUT_CONTACT_REF"),
  agent: process.env.C2D_OUT_AGENT ?? "",
};
const autoContactRef = env("C2D_AUTO_CONTACT_REF");
mkdirSync(artifacts, { recursive: true });

const say = (line) => process.stdout.write(`${line}\n`);
const problems = [];

const browser = await chromium.launch({
  executablePath: process.env.C2D_CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
  ],
});

let exitCode = 0;
let page = null;
try {
  const context = await browser.newContext({ viewport: { width: 800, height: 1100 } });
  page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on("console", (message) => {
    process.stderr.write(`[page ${message.type()}] ${message.text()}\n`);
    if (message.type() === "error") problems.push(`console: ${message.text()}`);
  });
  page.on("pageerror", (error) => {
    process.stderr.write(`[page error] ${error.message}\n`);
    problems.push(`pageerror: ${error.message}`);
  });

  const shot = async (name) => {
    const path = join(artifacts, name);
    await page.screenshot({ path, fullPage: true });
    say(`screenshot ${path}`);
  };
  const state = (id) => page.locator(`#${id}`).getAttribute("data-state");
  const waitState = async (id, wanted) => {
    try {
      await page.waitForFunction(
        ([id, wanted]) => document.getElementById(id).dataset.state === wanted,
        [id, wanted],
      );
    } catch (error) {
      const text = await page.locator(`#${id}`).textContent();
      throw new Error(`#${id} never became ${wanted} (it shows ${JSON.stringify(text)})`);
    }
  };

  await page.goto(pageUrl);
  await page.locator("#register").click();
  await waitState("reg-state", "registered");
  await shot("softphone-1-registered.png");
  say("registered");

  // The SIPp INVITE (sent by the test now) rings the page.
  await page.locator("#incoming:not([hidden])").waitFor();
  await waitState("call-state", "incoming");
  const incoming = await page.evaluate(() => {
    const values = {};
    for (const dd of document.querySelectorAll("#incoming dd[data-header]")) {
      values[dd.dataset.header] = { text: dd.textContent, present: dd.dataset.present };
    }
    return {
      values,
      clickToDial: document.getElementById("incoming").dataset.clickToDial,
      from: document.getElementById("in-from").textContent,
      // Header values are text: none may have become markup.
      elementsInValues: document.querySelectorAll("#incoming dd *").length,
      callState: document.getElementById("call-state").textContent,
    };
  });
  await shot("softphone-2-incoming.png");
  await page.locator("#reject").click();
  await waitState("call-state", "rejected");
  await page.waitForFunction(() => document.getElementById("call").disabled === false);
  incoming.afterReject = await page.locator("#call-state").textContent();
  say(`incoming ${JSON.stringify(incoming)}`);

  // Auto-answer on: the next click-to-dial call (sent by the test now) is answered by the page
  // itself; the caller hangs up a second later.
  await page.locator("#auto-answer").check();
  say("auto-answer-on");
  try {
    await page.waitForFunction(
      (ref) =>
        document.getElementById("in-contact-ref").textContent === ref &&
        document.getElementById("call-state").dataset.state === "ended",
      autoContactRef,
    );
  } catch (error) {
    const text = await page.locator("#call-state").textContent();
    throw new Error(`the auto-answered call did not end (call state ${JSON.stringify(text)})`);
  }
  const auto = await page.evaluate(() => ({
    events: [...document.querySelectorAll("#log li")].map((li) => li.textContent),
    callState: document.getElementById("call-state").textContent,
  }));
  await shot("softphone-3-auto-answered.png");
  say(`auto ${JSON.stringify(auto)}`);

  // The page's own click-to-dial call; the SIPp UAS checks the headers and declines.
  await page.locator("#target").fill(outgoing.target);
  await page.locator("#callee").fill(outgoing.callee);
  await page.locator("#outbound-id").fill(outgoing.outboundId);
  await page.locator("#contact-ref").fill(outgoing.contactRef);
  await page.locator("#agent").fill(outgoing.agent);
  await page.locator("#call").click();
  await waitState("call-state", "rejected");
  const callState = await page.locator("#call-state").textContent();
  await shot("softphone-4-outgoing-declined.png");
  say(`outgoing ${JSON.stringify({ callState })}`);

  await page.locator("#unregister").click();
  await waitState("reg-state", "unregistered");
  await shot("softphone-5-unregistered.png");
  say(`unregistered`);
  say(`done ${JSON.stringify({ problems, regState: await state("reg-state") })}`);

  // Keep the page (and its WebSocket) until the test has checked the registrar.
  await new Promise((resolve) => {
    process.stdin.on("end", resolve);
    process.stdin.on("close", resolve);
    process.stdin.resume();
  });
} catch (error) {
  process.stderr.write(`softphone test: ${error.message}\n`);
  exitCode = 1;
  if (page) {
    const path = join(artifacts, "softphone-failure.png");
    await page.screenshot({ path, fullPage: true }).catch(() => {});
    say(`screenshot ${path}`);
  }
} finally {
  await browser.close();
}
process.exit(exitCode);
