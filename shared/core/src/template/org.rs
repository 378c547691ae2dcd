//! An organization's own template for a type, channel and locale: checked before it is
//! stored, and rendered in the sandbox ([`super::sandbox`]).

use std::collections::BTreeSet;

use minijinja::Environment;

use super::sandbox::{self, Capped, Part, Problem};
use super::variables::ALWAYS_THERE;
use super::{RenderContext, TemplateSpec};
use crate::ids::{Locale, NotificationType};
use crate::model::Channel;

/// The parts of a template as an organization writes them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Parts {
    pub subject: Option<String>,
    pub body: String,
    /// Email only: the HTML alternative.
    pub html: Option<String>,
}

impl Parts {
    fn each(&self) -> impl Iterator<Item = (Part, &str)> {
        [
            (Part::Subject, self.subject.as_deref()),
            (Part::Body, Some(self.body.as_str())),
            (Part::Html, self.html.as_deref()),
        ]
        .into_iter()
        .filter_map(|(part, source)| Some((part, source?)))
    }
}

/// The channels whose text an organization may write: a WhatsApp message a business starts is
/// a template WhatsApp approved, so its text is not Herald's to change.
pub fn writable(channel: Channel) -> bool {
    channel != Channel::Whatsapp
}

/// The name a part is compiled under: the suffix decides its escaping.
fn name(
    notification_type: &NotificationType,
    locale: &str,
    channel: Channel,
    part: Part,
) -> String {
    format!("{notification_type}/{locale}/{channel}.{part}.j2")
}

/// The line of the first tag that reads `variable`, for an error that points at it.
fn line_of(source: &str, variable: &str) -> Option<usize> {
    sandbox::tags(source)
        .into_iter()
        .find(|tag| {
            tag.inner
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
                .any(|word| word.split('.').next() == Some(variable))
        })
        .map(|tag| tag.line)
}

/// Every problem of a template for `spec`'s type on `channel`: the parts the channel takes,
/// the sandbox's rules, syntax, variables the type does not have (each with its line), and a
/// render with the type's sample context that fails or writes too much. Nothing is stored or
/// sent by this; an empty list means the template may be stored.
pub fn check(
    notification_type: &NotificationType,
    spec: &TemplateSpec,
    channel: Channel,
    locale: &Locale,
    parts: &Parts,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let at = |part, message: String| Problem {
        part,
        line: None,
        message,
    };
    if !writable(channel) {
        problems.push(at(
            Part::Body,
            "a WhatsApp message is the template WhatsApp approved; its text cannot be changed here"
                .into(),
        ));
        return problems;
    }
    if !spec.channels.contains(&channel) {
        problems.push(at(
            Part::Body,
            format!("{notification_type} is not sent by {channel}"),
        ));
        return problems;
    }
    if parts.subject.is_some()
        && !matches!(channel, Channel::Email | Channel::Push | Channel::InApp)
    {
        problems.push(at(Part::Subject, format!("{channel} has no subject")));
    }
    if parts.subject.is_none() && channel == Channel::Email {
        problems.push(at(Part::Subject, "an email needs a subject".into()));
    }
    if parts.html.is_some() && channel != Channel::Email {
        problems.push(at(Part::Html, "only an email has an HTML part".into()));
    }
    if parts.body.trim().is_empty() {
        problems.push(at(Part::Body, "must not be empty".into()));
    }
    let mut env = sandbox::environment();
    let mut compiled = Vec::new();
    for (part, source) in parts.each() {
        let screened = sandbox::screen(part, source);
        if !screened.is_empty() {
            problems.extend(screened);
            continue;
        }
        let name = name(notification_type, locale.as_str(), channel, part);
        if let Err(e) = env.add_template_owned(name.clone(), source.to_string()) {
            problems.push(Problem {
                part,
                line: e.line(),
                message: format!("syntax error: {}", e.detail().unwrap_or("")),
            });
            continue;
        }
        compiled.push((part, name, source));
    }
    // the type's variables, and the functions the sandbox keeps (`range`)
    let known: BTreeSet<&str> = spec
        .variables
        .keys()
        .map(String::as_str)
        .chain(ALWAYS_THERE)
        .chain(env.globals().map(|(name, _)| name))
        .collect();
    for (part, name, source) in &compiled {
        let Ok(template) = env.get_template(name) else {
            continue;
        };
        for variable in template.undeclared_variables(false) {
            if !known.contains(variable.as_str()) {
                problems.push(Problem {
                    part: *part,
                    line: line_of(source, &variable),
                    message: format!("{variable} is not a variable of {notification_type}"),
                });
            }
        }
    }
    if problems.is_empty() {
        let ctx = RenderContext::value(locale, None, &spec.sample);
        for (part, name, _) in &compiled {
            if let Err(message) = render(&env, name, *part, &ctx) {
                problems.push(at(
                    *part,
                    format!("does not render with the sample: {message}"),
                ));
            }
        }
    }
    problems
}

