//! The templates table: a transaction cancelled by the version it replaced, or by something
//! else; an organization's templates over more than one page; an item that does not parse.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::operation::transact_write_items::{
    TransactWriteItemsError, TransactWriteItemsOutput,
};
use aws_sdk_dynamodb::types::error::TransactionCanceledException;
use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason};
use aws_smithy_mocks::mock;
use herald_adapters::DynamoTemplates;
use herald_core::ids::{Locale, NotificationType, OrgId};
use herald_core::model::Channel;
use herald_core::ports::{TemplateStore, Write};
use herald_core::template::org::{OrgTemplate, Parts};

use crate::common::{TABLE, dynamo};

fn org() -> OrgId {
    OrgId::parse("org_acme").unwrap()
}

fn template(version: u64) -> OrgTemplate {
    OrgTemplate {
        notification_type: NotificationType::parse("order_confirmation").unwrap(),
        channel: Channel::Email,
        locale: Locale::parse("fr").unwrap(),
        parts: Parts {
            subject: Some("Commande {{ order_id }}".into()),
            body: "Merci".into(),
            html: None,
        },
        version,
        updated_at: "2026-11-20T12:00:00Z".parse().unwrap(),
        deleted: false,
    }
}

/// A cancelled transaction, with DynamoDB's reason for each of its two writes.
fn cancelled(reasons: &[Option<(&str, &str)>]) -> TransactWriteItemsError {
    let reasons = reasons
        .iter()
        .map(|r| match r {
            Some((code, message)) => CancellationReason::builder()
                .code(*code)
                .message(*message)
                .build(),
            None => CancellationReason::builder().code("None").build(),
        })
        .collect();
    TransactWriteItemsError::TransactionCanceledException(
        TransactionCanceledException::builder()
            .message(
                "Transaction cancelled, please refer cancellation reasons for specific reasons",
            )
            .set_cancellation_reasons(Some(reasons))
            .build(),
    )
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A template's current item as the table holds it.
fn stored_template(locale: &str, version: u64) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_string(), s("T#org_acme")),
        (
            "sk".to_string(),
            s(&format!("order_confirmation#email#{locale}")),
        ),
        ("kind".to_string(), s("template")),
        ("type".to_string(), s("order_confirmation")),
        ("channel".to_string(), s("email")),
        ("locale".to_string(), s(locale)),
        ("subject".to_string(), s("Commande {{ order_id }}")),
        ("body".to_string(), s("Merci")),
        ("version".to_string(), n(version)),
        ("updated_at".to_string(), s("2026-11-20T12:00:00.000Z")),
    ])
}

#[tokio::test]
async fn a_write_over_a_version_that_is_no_longer_current_is_a_conflict() {
    let lost = mock!(Client::transact_write_items)
        .match_requests(|r| {
            let items = r.transact_items();
            let current = items[0].put().unwrap();
            let history = items[1].put().unwrap();
            items.len() == 2
                && current.condition_expression() == Some("version = :replaces")
                && current.expression_attribute_values().unwrap()[":replaces"] == n(3)
                && current.item()["pk"] == s("T#org_acme")
                && current.item()["sk"] == s("order_confirmation#email#fr")
                && history.condition_expression().is_none()
                && history.item()["pk"] == s("H#org_acme#order_confirmation#email#fr")
                && history.item()["sk"] == s("00000000000000000004")
        })
        .then_error(|| {
            cancelled(&[
                Some(("ConditionalCheckFailed", "The conditional request failed")),
                None,
            ])
        });
    let written = DynamoTemplates::new(dynamo(&[&lost]), TABLE)
        .put_template(&org(), &template(4), Some(3))
        .await
        .unwrap();
    assert_eq!(written, Write::Conflict);
}

#[tokio::test]
async fn a_first_version_is_written_only_where_there_is_none() {
    let first = mock!(Client::transact_write_items)
        .match_requests(|r| {
            r.transact_items()[0].put().unwrap().condition_expression()
                == Some("attribute_not_exists(pk)")
        })
        .then_output(|| TransactWriteItemsOutput::builder().build());
    let written = DynamoTemplates::new(dynamo(&[&first]), TABLE)
        .put_template(&org(), &template(1), None)
        .await
        .unwrap();
    assert_eq!(written, Write::Done);
}

#[tokio::test]
async fn a_transaction_cancelled_for_another_reason_is_an_error_not_a_conflict() {
    let too_large = mock!(Client::transact_write_items).then_error(|| {
        cancelled(&[
            Some((
                "ValidationError",
                "Item size has exceeded the maximum allowed size",
            )),
            None,
        ])
    });
    let err = DynamoTemplates::new(dynamo(&[&too_large]), TABLE)
        .put_template(&org(), &template(2), Some(1))
        .await
        .unwrap_err();
    assert_eq!(err.operation, "dynamodb TransactWriteItems templates");
}

#[tokio::test]
async fn an_organizations_templates_are_read_over_every_page() {
    let first_page = mock!(Client::query)
        .match_requests(|r| {
            r.exclusive_start_key().is_none()
                && r.consistent_read() == Some(true)
                && r.expression_attribute_values().unwrap()[":pk"] == s("T#org_acme")
        })
        .then_output(|| {
            QueryOutput::builder()
                .items(stored_template("en", 2))
                .set_last_evaluated_key(Some(HashMap::from([
                    ("pk".to_string(), s("T#org_acme")),
                    ("sk".to_string(), s("order_confirmation#email#en")),
                ])))
                .build()
        });
    let second_page = mock!(Client::query)
        .match_requests(|r| {
            r.exclusive_start_key()
                .is_some_and(|k| k["sk"] == s("order_confirmation#email#en"))
        })
        .then_output(|| {
            QueryOutput::builder()
                .items(stored_template("fr", 5))
                .build()
        });
    let stored = DynamoTemplates::new(dynamo(&[&first_page, &second_page]), TABLE)
        .stored(&org(), true)
        .await
        .unwrap();
    let versions: Vec<(&str, u64)> = stored
        .templates
        .iter()
        .map(|t| (t.locale.as_str(), t.version))
        .collect();
    assert_eq!(versions, [("en", 2), ("fr", 5)]);
    assert_eq!(second_page.num_calls(), 1);
}

#[tokio::test]
async fn a_stored_item_that_does_not_parse_is_a_port_error() {
    let broken = mock!(Client::query).then_output(|| {
        let mut item = stored_template("en", 1);
        item.remove("version");
        QueryOutput::builder().items(item).build()
    });
    let err = DynamoTemplates::new(dynamo(&[&broken]), TABLE)
        .stored(&org(), false)
        .await
        .unwrap_err();
    assert_eq!(err.operation, "dynamodb Query templates");
}
