//! SMS through Amazon SNS (direct publish to a phone number).

use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;
use herald_core::ids::PhoneNumber;
use herald_core::model::{Address, Notification};
use herald_core::ports::{ChannelSender, Receipt, SendError};

use crate::classify::accepted;

const SOFT_CODES: &[&str] = &["KMSThrottlingException", "KMSDisabledException"];

#[derive(Clone, Debug)]
pub struct SnsSmsSender {
    client: Client,
    sender_id: Option<String>,
}

impl SnsSmsSender {
    pub fn new(client: Client, sender_id: Option<String>) -> Self {
        SnsSmsSender { client, sender_id }
    }
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue, SendError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|_| SendError::hard("SMS attributes could not be built"))
}

#[async_trait]
impl ChannelSender for SnsSmsSender {
    async fn send(&self, n: &Notification) -> Result<Receipt, SendError> {
        let Address::Phone(phone) = &n.address else {
            return Err(SendError::hard("SMS notification without a phone number"));
        };
        // Checked again here: a number that is not E.164 would be charged and then dropped.
        let phone = PhoneNumber::parse(phone.as_str()).map_err(|e| SendError::hard(e.0))?;
        let mut request = self
            .client
            .publish()
            .phone_number(phone.as_str())
            .message(&n.body)
            .message_attributes("AWS.SNS.SMS.SMSType", string_attribute("Transactional")?);
        if let Some(sender_id) = &self.sender_id {
            request =
                request.message_attributes("AWS.SNS.SMS.SenderID", string_attribute(sender_id)?);
        }
        accepted(
            request.send().await.map(|o| o.message_id),
            "SNS",
            SOFT_CODES,
        )
    }
}
