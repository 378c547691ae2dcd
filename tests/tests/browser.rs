#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step should stop the test
//! The inbox in a real browser: Debian's Chromium, headless, driven through chromedriver,
//! on the served local stack. `infra/browser.sh` installs both (`make test` runs it).
//!
//! A test binary of its own: cargo runs test binaries one after another, so the browser does
//! not compete with the end-to-end tests for the machine's cores.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::elements::{Element, ShadowRoot};
use fantoccini::{Client, ClientBuilder, Locator};
use herald_adapters::DynamoConnections;
use herald_core::ids::{CustomerId, OrgId};
use herald_core::ports::Connections;
use herald_core::realtime::Listener;
use herald_e2e::Harness;
use herald_local::serve::Serving;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// How long the badge may take to count a new notification after it is put on the bus.
const LIVE_WITHIN: Duration = Duration::from_secs(2);
/// How long any other step may take before the test gives up (a hang, not a measurement).
const STEP: Duration = Duration::from_secs(30);

fn program(variable: &str, default: &str) -> PathBuf {
    std::env::var_os(variable)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(default))
}

/// chromedriver on a free port, and a headless Chromium session through it.
struct Browser {
    client: Client,
    _driver: Child,
}

impl Browser {
    async fn start() -> Browser {
        let chromium = program("HERALD_CHROMIUM", "/usr/bin/chromium");
        let chromedriver = program("HERALD_CHROMEDRIVER", "/usr/bin/chromedriver");
        for path in [&chromium, &chromedriver] {
            assert!(
                path.exists(),
                "{} is missing: run infra/browser.sh (make test does)",
                path.display()
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let webdriver = format!("http://127.0.0.1:{port}");
        let ready = async {
            loop {
                if let Ok(status) = reqwest::get(format!("{webdriver}/status")).await {
                    if status.status().is_success() {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(STEP, ready)
            .await
            .expect("chromedriver answers");

        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                    "--window-size=900,700", "--lang=en-US",
                ],
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&webdriver)
            .await
            .expect("a Chromium session");
        Browser {
            client,
            _driver: driver,
        }
    }
}

/// Polls `probe` until it gives a value, or panics after `within` naming `what`.
async fn eventually<T, F, Fut>(what: &str, within: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn attr(element: &Element, name: &str) -> Option<String> {
    element.attr(name).await.unwrap()
}

/// The feed's entries as the page shows them, `(id, read)`, read in one script: an element
/// found in one command may be drawn anew (a status update arriving) before the next.
async fn items(c: &Client) -> Vec<(String, bool)> {
    let shown = c
        .execute(
            "return [...document.querySelector('herald-inbox').shadowRoot
                .querySelectorAll('li[part=item]')]
                .map((li) => [li.dataset.id, li.dataset.read === 'true']);",
            Vec::new(),
        )
        .await
        .unwrap();
    serde_json::from_value(shown).unwrap()
}

async fn part(root: &ShadowRoot, selector: &str) -> Element {
    root.find(Locator::Css(selector)).await.unwrap()
}

/// The customer's feed as the HTTP api answers it.
async fn api_feed(h: &Harness, serving: &Serving, customer: &str) -> Value {
    let token = serving.served.tokens.token(
        &herald_local::dev_tokens::customer_claims(&h.org, customer),
        chrono::Duration::hours(1),
    );
    reqwest::Client::new()
        .get(format!(
            "http://{}/customers/{customer}/notifications",
            serving.addr
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Posts a message to each of the customer's open connections through the WebSocket API's
/// management endpoint, as the projector does.
async fn post_to_customer(h: &Harness, serving: &Serving, customer: &str, message: &Value) {
    let listener = Listener {
        org_id: OrgId::parse(h.org.as_str()).unwrap(),
        customer_id: CustomerId::parse(customer).unwrap(),
    };
    let open = DynamoConnections::new(
        aws_sdk_dynamodb::Client::new(&h.local.aws),
        h.local.stack.names.connections_table(),
    )
    .listening(std::slice::from_ref(&listener))
    .await
    .unwrap()
    .remove(&listener)
    .unwrap_or_default();
    assert_eq!(open.len(), 1, "the page's connection");
    for id in open {
        // an id is base64: its `/` and `+` escaped in the path, as the SDK does
        let id: String = url::form_urlencoded::byte_serialize(id.as_str().as_bytes()).collect();
        let answer = reqwest::Client::new()
            .post(format!("http://{}/@connections/{id}", serving.addr))
            .body(message.to_string())
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success(), "{}", answer.status());
    }
}

/// Where the test keeps what it shows: `<target>/artifacts`, next to the test binary's
/// `<target>/debug/deps`.
fn artifacts() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap().to_path_buf();
    let dir = target.join("artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn the_inbox_shows_a_new_notification_live_and_marks_it_read_over_the_api() {
    let browser = Browser::start().await;
    let c = &browser.client;
    let (h, serving) = Harness::served().await;
    let customer = "cus_ines";
    h.run_one(h.contact(customer, &h.email("ines"), None, "en").await)
        .await;

    c.goto(&format!(
        "http://{}/inbox?customer={customer}&org={}",
        serving.addr, h.org
    ))
    .await
    .unwrap();
    let inbox = c.find(Locator::Css("herald-inbox")).await.unwrap();
    eventually("the socket opens", STEP, || async {
        (attr(&inbox, "data-state").await.as_deref() == Some("open")).then_some(())
    })
    .await;
    assert_eq!(attr(&inbox, "data-unread").await.as_deref(), Some("0"));
    let root = inbox.shadow_root().await.unwrap();
    assert!(
        attr(&part(&root, "[part=badge]").await, "hidden")
            .await
            .is_some(),
        "no badge while nothing is unread"
    );

    // an order on the bus: intake, dispatch, the stream's projector, the socket
    let put = Instant::now();
    let report = h.run_one(h.order_created(customer, "ord_browser_1")).await;
    assert!(!report.notifications.is_empty());
    let processed = put.elapsed();
    eventually(
        "the badge counts the new notification",
        LIVE_WITHIN,
        || async { (attr(&inbox, "data-unread").await.as_deref() == Some("1")).then_some(()) },
    )
    .await;
    eprintln!(
        "processed in {processed:?}; on the badge {:?} after the event was put on the bus",
        put.elapsed()
    );
    let badge = part(&root, "[part=badge]").await;
    assert_eq!(badge.text().await.unwrap(), "1");
    assert!(attr(&badge, "hidden").await.is_none());
    let announced = part(&root, "[part=live]").await.text().await.unwrap();
    assert!(!announced.is_empty(), "the new item is announced");

    part(&root, "[data-action=toggle]")
        .await
        .click()
        .await
        .unwrap();
    let (id, read) = eventually("the feed lists it", STEP, || async {
        let mut items = items(c).await;
        (items.len() == 1).then(|| items.remove(0))
    })
    .await;
    assert!(!read);
    std::fs::write(artifacts().join("inbox.png"), c.screenshot().await.unwrap()).unwrap();

    // A status update redraws nothing the entry shows: its element stays, so a click on it is
    // never lost to a redraw. Posted as the projector posts, then a new entry after it (the
    // socket's messages are handled in order) to know the update was handled.
    let held = root.find(Locator::Css("li[part=item]")).await.unwrap();
    let feed = api_feed(&h, &serving, customer).await;
    let mut delivered = feed["items"][0].clone();
    delivered["status"] = json!("delivered");
    let mut newer = delivered.clone();
    newer["notification_id"] = json!("ntf_browser_newer");
    newer["title"] = json!("A newer one");
    newer["created_at"] = json!(chrono::Utc::now().to_rfc3339());
    for message in [
        json!({"type": "notification.updated", "notification": delivered, "unread": 1}),
        json!({"type": "notification.created", "notification": newer, "unread": 2}),
    ] {
        post_to_customer(&h, &serving, customer, &message).await;
    }
    eventually("the newer entry is listed", STEP, || async {
        (attr(&inbox, "data-items").await.as_deref() == Some("2")).then_some(())
    })
    .await;
    assert_eq!(
        held.attr("data-id").await.ok().flatten().as_deref(),
        Some(id.as_str()),
        "the entry's element outlived its status update"
    );

    // the list is drawn again when a status update arrives: find the button anew until a
    // click lands
    eventually("mark read is clicked", STEP, || async {
        let button = root
            .find(Locator::Css(&format!(
                "li[part=item][data-id='{id}'] [data-action=read]"
            )))
            .await
            .ok()?;
        button.click().await.ok()
    })
    .await;
    eventually("the badge goes down", STEP, || async {
        (attr(&inbox, "data-unread").await.as_deref() == Some("0")).then_some(())
    })
    .await;
    assert!(attr(&badge, "hidden").await.is_some());
    assert_eq!(
        items(c).await,
        [("ntf_browser_newer".to_string(), false), (id.clone(), true)]
    );

    // the api recorded the read
    let feed = api_feed(&h, &serving, customer).await;
    assert_eq!(feed["unread"], 0, "{feed}");
    assert_eq!(feed["items"][0]["notification_id"], json!(id));
    assert_eq!(feed["items"][0]["read"], true, "{feed}");

    browser.client.clone().close().await.unwrap();
}
