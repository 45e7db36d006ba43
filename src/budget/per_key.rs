//! Per-key call caps (pure): at most `max` events per key in a fixed window, in a table of
//! bounded size. Keys are client addresses (what one anonymous client can make the worker
//! ask Clerk or the origin) and users (how many sign-in tokens one person gets a minute).
//!
//! The table lives in one isolate. An attacker spread over many isolates meets the shared
//! budget ([`super::share`]) instead; within an isolate, memory stays bounded whatever the
//! number of keys: a full table first drops windows that ended, then the oldest window.

use std::collections::HashMap;

/// One key's window: when it started and how many events it holds.
#[derive(Debug, Clone, Copy)]
struct Window {
    start_ms: u64,
    count: u32,
}

#[derive(Debug)]
pub struct KeyedCap {
    max: u32,
    window_ms: u64,
    capacity: usize,
    windows: HashMap<String, Window>,
}

impl KeyedCap {
    pub fn new(max: u32, window_ms: u64, capacity: usize) -> KeyedCap {
        KeyedCap {
            max,
            window_ms: window_ms.max(1),
            capacity: capacity.max(1),
            windows: HashMap::new(),
        }
    }

    /// Takes one event for `key` at `now_ms`: `Ok` while the key's window holds fewer than
    /// `max`, else the whole seconds until its window ends (at least 1), for `Retry-After`.
    pub fn take(&mut self, key: &str, now_ms: u64) -> Result<(), u32> {
        if let Some(window) = self.windows.get_mut(key) {
            if now_ms >= window.start_ms.saturating_add(self.window_ms) {
                *window = Window {
                    start_ms: now_ms,
                    count: 0,
                };
            }
            if window.count >= self.max {
                let end = window.start_ms.saturating_add(self.window_ms);
                return Err(end.saturating_sub(now_ms).div_ceil(1000).max(1) as u32);
            }
            window.count += 1;
            return Ok(());
        }
        if self.max == 0 {
            return Err(self.window_ms.div_ceil(1000).max(1) as u32);
        }
        if self.windows.len() >= self.capacity {
            self.make_room(now_ms);
        }
        self.windows.insert(
            key.to_owned(),
            Window {
                start_ms: now_ms,
                count: 1,
            },
        );
        Ok(())
    }

    /// Whether `key` could take one more event now, without taking it.
    pub fn would_allow(&self, key: &str, now_ms: u64) -> bool {
        match self.windows.get(key) {
            Some(w) => now_ms >= w.start_ms.saturating_add(self.window_ms) || w.count < self.max,
            None => self.max > 0,
        }
    }

    fn make_room(&mut self, now_ms: u64) {
        let window_ms = self.window_ms;
        self.windows
            .retain(|_, w| now_ms < w.start_ms.saturating_add(window_ms));
        if self.windows.len() >= self.capacity {
            if let Some(oldest) = self
                .windows
                .iter()
                .min_by_key(|(_, w)| w.start_ms)
                .map(|(k, _)| k.clone())
            {
                self.windows.remove(&oldest);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.windows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_max_events_per_window_then_waits_for_its_end() {
        let mut cap = KeyedCap::new(3, 60_000, 16);
        for _ in 0..3 {
            assert_eq!(cap.take("203.0.113.7", 1_000), Ok(()));
        }
        assert_eq!(cap.take("203.0.113.7", 1_000), Err(60));
        assert_eq!(cap.take("203.0.113.7", 31_000), Err(30));
        assert!(!cap.would_allow("203.0.113.7", 31_000));
        // Other keys are not affected.
        assert_eq!(cap.take("198.51.100.1", 1_000), Ok(()));
        // A new window starts when the old one ended.
        assert!(cap.would_allow("203.0.113.7", 61_000));
        assert_eq!(cap.take("203.0.113.7", 61_000), Ok(()));
    }

    #[test]
    fn the_table_stays_bounded_and_keeps_recent_keys() {
        let mut cap = KeyedCap::new(1, 60_000, 4);
        for i in 0..100u64 {
            let _ = cap.take(&format!("k{i}"), i);
            assert!(cap.len() <= 4);
        }
        // The most recent key is still capped.
        assert!(cap.take("k99", 100).is_err());
    }

    #[test]
    fn a_zero_cap_refuses_everything() {
        let mut cap = KeyedCap::new(0, 10_000, 4);
        assert_eq!(cap.take("x", 0), Err(10));
        assert!(cap.is_empty());
    }
}
