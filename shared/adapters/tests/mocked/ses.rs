//! Email through SES v2: the request as the SDK sends it (the emulator keeps only the HTML part
//! of an email that has both, so the text part is checked here).

use std::sync::{Arc, Mutex};

use aws_sdk_sesv2::operation::send_email::{SendEmailInput, SendEmailOutput};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use herald_adapters::ses::SesEmailSender;
use herald_core::ids::{Locale, NotificationType};
use herald_core::model::{Channel, Notification};
use herald_core::ports::ChannelSender;
use herald_core::sms::SegmentCap;
use herald_core::template::Catalog;
use serde_json::json;

use crate::common::notification;

/// A reminder whose title and body are markup, rendered as intake renders it.
fn reminder_with_markup() -> Notification {
    let context = json!({"reminder_id": "rem_1", "severity": "high",
        "title": "<script>alert(1)</script>", "body": "Pay <b>now</b> & thanks"});
    let rendered = Catalog::embedded()
        .unwrap()
        .render(
            &NotificationType::parse("reminder").unwrap(),
            Channel::Email,
            &Locale::english(),
            None,
            context.as_object().unwrap(),
            SegmentCap::DEFAULT,
        )
        .unwrap();
    let mut n = notification("ntf_markup");
    n.subject = rendered.subject;
    n.body = rendered.body;
    n.html_body = rendered.html;
    n
}

/// Sends `n` through a mocked SES, and returns the request it made.
async fn sent_request(n: &Notification) -> SendEmailInput {
    let seen: Arc<Mutex<Option<SendEmailInput>>> = Arc::default();
    let keep = seen.clone();
    let rule = mock!(aws_sdk_sesv2::Client::send_email)
        .match_requests(move |r| {
            *keep.lock().unwrap() = Some(r.clone());
            true
        })
        .then_output(|| SendEmailOutput::builder().message_id("msg-1").build());
    let client = mock_client!(aws_sdk_sesv2, RuleMode::Sequential, &[&rule]);
    let receipt = SesEmailSender::new(client, None).send(n).await.unwrap();
    assert_eq!(receipt.provider_message_id.as_deref(), Some("msg-1"));
    seen.lock().unwrap().take().expect("a SendEmail request")
}

#[tokio::test]
async fn a_reminder_titled_with_markup_is_escaped_in_the_html_part_and_as_is_in_the_text() {
    let n = reminder_with_markup();
    let request = sent_request(&n).await;
    let body = request
        .content()
        .and_then(|c| c.simple())
        .and_then(|m| m.body())
        .expect("a simple message with a body");
    let text = body.text().map(|c| c.data()).expect("a text part");
    let html = body.html().map(|c| c.data()).expect("an html part");
    assert!(text.contains("<script>alert(1)</script>"), "{text}");
    assert!(text.contains("Pay <b>now</b> & thanks"), "{text}");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
        "{html}"
    );
    assert!(
        html.contains("Pay &lt;b&gt;now&lt;&#x2f;b&gt; &amp; thanks"),
        "{html}"
    );
    assert!(
        !html.contains("<script>") && !html.contains("<b>"),
        "{html}"
    );
    assert_eq!(body.html().and_then(|c| c.charset()), Some("UTF-8"));
}

#[tokio::test]
async fn an_email_without_an_html_body_is_text_only() {
    let n = notification("ntf_text");
    let request = sent_request(&n).await;
    let body = request
        .content()
        .and_then(|c| c.simple())
        .and_then(|m| m.body())
        .expect("a simple message with a body");
    assert_eq!(
        body.text().map(|c| c.data()),
        Some("Thank you for your order!")
    );
    assert!(body.html().is_none());
}

/// What SES's refusal `code` with `message` comes to.
async fn refusal(code: &'static str, message: &'static str) -> herald_core::ports::SendError {
    use aws_sdk_sesv2::operation::send_email::SendEmailError;
    let rule = mock!(aws_sdk_sesv2::Client::send_email).then_error(move || {
        SendEmailError::generic(
            aws_smithy_types::error::ErrorMetadata::builder()
                .code(code)
                .message(message)
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_sesv2, RuleMode::Sequential, &[&rule]);
    SesEmailSender::new(client, None)
        .send(&notification("ntf_refused"))
        .await
        .unwrap_err()
}

#[tokio::test]
async fn ses_refusals_are_the_accounts_the_messages_or_the_recipients() {
    use herald_core::ports::FailureKind;
    let cases = [
        (
            "TooManyRequestsException",
            "Maximum sending rate exceeded.",
            FailureKind::Soft,
        ),
        (
            "AccountSuspendedException",
            "suspended",
            FailureKind::Account,
        ),
        ("SendingPausedException", "paused", FailureKind::Account),
        (
            "MessageRejected",
            "Email address is not verified. The following identities failed the check: a@example.com",
            FailureKind::Account,
        ),
        ("MessageRejected", "Illegal address", FailureKind::Hard),
        (
            "MessageRejected",
            "Address is on the account-level suppression list",
            FailureKind::Recipient,
        ),
    ];
    for (code, message, kind) in cases {
        let e = refusal(code, message).await;
        assert_eq!(e.kind, kind, "{code}: {message}");
        assert_eq!(e.code.as_ref().map(|c| c.as_str()), Some(code));
        assert!(!e.reason.contains('@'), "no address in {:?}", e.reason);
    }
}
