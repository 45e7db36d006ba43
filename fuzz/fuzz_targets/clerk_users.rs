#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| auth_bridge_fuzz::clerk_users::run(data));
