//! Text kept deflated in a binary attribute: the emails' HTML in the intake records, where
//! it is a few hundred bytes instead of a few kilobytes, so a record stays within one write
//! unit.

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use herald_core::intake::MAX_HTML_BYTES;
use herald_core::ports::PortError;
use miniz_oxide::deflate::compress_to_vec;
use miniz_oxide::inflate::decompress_to_vec_with_limit;

/// Fast rather than smallest: HTML compresses about as well at 1 as at 9.
const LEVEL: u8 = 1;

pub(super) fn deflated(text: &str) -> AttributeValue {
    AttributeValue::B(Blob::new(compress_to_vec(text.as_bytes(), LEVEL)))
}

/// The text of an attribute written by [`deflated`] (or kept as a string, as older items are);
/// bounded, so a damaged item cannot inflate without end.
pub(super) fn inflated(
    operation: &'static str,
    value: &AttributeValue,
) -> Result<String, PortError> {
    match value {
        AttributeValue::S(text) => Ok(text.clone()),
        AttributeValue::B(blob) => {
            let bytes = decompress_to_vec_with_limit(blob.as_ref(), MAX_HTML_BYTES)
                .map_err(|e| PortError::new(operation, format!("inflate: {:?}", e.status)))?;
            String::from_utf8(bytes).map_err(|e| PortError::new(operation, e))
        }
        _ => Err(PortError::new(operation, "neither text nor deflated text")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_comes_back_as_it_went_in_and_smaller() {
        let html = "<p style=\"margin:0\">Thing</p>".repeat(40);
        let value = deflated(&html);
        let AttributeValue::B(blob) = &value else {
            panic!("not binary");
        };
        assert!(blob.as_ref().len() < html.len() / 4);
        assert_eq!(inflated("test", &value).unwrap(), html);
    }

    #[test]
    fn a_string_is_read_as_it_is_and_damage_is_an_error() {
        assert_eq!(
            inflated("test", &AttributeValue::S("x".into())).unwrap(),
            "x"
        );
        let damaged = AttributeValue::B(Blob::new(vec![1, 2, 3]));
        assert!(inflated("test", &damaged).is_err());
        let bomb = deflated(&"a".repeat(MAX_HTML_BYTES + 1));
        assert!(inflated("test", &bomb).is_err(), "bounded");
    }
}
