//! The SAM template, the local stack and the handlers agree: names, settings, routes.

use herald_e2e::sam::{sub, template};
use herald_local::stack::{
    DEFAULT_SENDER, DISPATCH_MAX_RECEIVES, DISPATCH_VISIBILITY_TIMEOUT, INTAKE_MAX_RECEIVES,
    INTAKE_PATTERN, Names, SENDER_DOMAIN,
};

#[test]
fn names_and_settings_match_the_template() {
    let t = template();
    let r = &t["Resources"];
    let names = Names::new("${Stage}");
    assert_eq!(sub(&r["HeraldBus"]["Properties"]["Name"]), names.bus());
    assert_eq!(
        sub(&r["NotificationsTable"]["Properties"]["TableName"]),
        names.notifications_table()
    );
    assert_eq!(
        sub(&r["DirectoryTable"]["Properties"]["TableName"]),
        names.directory_table()
    );
    assert_eq!(
        sub(&r["ViewsTable"]["Properties"]["TableName"]),
        names.views_table()
    );
    assert_eq!(
        sub(&r["ProjectorDeadLetterQueue"]["Properties"]["QueueName"]),
        names.projector_dlq()
    );
    assert_eq!(
        sub(&r["DispatchQueue"]["Properties"]["QueueName"]),
        names.dispatch_queue()
    );
    assert_eq!(
        sub(&r["DispatchDeadLetterQueue"]["Properties"]["QueueName"]),
        names.dispatch_dlq()
    );
    assert_eq!(
        sub(&r["IntakeDeadLetterQueue"]["Properties"]["QueueName"]),
        names.intake_dlq()
    );
    let q = &r["DispatchQueue"]["Properties"];
    assert_eq!(
        q["VisibilityTimeout"].as_u64(),
        Some(u64::from(DISPATCH_VISIBILITY_TIMEOUT))
    );
    assert_eq!(
        q["RedrivePolicy"]["maxReceiveCount"].as_u64(),
        Some(u64::from(DISPATCH_MAX_RECEIVES))
    );
    assert_eq!(
        sub(&r["IntakeQueue"]["Properties"]["QueueName"]),
        names.intake_queue()
    );
    assert_eq!(
        sub(&r["IntakeRule"]["Properties"]["Name"]),
        names.intake_rule()
    );
    assert_eq!(
        r["IntakeQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"].as_u64(),
        Some(u64::from(INTAKE_MAX_RECEIVES))
    );
    let pattern = &r["IntakeRule"]["Properties"]["EventPattern"];
    let pattern: serde_json::Value = serde_json::to_value(pattern).unwrap();
    assert_eq!(
        pattern,
        serde_json::from_str::<serde_json::Value>(INTAKE_PATTERN).unwrap()
    );
    assert_eq!(
        t["Parameters"]["SenderDomain"]["Default"].as_str(),
        Some(SENDER_DOMAIN)
    );
    assert_eq!(
        t["Parameters"]["DefaultSender"]["Default"].as_str(),
        Some(DEFAULT_SENDER)
    );
}

#[test]
fn every_variable_a_function_reads_is_set_by_the_template() {
    let t = template();
    let globals = t["Globals"]["Function"]["Environment"]["Variables"]
        .as_mapping()
        .unwrap()
        .clone();
    let env_of = |function: &str| {
        let mut vars: Vec<String> = globals
            .keys()
            .map(|k| k.as_str().unwrap().to_string())
            .collect();
        if let Some(own) =
            t["Resources"][function]["Properties"]["Environment"]["Variables"].as_mapping()
        {
            vars.extend(own.keys().map(|k| k.as_str().unwrap().to_string()));
        }
        vars
    };
    let intake = env_of("IntakeFunction");
    for v in [
        "HERALD_NOTIFICATIONS_TABLE",
        "HERALD_DIRECTORY_TABLE",
        "HERALD_DISPATCH_QUEUE_URL",
        "HERALD_DEFAULT_SENDER",
    ] {
        assert!(intake.iter().any(|x| x == v), "intake lacks {v}");
    }
    let dispatch = env_of("DispatchFunction");
    for v in [
        "HERALD_NOTIFICATIONS_TABLE",
        "HERALD_DISPATCH_QUEUE_URL",
        "HERALD_RETRY_MAX_ATTEMPTS",
        "HERALD_RETRY_BASE_SECONDS",
        "HERALD_RETRY_FACTOR",
        "HERALD_RETRY_CAP_SECONDS",
        "HERALD_PROVIDER_SECRETS_PREFIX",
    ] {
        assert!(dispatch.iter().any(|x| x == v), "dispatch lacks {v}");
    }
    let scheduler = env_of("SchedulerFunction");
    for v in [
        "HERALD_NOTIFICATIONS_TABLE",
        "HERALD_DISPATCH_QUEUE_URL",
        "HERALD_SWEEP_BUDGET",
    ] {
        assert!(scheduler.iter().any(|x| x == v), "scheduler lacks {v}");
    }
    assert!(
        env_of("ProjectorFunction")
            .iter()
            .any(|x| x == "HERALD_VIEWS_TABLE")
    );
    let due = &t["Resources"]["NotificationsTable"]["Properties"]["GlobalSecondaryIndexes"][1];
    assert_eq!(
        due["IndexName"].as_str(),
        Some(herald_local::stack::DUE_INDEX)
    );
}

#[test]
fn the_http_api_routes_are_the_handlers_routes() {
    let t = template();
    let mut routed = std::collections::BTreeSet::new();
    for function in ["ApiFunction", "WebhooksFunction"] {
        for (_, event) in t["Resources"][function]["Properties"]["Events"]
            .as_mapping()
            .unwrap()
        {
            let p = &event["Properties"];
            routed.insert((
                p["Method"].as_str().unwrap().to_uppercase(),
                p["Path"].as_str().unwrap().to_string(),
            ));
        }
    }
    let served: std::collections::BTreeSet<(String, String)> = herald_api::routes()
        .into_iter()
        .chain(herald_webhooks::routes())
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(routed, served);
}
