//! The status page's paths, for the pages and for what links to them (the
//! funnel's steps): a leaf of `admin/`, so that what computes a figure never
//! imports the page that shows it.

/// A path segment, percent-encoded (names are validated in config, but never trusted here).
pub fn segment(name: &str) -> String {
    percent_encoding::utf8_percent_encode(name, crate::imports::NOT_UNRESERVED).to_string()
}

/// The page of a destination.
pub fn destination_path(name: &str) -> String {
    format!("/status/destinations/{}", segment(name))
}

/// The page of the source `name`.
pub fn source_path(name: &str) -> String {
    format!("/status/sources/{}", segment(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(segment("hooks-1_a.b"), "hooks-1_a.b");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
        assert_eq!(segment("é"), "%C3%A9");
    }
}
