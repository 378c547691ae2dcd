//! An organization's templates are code Herald did not write, run in its functions beside
//! every other organization's work. They render in an environment of their own, holding only
//! that organization's templates, with what a render may cost bounded:
//!
//! - instructions: minijinja's fuel ([`FUEL`]): a loop that would run for ever stops with
//!   `OutOfFuel` in a few milliseconds;
//! - size: each part's source ([`Part::max_source`]) and what it writes ([`Part::max_output`]),
//!   the write stopped as it passes the bound;
//! - reach: no loader (no filesystem), no other template (`include`, `import`, `extends`),
//!   no environment, no `safe` nor `autoescape` (an HTML part escapes every value it prints);
//! - growth: no `set`, `with`, `macro`, `call` or `namespace` (a value doubled on itself a few
//!   dozen times would exhaust memory in a few instructions), no `*` (a string repeated up to
//!   100 MB at once), no filter that multiplies its input (`replace`, `indent`, `format`), and
//!   `range` bounded at [`MAX_RANGE`] numbers (one instruction would otherwise make 100,000).
//!
//! What is left is what a notification needs: values, `if`, `for` over the event's lists,
//! filters that format or select, and Herald's `money`, `date` and `datetime`.

use std::fmt;
use std::io::{self, Write};

use minijinja::{Environment, ErrorKind, UndefinedBehavior};

use super::filters::{date_filter, datetime_filter, money_filter};

/// The instructions one render of an organization's template may run. The built-in catalog's
/// renders of their samples run at most 63 (an order of two items); 50,000 is room for a list
/// of hundreds, and stops a loop that would not end within milliseconds.
pub const FUEL: u64 = 50_000;

/// A part of a template, as it is stored and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    Subject,
    Body,
    Html,
}

impl Part {
    pub const ALL: [Part; 3] = [Part::Subject, Part::Body, Part::Html];

    pub fn as_str(self) -> &'static str {
        match self {
            Part::Subject => "subject",
            Part::Body => "body",
            Part::Html => "html",
        }
    }

    /// The most bytes its source may have.
    pub fn max_source(self) -> usize {
        match self {
            Part::Subject => 1_000,
            Part::Body => 16_000,
            Part::Html => 64_000,
        }
    }

    /// The most bytes a render of it may write (the channels bound them further: an SMS to
    /// its segments, an in-app body to the feed's size).
    pub fn max_output(self) -> usize {
        match self {
            Part::Subject => 2_000,
            Part::Body => 32_000,
            Part::Html => 256_000,
        }
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something wrong with a template, where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub part: Part,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{} line {line}: {}", self.part, self.message),
            None => write!(f, "{}: {}", self.part, self.message),
        }
    }
}

/// The statements an organization's template may use.
const ALLOWED_TAGS: [&str; 10] = [
    "if",
    "elif",
    "else",
    "endif",
    "for",
    "endfor",
    "filter",
    "endfilter",
    "raw",
    "endraw",
];

/// The built-in filters an organization's template may not use (see the module's text).
const REMOVED_FILTERS: [&str; 7] = [
    "safe",
    "replace",
    "indent",
    "format",
    "pprint",
    "tojson",
    "urlencode",
];

/// The built-in functions it may not call; `range` is replaced by one bounded at
/// [`MAX_RANGE`] numbers.
const REMOVED_FUNCTIONS: [&str; 3] = ["namespace", "debug", "dict"];

/// The environment an organization's templates are compiled in: strict about missing values,
/// HTML parts escaped, fuel-bounded, no loader, the growth-prone builtins removed.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(super::escape_by_suffix);
    env.set_fuel(Some(FUEL));
    // nothing recurses without macros; a low limit costs nothing
    env.set_recursion_limit(32);
    for name in REMOVED_FILTERS {
        env.remove_filter(name);
    }
    for name in REMOVED_FUNCTIONS {
        env.remove_global(name);
    }
    env.add_function("range", bounded_range);
    env.add_filter("money", money_filter);
    env.add_filter("date", date_filter);
    env.add_filter("datetime", datetime_filter);
    env
}

/// What the source of a part breaks of the rules above, each with its line, before it is
/// compiled: its size, a statement it may not use, a `*`.
pub fn screen(part: Part, source: &str) -> Vec<Problem> {
    if source.len() > part.max_source() {
        return vec![Problem {
            part,
            line: None,
            message: format!("must be at most {} bytes", part.max_source()),
        }];
    }
    let mut problems = Vec::new();
    for tag in tags(source) {
        let refused = match tag.kind {
            TagKind::Statement if !ALLOWED_TAGS.contains(&tag.keyword()) => Some(format!(
                "{{% {} %}} is not allowed in an organization's template",
                tag.keyword()
            )),
            _ if code(tag.inner).any(|(_, c)| c == '*') => {
                Some("`*` is not allowed in an organization's template".into())
            }
            _ => None,
        };
        if let Some(message) = refused {
            problems.push(Problem {
                part,
                line: Some(tag.line),
                message,
            });
        }
    }
    problems
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TagKind {
    /// `{{ … }}`
    Expression,
    /// `{% … %}`
    Statement,
}

/// A tag of a template: an expression or a statement (comments and raw blocks are text).
#[derive(Debug)]
pub(super) struct Tag<'a> {
    pub line: usize,
    pub kind: TagKind,
    /// Between its delimiters, whitespace control included.
    pub inner: &'a str,
}

