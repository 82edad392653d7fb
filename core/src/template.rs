//! Configurable names with placeholders: notification keys
//! (`teleforge:notifications:c2d:{contact_ref}`) and recording URLs
//! (`http://pbx.example:8080/click2dial/recordings/{recording_ref}`).

use core::fmt;

/// The placeholders a template may use.
pub const PLACEHOLDERS: [&str; 2] = ["{contact_ref}", "{recording_ref}"];

/// A checked template: every `{` opens one of [`PLACEHOLDERS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Template<'t>(&'t str);

/// A template with a `{` that opens no known placeholder, or a stray `}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TemplateError {
    /// Byte offset of the offending brace.
    pub offset: usize,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown placeholder at byte {}: use {{contact_ref}} or {{recording_ref}}",
            self.offset
        )
    }
}

impl core::error::Error for TemplateError {}

impl<'t> Template<'t> {
    /// Checks `text`.
    pub fn new(text: &'t str) -> Result<Self, TemplateError> {
        let mut offset: usize = 0;
        let mut rest = text;
        while let Some(at) = rest.find(['{', '}']) {
            let here = rest.get(at..).unwrap_or_default();
            let Some(known) = PLACEHOLDERS.iter().find(|p| here.starts_with(**p)) else {
                return Err(TemplateError {
                    offset: offset.saturating_add(at),
                });
            };
            let skip = at.saturating_add(known.len());
            offset = offset.saturating_add(skip);
            rest = rest.get(skip..).unwrap_or_default();
        }
        Ok(Self(text))
    }

    /// The template text.
    pub const fn as_str(&self) -> &'t str {
        self.0
    }

    /// Whether the template names the contact reference (a per-call key does).
    pub fn uses_contact_ref(&self) -> bool {
        self.0.contains(PLACEHOLDERS[0])
    }

    /// The template with its placeholders filled in, for formatting or serialising.
    pub const fn render<'v>(
        &self,
        contact_ref: &'v str,
        recording_ref: &'v str,
    ) -> Rendered<'t, 'v> {
        Rendered {
            template: self.0,
            values: [contact_ref, recording_ref],
        }
    }
}

/// A template with values; displays (and serialises as a JSON string) without allocating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rendered<'t, 'v> {
    template: &'t str,
    values: [&'v str; 2],
}

impl fmt::Display for Rendered<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.template;
        while let Some(at) = rest.find('{') {
            f.write_str(rest.get(..at).unwrap_or_default())?;
            let here = rest.get(at..).unwrap_or_default();
            let known = PLACEHOLDERS
                .iter()
                .zip(self.values)
                .find(|(p, _)| here.starts_with(**p));
            let skip = match known {
                Some((p, value)) => {
                    f.write_str(value)?;
                    p.len()
                }
                // Unreachable for a checked template; written out literally otherwise.
                None => {
                    f.write_str("{")?;
                    1
                }
            };
            rest = here.get(skip..).unwrap_or_default();
        }
        f.write_str(rest)
    }
}

impl serde::Serialize for Rendered<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}
