//! The OpenAPI document describes exactly the routes the routers serve.

#[test]
fn the_openapi_document_describes_exactly_the_routes_the_handlers_serve() {
    let doc: serde_yaml::Value =
        serde_yaml::from_str(include_str!("../../../infra/openapi.yaml")).unwrap();
    let mut documented = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_mapping().unwrap() {
        for (method, _) in item.as_mapping().unwrap() {
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
