//! SMS segments as carriers count them, and cutting a body to a number of segments.
//!
//! A body is GSM-7 when every character is in the GSM 03.38 basic set or its extension
//! table (an extension character takes two septets); otherwise the whole body is UCS-2,
//! where a character outside the Basic Multilingual Plane (most emoji) takes two code units.
//! One part holds 160 septets or 70 code units; a concatenated message holds 153 or 67 per
//! part (the rest is the concatenation header), and a character never straddles two parts.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::ids::InvalidValue;

/// How a body travels: 7-bit GSM septets, or UCS-2 code units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Gsm7,
    Ucs2,
}

/// The GSM 03.38 basic character set (escape excluded).
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// The GSM 03.38 extension table: each is sent as an escape and the character, two septets.
const GSM7_EXTENSION: &str = "\u{c}^{}\\[~]|€";

/// Which ASCII characters are in the basic set: a body is checked a character at a time,
/// several times per message, and most of its characters are ASCII.
const ASCII_BASIC: [bool; 128] = {
    let mut table = [false; 128];
    let bytes = GSM7_BASIC.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] < 128 {
            table[bytes[i] as usize] = true;
        }
        i += 1;
    }
    table
};

fn is_basic(c: char) -> bool {
    match ASCII_BASIC.get(c as usize) {
        Some(basic) => *basic,
        None => GSM7_BASIC.contains(c),
    }
}

fn is_extension(c: char) -> bool {
    GSM7_EXTENSION.contains(c)
}

impl Encoding {
    /// The encoding a carrier uses for `text`: GSM-7 unless one character is outside it.
    pub fn of(text: &str) -> Encoding {
        if text.chars().all(|c| is_basic(c) || is_extension(c)) {
            Encoding::Gsm7
        } else {
            Encoding::Ucs2
        }
    }

    /// What one part of a single-part message holds (septets or code units).
    fn single_part(self) -> usize {
        match self {
            Encoding::Gsm7 => 160,
            Encoding::Ucs2 => 70,
        }
    }

    /// What one part of a concatenated message holds.
    fn concatenated_part(self) -> usize {
        match self {
            Encoding::Gsm7 => 153,
            Encoding::Ucs2 => 67,
        }
    }

    /// The septets or code units one character takes in this encoding.
    fn units(self, c: char) -> usize {
        match self {
            Encoding::Gsm7 if is_extension(c) => 2,
            Encoding::Gsm7 => 1,
            Encoding::Ucs2 => c.len_utf16(),
        }
    }
}

/// The segments `text` is billed as (an empty text still takes one).
pub fn segments(text: &str) -> u32 {
    let encoding = Encoding::of(text);
    let total: usize = text.chars().map(|c| encoding.units(c)).sum();
    if total <= encoding.single_part() {
        return 1;
    }
    let capacity = encoding.concatenated_part();
    let (mut parts, mut used) = (1u32, 0usize);
    for c in text.chars() {
        let units = encoding.units(c);
        if used + units > capacity {
            parts += 1;
            used = 0;
        }
        used += units;
    }
    parts
}

/// How many segments an organization lets one SMS take (1 to 10, 3 unless it says).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct SegmentCap(u8);

impl SegmentCap {
    pub const MIN: u8 = 1;
    /// Ten segments is also what Twilio and SNS accept at most.
    pub const MAX: u8 = 10;
    pub const DEFAULT: SegmentCap = SegmentCap(3);

    pub fn new(segments: u64) -> Result<SegmentCap, InvalidValue> {
        u8::try_from(segments)
            .ok()
            .filter(|n| (Self::MIN..=Self::MAX).contains(n))
            .map(SegmentCap)
            .ok_or_else(|| InvalidValue(Self::EXPECTED.to_string()))
    }

    pub fn get(self) -> u32 {
        u32::from(self.0)
    }

    const EXPECTED: &'static str = "expected a whole number from 1 to 10";
}

impl Default for SegmentCap {
    fn default() -> Self {
        SegmentCap::DEFAULT
    }
}

impl<'de> Deserialize<'de> for SegmentCap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // read as any value first, so a string or a fraction gets the same clear message
        let value = Value::deserialize(d)?;
        value
            .as_u64()
            .ok_or_else(|| serde::de::Error::custom(SegmentCap::EXPECTED))
            .and_then(|n| SegmentCap::new(n).map_err(|e| serde::de::Error::custom(e.0)))
    }
}

