//! A config file: it parses, or the error names the file; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = Config::parse(text, "fuzz.toml", &std::env::temp_dir()) {
        let message = format!("{e:#}");
        assert!(message.contains("fuzz.toml"), "{message}");
    }
});
