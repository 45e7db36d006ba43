//! An in-memory Clerk for host tests and the simulation: the users table with Clerk's
//! uniqueness rules (`422 form_identifier_exists` naming the param, `external_id` included:
//! the spec says it "must be unique across your instance"), its validation (email, E.164
//! phone, username, password digest shaped for its hasher), `GET /users` filters as Clerk reads
//! them (a leading `+`/`-` in `external_id` and `user_id` is an include / exclude marker;
//! email search finds unverified addresses too), a sliding-window rate limit answering `429`
//! with `Retry-After`, and injectable transient faults. Time is virtual: the caller sets it.
//!
//! The local Clerk server (`tests/clerk-server/`) follows the same rules; the cases in
//! `tests/clerk-server/cases.json` run against both (see `tests/fakes_agree.rs`).

use super::error::ClerkError;
use super::model::{
    ClerkEmailAddress, ClerkPhoneNumber, ClerkUser, CreateUser, IdentificationStatus, SecretString,
    SignInToken, UpdateUser, UpdateUserMetadata, UserQuery, Verification,
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
    /// Several users per external id only when uniqueness is switched off.
    by_external_id: HashMap<String, Vec<usize>>,
    by_email: HashMap<String, usize>,
    by_phone: HashMap<String, usize>,
    by_username: HashMap<String, usize>,
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
        t.by_external_id
            .get(id)
            .and_then(|v| v.first())
            .map(|&i| t.users[i].clone())
    }

    /// A user by Clerk id.
    pub fn user(&self, id: &str) -> Option<ClerkUser> {
        let t = self.tables.borrow();
        t.by_id.get(id).map(|&i| t.users[i].clone())
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

    fn invalid(code: &str, param: &str, message: &str) -> ClerkError {
        ClerkError::Api {
            status: 422,
            code: code.into(),
            message: message.into(),
            long_message: None,
            param: Some(param.into()),
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
        // Validation first (as Clerk answers: formats before uniqueness).
        let statuses = &body.email_address_identification_status;
        if !statuses.is_empty() && statuses.len() != body.email_address.len() {
            return Err(Self::invalid(
                "form_param_array_length_mismatch",
                "email_address_identification_status",
                "length mismatch",
            ));
        }
        let phone_statuses = &body.phone_number_identification_status;
        if !phone_statuses.is_empty() && phone_statuses.len() != body.phone_number.len() {
            return Err(Self::invalid(
                "form_param_array_length_mismatch",
                "phone_number_identification_status",
                "length mismatch",
            ));
        }
        validate_identifiers(
            &body.email_address,
            &body.phone_number,
            body.username.as_deref(),
        )?;
        validate_digest(
            body.password_digest.as_ref().map(SecretString::expose),
            body.password_hasher.as_deref(),
        )?;
        if body.email_address.is_empty()
            && body.phone_number.is_empty()
            && body.username.as_deref().is_none_or(str::is_empty)
        {
            return Err(Self::invalid(
                "form_param_missing",
                "email_address,phone_number,username,web3_wallet",
                "at least one parameter must be provided",
            ));
        }
        // Uniqueness, in the order the local Clerk server reports it.
        for e in &body.email_address {
            if t.by_email.contains_key(&e.trim().to_ascii_lowercase()) {
                return Err(Self::exists("email_address"));
            }
        }
        for p in &body.phone_number {
            if t.by_phone.contains_key(p.trim()) {
                return Err(Self::exists("phone_number"));
            }
        }
        if let Some(u) = &body.username {
            if t.by_username.contains_key(&u.to_ascii_lowercase()) {
                return Err(Self::exists("username"));
            }
        }
        if let Some(x) = &body.external_id {
            if self.unique_external_id.get() && t.by_external_id.contains_key(x) {
                return Err(Self::exists("external_id"));
            }
        }
        let idx = t.users.len();
        let id = format!("user_{idx:08}");
        let verification = |reserved: bool, strategy: &str| {
            Some(if reserved {
                Verification {
                    status: "unverified".into(),
                    strategy: Some(strategy.into()),
                }
            } else {
                Verification {
                    status: "verified".into(),
                    strategy: Some("admin".into()),
                }
            })
        };
        let email_addresses: Vec<ClerkEmailAddress> = body
            .email_address
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let reserved = statuses.get(i) == Some(&IdentificationStatus::Reserved);
                ClerkEmailAddress {
                    id: Some(format!("idn_{idx}_{i}")),
                    email_address: e.trim().to_ascii_lowercase(),
                    reserved,
                    verification: verification(reserved, "email_code"),
                }
            })
            .collect();
        let phone_numbers: Vec<ClerkPhoneNumber> = body
            .phone_number
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let reserved = phone_statuses.get(i) == Some(&IdentificationStatus::Reserved);
                ClerkPhoneNumber {
                    id: Some(format!("idn_{idx}_p{i}")),
                    phone_number: p.trim().to_owned(),
                    reserved,
                    verification: verification(reserved, "phone_code"),
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
            phone_numbers,
            username: body.username.as_deref().map(str::to_ascii_lowercase),
            first_name: body.first_name.clone(),
            last_name: body.last_name.clone(),
            password_enabled: body.password_digest.is_some(),
            public_metadata: body.public_metadata.clone().unwrap_or_default(),
            private_metadata: body.private_metadata.clone().unwrap_or_default(),
            created_at,
        };
        t.by_id.insert(id, idx);
        if let Some(x) = &user.external_id {
            t.by_external_id.entry(x.clone()).or_default().push(idx);
        }
        for e in &user.email_addresses {
            t.by_email.insert(e.email_address.clone(), idx);
        }
        for p in &user.phone_numbers {
            t.by_phone.insert(p.phone_number.clone(), idx);
        }
        if let Some(u) = &user.username {
            t.by_username.insert(u.clone(), idx);
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
        for (name, values) in [
            ("external_id", &q.external_id),
            ("user_id", &q.user_id),
            ("email_address", &q.email_address),
            ("phone_number", &q.phone_number),
            ("username", &q.username),
        ] {
            if values.len() > 100 {
                return Err(Self::invalid(
                    "form_param_array_size_exceeded",
                    name,
                    "exceeds maximum size",
                ));
            }
        }
        if let Some(limit) = q.limit {
            if !(1..=500).contains(&limit) {
                return Err(Self::invalid(
                    "form_param_value_invalid",
                    "limit",
                    "is invalid",
                ));
            }
        }
        let t = self.tables.borrow();
        let (ext_in, ext_out) = split_markers(&q.external_id);
        let (uid_in, uid_out) = split_markers(&q.user_id);
        let emails: Vec<String> = q
            .email_address
            .iter()
            .map(|e| e.trim().to_ascii_lowercase())
            .collect();
        let phones: Vec<&str> = q.phone_number.iter().map(|p| p.trim()).collect();
        let usernames: Vec<String> = q
            .username
            .iter()
            .map(|u| u.trim().to_ascii_lowercase())
            .collect();
        // Narrow with an index, then check every filter on every candidate (AND).
        let mut idxs: Vec<usize> = if !ext_in.is_empty() {
            ext_in
                .iter()
                .flat_map(|x| t.by_external_id.get(*x).into_iter().flatten().copied())
                .collect()
        } else if !emails.is_empty() {
            emails
                .iter()
                .filter_map(|e| t.by_email.get(e).copied())
                .collect()
        } else if !uid_in.is_empty() {
            uid_in
                .iter()
                .filter_map(|x| t.by_id.get(*x).copied())
                .collect()
        } else {
            (0..t.users.len()).collect()
        };
        idxs.sort_unstable();
        idxs.dedup();
        let lag = self.search_lag_ms.get();
        let visible_before = self.now_ms.get().saturating_sub(lag);
        let mut users: Vec<ClerkUser> = idxs
            .into_iter()
            .filter(|&i| lag == 0 || t.inserted_at_ms[i] <= visible_before)
            .map(|i| &t.users[i])
            .filter(|u| {
                let ext = u.external_id.as_deref();
                (ext_in.is_empty() || ext.is_some_and(|x| ext_in.contains(&x)))
                    && !ext.is_some_and(|x| ext_out.contains(&x))
                    && (uid_in.is_empty() || uid_in.contains(&u.id.as_str()))
                    && !uid_out.contains(&u.id.as_str())
                    && (emails.is_empty()
                        || u.email_addresses
                            .iter()
                            .any(|e| emails.contains(&e.email_address)))
                    && (phones.is_empty()
                        || u.phone_numbers
                            .iter()
                            .any(|p| phones.contains(&p.phone_number.as_str())))
                    && (usernames.is_empty()
                        || u.username.as_ref().is_some_and(|n| usernames.contains(n)))
            })
            .cloned()
            .collect();
        // Newest first, as Clerk orders by default, cut at `limit` (default 10).
        users.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        users.truncate(q.limit.unwrap_or(10) as usize);
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
        validate_identifiers(&[], &[], body.username.as_deref())?;
        validate_digest(
            body.password_digest.as_ref().map(SecretString::expose),
            body.password_hasher.as_deref(),
        )?;
        if let Some(u) = &body.username {
            if t.by_username
                .get(&u.to_ascii_lowercase())
                .is_some_and(|&i| i != idx)
            {
                return Err(Self::exists("username"));
            }
        }
        if let Some(x) = &body.external_id {
            if self.unique_external_id.get()
                && t.by_external_id
                    .get(x)
                    .is_some_and(|v| v.iter().any(|&i| i != idx))
            {
                return Err(Self::exists("external_id"));
            }
        }
        if let Some(x) = &body.external_id {
            if let Some(old) = t.users[idx].external_id.clone() {
                if let Some(v) = t.by_external_id.get_mut(&old) {
                    v.retain(|&i| i != idx);
                }
            }
            t.by_external_id.entry(x.clone()).or_default().push(idx);
        }
        if let Some(u) = &body.username {
            if let Some(old) = t.users[idx].username.clone() {
                t.by_username.remove(&old);
            }
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
        if let Some(u) = &body.username {
            user.username = Some(u.to_ascii_lowercase());
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

/// Splits `external_id` / `user_id` filter values as Clerk reads them: a leading `-` excludes,
/// a leading `+` (stripped once) or none includes.
fn split_markers(values: &[String]) -> (Vec<&str>, Vec<&str>) {
    let mut include = Vec::new();
    let mut exclude = Vec::new();
    for v in values {
        if let Some(rest) = v.strip_prefix('-') {
            exclude.push(rest);
        } else {
            include.push(v.strip_prefix('+').unwrap_or(v));
        }
    }
    (include, exclude)
}

/// Clerk's formats: an email address, an E.164 phone number, a username of 4–64 letters,
/// digits, `_` or `-`.
fn validate_identifiers(
    emails: &[String],
    phones: &[String],
    username: Option<&str>,
) -> Result<(), ClerkError> {
    for e in emails {
        // `^[^\s@]+@[^\s@]+\.[^\s@]+$`, as the local server checks it.
        let e = e.trim();
        let ok = !e.chars().any(char::is_whitespace)
            && e.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain
                        .char_indices()
                        .any(|(i, c)| c == '.' && i > 0 && i + 1 < domain.len())
            });
        if !ok {
            return Err(MemoryClerk::invalid(
                "form_param_format_invalid",
                "email_address",
                "email_address must be a valid email address.",
            ));
        }
    }
    for p in phones {
        let digits = p.trim().strip_prefix('+').unwrap_or("");
        let ok = (7..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if !ok {
            return Err(MemoryClerk::invalid(
                "form_param_format_invalid",
                "phone_number",
                "phone_number must be a valid phone number according to E.164 international standard.",
            ));
        }
    }
    if let Some(u) = username.filter(|u| !u.is_empty()) {
        if !(4..=64).contains(&u.chars().count()) {
            return Err(MemoryClerk::invalid(
                "form_username_invalid_length",
                "username",
                "Usernames must be between 4 and 64 characters long.",
            ));
        }
        if !u
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(MemoryClerk::invalid(
                "form_username_invalid_character",
                "username",
                "Usernames can only contain letters, numbers, and '_' or '-'.",
            ));
        }
    }
    Ok(())
}

/// `password_digest` and `password_hasher` together, a hasher from the spec's list, and a
/// digest shaped for it (`form_password_digest_invalid_code` otherwise).
fn validate_digest(digest: Option<&str>, hasher: Option<&str>) -> Result<(), ClerkError> {
    match (digest, hasher) {
        (None, None) => Ok(()),
        (Some(_), None) => Err(MemoryClerk::invalid(
            "form_conditional_param_missing",
            "password_hasher",
            "is missing",
        )),
        (None, Some(_)) => Err(MemoryClerk::invalid(
            "form_conditional_param_missing",
            "password_digest",
            "is missing",
        )),
        (Some(d), Some(h)) => {
            if !crate::migration::record::PASSWORD_HASHERS.contains(&h) {
                Err(MemoryClerk::invalid(
                    "form_param_value_invalid",
                    "password_hasher",
                    "is invalid",
                ))
            } else if !digest_matches_hasher(h, d) {
                Err(MemoryClerk::invalid(
                    "form_password_digest_invalid_code",
                    "password_digest",
                    "The password digest is not valid for the given password hasher.",
                ))
            } else {
                Ok(())
            }
        }
    }
}

/// The digest shapes the local Clerk server checks (`digestMatchesHasher` in
/// `tests/clerk-server/users.mjs`): the same rules, so both fakes refuse the same digests.
pub fn digest_matches_hasher(hasher: &str, digest: &str) -> bool {
    fn digits(s: &str) -> bool {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
    }
    fn hex(s: &str, len: usize) -> bool {
        s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
    }
    fn b64(s: &str) -> bool {
        let body = s.trim_end_matches('=');
        s.len() - body.len() <= 2
            && !body.is_empty()
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    }
    fn bcrypt(s: &str) -> bool {
        // $2[abxy]?$NN$ + 53 of [./A-Za-z0-9]
        let Some(rest) = s.strip_prefix("$2") else {
            return false;
        };
        let rest = rest.strip_prefix(['a', 'b', 'x', 'y']).unwrap_or(rest);
        let Some(rest) = rest.strip_prefix('$') else {
            return false;
        };
        let (cost, hash) = rest.split_at_checked(2).unwrap_or(("", ""));
        digits(cost)
            && hash.strip_prefix('$').is_some_and(|h| {
                h.len() == 53
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
            })
    }
    if digest.is_empty() {
        return false;
    }
    match hasher {
        "bcrypt" => bcrypt(digest),
        "bcrypt_sha256_django" => digest.strip_prefix("bcrypt_sha256$").is_some_and(bcrypt),
        "argon2i" | "argon2id" => {
            let Some(rest) = digest
                .strip_prefix('$')
                .and_then(|r| r.strip_prefix(hasher))
                .and_then(|r| r.strip_prefix('$'))
            else {
                return false;
            };
            let mut parts: Vec<&str> = rest.split('$').collect();
            if parts.len() == 4 {
                let v = parts.remove(0);
                if !v.strip_prefix("v=").is_some_and(digits) {
                    return false;
                }
            }
            let [params, salt, hash] = parts[..] else {
                return false;
            };
            let p: Vec<&str> = params.split(',').collect();
            p.len() == 3
                && ["m=", "t=", "p="]
                    .iter()
                    .zip(&p)
                    .all(|(k, v)| v.strip_prefix(k).is_some_and(digits))
                && b64(salt)
                && b64(hash)
        }
        "md5" => hex(digest, 32),
        "sha256" => hex(digest, 64),
        "pbkdf2_sha1"
        | "pbkdf2_sha256"
        | "pbkdf2_sha512"
        | "pbkdf2_sha512_hex"
        | "pbkdf2_sha256_django" => {
            let algo = hasher.trim_end_matches("_django").trim_end_matches("_hex");
            let parts: Vec<&str> = digest.split('$').collect();
            parts.len() == 4
                && parts[0] == algo
                && digits(parts[1])
                && !parts[2].is_empty()
                && !parts[3].is_empty()
        }
        "scrypt_firebase" => digest.split('$').count() >= 6,
        "phpass" | "md5_phpass" => digest.starts_with("$P$") || digest.starts_with("$H$"),
        "ldap_ssha" => digest
            .get(..6)
            .is_some_and(|p| p.eq_ignore_ascii_case("{SSHA}")),
        "scrypt_werkzeug" => {
            let parts: Vec<&str> = digest.split('$').collect();
            parts.len() == 3
                && !parts[1].is_empty()
                && !parts[2].is_empty()
                && parts[0].strip_prefix("scrypt:").is_some_and(|p| {
                    let n: Vec<&str> = p.split(':').collect();
                    n.len() == 3 && n.iter().all(|x| digits(x))
                })
        }
        _ => true,
    }
}