/// The GSM-7 look-alike of typography GSM-7 lacks: the spaces locale formatting puts in
/// numbers and amounts (`25,00 €`), curly quotes, dashes and the ellipsis.
fn lookalike(c: char) -> Option<&'static str> {
    Some(match c {
        '\u{a0}' | '\u{2007}' | '\u{2009}' | '\u{202f}' => " ",
        '\u{2018}' | '\u{2019}' | '\u{201a}' | '\u{2032}' => "'",
        '\u{201c}' | '\u{201d}' | '\u{201e}' | '\u{2033}' => "\"",
        '\u{2010}' | '\u{2011}' | '\u{2013}' | '\u{2014}' => "-",
        '\u{2026}' => "...",
        _ => return None,
    })
}

/// `text` with its typography replaced by GSM-7 look-alikes when that makes the whole text
/// GSM-7, as it then costs half the segments or less; unchanged when another character keeps
/// it UCS-2 anyway.
pub fn plain(text: &str) -> std::borrow::Cow<'_, str> {
    let gsm7_after = text
        .chars()
        .all(|c| is_basic(c) || is_extension(c) || lookalike(c).is_some());
    if !gsm7_after || Encoding::of(text) == Encoding::Gsm7 {
        return text.into();
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match lookalike(c) {
            Some(s) => out.push_str(s),
            None => out.push(c),
        }
    }
    out.into()
}

/// `text` followed by an ellipsis that keeps its encoding: `...` for a GSM-7 text (`…` is not
/// GSM-7 and would turn the whole body into UCS-2), `…` otherwise.
fn with_ellipsis(text: &str) -> String {
    match Encoding::of(text) {
        Encoding::Gsm7 => format!("{text}..."),
        Encoding::Ucs2 => format!("{text}…"),
    }
}