impl Tag<'_> {
    /// A statement's keyword (`if`, `for`, `set`, …).
    fn keyword(&self) -> &str {
        let text = self.inner.trim_start_matches(['-', '+', '~']).trim_start();
        let end = text
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(text.len());
        &text[..end]
    }
}

/// The tags of a template in order, each with the line it starts on.
pub(super) fn tags(source: &str) -> Vec<Tag<'_>> {
    let mut found = Vec::new();
    let (mut at, mut line, mut counted) = (0, 1, 0);
    while let Some(open) = source[at..].find('{').map(|i| at + i) {
        let (kind, close) = match source.get(open..open + 2) {
            Some("{{") => (Some(TagKind::Expression), "}}"),
            Some("{%") => (Some(TagKind::Statement), "%}"),
            Some("{#") => (None, "#}"),
            _ => {
                at = open + 1;
                continue;
            }
        };
        let body = &source[open + 2..];
        // a comment ends at its first `#}`; a tag at its first closing outside a string literal
        let end = match kind {
            None => body.find(close),
            Some(_) => code(body)
                .find(|(i, _)| body[*i..].starts_with(close))
                .map(|(i, _)| i),
        }
        .unwrap_or(body.len());
        let inner = &body[..end];
        at = (open + 2 + end + close.len()).min(source.len());
        let Some(kind) = kind else { continue };
        line += source[counted..open].matches('\n').count();
        counted = open;
        let tag = Tag { line, kind, inner };
        // a raw block's text is text, whatever it looks like
        if tag.kind == TagKind::Statement && tag.keyword() == "raw" {
            at = source[at..].find("endraw").map_or(source.len(), |i| at + i);
        }
        found.push(tag);
    }
    found
}

/// The characters of a tag's text outside its string literals, with their offsets.
fn code(text: &str) -> impl Iterator<Item = (usize, char)> + '_ {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    text.char_indices().filter(move |&(_, c)| match quote {
        Some(q) => {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            false
        }
        None if c == '"' || c == '\'' => {
            quote = Some(c);
            false
        }
        None => true,
    })
}

/// A writer that refuses to grow past its bound: the render stops at the first write beyond.
pub(super) struct Capped {
    pub out: Vec<u8>,
    max: usize,
}

