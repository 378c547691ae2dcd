//! The OpenAPI document describes exactly the routes the routers serve.

#[test]
fn the_openapi_document_describes_exactly_the_routes_the_handlers_serve() {
    let doc: serde_yaml::Value =
        serde_yaml::from_str(include_str!("../../../infra/openapi.yaml")).unwrap();
    let mut documented = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_mapping().unwrap() {
        // a path item's other fields (its shared parameters, a summary) are not operations
        let methods = item.as_mapping().unwrap().iter().filter(|(key, _)| {
            ["get", "put", "post", "delete", "patch", "head", "options"]
                .contains(&key.as_str().unwrap())
        });
        for (method, _) in methods {
            documented.insert((
                method.as_str().unwrap().to_uppercase(),
                path.as_str().unwrap().to_string(),
            ));
        }
    }
    let served: std::collections::BTreeSet<(String, String)> = herald_api::routes()
        .into_iter()
        .chain(herald_webhooks::routes())
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, served);
}
