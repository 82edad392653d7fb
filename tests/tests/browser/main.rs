//! Headless Chromium against a real host: the agent console (`console`) and the SIP.js
//! softphone through Kamailio and SIPp (`softphone`). Needs `node`, Chromium, Kamailio, SIPp
//! and the npm packages of `tests/browser` (`bash .ci/browser.sh`): without them the tests fail.

#[path = "../support/mod.rs"]
mod support;

mod console;
mod softphone;