impl Capped {
    pub fn new(max: usize) -> Capped {
        Capped {
            out: Vec::new(),
            max,
        }
    }
}

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.out.len() + buf.len() > self.max {
            return Err(io::Error::other(format!(
                "writes more than {} bytes",
                self.max
            )));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Why a render of an organization's template stopped, in words for its author: the fuel,
/// the size, or minijinja's own account.
pub fn describe(error: &minijinja::Error) -> String {
    match error.detail() {
        Some(detail) if !bounded(error) => format!("{}: {detail}", error.kind()),
        _ => summary(error),
    }
}

/// The same without minijinja's detail, which may quote a value of the event: what an event's
/// record keeps when the template fails at intake.
pub fn summary(error: &minijinja::Error) -> String {
    let what = match error.kind() {
        ErrorKind::OutOfFuel => format!(
            "ran out of fuel: a template may run at most {FUEL} instructions (a loop that does not end?)"
        ),
        // the capped writer's own words: how much it would have written
        ErrorKind::WriteFailure => std::error::Error::source(error)
            .map_or_else(|| "writes too much".to_string(), ToString::to_string),
        kind => kind.to_string(),
    };
    match error.line() {
        Some(line) if !bounded(error) => format!("line {line}: {what}"),
        _ => what,
    }
}

/// Whether the render stopped at one of the sandbox's bounds rather than at a fault of its own.
fn bounded(error: &minijinja::Error) -> bool {
    matches!(error.kind(), ErrorKind::OutOfFuel | ErrorKind::WriteFailure)
}

/// The most numbers `range` gives an organization's template: minijinja's own allows
/// 100,000, a list that costs one instruction of fuel to make and a millisecond to use.
pub const MAX_RANGE: u64 = 1_000;

/// `range(stop)`, `range(start, stop)`, `range(start, stop, step)` with a positive step, at
/// most [`MAX_RANGE`] numbers.
fn bounded_range(
    start: i64,
    stop: Option<i64>,
    step: Option<i64>,
) -> Result<minijinja::Value, minijinja::Error> {
    let (start, stop) = match stop {
        Some(stop) => (start, stop),
        None => (0, start),
    };
    let step = step.unwrap_or(1);
    if step <= 0 {
        return Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            "range's step must be positive",
        ));
    }
    let span = (i128::from(stop) - i128::from(start)).max(0);
    let count = span.div_euclid(i128::from(step)) + i128::from(span % i128::from(step) != 0);
    if count > i128::from(MAX_RANGE) {
        return Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("range gives at most {MAX_RANGE} numbers"),
        ));
    }
    let numbers: Vec<i64> = (0..count as i64).map(|i| start + i * step).collect();
    Ok(minijinja::Value::from(numbers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(problems: &[Problem]) -> Vec<(Option<usize>, String)> {
        problems
            .iter()
            .map(|p| (p.line, p.message.clone()))
            .collect()
    }

    #[test]
    fn statements_that_reach_out_or_grow_are_refused_with_their_line() {
        let source = "Hello {{ name }}\n{% if a %}x{% endif %}\n{% include 'other' %}\n{%- set s = a ~ a %}\n{# {% macro m() %} in a comment #}";
        let found = lines(&screen(Part::Body, source));
        assert_eq!(
            found,
            [
                (
                    Some(3),
                    "{% include %} is not allowed in an organization's template".into()
                ),
                (
                    Some(4),
                    "{% set %} is not allowed in an organization's template".into()
                ),
            ]
        );
    }

    #[test]
    fn a_star_outside_a_string_is_refused_and_inside_one_is_text() {
        assert_eq!(
            screen(Part::Body, "{{ 'a*b' }} {{ \"*\" }} * plain").len(),
            0
        );
        let found = lines(&screen(Part::Subject, "x\n{{ 'x' * 100000000 }}"));
        assert_eq!(
            found,
            [(
                Some(2),
                "`*` is not allowed in an organization's template".into()
            )]
        );
        assert_eq!(
            screen(Part::Body, "{% for i in range(2 ** 40) %}{% endfor %}").len(),
            1
        );
    }

    #[test]
    fn a_raw_block_is_text() {
        assert!(
            screen(
                Part::Body,
                "{% raw %}{% set x = 1 %} {{ a * b }}{% endraw %}"
            )
            .is_empty()
        );
    }

    #[test]
    fn sources_are_bounded() {
        let big = "x".repeat(Part::Subject.max_source() + 1);
        assert_eq!(
            lines(&screen(Part::Subject, &big)),
            [(None, "must be at most 1000 bytes".into())]
        );
    }

    #[test]
    fn a_loop_that_does_not_end_runs_out_of_fuel_and_output_is_bounded() {
        let mut env = environment();
        env.add_template_owned(
            "t.body.j2",
            "{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}",
        )
        .unwrap();
        let err = env
            .get_template("t.body.j2")
            .unwrap()
            .render_captured_to((), Capped::new(100))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::OutOfFuel);
        assert!(describe(&err).starts_with("ran out of fuel"));

        env.add_template_owned(
            "w.body.j2",
            "{% for a in range(1000) %}0123456789{% endfor %}",
        )
        .unwrap();
        let err = env
            .get_template("w.body.j2")
            .unwrap()
            .render_captured_to((), Capped::new(100))
            .unwrap_err();
        assert_eq!(describe(&err), "writes more than 100 bytes");
    }

    #[test]
    fn range_is_bounded_and_counts_as_pythons_does() {
        let mut env = environment();
        let render = |env: &mut Environment<'static>, source: &str| {
            env.add_template_owned("r.body.j2", source.to_string())
                .unwrap();
            env.get_template("r.body.j2")
                .unwrap()
                .render(())
                .map_err(|e| describe(&e))
        };
        assert_eq!(
            render(&mut env, "{{ range(3) | join(',') }}").unwrap(),
            "0,1,2"
        );
        assert_eq!(
            render(&mut env, "{{ range(2, 9, 3) | join(',') }}").unwrap(),
            "2,5,8"
        );
        assert_eq!(render(&mut env, "{{ range(5, 2) | length }}").unwrap(), "0");
        assert_eq!(
            render(&mut env, "{{ range(1000) | length }}").unwrap(),
            "1000"
        );
        let too_many = render(&mut env, "{{ range(1001) | length }}").unwrap_err();
        assert!(too_many.contains("at most 1000"), "{too_many}");
        let backwards = render(&mut env, "{{ range(5, 0, -1) | length }}").unwrap_err();
        assert!(backwards.contains("positive"), "{backwards}");
    }

    #[test]
    fn autoescape_cannot_be_turned_off() {
        let found = lines(&screen(
            Part::Html,
            "{% autoescape false %}{{ v }}{% endautoescape %}",
        ));
        assert_eq!(found.len(), 2, "{found:?}");
    }

    #[test]
    fn the_growth_prone_builtins_are_gone_and_html_is_escaped() {
        let mut env = environment();
        env.add_template_owned("a.html.j2", "<p>{{ v }}</p>")
            .unwrap();
        let out = env
            .get_template("a.html.j2")
            .unwrap()
            .render(minijinja::context! { v => "<b>" })
            .unwrap();
        assert_eq!(out, "<p>&lt;b&gt;</p>");
        for source in [
            "{{ v|safe }}",
            "{{ v|replace('a', 'b') }}",
            "{{ namespace() }}",
        ] {
            env.add_template_owned("b.body.j2", source).unwrap_or(());
            let rendered = env
                .get_template("b.body.j2")
                .and_then(|t| t.render(minijinja::context! { v => "a" }));
            assert!(rendered.is_err(), "{source}");
        }
    }
}
