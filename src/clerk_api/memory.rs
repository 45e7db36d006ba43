//! An in-memory Clerk for host tests and the simulation: the users table with Clerk's
//! uniqueness rules (`422 form_identifier_exists` naming the param), a sliding-window rate
//! limit answering `429` with `Retry-After`, and injectable transient faults. Time is virtual:
//! the caller sets it.

use super::error::ClerkError;
use super::model::{
    ClerkEmailAddress, ClerkUser, CreateUser, IdentificationStatus, SecretString, SignInToken,
    UpdateUser, UpdateUserMetadata, UserQuery, Verification,
};
use super::ClerkApi;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};

/// What a fault hook may make a call do instead of its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `500` before doing anything.
    ServerError,
    /// Time out before doing anything.
    Timeout,
    /// Do the work, then time out: the caller cannot know it succeeded.
    TimeoutAfterWrite,
}

#[derive(Default)]
struct Tables {
    users: Vec<ClerkUser>,
    by_id: HashMap<String, usize>,
    by_external_id: HashMap<String, usize>,
    by_email: HashMap<String, usize>,
    by_phone: HashMap<String, usize>,
    by_username: HashMap<String, usize>,
    phones: HashMap<usize, String>,
    inserted_at_ms: Vec<u64>,
}

type FaultHook = Box<dyn Fn(u64) -> Option<Fault>>;

pub struct MemoryClerk {
    tables: RefCell<Tables>,
    now_ms: Cell<u64>,
    /// `(limit, window_ms)`; `None` = unlimited.
    rate_limit: Option<(u32, u64)>,
    window: RefCell<VecDeque<u64>>,
    /// Every request's arrival time (accepted or not), in order.
    pub request_log: RefCell<Vec<u64>>,
    /// Arrival times of requests that passed the rate limit.
    pub accepted_log: RefCell<Vec<u64>>,
    pub rate_limited: Cell<u64>,
    fault_hook: RefCell<Option<FaultHook>>,
    seq: Cell<u64>,
    search_lag_ms: Cell<u64>,
    unique_external_id: Cell<bool>,
}

impl Default for MemoryClerk {
    fn default() -> Self {
        Self::new(None)
    }
}

impl MemoryClerk {
    pub fn new(rate_limit: Option<(u32, u64)>) -> Self {
        Self {
            tables: RefCell::default(),
            now_ms: Cell::new(0),
            rate_limit,
            window: RefCell::default(),
            request_log: RefCell::default(),
            accepted_log: RefCell::default(),
            rate_limited: Cell::new(0),
            fault_hook: RefCell::new(None),
            seq: Cell::new(0),
            search_lag_ms: Cell::new(0),
            unique_external_id: Cell::new(true),
        }
    }

    pub fn set_now(&self, now_ms: u64) {
        self.now_ms.set(now_ms);
    }
    pub fn now(&self) -> u64 {
        self.now_ms.get()
    }

    /// `GET /users` does not see users inserted less than `lag_ms` ago (Clerk's search lags
    /// its writes), while uniqueness checks do.
    pub fn set_search_lag(&self, lag_ms: u64) {
        self.search_lag_ms.set(lag_ms);
    }

    /// Whether `external_id` collisions are refused (on by default). Off, duplicates by
    /// external id become observable, which is what a simulation wants to count.
    pub fn set_unique_external_id(&self, on: bool) {
        self.unique_external_id.set(on);
    }

