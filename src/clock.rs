//! The time, from the JS clock: `SystemTime::now()` panics on wasm32.

/// Unix time in seconds.
pub fn now_secs() -> u64 {
    (js_sys::Date::now() / 1000.0) as u64
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}
