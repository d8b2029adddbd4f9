//! Alert summaries: a rule's Handlebars template filled in when the alert is raised. The text
//! is stored in the `Raised` event, so a replay shows the same words.

use handlebars::Handlebars;
use serde::Serialize;
use std::sync::OnceLock;

/// What a summary template can use.
#[derive(Debug, Default, Serialize)]
pub struct Facts<'a> {
    pub system: &'a str,
    pub component: &'a str,
    pub rule: &'a str,
    pub severity: &'a str,
    pub status: &'a str,
    pub metric: &'a str,
    pub value: String,
    pub last_report: String,
}

fn registry() -> &'static Handlebars<'static> {
    static REGISTRY: OnceLock<Handlebars<'static>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut h = Handlebars::new();
        // Summaries are plain text; pages escape them when they show them.
        h.register_escape_fn(handlebars::no_escape);
        h
    })
}

/// Whether `template` compiles.
pub fn check(template: &str) -> Result<(), String> {
    handlebars::Template::compile(template).map(|_| ()).map_err(|e| format!("not a valid template: {e}"))
}

/// Fills in `template`; a template that fails at render time falls back to itself, so an
/// alert is never lost over its wording.
pub fn render(template: &str, facts: &Facts<'_>) -> String {
    registry().render_template(template, facts).unwrap_or_else(|_| template.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_in_facts_without_escaping() {
        let facts = Facts { system: "derecho", component: "fs/<glade>", status: "failed", ..Default::default() };
        assert_eq!(render("{{system}} {{component}} is {{status}}", &facts), "derecho fs/<glade> is failed");
    }

    #[test]
    fn a_broken_template_is_refused() {
        assert!(check("{{#if x}}").is_err());
        assert!(check("{{system}}").is_ok());
    }
}