    /// Clerk users per external id that has more than one (should be empty).
    pub fn duplicate_external_ids(&self) -> Vec<(String, usize)> {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        let t = self.tables.borrow();
        for u in &t.users {
            if let Some(x) = &u.external_id {
                *counts.entry(x).or_default() += 1;
            }
        }
        counts
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(k, n)| (k.to_owned(), n))
            .collect()
    }

    /// `hook(request number)` decides a fault per request.
    pub fn set_fault_hook(&self, hook: impl Fn(u64) -> Option<Fault> + 'static) {
        *self.fault_hook.borrow_mut() = Some(Box::new(hook));
    }

    pub fn users(&self) -> Vec<ClerkUser> {
        self.tables.borrow().users.clone()
    }
    pub fn user_count(&self) -> usize {
        self.tables.borrow().users.len()
    }
    pub fn user_by_external_id(&self, id: &str) -> Option<ClerkUser> {
        let t = self.tables.borrow();
        t.by_external_id.get(id).map(|&i| t.users[i].clone())
    }

    /// Inserts a user as if created elsewhere (e.g. signed up in Clerk directly).
    pub fn seed(&self, body: &CreateUser) -> ClerkUser {
        self.insert(body).expect("seed user must be unique")
    }

    fn admit(&self) -> Result<u64, ClerkError> {
        let now = self.now_ms.get();
        self.request_log.borrow_mut().push(now);
        let n = self.seq.get();
        self.seq.set(n + 1);
        if let Some((limit, window_ms)) = self.rate_limit {
            let mut w = self.window.borrow_mut();
            while w.front().is_some_and(|&t| t + window_ms <= now) {
                w.pop_front();
            }
            if w.len() as u32 >= limit {
                self.rate_limited.set(self.rate_limited.get() + 1);
                let oldest = *w.front().unwrap_or(&now);
                let wait_ms = (oldest + window_ms).saturating_sub(now);
                return Err(ClerkError::RateLimited {
                    retry_after_secs: wait_ms.div_ceil(1000).max(1) as u32,
                });
            }
            w.push_back(now);
        }
        self.accepted_log.borrow_mut().push(now);
        Ok(n)
    }

    fn fault(&self, n: u64) -> Option<Fault> {
        self.fault_hook.borrow().as_ref().and_then(|h| h(n))
    }

    fn pre(&self) -> Result<Option<Fault>, ClerkError> {
        let n = self.admit()?;
        match self.fault(n) {
            Some(Fault::ServerError) => Err(ClerkError::Unavailable {
                status: 500,
                retry_after_secs: None,
            }),
            Some(Fault::Timeout) => Err(ClerkError::Timeout),
            other => Ok(other),
        }
    }

    fn post<T>(fault: Option<Fault>, value: T) -> Result<T, ClerkError> {
        match fault {
            Some(Fault::TimeoutAfterWrite) => Err(ClerkError::Timeout),
            _ => Ok(value),
        }
    }

    fn exists(param: &str) -> ClerkError {
        ClerkError::Api {
            status: 422,
            code: "form_identifier_exists".into(),
            message: "That identifier is taken. Please try another.".into(),
            long_message: None,
            param: Some(param.into()),
        }
    }

    fn insert(&self, body: &CreateUser) -> Result<ClerkUser, ClerkError> {
        let mut t = self.tables.borrow_mut();
        let statuses = &body.email_address_identification_status;
        if !statuses.is_empty() && statuses.len() != body.email_address.len() {
            return Err(ClerkError::Api {
                status: 422,
                code: "form_param_array_length_mismatch".into(),
                message: "length mismatch".into(),
                long_message: None,
                param: Some("email_address_identification_status".into()),
            });
        }
        if let Some(x) = &body.external_id {
            if self.unique_external_id.get() && t.by_external_id.contains_key(x) {
                return Err(Self::exists("external_id"));
            }
        }
        for e in &body.email_address {
            if t.by_email.contains_key(&e.to_ascii_lowercase()) {
                return Err(Self::exists("email_address"));
            }
        }
        if let Some(p) = body.phone_number.first() {
            if t.by_phone.contains_key(p) {
                return Err(Self::exists("phone_number"));
            }
        }
        if let Some(u) = &body.username {
            if t.by_username.contains_key(&u.to_ascii_lowercase()) {
                return Err(Self::exists("username"));
            }
        }
        let idx = t.users.len();
        let id = format!("user_{idx:08}");
        let email_addresses: Vec<ClerkEmailAddress> = body
            .email_address
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let reserved = body.email_address_identification_status.get(i)
                    == Some(&IdentificationStatus::Reserved);
                ClerkEmailAddress {
                    id: Some(format!("idn_{idx}_{i}")),
                    email_address: e.to_ascii_lowercase(),
                    reserved,
                    verification: (!reserved).then(|| Verification {
                        status: "verified".into(),
                        strategy: Some("admin".into()),
                    }),
                }
            })
            .collect();
        let created_at = body
            .created_at
            .as_deref()
            .and_then(crate::migration::record::parse_rfc3339_ms)
            .unwrap_or(self.now_ms.get() as i64);
        let user = ClerkUser {
            id: id.clone(),
            external_id: body.external_id.clone(),
            primary_email_address_id: email_addresses.first().and_then(|e| e.id.clone()),
            email_addresses,
            username: body.username.clone(),
            first_name: body.first_name.clone(),
            last_name: body.last_name.clone(),
            password_enabled: body.password_digest.is_some(),
            public_metadata: body.public_metadata.clone().unwrap_or_default(),
            private_metadata: body.private_metadata.clone().unwrap_or_default(),
            created_at,
        };
        t.by_id.insert(id, idx);
        if let Some(x) = &user.external_id {
            t.by_external_id.insert(x.clone(), idx);
        }
        for e in &user.email_addresses {
            t.by_email.insert(e.email_address.clone(), idx);
        }
        if let Some(p) = body.phone_number.first() {
            t.by_phone.insert(p.clone(), idx);
            t.phones.insert(idx, p.clone());
        }
        if let Some(u) = &user.username {
            t.by_username.insert(u.to_ascii_lowercase(), idx);
        }
        t.users.push(user.clone());
        t.inserted_at_ms.push(self.now_ms.get());
        Ok(user)
    }

    fn not_found() -> ClerkError {
        ClerkError::Api {
            status: 404,
            code: "resource_not_found".into(),
            message: "not found".into(),
            long_message: None,
            param: None,
        }
    }
}