/// Renders one part in the sandbox, within its output bound.
pub(super) fn render(
    env: &Environment<'static>,
    name: &str,
    part: Part,
    ctx: &minijinja::Value,
) -> Result<String, String> {
    let template = env
        .get_template(name)
        .map_err(|e| sandbox::describe(&e, part.max_output()))?;
    let mut out = Capped::new(part.max_output());
    template
        .render_captured_to(ctx, &mut out)
        .map_err(|e| sandbox::describe(&e, part.max_output()))?;
    String::from_utf8(out.out).map_err(|_| "wrote something that is not text".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::Catalog;

    fn order_spec() -> (NotificationType, TemplateSpec) {
        let catalog = Catalog::embedded().unwrap();
        let t = NotificationType::parse("order_confirmation").unwrap();
        let spec = catalog.spec(&t).unwrap().clone();
        (t, spec)
    }

    fn email(subject: &str, body: &str) -> Parts {
        Parts {
            subject: Some(subject.into()),
            body: body.into(),
            html: None,
        }
    }

    #[test]
    fn a_template_of_the_types_variables_that_renders_is_accepted() {
        let (t, spec) = order_spec();
        let parts = Parts {
            html: Some("<p>{{ order_id }}: {{ grand_total | money(currency) }}</p>".into()),
            ..email(
                "Order {{ order_id }}",
                "{% for item in items %}{{ item.name }} x{{ item.quantity }}\n{% endfor %}",
            )
        };
        assert_eq!(
            check(&t, &spec, Channel::Email, &Locale::english(), &parts),
            []
        );
    }

    #[test]
    fn an_unknown_variable_is_named_with_its_line() {
        let (t, spec) = order_spec();
        let parts = email("Order {{ order_id }}", "Hello\n\n{{ customer_name }}");
        let problems = check(&t, &spec, Channel::Email, &Locale::english(), &parts);
        assert_eq!(
            problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["body line 3: customer_name is not a variable of order_confirmation"]
        );
    }

    #[test]
    fn a_syntax_error_names_its_line() {
        let (t, spec) = order_spec();
        let parts = email("Order {{ order_id }}", "one\ntwo {% if %}\n");
        let problems = check(&t, &spec, Channel::Email, &Locale::english(), &parts);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!((problems[0].part, problems[0].line), (Part::Body, Some(2)));
        assert!(
            problems[0].message.starts_with("syntax error"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_template_that_loops_for_ever_is_refused_for_its_fuel() {
        let (t, spec) = order_spec();
        let parts = email(
            "x",
            "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
        );
        let problems = check(&t, &spec, Channel::Email, &Locale::english(), &parts);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].message.contains("ran out of fuel"),
            "{problems:?}"
        );
        // a range past minijinja's bound stops at once, with its own reason
        let parts = email("x", "{% for a in range(100000000) %}{% endfor %}");
        let problems = check(&t, &spec, Channel::Email, &Locale::english(), &parts);
        assert!(
            problems[0].message.contains("range has too many elements"),
            "{problems:?}"
        );
    }

    /// The sandbox leaves what a notification needs: every built-in template passes as an
    /// organization's own, well within its fuel.
    #[test]
    fn every_built_in_template_would_pass_as_an_organizations() {
        let catalog = Catalog::embedded().unwrap();
        let source = |name: String| {
            catalog
                .env
                .get_template(&name)
                .ok()
                .map(|t| t.source().to_string())
        };
        let mut most_fuel = 0;
        for ((t, channel), locales) in &catalog.locales {
            if !writable(*channel) {
                continue;
            }
            let spec = catalog.spec(t).unwrap();
            for locale in locales {
                let base = format!("{t}/{locale}/{channel}");
                let parts = Parts {
                    subject: source(format!("{base}.subject.j2")),
                    body: source(format!("{base}.body.j2")).unwrap(),
                    html: source(format!("{base}.html.j2")),
                };
                let locale = Locale::parse(locale.as_str()).unwrap();
                assert_eq!(check(t, spec, *channel, &locale, &parts), [], "{base}");
                let mut env = sandbox::environment();
                env.add_template_owned("b.html.j2", parts.html.unwrap_or(parts.body))
                    .unwrap();
                let ctx = RenderContext::value(&locale, None, &spec.sample);
                let captured = env
                    .get_template("b.html.j2")
                    .unwrap()
                    .render_captured_to(&ctx, std::io::sink())
                    .unwrap();
                most_fuel = most_fuel.max(captured.state().fuel_levels().unwrap().0);
            }
        }
        assert!(most_fuel * 50 < sandbox::FUEL, "{most_fuel}");
        println!("the most fuel a built-in template uses: {most_fuel}");
    }

    #[test]
    fn parts_follow_the_channel() {
        let (t, spec) = order_spec();
        let problems = check(
            &t,
            &spec,
            Channel::Whatsapp,
            &Locale::english(),
            &email("a", "b"),
        );
        assert!(problems[0].message.contains("WhatsApp approved"));
        let no_subject = Parts {
            subject: None,
            ..email("", "b")
        };
        let problems = check(&t, &spec, Channel::Email, &Locale::english(), &no_subject);
        assert_eq!(problems[0].to_string(), "subject: an email needs a subject");
        let problems = check(
            &t,
            &spec,
            Channel::Sms,
            &Locale::english(),
            &email("a", "b"),
        );
        assert_eq!(
            problems[0].to_string(),
            "body: order_confirmation is not sent by sms"
        );
    }
}
