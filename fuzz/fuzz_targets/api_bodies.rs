//! The api's request bodies: any bytes as a customer's preferences or contact, or as a
//! provider's or push platform's settings. Read, or refused naming where; never a panic.
#![no_main]

use herald_api::customer::{ContactBody, PreferencesBody};
use herald_api::request::json;
use herald_core::model::{Platform, Provider};
use herald_core::providers::OrgProviders;
use herald_core::push_apps;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // the first byte picks the body, the rest is the body as the api reads it
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 7 {
        0 => drop(json::<PreferencesBody>(body)),
        1 => drop(json::<ContactBody>(body)),
        n => {
            let Ok(value) = json::<serde_json::Value>(body) else {
                return;
            };
            let result = match n {
                2 => OrgProviders::default().set(Provider::Sendgrid, value),
                3 => OrgProviders::default().set(Provider::Twilio, value),
                4 => OrgProviders::default().set(Provider::Ses, value),
                5 => push_apps::application_attributes(Platform::Fcm, value).map(drop),
                _ => push_apps::application_attributes(Platform::Apns, value).map(drop),
            };
            if let Err(e) = result {
                assert!(e.0.contains("settings"), "{}", e.0);
            }
        }
    }
});