impl ClerkApi for MemoryClerk {
    async fn find_users(&self, q: &UserQuery) -> Result<Vec<ClerkUser>, ClerkError> {
        let fault = self.pre()?;
        let t = self.tables.borrow();
        let mut hits: Option<Vec<usize>> = None;
        let mut filter = |idxs: Vec<usize>| {
            hits = Some(match hits.take() {
                None => idxs,
                Some(prev) => prev.into_iter().filter(|i| idxs.contains(i)).collect(),
            })
        };
        let look = |m: &HashMap<String, usize>, keys: &[String], lower: bool| -> Vec<usize> {
            keys.iter()
                .filter_map(|k| {
                    m.get(&if lower {
                        k.to_ascii_lowercase()
                    } else {
                        k.clone()
                    })
                    .copied()
                })
                .collect()
        };
        if !q.external_id.is_empty() {
            filter(look(&t.by_external_id, &q.external_id, false));
        }
        if !q.email_address.is_empty() {
            filter(look(&t.by_email, &q.email_address, true));
        }
        if !q.phone_number.is_empty() {
            filter(look(&t.by_phone, &q.phone_number, false));
        }
        if !q.username.is_empty() {
            filter(look(&t.by_username, &q.username, true));
        }
        let visible_before = self.now_ms.get().saturating_sub(self.search_lag_ms.get());
        let lag = self.search_lag_ms.get();
        let users = hits
            .unwrap_or_else(|| (0..t.users.len()).collect())
            .into_iter()
            .filter(|&i| lag == 0 || t.inserted_at_ms[i] <= visible_before)
            .map(|i| t.users[i].clone())
            .collect();
        Self::post(fault, users)
    }

    async fn create_user(&self, body: &CreateUser) -> Result<ClerkUser, ClerkError> {
        let fault = self.pre()?;
        let user = self.insert(body)?;
        Self::post(fault, user)
    }

    async fn update_user(&self, id: &str, body: &UpdateUser) -> Result<ClerkUser, ClerkError> {
        let fault = self.pre()?;
        let mut t = self.tables.borrow_mut();
        let idx = *t.by_id.get(id).ok_or_else(Self::not_found)?;
        if let Some(x) = &body.external_id {
            if self.unique_external_id.get() && t.by_external_id.get(x).is_some_and(|&i| i != idx) {
                return Err(Self::exists("external_id"));
            }
        }
        if let Some(u) = &body.username {
            if t.by_username
                .get(&u.to_ascii_lowercase())
                .is_some_and(|&i| i != idx)
            {
                return Err(Self::exists("username"));
            }
        }
        if let Some(x) = &body.external_id {
            if let Some(old) = t.users[idx].external_id.clone() {
                t.by_external_id.remove(&old);
            }
            t.by_external_id.insert(x.clone(), idx);
        }
        if let Some(u) = &body.username {
            t.by_username.insert(u.to_ascii_lowercase(), idx);
        }
        let user = &mut t.users[idx];
        if let Some(x) = &body.external_id {
            user.external_id = Some(x.clone());
        }
        if body.first_name.is_some() {
            user.first_name.clone_from(&body.first_name);
        }
        if body.last_name.is_some() {
            user.last_name.clone_from(&body.last_name);
        }
        if body.username.is_some() {
            user.username.clone_from(&body.username);
        }
        if body.password_digest.is_some() {
            user.password_enabled = true;
        }
        if let Some(ms) = body
            .created_at
            .as_deref()
            .and_then(crate::migration::record::parse_rfc3339_ms)
        {
            user.created_at = ms;
        }
        let user = user.clone();
        Self::post(fault, user)
    }

    async fn update_user_metadata(
        &self,
        id: &str,
        body: &UpdateUserMetadata,
    ) -> Result<ClerkUser, ClerkError> {
        let fault = self.pre()?;
        let mut t = self.tables.borrow_mut();
        let idx = *t.by_id.get(id).ok_or_else(Self::not_found)?;
        let user = &mut t.users[idx];
        for (k, v) in body.public_metadata.iter().flatten() {
            user.public_metadata.insert(k.clone(), v.clone());
        }
        for (k, v) in body.private_metadata.iter().flatten() {
            user.private_metadata.insert(k.clone(), v.clone());
        }
        let user = user.clone();
        Self::post(fault, user)
    }

    async fn create_sign_in_token(
        &self,
        user_id: &str,
        _expires_in_seconds: u32,
    ) -> Result<SignInToken, ClerkError> {
        let fault = self.pre()?;
        if !self.tables.borrow().by_id.contains_key(user_id) {
            return Err(Self::not_found());
        }
        let n = self.seq.get();
        let token = SignInToken {
            id: format!("sit_{n}"),
            token: SecretString::new(format!("tok_{n}")),
            status: "pending".into(),
            user_id: user_id.to_owned(),
            url: None,
        };
        Self::post(fault, token)
    }
}
