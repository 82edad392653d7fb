//! A JSON scanner over a borrowed body: the pieces the create-call request
//! ([`crate::request`]) and the appliance's configuration body read their JSON with.
//!
//! Strings come back borrowed as written between their quotes (escapes are not decoded: a
//! caller that cares refuses `\`). Every method answers `None` for malformed JSON and never
//! panics; positions only move forward, so a scan ends within the body's length.

/// Reads JSON from a body, front to back.
#[derive(Debug)]
pub struct Scanner<'a> {
    body: &'a [u8],
    at: usize,
}

/// JSON's whitespace: space, tab, line feed, carriage return.
pub const fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl<'a> Scanner<'a> {
    /// A scanner at the start of `body`.
    pub const fn new(body: &'a [u8]) -> Self {
        Self { body, at: 0 }
    }

    /// Skips whitespace and returns the next byte, left unread.
    pub fn peek(&mut self) -> Option<u8> {
        let rest = self.body.get(self.at..)?;
        let n = rest.iter().take_while(|&&b| is_whitespace(b)).count();
        self.at = self.at.saturating_add(n);
        rest.get(n).copied()
    }

    /// Steps over the byte [`Scanner::peek`] returned.
    pub fn advance(&mut self) {
        self.at = self.at.saturating_add(1);
    }

    /// Reads `byte`, after any whitespace.
    pub fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.advance())
    }

    /// The next key of an object whose `{` was read, or `Some(None)` at its `}` (left
    /// unread). A `,` must come between members, and may not come before the `}`.
    pub fn next_key(&mut self, first: &mut bool) -> Option<Option<&'a str>> {
        match self.peek()? {
            b'}' => return Some(None),
            b',' if !*first => self.advance(),
            _ if *first => *first = false,
            _ => return None,
        }
        self.string().map(Some)
    }

    /// Whether an array whose `[` was read has another element (after its `,`), or ends at
    /// `]` (left unread). A `,` is accepted before the first element, as serde-json-core did.
    pub fn next_element(&mut self, first: &mut bool) -> Option<bool> {
        let next = match self.peek()? {
            b']' => return Some(false),
            b',' => {
                self.advance();
                self.peek()?
            }
            _ if *first => {
                *first = false;
                self.peek()?
            }
            _ => return None,
        };
        (next != b']').then_some(true)
    }

    /// A string, borrowed as it appears between its quotes; a quote preceded by an odd number
    /// of backslashes does not end it.
    pub fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.at;
        let mut escaped = false;
        let len = self.body.get(start..)?.iter().position(|&b| {
            let end = b == b'"' && !escaped;
            escaped = b == b'\\' && !escaped;
            end
        })?;
        let end = start.saturating_add(len);
        self.at = end.saturating_add(1);
        core::str::from_utf8(self.body.get(start..end)?).ok()
    }

    /// The bytes from here up to the first one `ends` accepts (left unread): a scalar's token.
    /// `None` when no such byte follows.
    pub fn token(&mut self, ends: impl Fn(u8) -> bool) -> Option<&'a [u8]> {
        let start = self.at;
        let rest = self.body.get(start..)?;
        let len = rest.iter().position(|&b| ends(b))?;
        self.at = start.saturating_add(len);
        rest.get(..len)
    }
}
