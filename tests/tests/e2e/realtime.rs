//! The in-app feed in real time, served as `herald-local serve` serves it: the real
//! authorizer and routes behind the local WebSocket API, the projector and the api posting
//! through its management endpoint.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use futures::{SinkExt, StreamExt};
use herald_adapters::DynamoConnections;
use herald_adapters::tokens::KeyIssuer;
use herald_core::ids::{CustomerId, OrgId};
use herald_core::ports::Connections;
use herald_core::realtime::{Connection, ConnectionId, Listener};
use herald_e2e::Harness;
use herald_local::serve::Serving;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, Message};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn claims(h: &Harness, role: &str, customer: Option<&str>) -> HashMap<String, String> {
    let mut claims = HashMap::from([
        ("org_id".to_string(), h.org.clone()),
        ("role".to_string(), role.to_string()),
    ]);
    if let Some(c) = customer {
        claims.insert("customer_id".into(), c.into());
    }
    claims
}

fn customer_token(h: &Harness, serving: &Serving, customer: &str) -> String {
    serving.served.tokens.token(
        &claims(h, "customer", Some(customer)),
        chrono::Duration::hours(1),
    )
}

/// Opens the socket, or answers the HTTP status the handshake was refused with.
async fn connect(serving: &Serving, query: &str) -> Result<Socket, u16> {
    let url = format!("ws://{}/realtime?{query}", serving.addr);
    match tokio_tungstenite::connect_async(url).await {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("the handshake failed without an answer: {e}"),
    }
}

async fn listen(h: &Harness, serving: &Serving, customer: &str) -> Socket {
    connect(
        serving,
        &format!("token={}", customer_token(h, serving, customer)),
    )
    .await
    .expect("the customer connects")
}

/// The next message on the socket (a deadline only so that a broken build fails instead of
/// hanging).
async fn next(socket: &mut Socket) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .expect("a message arrives")
            .expect("the socket stays open")
            .expect("a frame");
        if let Message::Text(text) = frame {
            return serde_json::from_str(&text).expect("JSON");
        }
    }
}

