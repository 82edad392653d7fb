//! The one logging shim. With the `defmt` feature the macros log through defmt; without it
//! they compile away, and their arguments are only borrowed so nothing goes unused.
#![allow(unused_macros, unused_imports)]

macro_rules! log_at {
    ($level:ident, $s:literal $(, $x:expr)* $(,)?) => {{
        #[cfg(feature = "defmt")]
        ::defmt::$level!($s $(, $x)*);
        #[cfg(not(feature = "defmt"))]
        let _ = ($( & $x ),*);
    }};
}

macro_rules! debug {
    ($($t:tt)*) => { $crate::fmt::log_at!(debug, $($t)*) };
}

macro_rules! info {
    ($($t:tt)*) => { $crate::fmt::log_at!(info, $($t)*) };
}

macro_rules! warning {
    ($($t:tt)*) => { $crate::fmt::log_at!(warn, $($t)*) };
}

macro_rules! error {
    ($($t:tt)*) => { $crate::fmt::log_at!(error, $($t)*) };
}

pub(crate) use {debug, error, info, log_at, warning as warn};
