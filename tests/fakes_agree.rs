//! The in-memory Clerk (`clerk_api::memory`) against the shared table of Backend API cases in
//! `tests/clerk-server/cases.json`. The local Clerk server runs the same table
//! (`tests/clerk-server/agree.test.mjs`), so the two fakes agree with each other and with the
//! spec on what the migration relies on: `+`/`-` markers in `external_id` and `user_id`,
//! uniqueness (external id included), digest and identifier validation, and email search
//! finding unverified addresses.

use auth_bridge::clerk_api::memory::MemoryClerk;
use auth_bridge::clerk_api::{ClerkApi, ClerkError, ClerkUser, CreateUser, UpdateUser, UserQuery};
use futures::executor::block_on;
use serde_json::Value;

const CASES: &str = include_str!("clerk-server/cases.json");

/// `$N` in a query value is the Clerk id of seed user N (ids differ between the fakes).
fn substitute(v: &str, ids: &[String]) -> String {
    let mut out = v.to_owned();
    for (i, id) in ids.iter().enumerate().rev() {
        out = out.replace(&format!("${i}"), id);
    }
    out
}

fn strings(q: &Value, key: &str, ids: &[String]) -> Vec<String> {
    q[key]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| substitute(v.as_str().unwrap(), ids))
                .collect()
        })
        .unwrap_or_default()
}

fn check_error(name: &str, expect: &Value, got: Result<ClerkUser, ClerkError>) {
    let status = expect["status"].as_u64().unwrap();
    match got {
        Ok(_) => assert_eq!(status, 200, "{name}: expected an error, got 200"),
        Err(ClerkError::Api {
            status: s,
            code,
            param,
            ..
        }) => {
            assert_eq!(u64::from(s), status, "{name}: status ({code})");
            assert_eq!(code, expect["code"].as_str().unwrap(), "{name}: code");
            assert_eq!(
                param.as_deref(),
                expect["param"].as_str(),
                "{name}: param of {code}"
            );
        }
        Err(other) => panic!("{name}: {other}"),
    }
}

#[test]
fn the_memory_fake_answers_every_shared_case_as_the_spec_says() {
    let cases: Vec<Value> = serde_json::from_str(CASES).unwrap();
    assert!(cases.len() >= 40, "the table is the point: {}", cases.len());
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let clerk = MemoryClerk::default();
        let ids: Vec<String> = case["seed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|body| {
                let body: CreateUser = serde_json::from_value(body.clone()).unwrap();
                clerk.seed(&body).id
            })
            .collect();
        let call = &case["call"];
        let expect = &case["expect"];
        match call["op"].as_str().unwrap() {
            "find" => {
                let q = &call["query"];
                let query = UserQuery {
                    external_id: strings(q, "external_id", &ids),
                    user_id: strings(q, "user_id", &ids),
                    email_address: strings(q, "email_address", &ids),
                    phone_number: strings(q, "phone_number", &ids),
                    username: strings(q, "username", &ids),
                    limit: Some(100),
                };
                let found = block_on(clerk.find_users(&query)).unwrap();
                let mut got: Vec<usize> = found
                    .iter()
                    .map(|u| ids.iter().position(|id| *id == u.id).unwrap())
                    .collect();
                got.sort_unstable();
                let want: Vec<usize> = expect["users"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap() as usize)
                    .collect();
                assert_eq!(got, want, "{name}");
                if let Some(status) = expect["email_status"].as_str() {
                    let v = found[0].email_addresses[0].verification.as_ref().unwrap();
                    assert_eq!(v.status, status, "{name}");
                }
                if let Some(status) = expect["phone_status"].as_str() {
                    let v = found[0].phone_numbers[0].verification.as_ref().unwrap();
                    assert_eq!(v.status, status, "{name}");
                }
            }
            "create" => {
                let body: CreateUser = serde_json::from_value(call["body"].clone()).unwrap();
                check_error(name, expect, block_on(clerk.create_user(&body)));
            }
            "update" => {
                let id = &ids[call["user"].as_u64().unwrap() as usize];
                let body: UpdateUser = serde_json::from_value(call["body"].clone()).unwrap();
                check_error(name, expect, block_on(clerk.update_user(id, &body)));
            }
            other => panic!("{name}: unknown op {other}"),
        }
    }
}
