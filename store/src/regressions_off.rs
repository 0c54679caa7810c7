//! Without the `regressions` feature every fix is in place and the switches compile to nothing.

/// `reverted!(regressions, Bug)` is always `false` in production builds; its arguments are not
/// evaluated.
#[macro_export]
macro_rules! reverted {
    ($regressions:expr, $bug:ident) => {
        false
    };
}