/// Pings and reads up to the pong: the messages posted to the socket before the ping.
async fn drain(socket: &mut Socket) -> Vec<Value> {
    socket
        .send(Message::text(r#"{"action":"ping"}"#))
        .await
        .unwrap();
    let mut before = Vec::new();
    loop {
        let m = next(socket).await;
        if m["type"] == "pong" {
            return before;
        }
        before.push(m);
    }
}

fn connections(h: &Harness) -> DynamoConnections {
    DynamoConnections::new(
        aws_sdk_dynamodb::Client::new(&h.local.aws),
        h.local.stack.names.connections_table(),
    )
}

fn listener(h: &Harness, customer: &str) -> Listener {
    Listener {
        org_id: OrgId::parse(h.org.as_str()).unwrap(),
        customer_id: CustomerId::parse(customer).unwrap(),
    }
}

async fn open_connections(h: &Harness, customer: &str) -> Vec<ConnectionId> {
    let listener = listener(h, customer);
    connections(h)
        .listening(std::slice::from_ref(&listener))
        .await
        .unwrap()
        .remove(&listener)
        .unwrap_or_default()
}

#[tokio::test]
async fn a_customer_token_connects_and_no_bad_token_stores_anything() {
    let (h, serving) = Harness::served().await;
    let mut socket = listen(&h, &serving, "cus_alice").await;
    assert_eq!(open_connections(&h, "cus_alice").await.len(), 1);
    // the keep-alive, and what else the socket refuses
    assert!(drain(&mut socket).await.is_empty());
    socket
        .send(Message::text(r#"{"action":"markRead"}"#))
        .await
        .unwrap();
    let refused = next(&mut socket).await;
    assert_eq!(refused["type"], "error");
    assert!(refused["message"].as_str().unwrap().contains("HTTP api"));

    let expired = serving.served.tokens.token(
        &claims(&h, "customer", Some("cus_bob")),
        chrono::Duration::hours(-1),
    );
    // the same issuer and key id, another key
    let impostor = KeyIssuer::generate(
        "herald-local-1",
        herald_local::dev_tokens::ISSUER,
        herald_local::dev_tokens::AUDIENCE,
    )
    .unwrap()
    .token(
        &claims(&h, "customer", Some("cus_bob")),
        chrono::Duration::hours(1),
    );
    for (query, status) in [
        (String::new(), 401),
        ("token=".to_string(), 401),
        ("token=not.a.jwt".to_string(), 401),
        (format!("token={expired}"), 401),
        (format!("token={impostor}"), 401),
        // a customer listens to their own feed only; an administrator not at all
        (
            format!(
                "token={}&customer=cus_bob",
                customer_token(&h, &serving, "cus_carol")
            ),
            403,
        ),
        (
            format!(
                "token={}",
                serving
                    .served
                    .tokens
                    .token(&claims(&h, "admin", None), chrono::Duration::hours(1))
            ),
            403,
        ),
    ] {
        assert_eq!(
            connect(&serving, &query).await.err(),
            Some(status),
            "{query}"
        );
    }
    for customer in ["cus_bob", "cus_carol"] {
        assert!(open_connections(&h, customer).await.is_empty());
    }
    // an operator names the customer they watch
    let operator = serving
        .served
        .tokens
        .token(&claims(&h, "operator", None), chrono::Duration::hours(1));
    let watching = connect(&serving, &format!("token={operator}&customer=cus_bob"))
        .await
        .expect("the operator connects");
    assert_eq!(open_connections(&h, "cus_bob").await.len(), 1);

    // closing forgets the connection ($disconnect)
    socket.close(None).await.unwrap();
    drop(watching);
    for _ in 0..100 {
        if open_connections(&h, "cus_alice").await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(open_connections(&h, "cus_alice").await.is_empty());
}

#[tokio::test]
async fn an_order_reaches_its_customers_sockets_only_and_a_gone_one_is_forgotten() {
    let (h, serving) = Harness::served().await;
    let mut alice = listen(&h, &serving, "cus_alice").await;
    let mut alice_phone = listen(&h, &serving, "cus_alice").await;
    let mut bob = listen(&h, &serving, "cus_bob").await;
    // a connection API Gateway has closed while its $disconnect was lost
    let gone = ConnectionId::parse("R29uZUNvbm4=").unwrap();
    connections(&h)
        .add(&Connection {
            id: gone.clone(),
            listener: listener(&h, "cus_alice"),
            connected_at: chrono::Utc::now(),
        })
        .await
        .unwrap();
    assert_eq!(open_connections(&h, "cus_alice").await.len(), 3);

    h.run_one(h.contact("cus_alice", &h.email("alice"), None, "en").await)
        .await;
    let report = h.run_one(h.order_created("cus_alice", "ord_rt_1")).await;
    assert!(!report.notifications.is_empty());

    let mut ids = Vec::new();
    for socket in [&mut alice, &mut alice_phone] {
        let created = next(socket).await;
        ids.push(created["notification"]["notification_id"].clone());
        assert_eq!(created["type"], "notification.created", "{created}");
        assert_eq!(created["unread"], 1);
        assert_eq!(created["notification"]["customer_id"], "cus_alice");
        assert_eq!(
            created["notification"]["notification_type"],
            "order_confirmation"
        );
        assert_eq!(created["notification"]["read"], false);
    }
    assert!(drain(&mut bob).await.is_empty(), "bob hears nothing");
    let mut left = open_connections(&h, "cus_alice").await;
    left.sort();
    assert_eq!(left.len(), 2);
    assert!(!left.contains(&gone), "the gone connection is forgotten");

    assert_eq!(ids[0], ids[1]);
    let id = ids[0].as_str().unwrap().to_string();
    // what else came (its status changes) is read past
    drain(&mut alice).await;
    drain(&mut alice_phone).await;

    // reading it over the HTTP api tells every open socket of the customer
    let http = reqwest::Client::new();
    let answer: Value = http
        .post(format!(
            "http://{}/customers/cus_alice/notifications/{id}/read",
            serving.addr
        ))
        .bearer_auth(customer_token(&h, &serving, "cus_alice"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["unread"], 0, "{answer}");
    for socket in [&mut alice, &mut alice_phone] {
        let messages = drain(socket).await;
        let read = messages
            .iter()
            .find(|m| m["type"] == "feed.read")
            .expect("a feed.read message");
        assert_eq!(read["unread"], 0);
        assert_eq!(read["notification"]["notification_id"], json!(id));
        assert_eq!(read["notification"]["read"], true);
    }
    assert!(drain(&mut bob).await.is_empty());
}

#[tokio::test]
async fn the_inbox_demo_page_signs_a_customer_in_with_a_token_the_stack_accepts() {
    let (_h, serving) = Harness::served().await;
    let http = reqwest::Client::new();
    let base = format!("http://{}", serving.addr);
    let page = http
        .get(format!("{base}/inbox?customer=cus_alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(&format!(r#"realtime="ws://{}/realtime""#, serving.addr)));
    let token = html
        .split(r#"token=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap();
    let claims = serving
        .served
        .websocket
        .verifier
        .verify(token)
        .await
        .unwrap();
    assert_eq!(claims["customer_id"], "cus_alice");
    assert_eq!(claims["org_id"], herald_local::inbox::SAMPLE_ORG);

    let script = http
        .get(format!("{base}/inbox/herald-inbox.js"))
        .send()
        .await
        .unwrap();
    assert!(
        script.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(script.text().await.unwrap().contains("herald-inbox"));
    for bad in ["", "?customer=not%20an%20id", "?customer=cus_a&org=o%23rg"] {
        let answer = http.get(format!("{base}/inbox{bad}")).send().await.unwrap();
        assert_eq!(answer.status(), 400, "{bad}");
    }
}

#[tokio::test]
async fn the_connections_table_reads_a_batch_of_customers_at_once_and_forgets_what_went() {
    let h = Harness::new().await;
    let table = connections(&h);
    let connected = |customer: &str, id: &str, at: chrono::DateTime<chrono::Utc>| Connection {
        id: ConnectionId::parse(id).unwrap(),
        listener: listener(&h, customer),
        connected_at: at,
    };
    let now = chrono::Utc::now();
    for c in [
        connected("cus_a", "QUFBQQ==", now),
        connected("cus_a", "QkJCQg+/", now),
        // past API Gateway's two hours, its $disconnect lost
        connected("cus_b", "T0xETw==", now - chrono::Duration::hours(3)),
        connected("cus_b", "Q0NDQw==", now),
    ] {
        table.add(&c).await.unwrap();
        table.add(&c).await.unwrap(); // recorded again: nothing changes
    }
    let asked: Vec<Listener> = ["cus_a", "cus_b", "cus_c"]
        .iter()
        .map(|c| listener(&h, c))
        .collect();
    let listening = table.listening(&asked).await.unwrap();
    let ids = |customer: &str| -> Vec<String> {
        listening
            .get(&listener(&h, customer))
            .map(|ids| ids.iter().map(|i| i.as_str().to_string()).collect())
            .unwrap_or_default()
    };
    assert_eq!(ids("cus_a"), vec!["QUFBQQ==", "QkJCQg+/"]);
    assert_eq!(ids("cus_b"), vec!["Q0NDQw=="], "the expired one is gone");
    let item = aws_sdk_dynamodb::Client::new(&h.local.aws)
        .get_item()
        .table_name(h.local.stack.names.connections_table())
        .key("pk", AttributeValue::S(format!("W#{}#cus_b", h.org)))
        .key("sk", AttributeValue::S("open".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let mut attributes: Vec<&String> = item.keys().filter(|k| k.starts_with("c#")).collect();
    attributes.sort();
    assert_eq!(
        attributes,
        ["c#Q0NDQw=="],
        "the next connection removed the expired one"
    );
    assert!(!listening.contains_key(&listener(&h, "cus_c")));

    table
        .remove(
            &listener(&h, "cus_a"),
            &ConnectionId::parse("QUFBQQ==").unwrap(),
        )
        .await
        .unwrap();
    // forgetting twice, or a connection of a customer never seen, is fine and stores nothing
    table
        .remove(
            &listener(&h, "cus_a"),
            &ConnectionId::parse("QUFBQQ==").unwrap(),
        )
        .await
        .unwrap();
    table
        .remove(
            &listener(&h, "cus_d"),
            &ConnectionId::parse("RERERA==").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(open_connections(&h, "cus_a").await.len(), 1);
    let scan = aws_sdk_dynamodb::Client::new(&h.local.aws)
        .scan()
        .table_name(h.local.stack.names.connections_table())
        .send()
        .await
        .unwrap();
    let keys: Vec<String> = scan
        .items()
        .iter()
        .filter_map(|i| i.get("pk")?.as_s().ok().cloned())
        .filter(|pk| pk.contains(&h.org))
        .collect();
    assert_eq!(keys.len(), 2, "one item per listening customer: {keys:?}");
}

#[tokio::test]
async fn the_latency_tool_times_each_notification_from_its_feed_write_to_the_socket() {
    let (_h, serving) = Harness::served().await;
    let report = herald_local::latency::measure(&serving, 3).await.unwrap();
    assert_eq!(report.notifications, 3);
    let feed = &report.feed_write_to_socket_ms;
    let bus = &report.bus_to_socket_ms;
    // orderings only: what the figures are is the tool's to report, not the test's to assert
    assert!(
        feed.min <= feed.median && feed.median <= feed.max,
        "{report:?}"
    );
    assert!(bus.min <= bus.median && bus.median <= bus.max, "{report:?}");
    assert!(
        feed.median <= bus.median,
        "the feed write is part of the way: {report:?}"
    );
    assert!(report.table().contains("feed write -> socket"));
}

#[tokio::test]
async fn a_page_on_another_local_origin_may_call_the_served_api_and_no_other_page_may() {
    let (h, serving) = Harness::served().await;
    let http = reqwest::Client::new();
    let feed = format!("http://{}/customers/cus_alice/notifications", serving.addr);
    let preflight = |origin: &'static str| {
        http.request(reqwest::Method::OPTIONS, &feed)
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let allowed = preflight("http://localhost:5173").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    let methods = allowed.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(methods.contains("POST"), "{methods}");
    let refused = preflight("https://elsewhere.example").await.unwrap();
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    // the request itself, from the local page
    let answer = http
        .get(&feed)
        .header("origin", "http://localhost:5173")
        .bearer_auth(customer_token(&h, &serving, "cus_alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
}
