// The SIP.js softphone (see softphone.html).