/// `text` if it takes at most `cap` segments; otherwise cut at a word boundary (unless that
/// would throw away most of what fits) with an ellipsis, to at most `cap` segments. The cut
/// falls between characters, never inside one.
pub fn fit(text: &str, cap: SegmentCap) -> String {
    let max = cap.get();
    if segments(text) <= max {
        return text.to_string();
    }
    let fits = |end: usize| segments(&with_ellipsis(&text[..end])) <= max;
    // where the text may be cut: the start of each character (the whole text does not fit)
    let ends: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
    // the longest prefix that fits with its ellipsis; the empty one always does
    let (mut fitting, mut too_long) = (0, ends.len());
    while too_long - fitting > 1 {
        let middle = (fitting + too_long) / 2;
        if fits(ends[middle]) {
            fitting = middle;
        } else {
            too_long = middle;
        }
    }
    let keep = &text[..ends[fitting]];
    let at_word_end = text[keep.len()..].starts_with(char::is_whitespace);
    let cut = match keep.rfind(char::is_whitespace) {
        _ if at_word_end => keep,
        Some(i) if i >= keep.len() / 2 && fits(i) => &keep[..i],
        _ => keep,
    };
    with_ellipsis(cut.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ascii_table_is_the_basic_set() {
        for c in (0u8..128).map(char::from) {
            assert_eq!(is_basic(c), GSM7_BASIC.contains(c), "{c:?}");
        }
    }

    #[test]
    fn typography_is_made_gsm7_only_when_the_whole_text_then_is() {
        // a French amount's no-break space alone would make the SMS UCS-2: two segments
        let french = "Remboursement émis : 25,00\u{a0}€ pour la commande ord_0999 (réf. ref_2001). Délai : 5 à 10 jours ouvrables, n\u{2019}est-ce pas\u{2026}";
        assert_eq!(segments(french), 2);
        let sent = plain(french);
        assert_eq!(
            sent,
            "Remboursement émis : 25,00 € pour la commande ord_0999 (réf. ref_2001). Délai : 5 à 10 jours ouvrables, n'est-ce pas..."
        );
        assert_eq!(segments(&sent), 1);
        // an emoji keeps it UCS-2 whatever: the text stays as written
        let emoji = "Merci\u{a0}! \u{1f389} \u{201c}Bravo\u{201d}";
        assert_eq!(plain(emoji), emoji);
        // GSM-7 already: the same text, not a copy
        assert!(matches!(
            plain("Hello"),
            std::borrow::Cow::Borrowed("Hello")
        ));
    }
    use proptest::prelude::*;

    fn cap(n: u64) -> SegmentCap {
        SegmentCap::new(n).unwrap()
    }

    #[test]
    fn a_gsm7_body_of_161_characters_is_two_segments() {
        assert_eq!(segments(&"a".repeat(160)), 1);
        assert_eq!(segments(&"a".repeat(161)), 2);
        assert_eq!(segments(&"a".repeat(306)), 2);
        assert_eq!(segments(&"a".repeat(307)), 3);
        assert_eq!(Encoding::of("Café à 5 €, {ok}"), Encoding::Gsm7);
    }

    #[test]
    fn extension_characters_count_twice() {
        assert_eq!(segments(&"€".repeat(80)), 1);
        assert_eq!(segments(&"€".repeat(81)), 2);
        // an escape pair never straddles two parts: 152 septets, then the pair moves on
        let text = format!("{}{}", "a".repeat(152), "[".repeat(77));
        assert_eq!(segments(&text), 3);
        assert_eq!(segments(&format!("{}\u{c}", "a".repeat(159))), 2);
    }

    #[test]
    fn one_emoji_makes_the_body_ucs2() {
        let text = format!("{}🙂", "a".repeat(60));
        assert_eq!(Encoding::of(&text), Encoding::Ucs2);
        // 60 + 2 code units: still one part
        assert_eq!(segments(&text), 1);
        let text = format!("{}🙂", "a".repeat(140));
        assert_eq!(segments(&text), 3);
        assert_eq!(segments(&"é".repeat(160)), 1, "é is GSM-7");
        assert_eq!(segments(&"ê".repeat(70)), 1, "ê is not");
        assert_eq!(segments(&"ê".repeat(71)), 2);
        // a surrogate pair never straddles two parts
        assert_eq!(
            segments(&format!("{}🙂{}", "ê".repeat(66), "ê".repeat(66))),
            3
        );
        assert_eq!(segments("\t"), 1);
        assert_eq!(Encoding::of("tab\there"), Encoding::Ucs2);
    }

    #[test]
    fn a_body_past_the_cap_is_cut_at_a_word_with_an_ellipsis() {
        let text = "please pay your invoice ".repeat(40);
        let cut = fit(&text, cap(2));
        assert_eq!(segments(&cut), 2);
        assert_eq!(
            Encoding::of(&cut),
            Encoding::Gsm7,
            "the ellipsis keeps GSM-7"
        );
        let kept = cut.strip_suffix("...").unwrap();
        assert!(
            text.starts_with(kept) && text[kept.len()..].starts_with(' '),
            "{cut}"
        );
        assert!(kept.len() > 280, "most of what fits is kept: {cut}");

        let text = format!("Rappel 🙂 {}", "veuillez payer ".repeat(20));
        let cut = fit(&text, cap(1));
        assert_eq!(segments(&cut), 1);
        let kept = cut.strip_suffix('…').unwrap();
        assert!(
            text.starts_with(kept) && text[kept.len()..].starts_with(' '),
            "{cut}"
        );

        assert_eq!(fit("short", cap(1)), "short");
        // one long word is cut between characters
        let cut = fit(&"🙂".repeat(100), cap(1));
        assert_eq!(cut, format!("{}…", "🙂".repeat(34)));
    }

    #[test]
    fn the_cap_is_bounded() {
        assert_eq!(SegmentCap::default().get(), 3);
        assert!(SegmentCap::new(0).is_err());
        assert!(SegmentCap::new(11).is_err());
        assert_eq!(cap(10).get(), 10);
        let parsed: Result<SegmentCap, _> = serde_json::from_str("\"3\"");
        assert!(parsed.is_err());
        let parsed: SegmentCap = serde_json::from_str("4").unwrap();
        assert_eq!(parsed.get(), 4);
    }

    fn sms_text() -> impl Strategy<Value = String> {
        let pieces = prop_oneof![
            Just("a".to_string()),
            Just(" ".to_string()),
            Just("€".to_string()),
            Just("[".to_string()),
            Just("é".to_string()),
            Just("ê".to_string()),
            Just("🙂".to_string()),
            Just("\n".to_string()),
            Just("word ".to_string()),
            any::<char>().prop_map(String::from),
        ];
        proptest::collection::vec(pieces, 0..700).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn cutting_to_n_segments_yields_at_most_n_and_never_splits_a_character(
            text in sms_text(),
            n in 1u64..=10,
        ) {
            let cut = fit(&text, cap(n));
            prop_assert!(segments(&cut) <= n as u32);
            if cut != text {
                let kept = cut
                    .strip_suffix("...")
                    .or_else(|| cut.strip_suffix('…'))
                    .expect("a cut text ends with an ellipsis");
                // a prefix of whole characters: the same characters, in order
                let original: Vec<char> = text.chars().collect();
                let kept: Vec<char> = kept.chars().collect();
                prop_assert!(original.starts_with(&kept));
            }
        }
    }
}
